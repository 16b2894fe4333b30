"""The tutorials' parser, output matcher and runner (tests/docker/test_tutorials.py runs them).

A tutorial (tutorials/NN-*.md) is Markdown whose ```sh blocks are the commands a student types, in
order, and whose ```text (or ```console) blocks show what the student should see:

- every command of a ```sh block runs, in order, in a fresh `bash` in the tutorial's working
  directory (the student's home); `#` comment lines and blank lines are skipped, a line ending in
  `\\` continues on the next, and a here-document (`<<EOF` ... `EOF`) belongs to its command;
- the ```text / ```console block that follows a ```sh block (prose may come in between, but no other
  ```sh block) shows the output of that block's commands together, stdout and stderr as a terminal
  interleaves them. A ```sh block with no output block must print nothing;
- every command must exit 0, unless the block's info string says otherwise: ```sh exit=1 (the
  block's one command must exit 1). ```sh timeout=600 gives the block's commands longer than the
  default 180 s each. Info-string words after the language are not shown by Markdown renderers;
- commands that never end by themselves (`kubectl get -w`, `logs -f`, `port-forward`, `attach`,
  `docker logs -f`, `docker events`) are refused unless run under `timeout N`.

Expected output is compared line by line, trailing spaces ignored, with:

- a run of spaces matching any run of spaces (table columns move as names and ages change width);
- `...` alone on a line: any number of lines, none included;
- placeholders: `<hash>` a random suffix (lowercase letters and digits), `<age>` an age as kubectl
  prints it (`7s`, `2m3s`), `<ip>` an IPv4 address, `<n>` a number, `<node>` a node's name (one word),
  `<date>` a date as `kubectl describe` prints it, `<...>` any text on the line (maybe none), and
  `<re:REGEX>` a Python regular expression, where nothing else will do. Any other text in angle
  brackets (`<none>`, `<invalid>`) is literal, as kubectl prints it;
- in the actual output the student's home directory (the test's temporary one) reads `~`.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_TIMEOUT = 180.0
COMMAND_LANGS = {"sh", "bash", "shell"}
OUTPUT_LANGS = {"text", "console"}
ELLIPSIS = "..."

PLACEHOLDERS = {
    "hash": r"[a-z0-9]+",
    "age": r"(?:\d+[smhdy])+|<invalid>",
    "ip": r"\d{1,3}(?:\.\d{1,3}){3}",
    "n": r"\d+",
    "node": r"\S+",
    "date": r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}",
    "...": r".*?",
}
_TOKEN = re.compile(r"<re:(?P<regex>[^>]*)>|<(?P<name>" + "|".join(re.escape(p) for p in PLACEHOLDERS) + r")>|(?P<space>[ \t]+)")


class TutorialError(Exception):
    """A tutorial that cannot be run as written (a parse or lint error), naming the file and line."""


@dataclass
class Command:
    text: str
    line: int                   # where it starts in the Markdown file (1-based)


@dataclass
class Step:
    """A ```sh block: its commands, and the output block that shows what they print."""
    line: int
    commands: list[Command]
    exit_code: int = 0
    timeout: float = DEFAULT_TIMEOUT
    expected: list[str] = field(default_factory=list)
    expected_line: int | None = None     # the output block's first line, None when there is none


@dataclass
class Tutorial:
    path: Path
    steps: list[Step]

    @property
    def name(self) -> str:
        """How failures name it: tutorials/NN-name.md, as the repository has it."""
        return f"{self.path.parent.name}/{self.path.name}" if self.path.parent.name else self.path.name


# ---------------------------------------------------------------- parsing

def parse(path: Path, text: str | None = None) -> Tutorial:
    text = path.read_text() if text is None else text
    steps: list[Step] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+|~~~+)\s*(.*)$", lines[i])
        if not fence:
            i += 1
            continue
        marker, info = fence.group(1), fence.group(2).split()
        start = i + 1                               # the block's first content line, 0-based
        end = start
        while end < len(lines) and not lines[end].startswith(marker):
            end += 1
        if end == len(lines):
            raise TutorialError(f"{path.name}:{i + 1}: unclosed code block")
        body = lines[start:end]
        lang = info[0].lower() if info else ""
        if lang in COMMAND_LANGS:
            steps.append(_command_step(path, i + 1, start + 1, body, info[1:]))
        elif lang in OUTPUT_LANGS:
            if not steps or steps[-1].expected_line is not None:
                raise TutorialError(f"{path.name}:{i + 1}: an output block with no ```sh block before it")
            steps[-1].expected, steps[-1].expected_line = body, start + 1
        i = end + 1
    return Tutorial(path, steps)


