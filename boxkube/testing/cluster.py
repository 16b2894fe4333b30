"""Clusters for tests: `Cluster`, any running cluster reached through a kubeconfig, with the helpers
tests need (apply, wait_for, kubectl, a client); and `BoxkubeCluster`, one that boxkube makes and
deletes, in the style of testcontainers-python's modules (start()/stop(), a context manager).

testcontainers itself is not used: it runs one container per module, while a boxkube cluster is
several processes (local provider) or containers on their own network (docker provider) that
boxkube's providers already start, wait for and remove; only its API shape is followed.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, VersionApi
from kubernetes.dynamic import DynamicClient

from boxkube.cluster.binaries import kubectl_binary
from boxkube.cluster.create import create_cluster
from boxkube.cluster.delete import delete_cluster
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.names import validate_cluster_name
from boxkube.cluster.progress import SilentProgress
from boxkube.cluster.providers import DEFAULT_PROVIDER, ProviderFactory, provider_factory
from boxkube.cluster.spec import DEFAULT_WAIT_SECONDS, ClusterSpec
from boxkube.cluster.state import boxkube_home, cluster_dir
from boxkube.testing.manifests import Manifest, load_manifest

T = TypeVar("T")

# The field manager of `Cluster.apply`'s server-side applies (shown in the objects' managedFields).
FIELD_MANAGER = "boxkube-testing"


class WaitTimeoutError(AssertionError):
    """`wait_for` ran out of time (an AssertionError, so that pytest reports a failure, not an error)."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited with an error; the message shows its command line and what it printed."""

    def __str__(self) -> str:
        command = " ".join(self.cmd[3:])  # without "kubectl --kubeconfig PATH"
        output = "\n".join(part.strip() for part in (self.stdout, self.stderr) if part and part.strip())
        return f"kubectl {command} failed (exit {self.returncode}):\n{output}"


