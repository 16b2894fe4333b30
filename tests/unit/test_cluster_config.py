"""The cluster config file: strict parsing, defaults, one-line errors naming the field."""
from __future__ import annotations

import pytest

from boxkube.api.times import parse_duration
from boxkube.cluster.config import ClusterConfig, parse_config
from boxkube.cluster.errors import ClusterError

FULL = """
apiVersion: boxkube.dev/v1alpha1
kind: Cluster
name: classroom
nodes:
  - role: control-plane
  - role: worker
    count: 3
    labels: {disk: ssd, example.com/zone: a}
    taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
    capacity: {cpu: 4, memory: 8Gi, pods: 110}
    extraPortMappings: [{containerPort: 30080, hostPort: 8080}]
  - {role: worker}
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.100.0.0/16, apiServerAddress: 127.0.0.1, apiServerPort: 6443}
timings: {nodeMonitorGracePeriod: 1m30s, podEvictionTimeout: 20}
"""


def test_full_config_parses_with_camel_case_fields():
    config = parse_config(FULL)
    assert config.name == "classroom"
    assert config.worker_count() == 4
    worker = config.workers()[0]
    assert worker.labels == {"disk": "ssd", "example.com/zone": "a"}
    assert worker.taints[0].effect == "NoSchedule" and worker.taints[0].value == "gpu"
    assert worker.capacity == {"cpu": "4", "memory": "8Gi", "pods": "110"}  # numbers become quantities
    assert worker.extra_port_mappings[0].host_port == 8080
    assert worker.extra_port_mappings[0].listen_address == "127.0.0.1"
    assert config.networking.service_subnet == "10.100.0.0/16"
    assert config.timings.node_monitor_grace_period == 90.0
    assert config.timings.pod_eviction_timeout == 20.0


def test_defaults_are_faster_than_upstream_and_documented_ones():
    config = parse_config("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\n")
    assert config.nodes == [] and config.worker_count() == 0
    assert config.timings.node_monitor_grace_period == 10.0 < 40.0
    assert config.timings.pod_eviction_timeout == 20.0 < 300.0
    assert config.networking.pod_subnet == "10.244.0.0/16"
    assert config.networking.service_subnet == "10.96.0.0/12"
    assert isinstance(config, ClusterConfig)


@pytest.mark.parametrize("text,seconds", [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("1.5s", 1.5)])
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("change,message", [
    (("effect: NoSchedule", "effect: Never"),
     "nodes[1].taints[0].effect: Input should be 'NoSchedule', 'PreferNoSchedule' or 'NoExecute'"),
    (("count: 3", "count: 0"), "nodes[1].count: Input should be greater than or equal to 1"),
    (("disk: ssd", "'bad key!': ssd"), 'nodes[1].labels: label "bad key!=ssd": name part must consist of'),
    (("1m30s", "soon"), 'timings.nodeMonitorGracePeriod: invalid duration "soon"'),
    (("memory: 8Gi", "memory: 8GB"), 'nodes[1].capacity: memory: "8GB": quantities must match'),
    (("podSubnet: 10.244.0.0/16", "podSubnet: 10.244.0.1/16"), "networking.podSubnet: invalid CIDR"),
    (("role: control-plane", "role: control-plane\n    colour: red"), "nodes[0].colour: unknown field"),
    (("hostPort: 8080", "hostPort: 80800"), "extraPortMappings[0].hostPort: Input should be less than"),
    (("apiServerAddress: 127.0.0.1", "apiServerAddress: localhost"),
     'networking.apiServerAddress: invalid IP address "localhost"'),
    (("apiServerPort: 6443", "apiServerPort: 70000"), "networking.apiServerPort: Input should be less than"),
    (("kind: Cluster", "kind: Pod"), "expected apiVersion: boxkube.dev/v1alpha1 and kind: Cluster"),
    (("nodes:", "nodes: 3\nx:"), "nodes: Input should be a valid list"),
])
def test_bad_config_is_one_line_naming_the_file_and_field(change, message):
    with pytest.raises(ClusterError) as err:
        parse_config(FULL.replace(*change), "cluster.yaml")
    text = str(err.value)
    assert text.startswith("cluster.yaml: ") and message in text, text
    assert "\n" not in text


def test_yaml_syntax_error_is_one_line():
    with pytest.raises(ClusterError) as err:
        parse_config("[1, 2", "c.yaml")
    assert str(err.value).startswith("c.yaml: not valid YAML:") and "\n" not in str(err.value)


def test_components_can_be_turned_off():
    config = parse_config("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\ncomponents: {controllerManager: false}\n")
    assert config.components.scheduler and not config.components.controller_manager
    assert parse_config(FULL).components.scheduler


def test_a_subset_of_controllers_is_checked_against_the_known_ones():
    config = parse_config("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\ncomponents: {controllers: [namespace]}\n")
    assert config.components.controllers == ["namespace"]
    with pytest.raises(ClusterError) as err:
        parse_config("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\ncomponents: {controllers: [nope]}\n", "c.yaml")
    assert str(err.value).startswith("c.yaml: components.controllers: unknown controller(s) nope; known: ")
