"""What a command runs with: environment, output streams and the providers."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from boxkube.cluster.progress import Progress
from boxkube.cluster.providers import ProviderFactory, provider_factory
from boxkube.cluster.state import boxkube_home


@dataclass
class Context:
    environ: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO
    home: Path
    providers: ProviderFactory

    @classmethod
    def create(
        cls,
        environ: Mapping[str, str] | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        providers: ProviderFactory | None = None,
    ) -> "Context":
        environ = dict(os.environ if environ is None else environ)
        home = boxkube_home(environ)
        return cls(
            environ=environ,
            stdout=stdout if stdout is not None else sys.stdout,
            stderr=stderr if stderr is not None else sys.stderr,
            home=home,
            providers=providers if providers is not None else provider_factory(home, environ),
        )

    def progress(self) -> Progress:
        return Progress(self.stderr)