def _command_step(path: Path, fence_line: int, first: int, body: list[str], options: list[str]) -> Step:
    try:
        step = Step(fence_line, split_commands(body, first))
    except ValueError as e:
        raise TutorialError(f"{path.name}:{e}") from None
    for option in options:
        key, _, value = option.partition("=")
        try:
            if key == "exit":
                step.exit_code = int(value)
            elif key == "timeout":
                step.timeout = float(value)
            else:
                raise ValueError
        except ValueError:
            raise TutorialError(f"{path.name}:{fence_line}: unknown block option {option!r} "
                                "(exit=N, timeout=SECONDS)") from None
    if not step.commands:
        raise TutorialError(f"{path.name}:{fence_line}: a ```sh block with no command")
    if step.exit_code and len(step.commands) != 1:
        raise TutorialError(f"{path.name}:{fence_line}: exit={step.exit_code} needs a block of one command")
    for command in step.commands:
        problem = never_ends(command.text)
        if problem:
            raise TutorialError(f"{path.name}:{command.line}: `{command.text}` {problem}; "
                                "run it under `timeout N` or leave it out")
    return step


def split_commands(body: list[str], first_line: int) -> list[Command]:
    """The commands of a ```sh block: comments and blank lines out, continuations and heredocs joined."""
    commands: list[Command] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        start, parts = i, [line]
        while parts[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            parts.append(body[i])
        for heredoc in re.finditer(r"(?<!<)<<-?(?!<)\s*(['\"]?)(\w+)\1", "\n".join(parts)):
            terminator = heredoc.group(2)
            while i + 1 < len(body):
                i += 1
                parts.append(body[i])
                if body[i].strip() == terminator:
                    break
            else:
                raise ValueError(f"line {first_line + start}: here-document {terminator} not ended")
        commands.append(Command("\n".join(parts), first_line + start))
        i += 1
    return commands


_NEVER_ENDING = [
    (re.compile(r"\bkubectl\b.*\s(-w|--watch|--watch-only)(\s|=|$)"), "watches forever"),
    (re.compile(r"\b(kubectl|docker)\b.*\blogs\b.*\s(-f|--follow)(\s|=|$)"), "follows logs forever"),
    (re.compile(r"\bkubectl\b.*\b(port-forward|attach|proxy)\b"), "runs until stopped"),
    (re.compile(r"\bdocker\s+events\b"), "runs until stopped"),
]


def never_ends(command: str) -> str | None:
    """Why a command would not end by itself (None when it will, or when it runs under `timeout`)."""
    if re.match(r"\s*timeout\s+\d", command):
        return None
    for pattern, why in _NEVER_ENDING:
        if pattern.search(command.split("\n", 1)[0]):
            return why
    return None


# ---------------------------------------------------------------- matching

@lru_cache(maxsize=4096)
def line_pattern(expected: str) -> re.Pattern:
    """The regular expression that an expected line stands for."""
    parts, pos = [], 0
    for token in _TOKEN.finditer(expected):
        parts.append(re.escape(expected[pos:token.start()]))
        if token.group("regex") is not None:
            parts.append(f"(?:{token.group('regex')})")
        elif token.group("name"):
            parts.append(f"(?:{PLACEHOLDERS[token.group('name')]})")
        else:
            parts.append(r"[ \t]+")
        pos = token.end()
    parts.append(re.escape(expected[pos:]))
    return re.compile("".join(parts))


def line_matches(expected: str, actual: str) -> bool:
    return line_pattern(expected.rstrip()).fullmatch(actual.rstrip()) is not None


def clean(lines: list[str]) -> list[str]:
    """Trailing spaces and leading and trailing blank lines out."""
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


@dataclass
class Mismatch:
    expected_index: int         # the expected line that could not be matched (index into clean(expected))
    actual_index: int           # where in the actual lines matching got to
    expected_line: str | None
    actual_line: str | None


def match(expected: list[str], actual_text: str) -> Mismatch | None:
    """None when the actual output is what the expected lines show; else where it first differs."""
    want, got = clean(expected), clean(actual_text.splitlines())
    best = (-1, -1)                         # the furthest expected line matched, for the report

    @lru_cache(maxsize=None)
    def fits(e: int, a: int) -> bool:
        nonlocal best
        if e == len(want):
            return a == len(got)
        if want[e].strip() == ELLIPSIS:
            return any(fits(e + 1, k) for k in range(a, len(got) + 1))
        if a < len(got) and line_matches(want[e], got[a]):
            best = max(best, (e, a))
            return fits(e + 1, a + 1)
        return False

    if fits(0, 0):
        return None
    e, a = best[0] + 1, best[1] + 1
    while e < len(want) and want[e].strip() == ELLIPSIS:
        e += 1
    return Mismatch(e, a, want[e] if e < len(want) else None, got[a] if a < len(got) else None)


# ---------------------------------------------------------------- running

class TutorialFailed(AssertionError):
    pass


@dataclass
class Ran:
    command: Command
    output: str
    returncode: int | None      # None: killed at its timeout
    seconds: float = 0.0


def tutorial_env(home: Path) -> dict[str, str]:
    """A student's environment in `home`: their own HOME (so ~/.kube/config is the tutorial's) and
    BOXKUBE_HOME (~/.boxkube), no KUBECONFIG; the machine's PATH, Docker and the cache of node image
    builds (XDG_CACHE_HOME) stay the user's."""
    env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "BOXKUBE_HOME"}}
    # the boxkube and kubectl installed with this Python come first on PATH (a virtualenv's too)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(HOME=str(home), BOXKUBE_HOME=str(home / ".boxkube"), LC_ALL="C.UTF-8",
               XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"))
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def run_command(command: Command, cwd: Path, env: dict[str, str], timeout: float) -> Ran:
    process = subprocess.Popen(["bash", "-c", command.text], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=timeout)
        return Ran(command, out.decode(errors="replace"), process.returncode)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
        return Ran(command, out.decode(errors="replace"), None)


