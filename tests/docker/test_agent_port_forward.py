"""`kubectl port-forward` and `kubectl attach` with the REAL kubectl, through the session's API server, to a
node agent with the Docker runtime running in the test's event loop (as in test_agent_streams.py): the API
server ends kubectl's SPDY-over-websocket session and forwards each connection to the agent, which
connects to the pod's IP on the host's engine."""
from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from boxkube.agent.server import PORT_FORWARD_PROTOCOLS
from tests.agent.conftest import NODES, PODS
from tests.docker.test_agent_streams import kubectl, node, running  # noqa: F401  (node: a fixture)
from tests.docker.test_docker_pods import pod_body, sh, statuses, until

pytestmark = pytest.mark.docker

BIG_LINES = 200_000            # `seq` lines the web pod serves as /big: about 1.3 MB through the tunnel
# httpd on 8080 (its pod name at /), an echo server on 9000 (started first: Ready on 8080 means both listen)
WEB = ("nc -ll -p 9000 -e cat & mkdir -p /www && hostname > /www/index.html && seq 1 %d > /www/big && "
       "exec httpd -f -p 8080 -h /www" % BIG_LINES)


class PortForward:
    """A running `kubectl port-forward`, its local port parsed from what it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int):
        self.proc, self.port = proc, port

    @classmethod
    async def start(cls, cluster, *args: str) -> "PortForward":
        proc = await asyncio.create_subprocess_exec(*cluster.kubectl_argv(), "port-forward", *args,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    env=cluster.env)
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
        if match is None:
            proc.kill()
            raise AssertionError(f"kubectl port-forward said {line!r}: {(await proc.stderr.read()).decode()}")
        return cls(proc, int(match.group(1)))

    async def stop(self) -> str:
        """Stop it; what it wrote on stderr."""
        if self.proc.returncode is None:
            self.proc.terminate()
        _, err = await self.proc.communicate()
        return err.decode()


async def web_pod(client, ns: str, node: str, images) -> str:
    c = sh("web", images.busybox, WEB, ports=[{"containerPort": 8080}],
           readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1})
    pod = await client.create(PODS, pod_body(node, [c], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, lambda p: (statuses(p).get("web") or {}).get("ready") is True, timeout=30)
    return name


async def echo(port: int, data: bytes) -> bytes:
    """Send `data`, end the sending side, and read what comes back until the other side ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def test_kubectl_port_forward(client, ns, node, images, cluster):
    name = await web_pod(client, ns, node, images)
    pf = await PortForward.start(cluster, "-n", ns, f"pod/{name}", "0:8080", "0:9000")
    line = (await pf.proc.stdout.readline()).decode()      # the [::1] listener, then the second port
    while "-> 9000" not in line:
        line = (await pf.proc.stdout.readline()).decode()
    echo_port = int(re.search(r":(\d+) -> 9000", line).group(1))
    try:
        url = f"http://127.0.0.1:{pf.port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async def get(path: str) -> bytes:
                async with http.get(url + path, timeout=aiohttp.ClientTimeout(total=30)) as r:
                    assert r.status == 200
                    return await r.read()
            # one connection after another, then several at once
            for _ in range(3):
                assert await get("/") == f"{name}\n".encode()
            assert await asyncio.gather(*(get("/") for _ in range(8))) == [f"{name}\n".encode()] * 8
            big = await get("/big")
            assert big == "".join(f"{i}\n" for i in range(1, BIG_LINES + 1)).encode()
        # kubectl's end of the connection reaches the pod as a half-close: all the answer still comes
        payload = bytes(range(256)) * 1000
        assert await echo(echo_port, payload) == payload
        assert await asyncio.gather(*(echo(echo_port, b"x%d" % i) for i in range(5))) == \
            [b"x%d" % i for i in range(5)]
        assert pf.proc.returncode is None
    finally:
        err = await pf.stop()
    assert "error" not in err.lower(), err


