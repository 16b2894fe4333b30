"""The tutorials' parser and output matcher (tests/tutorials_runner.py), without a cluster; and every
tutorial in tutorials/ parses and passes the runner's checks."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.tutorials_runner import (Command, Step, Tutorial, TutorialError, TutorialFailed, line_matches, match,
                                    never_ends, parse, run_step, split_commands, tutorial_env, tutorials)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("expected, actual", [
    ("NAME   READY   STATUS", "NAME   READY   STATUS"),
    ("NAME   READY   STATUS", "NAME  READY      STATUS"),            # columns move
    ("web    1/1     Running   0          <age>", "web    1/1     Running   0          2m13s"),
    ("hello-<hash>-<hash>   1/1", "hello-bf6f7bd97-98frx   1/1"),
    ("tut1-worker   Ready    <none>   <age>   v1.37.0", "tut1-worker   Ready    <none>   6s    v1.37.0"),
    ("IP:  <ip>", "IP:  10.244.1.2"),
    ("Node:  <node>/<ip>", "Node:  tut2-worker2/172.24.0.4"),
    ("Start Time:  <date>", "Start Time:       Tue, 01 Dec 2026 14:21:11 +0000"),
    ("Set kubectl context in <...>/config", "Set kubectl context in ~/.kube/config"),
    ("a<...>b", "ab"),
    ("v<re:1\\.3\\d>.0", "v1.37.0"),
    ("restarts: <n>", "restarts: 12"),
    ("trailing   ", "trailing"),
    ("Waiting...", "Waiting..."),                                     # `...` inside a line is literal
])
def test_lines_that_match(expected, actual):
    assert line_matches(expected, actual)


@pytest.mark.parametrize("expected, actual", [
    ("NAME   READY", "NAME   READY   STATUS"),                       # a whole line, not a prefix
    ("web    1/1", "web1/1"),                                          # a space needs a space
    ("tut1-worker   Ready   <none>", "tut1-worker   Ready   master"),  # <none> is kubectl's literal
    ("hello-<hash>", "hello-BF6F"),
    ("<age>", "abc"),
    ("<ip>", "10.244.1"),
    ("<node>", "two words"),
    ("a.b", "axb"),                                                    # no regex outside <re:>
])
def test_lines_that_do_not_match(expected, actual):
    assert not line_matches(expected, actual)


def test_ellipsis_stands_for_any_lines_even_none():
    expected = ["Creating cluster \"tut1\" ...", "...", " ✓ Writing kubeconfig"]
    assert match(expected, "Creating cluster \"tut1\" ...\n ✓ Writing kubeconfig\n") is None
    assert match(expected, "Creating cluster \"tut1\" ...\n ✓ a\n ✓ b\n ✓ Writing kubeconfig\n") is None
    assert match(["...", "done"], "waiting...\nwaiting...\ndone\n") is None
    assert match(["first", "..."], "first\nthen anything\n") is None


def test_blank_lines_around_and_trailing_spaces_do_not_count():
    assert match(["", "a", "b  ", ""], "\na  \nb\n\n\n") is None


def test_a_mismatch_says_where():
    m = match(["NAME   STATUS", "web    Running", "db     Running"], "NAME   STATUS\nweb    Running\ndb     Pending\n")
    assert (m.expected_index, m.expected_line, m.actual_index, m.actual_line) == (2, "db     Running", 2, "db     Pending")
    missing = match(["a", "b"], "a\n")
    assert (missing.expected_line, missing.actual_line) == ("b", None)
    extra = match(["a"], "a\nb\n")
    assert (extra.expected_line, extra.actual_line) == (None, "b")
    assert match([], "") is None
    assert match([], "something\n").actual_line == "something"


def test_commands_of_a_block():
    body = ["# a comment", "kubectl get nodes", "", "kubectl run web \\", "  --image=boxkube/hello:1",
            "kubectl apply -f - <<EOF", "kind: Pod", "  # not a comment", "EOF", "echo done"]
    commands = split_commands(body, 10)
    assert [(c.line, c.text) for c in commands] == [
        (11, "kubectl get nodes"),
        (13, "kubectl run web \\\n  --image=boxkube/hello:1"),
        (15, "kubectl apply -f - <<EOF\nkind: Pod\n  # not a comment\nEOF"),
        (19, "echo done"),
    ]
    assert [c.text for c in split_commands(['cat <<< "x"', "echo y"], 1)] == ['cat <<< "x"', "echo y"]


@pytest.mark.parametrize("command", ["kubectl get pods -w", "kubectl get pods --watch", "kubectl logs -f web",
                                     "kubectl logs web --follow", "kubectl port-forward svc/hello 8080:80",
                                     "docker logs -f x", "kubectl get pods -l app=web --watch-only"])
def test_never_ending_commands_are_refused(command):
    assert never_ends(command)
    assert never_ends(f"timeout 5 {command}") is None


@pytest.mark.parametrize("command", ["kubectl get pods -l app=web", "kubectl apply -f pod.yaml",
                                     "kubectl logs web", "kubectl rollout status deployment/hello",
                                     "kubectl wait --for=condition=Ready pod/web", "kubectl get pods -o wide"])
def test_ending_commands_pass(command):
    assert never_ends(command) is None


DOC = """# A tutorial

