"""Every tutorial in tutorials/ runs as a student would follow it: each command of its ```sh blocks in
order, in a shell against the real docker cluster the tutorial makes, with the output checked against
the ```text block the tutorial shows (tests/tutorials_runner.py says how). Each tutorial gets its own
HOME and BOXKUBE_HOME in a temporary folder, so no kubeconfig or cluster of the user's is touched, and
whatever cluster it made is deleted after it, passed or failed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.tutorials_runner import delete_clusters, parse, run_tutorial, tutorials

pytestmark = pytest.mark.docker

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


@pytest.mark.timeout(900)      # a first run builds the node image (minutes); then ~1-2 minutes each
@pytest.mark.parametrize("path", tutorials(TUTORIALS), ids=lambda p: p.stem)
def test_tutorial(path, docker_client, tmp_path):
    tutorial = parse(path)
    home = tmp_path / "home"
    home.mkdir()
    try:
        run_tutorial(tutorial, home)
    finally:
        delete_clusters(home)
