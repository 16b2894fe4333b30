"""The `boxkube` command and the local provider: parsing, errors, kubeconfig merging, real etcd."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import io
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from boxkube.cli.context import Context
from boxkube.cli.main import run
from boxkube.cli.parser import COMMANDS
from boxkube.cluster.config import ClusterConfig
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.etcd import start_etcd_and_wait
from boxkube.cluster.kubeconfig import (
    build_kubeconfig,
    kubeconfig_paths,
    merge_kubeconfig,
    path_for_merge,
    remove_kubeconfig_entries,
)
from boxkube.cluster.pki import (
    ServingCertificates,
    certificate_authority_data,
    generate_serving_certificates,
    serving_certificate_files,
)
from boxkube.cluster.process import ProcessRecord, is_running, start_detached, stop_process
from boxkube.cluster.providers import get_provider
from boxkube.cluster.providers.local import LocalProvider
from boxkube.cluster.readiness import http_get
from boxkube.cluster.state import ClusterState, cluster_dir

REPO = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose boxkube home and kubeconfig are inside tmp_path."""
    environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "BOXKUBE_HOME")}
    environ["HOME"] = str(tmp_path / "home")
    environ["BOXKUBE_HOME"] = str(tmp_path / "boxkube")
    return environ


Runner = Callable[..., Result]