def wait_for(condition: Callable[[], T], timeout: float = 60.0, what: str | None = None, *,
             until: Callable[[T], object] | None = None, interval: float = 0.5) -> T:
    """Call `condition` until its result is truthy (or, given `until`, until `until(result)` is), and
    return that result.

    An exception (an object not there yet, a failed assert) means "not yet" too. On timeout
    WaitTimeoutError says what was awaited (`what`) and what was last observed: the last result,
    or the last exception, which also becomes its cause. So let `condition` return the state to
    see and `until` judge it:

        wait_for(lambda: core.read_namespaced_pod("web", ns).status,
                 until=lambda status: status.phase == "Running", what="pod web Running")
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this loop
    deadline = time.monotonic() + timeout
    while True:
        error: Exception | None = None
        try:
            result = condition()
            if (until or bool)(result):
                return result
            observed = repr(result)
        except Exception as e:
            error, observed = e, f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            name = what or getattr(condition, "__name__", "the condition")
            raise WaitTimeoutError(f"timed out after {timeout:g} s waiting for {name}; "
                                   f"last observed: {observed}") from error
        time.sleep(interval)


class Cluster:
    """A running cluster of any kind, reached through the kubeconfig file `kubeconfig` (its
    current context). As a context manager it checks that the API server answers and closes its
    client at the end; it neither makes nor deletes the cluster."""

    def __init__(self, kubeconfig: str | os.PathLike[str]) -> None:
        self.kubeconfig = Path(kubeconfig).expanduser().absolute()
        self._client: ApiClient | None = None  # the client of apply and ping, made on first use
        self._dynamic: DynamicClient | None = None

    def __enter__(self) -> "Cluster":
        self.ping()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def api_client(self) -> ApiClient:
        """A new official-client `kubernetes.client.ApiClient` of the cluster (close it when done,
        or use it as a context manager)."""
        return kube_config.new_client_from_config(str(self.kubeconfig))

    def config_yaml(self) -> str:
        """The kubeconfig's text (as testcontainers' K3SContainer.config_yaml())."""
        return self.kubeconfig.read_text(encoding="utf-8")

    def ping(self) -> None:
        """ClusterError unless the cluster's API server answers."""
        try:
            VersionApi(self._api()).get_code()
        except Exception as e:
            raise ClusterError(f"the cluster of {self.kubeconfig} does not answer: {e}") from e

    def close(self) -> None:
        """Close the client of `apply` and `ping` (a later call opens a new one)."""
        if self._client is not None:
            self._client.close()
        self._client = self._dynamic = None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the cluster; the completed process, its output as text.
        With `check`, a non-zero exit raises KubectlError showing what kubectl printed."""
        __tracebackhide__ = True
        argv = [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise KubectlError(done.returncode, argv, done.stdout, done.stderr)
        return done

    def apply(self, manifest: Manifest, namespace: str | None = None) -> list[dict[str, Any]]:
        """Create or update the objects of `manifest` (YAML/JSON text of any number of documents, a
        file, or one object as a dict), in order; the objects as the API server stored them.

        Each object is a server-side apply (as `kubectl apply --server-side --force-conflicts`):
        one request that creates or updates it, on any cluster, with no kubectl process, and the
        stored object comes back. A namespaced object without a namespace goes to `namespace`
        (else "default"). The kinds are looked up by discovery, so a custom resource works once
        its CRD is established.
        """
        applied = []
        for obj in load_manifest(manifest):
            resource = self._discovery().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            metadata = dict(obj["metadata"])
            if resource.namespaced:
                metadata["namespace"] = metadata.get("namespace") or namespace or "default"
            stored = resource.server_side_apply(
                body={**obj, "metadata": metadata}, name=metadata["name"], namespace=metadata.get("namespace"),
                field_manager=FIELD_MANAGER, force_conflicts=True,
            )
            applied.append(stored.to_dict())
        return applied

    wait_for = staticmethod(wait_for)

    def load_image(self, *images: str) -> list[tuple[str, str]]:
        """Copy images of this machine's Docker engine into the cluster's nodes: only a boxkube
        docker cluster can (see BoxkubeCluster.load_image)."""
        raise ClusterError(f"cannot load images into the cluster of {self.kubeconfig}: boxkube did not make it; "
                           "load them with that cluster's own tooling")

    def _api(self) -> ApiClient:
        if self._client is None:
            self._client = self.api_client()
        return self._client

    def _discovery(self) -> DynamicClient:
        """The dynamic client of `apply` (its discovery is read once, and again for a kind it does not know)."""
        if self._dynamic is None:
            self._dynamic = DynamicClient(self._api())
        return self._dynamic


class BoxkubeCluster(Cluster):
    """A boxkube cluster for tests, made by `start()` and deleted by `stop()` (or the `with` block):

        with BoxkubeCluster(nodes=2, provider="local") as cluster:
            v1 = kubernetes.client.CoreV1Api(cluster.api_client())

    It lives in `home` (default $BOXKUBE_HOME, else ~/.boxkube) under `name` (default a new
    "test-..." name); its kubeconfig is its own file there, so no other kubeconfig is touched.
    With `reuse`, a cluster of that name that exists already is used as it is (and is not deleted);
    with `keep`, one this object made is left running.
    """

    def __init__(self, name: str | None = None, *, nodes: int | None = None, provider: str = DEFAULT_PROVIDER,
                 home: str | os.PathLike[str] | None = None, keep: bool = False, reuse: bool = False,
                 wait: float = DEFAULT_WAIT_SECONDS) -> None:
        self.name = validate_cluster_name(name or f"test-{uuid.uuid4().hex[:8]}")
        self.home = Path(home).expanduser().absolute() if home else boxkube_home(os.environ)
        self.nodes, self.provider, self.wait = nodes, provider, wait
        self.keep, self.reuse = keep, reuse
        # Whether start() made the cluster (only then does stop() delete it).
        self.created = False
        self._dir = cluster_dir(self.home, self.name)
        super().__init__(self._dir.kubeconfig_file)

    def __enter__(self) -> "BoxkubeCluster":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def start(self) -> "BoxkubeCluster":
        """Make the cluster (or, with `reuse`, take the existing one) and check that it answers."""
        if not (self.reuse and self._dir.exists()):
            spec = ClusterSpec(name=self.name, provider=self.provider, nodes=self.nodes,
                               kubeconfig=self.kubeconfig, wait=self.wait)
            try:
                create_cluster(spec, home=self.home, environ=os.environ, providers=self._providers(),
                               progress=SilentProgress())
            except ClusterError as e:  # its details (the failed step's log) belong in the test's output
                raise ClusterError("\n".join([e.message, *e.details])) from e
            self.created = True
        try:
            self.ping()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ fails
            raise
        return self

    def stop(self) -> None:
        """Close the client, and delete the cluster if start() made it and it is not to be kept."""
        self.close()
        if self.created and not self.keep:
            delete_cluster(self.name, home=self.home, environ=os.environ, providers=self._providers(),
                           progress=SilentProgress())
            self.created = False

    def load_image(self, *images: str) -> list[tuple[str, str]]:
        """Copy images of this machine's Docker engine into every worker (as `boxkube load image`);
        the (node, image) pairs copied. ClusterError for simulated nodes, which run no images."""
        provider = self._providers()(self._dir.load().provider)
        load = getattr(provider, "load_images", None)
        if load is None:
            raise ClusterError(f'cannot load images into cluster "{self.name}": its nodes are simulated '
                               f"({provider.name} provider) and run no images; use provider docker")
        return load(self.name, list(images))

    def _providers(self) -> ProviderFactory:
        return provider_factory(self.home, os.environ)
