"""Cluster creation as a list of small named steps, run in order and shown as progress."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from boxkube.cluster.errors import StepFailedError
from boxkube.cluster.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One unit of work with the title people see (e.g. "Starting etcd")."""

    title: str
    run: Callable[[], None]


def run_steps(steps: Iterable[Step], progress: Progress) -> None:
    """Run `steps` in order; the first failure stops them and is raised as StepFailedError naming the step."""
    for step in steps:
        log.debug("step: %s", step.title)
        try:
            with progress.step(step.title):
                step.run()
        except StepFailedError:
            raise
        except Exception as e:
            log.debug("step %r failed", step.title, exc_info=True)
            raise StepFailedError(step.title, e) from e