@pytest.fixture
def boxkube(env: dict[str, str]) -> Runner:
    """Run the CLI in-process; `apiserver` replaces the API server command of the local provider."""

    def invoke(*argv: str, apiserver: Sequence[str] | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        ctx = Context.create(environ=env, stdout=out, stderr=err)
        if apiserver is not None:
            home, environ = ctx.home, ctx.environ

            def providers(name: str):  # type: ignore[no-untyped-def]
                if name == "local":
                    return LocalProvider(home, environ, apiserver_command=apiserver, stop_timeout=5)
                return get_provider(name, home, environ)

            ctx.providers = providers
        code = run(list(argv), ctx)
        return Result(code, out.getvalue(), err.getvalue())

    return invoke


def processes_mentioning(text: str) -> list[int]:
    """Live pids whose command line contains `text`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


# A stand-in for the API server that fails at once (it never serves /readyz).
FAILING_APISERVER = [sys.executable, "-c", "import sys; print('stand-in API server: giving up'); sys.exit(3)"]


@pytest.fixture
def no_leftover_processes(tmp_path: Path) -> Iterator[None]:
    yield
    leftovers = processes_mentioning(str(tmp_path))
    for pid in leftovers:  # do not leave them running even when the test failed
        stop_process(ProcessRecord("leftover", pid, [], ""), timeout=2)
    assert not leftovers, f"processes left running: {leftovers}"


# -- help and errors ----------------------------------------------------------


def test_help_lists_every_command_on_one_line(boxkube: Runner) -> None:
    result = boxkube("--help")
    assert result.code == 0
    lines = result.out.splitlines()
    for command in COMMANDS:
        words = " ".join(command.words)
        matching = [line for line in lines if line.strip().startswith(words + " ")]
        assert len(matching) == 1, f"{words!r} not listed once in:\n{result.out}"
        assert command.help in matching[0]
    for expected in ("create cluster", "delete cluster", "get clusters", "get kubeconfig", "kubectl"):
        assert any(line.strip().startswith(expected) for line in lines)


def test_console_script_help_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "boxkube.cli", "--help"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0
    assert "create cluster" in done.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["frobnicate"], 'unknown command "boxkube frobnicate"'),
        (["get", "pods"], 'unknown command "boxkube get pods"'),
        (["get"], '"boxkube get" needs a command'),
        ([], '"boxkube" needs a command'),
        (["create", "cluster", "--bogus"], "unrecognized arguments: --bogus"),
        (["create", "cluster", "--nodes", "-1"], "must be 0 or more"),
        (["create", "cluster", "--wait", "0"], "positive number of seconds"),
        (["kubectl", "-n", "x"], "after --"),
    ],
)
def test_usage_errors_are_one_line_without_traceback(boxkube: Runner, argv: list[str], message: str) -> None:
    result = boxkube(*argv)
    assert result.code == 2
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("ERROR: ") and message in lines[0]


def test_unknown_command_in_a_real_process_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "boxkube.cli", "frobnicate"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode != 0
    assert done.stderr.splitlines() == ['ERROR: unknown command "boxkube frobnicate" (see "boxkube --help")']
    assert "Traceback" not in done.stderr


def test_no_docker_engine_and_too_many_nodes_are_clear_errors(boxkube: Runner, env: dict[str, str]) -> None:
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    docker = boxkube("create", "cluster")      # the default provider is docker
    assert docker.code == 1
    assert docker.err == ("ERROR: the docker provider needs a Docker engine, and none answers at "
                          "unix:///nonexistent/docker.sock; start Docker, or make a cluster without it: "
                          "boxkube create cluster --provider local\n")
    nodes = boxkube("create", "cluster", "--provider", "local", "--nodes", "100000")
    assert nodes.code == 1
    assert "at most 5000 simulated nodes" in nodes.err and len(nodes.err.splitlines()) == 1
    assert not Path(env["BOXKUBE_HOME"], "clusters", "boxkube").exists()


def test_invalid_cluster_name_is_refused(boxkube: Runner) -> None:
    result = boxkube("delete", "cluster", "--name", "../etc")
    assert result.code == 1
    assert result.err.startswith("ERROR: invalid cluster name")


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(
    boxkube: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: LocalProvider) -> list[str]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(LocalProvider, "list", broken)
    quiet = boxkube("get", "clusters")
    assert quiet.code == 1
    assert quiet.err.splitlines() == ["ERROR: unexpected RuntimeError: disk on fire (run with -v for details)"]
    loud = boxkube("-v", "get", "clusters")
    assert loud.code == 1
    assert "Traceback" in loud.err and loud.err.rstrip().endswith("ERROR: unexpected RuntimeError: disk on fire")


# -- clusters without processes ---------------------------------------------------


def test_get_clusters_when_there_are_none(boxkube: Runner) -> None:
    result = boxkube("get", "clusters")
    assert result.code == 0
    assert result.out == ""
    assert result.err == "No boxkube clusters found.\n"


def test_creating_an_existing_cluster_is_a_clear_error_and_keeps_it(boxkube: Runner, env: dict[str, str]) -> None:
    cdir = cluster_dir(Path(env["BOXKUBE_HOME"]), "demo")
    cdir.claim(ClusterState(name="demo", provider="local"))
    result = boxkube("create", "cluster", "--provider", "local", "--name", "demo", apiserver=FAILING_APISERVER)
    assert result.code == 1
    assert result.err.splitlines() == [
        'ERROR: a cluster named "demo" already exists (delete it with: boxkube delete cluster --name demo)'
    ]
    assert cdir.state_file.is_file()
    listed = boxkube("get", "clusters")
    assert listed.out == "demo\n"


def test_deleting_a_missing_cluster_is_not_an_error(boxkube: Runner) -> None:
    result = boxkube("delete", "cluster", "--name", "nothing-here")
    assert result.code == 0
    assert 'Deleting cluster "nothing-here" ...' in result.err
    assert "nothing to delete" in result.err


def test_get_kubeconfig_and_kubectl_of_a_missing_cluster(boxkube: Runner) -> None:
    for argv in (["get", "kubeconfig", "--name", "ghost"], ["kubectl", "--name", "ghost", "--", "get", "ns"]):
        result = boxkube(*argv)
        assert result.code == 1
        assert result.err.splitlines() == ['ERROR: no cluster named "ghost" (see: boxkube get clusters)']


def test_kubectl_runs_with_the_cluster_kubeconfig_and_passes_its_exit_code(
    boxkube: Runner, env: dict[str, str]
) -> None:
    cdir = cluster_dir(Path(env["BOXKUBE_HOME"]), "kc")
    cdir.claim(ClusterState(name="kc", provider="local", server="http://127.0.0.1:1", token="t0ken"))
    cdir.kubeconfig_file.write_text(yaml.safe_dump(build_kubeconfig("kc", "http://127.0.0.1:1", "t0ken")))

    printed = boxkube("get", "kubeconfig", "--name", "kc")
    assert printed.code == 0
    assert yaml.safe_load(printed.out)["users"] == [{"name": "boxkube-kc", "user": {"token": "t0ken"}}]

    current = boxkube("kubectl", "--name", "kc", "--", "config", "current-context")
    assert (current.code, current.out) == (0, "boxkube-kc\n")
    missing = boxkube("kubectl", "--name", "kc", "--", "config", "use-context", "no-such-context")
    assert missing.code == 1
    assert "no-such-context" in missing.err


# -- kubeconfig merging (pure functions) ------------------------------------------


def test_build_kubeconfig_names_everything_boxkube_name() -> None:
    config = build_kubeconfig("demo", "http://127.0.0.1:6443", "secret")
    assert config["current-context"] == "boxkube-demo"
    assert config["clusters"] == [{"name": "boxkube-demo", "cluster": {"server": "http://127.0.0.1:6443"}}]
    assert config["users"] == [{"name": "boxkube-demo", "user": {"token": "secret"}}]
    assert config["contexts"] == [
        {"name": "boxkube-demo", "context": {"cluster": "boxkube-demo", "user": "boxkube-demo"}}
    ]


def test_merge_into_nothing_gives_the_cluster_config() -> None:
    new = build_kubeconfig("a", "http://127.0.0.1:1", "t")
    assert merge_kubeconfig(None, new) == new
    assert merge_kubeconfig({}, new) == new


def test_merge_keeps_other_entries_and_replaces_same_names_in_place() -> None:
    existing = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "prod", "cluster": {"server": "https://prod"}},
            {"name": "boxkube-a", "cluster": {"server": "http://old"}},
        ],
        "users": [{"name": "prod", "user": {"token": "p"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
        "current-context": "prod",
        "preferences": {"colors": True},
        "extensions": [{"name": "x", "extension": {}}],
    }
    before = json.loads(json.dumps(existing))
    merged = merge_kubeconfig(existing, build_kubeconfig("a", "http://new", "t"))
    assert existing == before, "the input must not change"
    assert [c["name"] for c in merged["clusters"]] == ["prod", "boxkube-a"]
    assert merged["clusters"][1]["cluster"]["server"] == "http://new"
    assert [u["name"] for u in merged["users"]] == ["prod", "boxkube-a"]
    assert [c["name"] for c in merged["contexts"]] == ["prod", "boxkube-a"]
    assert merged["current-context"] == "boxkube-a"
    assert merged["preferences"] == {"colors": True}
    assert merged["extensions"] == existing["extensions"]


def test_merge_can_leave_the_current_context_alone() -> None:
    merged = merge_kubeconfig({"current-context": "prod"}, build_kubeconfig("a", "http://x", "t"), False)
    assert merged["current-context"] == "prod"


def test_merge_tolerates_null_sections() -> None:
    merged = merge_kubeconfig({"clusters": None, "users": None}, build_kubeconfig("a", "http://x", "t"))
    assert [c["name"] for c in merged["clusters"]] == ["boxkube-a"]


def test_remove_takes_out_only_that_cluster_and_unsets_its_current_context() -> None:
    merged = merge_kubeconfig(
        merge_kubeconfig({}, build_kubeconfig("keep", "http://k", "k")), build_kubeconfig("gone", "http://g", "g")
    )
    result, changed = remove_kubeconfig_entries(merged, "gone")
    assert changed
    for section in ("clusters", "users", "contexts"):
        assert [e["name"] for e in result[section]] == ["boxkube-keep"]
    assert result["current-context"] == ""
    assert [e["name"] for e in merged["clusters"]] == ["boxkube-keep", "boxkube-gone"], "input unchanged"

    again, changed_again = remove_kubeconfig_entries(result, "gone")
    assert not changed_again and again == result


def test_remove_keeps_a_current_context_of_another_cluster() -> None:
    config = merge_kubeconfig(build_kubeconfig("a", "http://a", "a"), build_kubeconfig("b", "http://b", "b"), False)
    result, changed = remove_kubeconfig_entries(config, "b")
    assert changed and result["current-context"] == "boxkube-a"


def test_kubeconfig_paths_follow_kubectl(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert kubeconfig_paths(None, home) == [tmp_path / ".kube" / "config"]
    assert kubeconfig_paths(tmp_path / "explicit", {**home, "KUBECONFIG": "/x"}) == [tmp_path / "explicit"]
    first, second = tmp_path / "one", tmp_path / "two"
    env = {**home, "KUBECONFIG": os.pathsep.join([str(first), "", str(second), str(first)])}
    assert kubeconfig_paths(None, env) == [first, second]
    # New entries go to the first existing file, else to the last one (as kubectl does).
    assert path_for_merge(None, env) == second
    first.write_text("{}")
    assert path_for_merge(None, env) == first


# -- processes and the local provider (real etcd) ----------------------------------


def test_etcd_starts_and_stops(tmp_path: Path, no_leftover_processes: None) -> None:
    server = start_etcd_and_wait(tmp_path / "etcd", tmp_path / "etcd.log", timeout=30)
    try:
        assert is_running(server.process)
        status, body = http_get(f"{server.client_url}/health")
        assert status == 200 and json.loads(body)["health"] == "true"
    finally:
        assert stop_process(server.process, timeout=10)
    assert not is_running(server.process)
    with pytest.raises(OSError):
        http_get(f"{server.client_url}/health", timeout=1)
    assert not stop_process(server.process), "stopping a stopped process is a no-op"


def test_stop_escalates_to_sigkill(tmp_path: Path, no_leftover_processes: None) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
        "time.sleep(60)"
    )
    log = tmp_path / "stubborn.log"
    record = start_detached("stubborn", [sys.executable, "-c", stubborn, str(tmp_path)], log, cwd=tmp_path)
    deadline = time.monotonic() + 10
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert stop_process(record, timeout=0.5)
    assert not is_running(record)
    assert time.monotonic() - started < 5


def test_a_reused_pid_is_never_signalled(tmp_path: Path, no_leftover_processes: None) -> None:
    record = start_detached("sleeper", [sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)],
                            tmp_path / "sleeper.log", cwd=tmp_path)
    if record.start_time is None:
        stop_process(record)
        pytest.skip("no /proc start times on this system")
    impostor = ProcessRecord("impostor", record.pid, record.argv, record.log, start_time=record.start_time + 1)
    assert not is_running(impostor)
    assert not stop_process(impostor)
    assert is_running(record)
    assert stop_process(record)


def test_failed_creation_names_the_step_shows_the_log_and_cleans_up(
    boxkube: Runner, env: dict[str, str], tmp_path: Path, no_leftover_processes: None
) -> None:
    result = boxkube("create", "cluster", "--provider", "local", "--name", "broken", "--wait", "20",
                     apiserver=FAILING_APISERVER)
    assert result.code == 1
    assert " ✓ Starting etcd" in result.err
    assert " ✗ Waiting up to 20s for the API server to be ready" in result.err
    error = [line for line in result.err.splitlines() if line.startswith("ERROR:")]
    assert error == [
        'ERROR: failed to create cluster "broken": Waiting up to 20s for the API server to be ready: '
        + error[0].split(": ", 3)[3]
    ]
    assert "the API server exited before it was ready" in error[0]
    assert "stand-in API server: giving up" in result.err, "the log's last lines are shown"
    assert "deleted what was made" in result.err
    assert not Path(env["BOXKUBE_HOME"], "clusters", "broken").exists()
    assert not Path(env["HOME"], ".kube", "config").exists()


def test_retain_keeps_a_failed_cluster_and_delete_stops_its_etcd(
    boxkube: Runner, env: dict[str, str], tmp_path: Path, no_leftover_processes: None
) -> None:
    result = boxkube("create", "cluster", "--provider", "local", "--name", "kept", "--retain", "--wait", "20",
                     apiserver=FAILING_APISERVER)
    assert result.code == 1
    assert "kept the cluster for debugging (--retain)" in result.err
    cdir = cluster_dir(Path(env["BOXKUBE_HOME"]), "kept")
    state = cdir.load()
    etcd = state.processes["etcd"]
    assert is_running(etcd), "etcd was really started"
    status, body = http_get(f"http://127.0.0.1:{state.ports['etcd']}/health")
    assert status == 200
    assert cdir.log_file("etcd").stat().st_size > 0
    assert boxkube("get", "clusters").out == "kept\n"

    deleted = boxkube("delete", "cluster", "--name", "kept")
    assert deleted.code == 0, deleted.err
    assert f" ✓ Stopping etcd (pid {etcd.pid})" in deleted.err
    assert not is_running(etcd)
    assert not cdir.exists()
    assert boxkube("get", "clusters").err == "No boxkube clusters found.\n"


def _apiserver_importable() -> bool:
    done = subprocess.run([sys.executable, "-c", "import boxkube.apiserver.app"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not _apiserver_importable(), reason="boxkube.apiserver is not importable yet")
def test_create_use_and_delete_a_local_cluster(
    boxkube: Runner, env: dict[str, str], tmp_path: Path, no_leftover_processes: None
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(build_kubeconfig("other", "http://127.0.0.1:2", "o")))
    created = boxkube("create", "cluster", "--provider", "local", "--nodes", "0", "--kubeconfig", str(kubeconfig))
    assert created.code == 0, created.err
    assert f'Set kubectl context to "boxkube-boxkube" in {kubeconfig}' in created.err
    assert "boxkube kubectl -- get ns" in created.err
    merged = yaml.safe_load(kubeconfig.read_text())
    assert merged["current-context"] == "boxkube-boxkube"
    assert [c["name"] for c in merged["clusters"]] == ["boxkube-other", "boxkube-boxkube"]
    server = merged["clusters"][1]["cluster"]["server"]
    token = merged["users"][1]["user"]["token"]
    ca = cluster_dir(Path(env["BOXKUBE_HOME"]), "boxkube").load().certificate_authority
    assert (ca is not None) == server.startswith("https://")
    if ca is not None:  # kept for the check after the delete
        ca = str(shutil.copy(ca, tmp_path / "ca.crt"))
    assert http_get(f"{server}/readyz", ca_file=ca)[0] == 200
    assert http_get(f"{server}/api/v1/namespaces", ca_file=ca)[0] == 401
    assert http_get(f"{server}/api/v1/namespaces", {"Authorization": f"Bearer {token}"}, ca_file=ca)[0] == 200
    assert yaml.safe_load(boxkube("get", "kubeconfig").out)["clusters"][0]["cluster"]["server"] == server
    if ca is not None:  # kubectl sends the token only over https
        namespaces = boxkube("kubectl", "--", "get", "ns", "-o", "name")
        assert namespaces.code == 0, namespaces.err
        assert "namespace/default" in namespaces.out.split()

    deleted = boxkube("delete", "cluster")
    assert deleted.code == 0, deleted.err
    after = yaml.safe_load(kubeconfig.read_text())
    assert [c["name"] for c in after["clusters"]] == ["boxkube-other"]
    assert after["current-context"] == ""
    with pytest.raises(OSError):
        http_get(f"{server}/readyz", timeout=1, ca_file=ca)


def test_provider_lists_only_its_clusters(env: dict[str, str]) -> None:
    home = Path(env["BOXKUBE_HOME"])
    cluster_dir(home, "mine").claim(ClusterState(name="mine", provider="local"))
    cluster_dir(home, "theirs").claim(ClusterState(name="theirs", provider="docker"))
    assert LocalProvider(home, env).list() == ["mine"]
    with pytest.raises(ClusterError, match="no API server yet"):
        LocalProvider(home, env).kubeconfig("mine")


# -- TLS: kubectl sends the bearer token only over https ----------------------------


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    seen: list[str | None]

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'{"kind":"APIVersions","versions":["v1"]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _recording_server(certificates: ServingCertificates | None) -> Iterator[tuple[str, list[str | None]]]:
    handler = type("Handler", (_RecordingHandler,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    scheme = "http"
    if certificates is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates.cert, certificates.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


# TLS needs the `cryptography` package (it should become a dependency of boxkube).
needs_cryptography = pytest.mark.skipif(
    importlib.util.find_spec("cryptography") is None, reason="the cryptography package is not installed"
)


@needs_cryptography
def test_serving_certificates_are_trusted_through_the_cluster_ca(tmp_path: Path) -> None:
    certificates = generate_serving_certificates(tmp_path / "pki")
    assert oct(certificates.key.stat().st_mode & 0o777) == "0o600"
    with _recording_server(certificates) as (url, _seen):
        assert http_get(f"{url}/readyz", ca_file=certificates.ca_cert)[0] == 200
        with pytest.raises(OSError):  # not trusted without the cluster's CA
            http_get(f"{url}/readyz")


@needs_cryptography
def test_kubectl_sends_the_token_over_https_but_not_over_http(boxkube: Runner, env: dict[str, str]) -> None:
    home = Path(env["BOXKUBE_HOME"])
    cdir = cluster_dir(home, "tls")
    cdir.claim(ClusterState(name="tls", provider="local"))
    certificates = generate_serving_certificates(cdir.pki_dir)
    for certs in (certificates, None):
        with _recording_server(certs) as (url, seen):
            ca_data = certificate_authority_data(certificates.ca_cert) if certs else None
            cdir.kubeconfig_file.write_text(yaml.safe_dump(build_kubeconfig("tls", url, "s3cret", ca_data)))
            result = boxkube("kubectl", "--name", "tls", "--", "get", "--raw", "/api")
        assert result.code == 0, result.err
        assert '"APIVersions"' in result.out
        # client-go leaves credentials out over plain http: the reason for TLS.
        assert seen == (["Bearer s3cret"] if certs else [None])


@needs_cryptography
def test_local_provider_with_tls_passes_certificates_and_writes_ca_data(env: dict[str, str]) -> None:
    home = Path(env["BOXKUBE_HOME"])
    provider = LocalProvider(home, env, tls=True)
    cdir = cluster_dir(home, "secure")
    state = ClusterState(name="secure", provider="local")
    cdir.claim(state)
    provider.generate_credentials(cdir, state, ClusterConfig(apiVersion="boxkube.dev/v1alpha1", kind="Cluster"))
    argv = provider.apiserver_argv(cdir, "http://127.0.0.1:2379", 6443)
    files = serving_certificate_files(cdir.pki_dir)
    # good for loopback and for what pods use: the kubernetes Service's names and ClusterIP
    sans = x509.load_pem_x509_certificate(files.cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} <= set(
        sans.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.96.0.1")} <= set(
        sans.get_values_for_type(x509.IPAddress))
    assert argv[argv.index("--bind-address") + 1] == argv[argv.index("--advertise-address") + 1] == "127.0.0.1"
    assert argv[argv.index("--tls-cert-file") + 1] == str(files.cert)
    assert argv[argv.index("--tls-private-key-file") + 1] == str(files.key)
    assert argv[argv.index("--token-file") + 1] == str(cdir.token_file)
    assert cdir.token_file.read_text() == f"{state.token}\n"
    state.server = "https://127.0.0.1:6443"
    cdir.save(state)
    cluster = provider.kubeconfig("secure")["clusters"][0]["cluster"]
    assert cluster["certificate-authority-data"] == certificate_authority_data(files.ca_cert)


# -- the cluster config file ----------------------------------------------------


def test_bad_config_file_is_one_line_and_creates_nothing(boxkube: Runner, env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\ntimings: {podEvictionTimeout: soon}\n")
    result = boxkube("create", "cluster", "--provider", "local", "--config", str(config))
    assert result.code == 1
    assert result.err.startswith(f"ERROR: {config}: timings.podEvictionTimeout: invalid duration")
    assert len(result.err.splitlines()) == 1
    missing = boxkube("create", "cluster", "--config", str(tmp_path / "nope.yaml"))
    assert missing.code == 1 and "cannot read cluster config" in missing.err
    assert not Path(env["BOXKUBE_HOME"], "clusters").exists() or not any(Path(env["BOXKUBE_HOME"], "clusters").iterdir())


def test_nodes_come_from_the_flag_or_the_config_not_both(boxkube: Runner, tmp_path: Path) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\nnodes: [{role: worker}]\n")
    result = boxkube("create", "cluster", "--provider", "local", "--nodes", "0", "--config", str(config))
    assert result.code == 1 and "either with --nodes or in --config" in result.err


def test_config_names_the_cluster_and_sets_the_service_subnet(
    boxkube: Runner, env: dict[str, str], tmp_path: Path, no_leftover_processes: None
) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text("apiVersion: boxkube.dev/v1alpha1\nkind: Cluster\nname: fromconfig\n"
                      "networking: {serviceSubnet: 10.123.0.0/16}\n")
    created = boxkube("create", "cluster", "--provider", "local", "--config", str(config),
                      "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert created.code == 0, created.err
    try:
        svc = boxkube("kubectl", "--name", "fromconfig", "--", "get", "svc", "kubernetes", "-o",
                      "jsonpath={.spec.clusterIP}")
        assert svc.code == 0, svc.err
        assert svc.out == "10.123.0.1"
    finally:
        assert boxkube("delete", "cluster", "--name", "fromconfig").code == 0


def test_load_image_into_a_local_cluster_says_its_nodes_run_no_images(boxkube: Runner, env: dict[str, str]) -> None:
    cluster_dir(Path(env["BOXKUBE_HOME"]), "sim").claim(ClusterState(name="sim", provider="local"))
    result = boxkube("load", "image", "boxkube/busybox:1", "--name", "sim")
    assert result.code == 1
    assert result.err == ('ERROR: cluster "sim" has simulated nodes (local provider), which run no images; '
                          "load images into a docker cluster\n")


def test_get_nodes_lists_the_simulated_nodes_as_the_agent_names_them(boxkube: Runner, env: dict[str, str]) -> None:
    cluster_dir(Path(env["BOXKUBE_HOME"]), "three").claim(ClusterState(name="three", provider="local", nodes=3))
    result = boxkube("get", "nodes", "--name", "three")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["three-worker", "three-worker2", "three-worker3"]
    missing = boxkube("get", "nodes", "--name", "nope")
    assert missing.code == 1 and missing.err.startswith("ERROR: ") and len(missing.err.splitlines()) == 1
