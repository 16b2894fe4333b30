"""Entry point of the `boxkube` command: parse, run, and turn every error into one line."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Sequence

from boxkube.cli.context import Context
from boxkube.cli.parser import UsageError, parse
from boxkube.cluster.errors import ClusterError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _LevelPrefixFormatter(logging.Formatter):
    """Warnings as ``WARNING: text``; debug lines with time and logger name."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return f"{record.levelname}: {record.getMessage()}"
        return f"{self.formatTime(record, '%H:%M:%S')} {record.levelname.lower()} {record.name}: {record.getMessage()}"


def run(argv: Sequence[str], ctx: Context) -> int:
    """Run the command line `argv` (without the program name); the exit code."""
    try:
        # --help and --version print through sys.stdout.
        with contextlib.redirect_stdout(ctx.stdout), contextlib.redirect_stderr(ctx.stderr):
            args = parse(argv)
    except UsageError as e:
        print(f'ERROR: {e} (see "{e.prog} --help")', file=ctx.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0

    verbose = getattr(args, "verbose", 0) or 0
    logger = logging.getLogger("boxkube")
    handler = logging.StreamHandler(ctx.stderr)
    handler.setFormatter(_LevelPrefixFormatter())
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        return int(args.handler(args, ctx))
    except ClusterError as e:
        if verbose:
            traceback.print_exc(file=ctx.stderr)
        print(f"ERROR: {e.message}", file=ctx.stderr)
        for line in e.details:
            print(f"  {line}", file=ctx.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=ctx.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if verbose:
            traceback.print_exc(file=ctx.stderr)
        reason = str(e).splitlines()[0] if str(e) else ""
        hint = "" if verbose else " (run with -v for details)"
        print(f"ERROR: unexpected {type(e).__name__}: {reason}{hint}", file=ctx.stderr)
        return EXIT_ERROR
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def main(argv: Sequence[str] | None = None) -> int:
    """The `boxkube` console script."""
    return run(sys.argv[1:] if argv is None else argv, Context.create())


if __name__ == "__main__":
    sys.exit(main())
