"""Strategies of the apps/v1 workload resources."""
from __future__ import annotations

from boxkube.api import jsonio
from boxkube.apiserver.strategies.base import Obj, Strategy
from boxkube.apiserver.strategies.podspec import default_template


class _Workload(Strategy):
    tracks_generation = True
    # Defaults of each kind's spec, applied with setdefault (nested dicts merged one level down).
    spec_defaults: Obj = {}
    status: Obj = {}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for key, value in self.spec_defaults.items():
            if key not in spec:
                spec[key] = jsonio.copy(value)
            elif isinstance(value, dict) and isinstance(spec[key], dict):
                _fill_strategy(spec[key], value)
        default_template(obj)

    def initial_status(self, obj: Obj) -> Obj:
        return jsonio.copy(self.status)


def _fill_strategy(given: Obj, default: Obj) -> None:
    """Defaults of an update strategy apply only to the type the user chose (Recreate has no rollingUpdate)."""
    given.setdefault("type", default.get("type"))
    for key, value in default.items():
        if key != "type" and given["type"] == default.get("type"):
            if key not in given:
                given[key] = jsonio.copy(value)
            elif isinstance(value, dict) and isinstance(given[key], dict):
                for k, v in value.items():
                    given[key].setdefault(k, v)


class DeploymentStrategy(_Workload):
    spec_defaults = {
        "replicas": 1,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }

    def default(self, obj: Obj) -> None:
        super().default(obj)
        strategy = (obj.get("spec") or {}).get("strategy")
        if isinstance(strategy, dict) and strategy.get("type") == "Recreate":
            strategy.pop("rollingUpdate", None)


class ReplicaSetStrategy(_Workload):
    spec_defaults = {"replicas": 1}
    status = {"replicas": 0}


class StatefulSetStrategy(_Workload):
    spec_defaults = {
        "replicas": 1,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
    }
    status = {"replicas": 0, "availableReplicas": 0}


class DaemonSetStrategy(_Workload):
    spec_defaults = {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "revisionHistoryLimit": 10,
    }
    status = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}
