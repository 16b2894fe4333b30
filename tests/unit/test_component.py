"""The shared entry-point pieces of the cluster's programs (boxkube.component)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

import pytest

from boxkube import component
from boxkube.client import ApiError, ConfigError, TransportError

log = logging.getLogger("test-component")


@pytest.mark.parametrize("text, seconds", [("2.5", 2.5), ("40", 40.0), ("10s", 10.0), ("1m30s", 90.0),
                                           ("500ms", 0.5), ("0", 0.0)])
def test_durations_are_go_durations_or_plain_seconds(text, seconds):
    assert component.duration_flag(text) == seconds


@pytest.mark.parametrize("text", ["ten", "10x", "", "s", "-1", "nan", "inf"])
def test_bad_durations_are_flag_errors(text):
    with pytest.raises(argparse.ArgumentTypeError):
        component.duration_flag(text)


@pytest.mark.parametrize("text, value", [("true", True), ("T", True), ("1", True), ("false", False), ("0", False)])
def test_go_booleans(text, value):
    assert component.bool_flag(text) is value


def test_a_bad_boolean_is_a_flag_error():
    with pytest.raises(argparse.ArgumentTypeError):
        component.bool_flag("yes")


def test_sigterm_stops_the_program_cleanly(caplog):
    reached = []

    async def main() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            await asyncio.sleep(30)
        finally:
            reached.append("cleanup")     # the program's own finally blocks run

    caplog.set_level(logging.INFO, "test-component")
    assert component.run(main(), log) == 0
    assert reached == ["cleanup"]
    assert "stopping" in caplog.text


@pytest.mark.parametrize("error, line", [
    (ConfigError("no kubeconfig found"), "ERROR: no kubeconfig found"),
    (ApiError({"code": 401, "reason": "Unauthorized", "message": "bad token"}),
     "ERROR: the API server refused: 401 Unauthorized: bad token"),
    (TransportError("GET /version: connection refused", sent=False),
     "ERROR: cannot reach the API server: GET /version: connection refused"),
])
def test_a_failure_to_start_is_one_line_and_status_1(capsys, error, line):
    async def main() -> None:
        raise error

    assert component.run(main(), log) == 1
    assert capsys.readouterr().err == line + "\n"


def test_failures_of_the_program_itself_can_be_named():
    class Refused(Exception):
        pass

    async def main() -> None:
        raise Refused("bad node config")

    assert component.run(main(), log, failures=(Refused,)) == 1


def test_leader_election_flags_as_the_upstream_components_take_them():
    parser = argparse.ArgumentParser()
    component.leader_election_flags(parser, "kube-scheduler", "scheduling")
    config = component.leader_election(parser.parse_args(["--leader-elect-lease-duration", "20s"]))
    assert (config.namespace, config.name, config.lease_duration) == ("kube-system", "kube-scheduler", 20.0)
    assert component.leader_election(parser.parse_args(["--leader-elect=false"])) is None
    assert component.leader_election(parser.parse_args(["--leader-elect"])) is not None