async def test_a_port_nothing_listens_on(client, ns, node, images, cluster):
    name = await web_pod(client, ns, node, images)
    pf = await PortForward.start(cluster, "-n", ns, name, "0:7777")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", pf.port)
        assert await asyncio.wait_for(reader.read(), 20) == b""       # kubectl closes it
        writer.close()
        async with asyncio.timeout(20):
            await pf.proc.wait()              # and, as against a kubelet, gives up the whole session
    finally:
        err = await pf.stop()
    pod = await client.get(PODS, name, ns)
    assert f'"An error occurred forwarding" err="error forwarding port 7777 to pod {name}_{ns}, ' \
           f'uid {pod["metadata"]["uid"]}: dial tcp {pod["status"]["podIP"]}:7777: connect: connection refused" ' \
           f'localPort={pf.port} remotePort=7777' in err, err
    assert "lost connection to pod" in err


async def test_port_forward_errors_before_the_upgrade(client, ns, node, cluster):
    r = await kubectl(cluster, "port-forward", "-n", ns, "pod/nope", "8080")
    assert r.returncode == 1 and 'pods "nope" not found' in r.stderr, r.stderr


async def test_the_agents_websocket_port_forward(client, ns, node, images):
    """The kubelet's own protocol (v4.channel.k8s.io, `port=`), as a client other than kubectl speaks it."""
    name = await web_pod(client, ns, node, images)
    n = await client.get(NODES, node)
    port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    url = f"http://127.0.0.1:{port}/portForward/{ns}/{name}?port=8080&port=7777"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {client.config.token}"}) as s:
        async with s.ws_connect(url, protocols=[PORT_FORWARD_PROTOCOLS[1]]) as ws:
            assert ws.protocol == "v4.channel.k8s.io"
            await ws.send_bytes(b"\x00GET / HTTP/1.0\r\n\r\n")
            got: dict[int, bytes] = {}
            async with asyncio.timeout(20):
                async for msg in ws:        # until the agent closes: both ports' connections ended
                    got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
    p8080, p7777 = (8080).to_bytes(2, "little"), (7777).to_bytes(2, "little")
    assert got[0].startswith(p8080 + b"HTTP/1.") and got[0].endswith(f"{name}\n".encode())
    assert got[1] == p8080 and got[2] == p7777        # each channel's first message: its port
    assert got[3].startswith(p7777 + b"error forwarding port 7777 to pod ")


async def test_kubectl_attach(client, ns, node, images, cluster):
    talk = sh("app", images.busybox, "i=0; while :; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.2; done")
    pod = await client.create(PODS, pod_body(node, [talk], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, running("app"), timeout=30)
    proc = await asyncio.create_subprocess_exec(*cluster.kubectl_argv(), "attach", "-n", ns, name,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=cluster.env)
    try:
        async with asyncio.timeout(20):
            lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
            err = ""
            while not err.startswith("err "):       # after kubectl's own warnings
                err = (await proc.stderr.readline()).decode()
    finally:
        proc.kill()
        await proc.wait()
    numbers = [int(re.fullmatch(r"line (\d+)\n", line).group(1)) for line in lines]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    assert re.fullmatch(r"err \d+\n", err), err
    # the container runs on after kubectl went away
    await asyncio.sleep(0.5)
    assert running("app")(await client.get(PODS, name, ns))


async def test_kubectl_attach_with_stdin(client, ns, node, images, cluster):
    reader = sh("app", images.busybox, "while read line; do echo got $line; done; echo bye", stdin=True,
                stdinOnce=True)
    pod = await client.create(PODS, pod_body(node, [reader], restart="Never"), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, running("app"), timeout=30)
    # stdinOnce: the container's stdin ends with kubectl's, so the container and the attach end
    r = await kubectl(cluster, "attach", "-i", "-n", ns, name, input="hello\nworld\n", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "got hello\ngot world\nbye\n"
    assert "If you don't see a command prompt, try pressing enter." in r.stderr


async def test_attach_errors(client, ns, node, images, cluster):
    done = sh("app", images.busybox, "true")
    pod = await client.create(PODS, pod_body(node, [done], restart="Never"), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, lambda p: (p.get("status") or {}).get("phase") == "Succeeded", timeout=30)
    r = await kubectl(cluster, "attach", "-n", ns, name)
    assert r.returncode == 1 and "cannot attach a container in a completed pod; current phase is Succeeded" \
        in r.stderr, r.stderr
    r = await kubectl(cluster, "attach", "-n", ns, name, "-c", "nope")
    assert r.returncode == 1, r.stderr