def _indent(text: str) -> str:
    return "".join(f"    | {line}\n" for line in text.splitlines()) or "    | (nothing)\n"


def run_step(tutorial: Tutorial, step: Step, cwd: Path, env: dict[str, str]) -> list[Ran]:
    home = env["HOME"]
    ran: list[Ran] = []
    for command in step.commands:
        started = time.monotonic()
        result = run_command(command, cwd, env, step.timeout)
        result.seconds = time.monotonic() - started
        result.output = result.output.replace(home, "~")
        ran.append(result)
        where = f"{tutorial.name}:{command.line}"
        if result.returncode is None:
            raise TutorialFailed(f"{where}: `{command.text}` did not end within {step.timeout:g} s; "
                                 f"it printed:\n{_indent(result.output)}")
        if result.returncode != step.exit_code:
            raise TutorialFailed(f"{where}: `{command.text}` exited {result.returncode} "
                                 f"(the tutorial expects {step.exit_code}); it printed:\n{_indent(result.output)}")
    actual = "".join(r.output if r.output.endswith("\n") or not r.output else r.output + "\n" for r in ran)
    mismatch = match(step.expected, actual)
    if mismatch is not None:
        want = clean(step.expected)
        blank = next((i for i, text in enumerate(step.expected) if text.strip()), 0)   # blank lines before
        line = (step.expected_line or step.line) + blank
        at = (f"expected line {line + mismatch.expected_index}: {mismatch.expected_line!r}"
              if mismatch.expected_line is not None else "the output goes on past what the tutorial shows")
        commands = "\n".join(f"    $ {c.text}" for c in step.commands)
        raise TutorialFailed(
            f"{tutorial.name}:{step.commands[0].line}: the output differs from the tutorial's "
            f"({at}; actual line {mismatch.actual_index + 1}: {mismatch.actual_line!r})\n"
            f"  command{'s' if len(step.commands) > 1 else ''}:\n{commands}\n"
            f"  expected ({tutorial.name}:{step.expected_line or step.line}):\n{_indent(chr(10).join(want))}"
            f"  actual:\n{_indent(actual)}")
    return ran


def run_tutorial(tutorial: Tutorial, home: Path, log=print) -> None:
    """Run every step in order in `home` (the student's home and working directory); the first
    step whose commands fail or print something else than the tutorial shows raises TutorialFailed.
    `log` gets each command with its time and output (pytest shows them with a failure, or with -s)."""
    env = tutorial_env(home)
    for step in tutorial.steps:
        for ran in run_step(tutorial, step, home, env):
            log(f"[{tutorial.name}:{ran.command.line}, {ran.seconds:.1f} s] $ {ran.command.text}\n{ran.output}")


def clusters_left(home: Path) -> list[str]:
    """The clusters a tutorial run left in its BOXKUBE_HOME (to delete after it, whatever happened)."""
    listed = subprocess.run([sys.executable, "-m", "boxkube.cli", "get", "clusters"], env=tutorial_env(home),
                            capture_output=True, text=True, timeout=60)
    return listed.stdout.split()        # one name a line ("No boxkube clusters found." goes to stderr)


def delete_clusters(home: Path) -> None:
    for name in clusters_left(home):
        subprocess.run([sys.executable, "-m", "boxkube.cli", "delete", "cluster", "--name", name],
                       env=tutorial_env(home), capture_output=True, timeout=120)


def tutorials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("[0-9][0-9]-*.md"))


__all__ = ["Command", "Step", "Tutorial", "TutorialError", "TutorialFailed", "parse", "split_commands",
           "never_ends", "line_matches", "match", "run_tutorial", "delete_clusters", "tutorials",
           "tutorial_env"]