Some prose.

```sh
kubectl get nodes
```

The output:

```text
NAME   STATUS
```

```sh exit=1 timeout=20
kubectl get pod gone
```
```console
Error from server (NotFound): pods "gone" not found
```

```yaml
kind: Pod     # an illustration, not run
```

```sh
docker tag a b
```
"""


def test_parse_pairs_commands_with_their_output():
    t = parse(Path("01-x.md"), DOC)
    assert [(s.line, [c.text for c in s.commands], s.expected, s.expected_line, s.exit_code, s.timeout)
            for s in t.steps] == [
        (5, ["kubectl get nodes"], ["NAME   STATUS"], 12, 0, 180.0),
        (15, ["kubectl get pod gone"], ['Error from server (NotFound): pods "gone" not found'], 19, 1, 20.0),
        (26, ["docker tag a b"], [], None, 0, 180.0),
    ]


@pytest.mark.parametrize("doc, error", [
    ("```text\nout\n```\n", "no ```sh block before it"),
    ("```sh\na\n```\n```text\nx\n```\n```text\ny\n```\n", "no ```sh block before it"),
    ("```sh\n# only a comment\n```\n", "no command"),
    ("```sh exit=1\na\nb\n```\n", "one command"),
    ("```sh retries=3\na\n```\n", "unknown block option"),
    ("```sh\nkubectl get pods -w\n```\n", "watches forever"),
    ("```sh\ncat <<EOF\nx\n```\n", "not ended"),
    ("```sh\nls\n", "unclosed"),
])
def test_parse_errors_name_the_file_and_line(doc, error):
    with pytest.raises(TutorialError, match=error) as e:
        parse(Path("09-bad.md"), doc)
    assert str(e.value).startswith("09-bad.md:")


def test_a_step_runs_in_a_shell_and_reports_a_mismatch(tmp_path):
    env = tutorial_env(tmp_path)
    tutorial = Tutorial(Path("01-x.md"), [])
    ok = Step(3, [Command("echo hello-$((6*7))", 4), Command("echo $HOME/x >&2", 5)], expected=["hello-<n>", "~/x"],
              expected_line=7)
    assert [r.output for r in run_step(tutorial, ok, tmp_path, env)] == ["hello-42\n", "~/x\n"]
    bad = Step(3, [Command("printf 'a\\nb\\n'", 4)], expected=["a", "c"], expected_line=7)
    with pytest.raises(TutorialFailed) as e:
        run_step(tutorial, bad, tmp_path, env)
    message = str(e.value)
    assert message.startswith("01-x.md:4: the output differs")
    assert "expected line 8: 'c'" in message and "actual line 2: 'b'" in message
    assert "$ printf" in message and "    | b" in message
    spaced = Step(3, [Command("echo x", 4)], expected=["", "y  "], expected_line=7)
    with pytest.raises(TutorialFailed, match="expected line 8: 'y'"):
        run_step(tutorial, spaced, tmp_path, env)
    failing = Step(3, [Command("echo oops; exit 3", 4)])
    with pytest.raises(TutorialFailed, match=r"01-x.md:4: `echo oops; exit 3` exited 3 \(the tutorial expects 0\)"):
        run_step(tutorial, failing, tmp_path, env)
    slow = Step(3, [Command("sleep 5", 4)], timeout=0.3)
    with pytest.raises(TutorialFailed, match="did not end within 0.3 s"):
        run_step(tutorial, slow, tmp_path, env)
    silent = Step(3, [Command("echo unexpected", 4)])
    with pytest.raises(TutorialFailed, match="goes on past what the tutorial shows"):
        run_step(tutorial, silent, tmp_path, env)


def test_the_tutorials_parse_and_delete_the_clusters_they_make():
    found = tutorials(REPO / "tutorials")
    assert found, "no tutorials in tutorials/"
    for path in found:
        commands = [c.text for s in parse(path).steps for c in s.commands]
        made = [re.search(r"--name (\S+)", c) for c in commands if "create cluster" in c]
        assert made and all(made), f"{path.name}: makes no cluster, or one with no --name of its own"
        for name in {m.group(1) for m in made}:
            last_create = max(i for i, c in enumerate(commands) if "create cluster" in c and f"--name {name}" in c)
            assert any(f"delete cluster --name {name}" in c for c in commands[last_create:]), \
                f"{path.name}: does not delete its cluster {name}"


def test_the_index_lists_every_tutorial():
    index = (REPO / "tutorials" / "README.md").read_text()
    for path in tutorials(REPO / "tutorials"):
        assert f"({path.name})" in index, f"tutorials/README.md does not link {path.name}"
