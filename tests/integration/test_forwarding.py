"""Port forwarding through the agent's forward-server (docs/agent-protocol.md, "Forwarding"): real OpenSSH and asyncssh
clients against Berth on the real Docker engine."""
import asyncio
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import asyncssh
import pytest

from conftest import SSH_OPTS, eventually, free_port, wait_until, webhook_auth
from docker_helpers import BUSYBOX, berth_containers, docker, docker_config

USERS = [{"username": "alice", "password": "pw"}]
ENABLED = {"forwarding": {"forwardingMode": "enable", "reverseForwardingMode": "enable"}}


def start(start_berth, example_webhook, security=ENABLED, **execution):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config(image=BUSYBOX, **execution)}
    if security is not None:
        config["security"] = security
    return start_berth(config)


def ssh_args(berth, *extra):
    return ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", *extra, "alice@127.0.0.1"]


def fetch(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def wait_gone(timeout=30):
    return wait_until(lambda: not berth_containers(), timeout=timeout)


# swift-nio-ssh drops the connection when a direct-tcpip originator is not an IP address, and
# asyncssh sends an empty one by default, so the tests name one (OpenSSH always does).
async def connect(berth):
    return await asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw", known_hosts=None,
                                  client_keys=None, preferred_auth="password")


def test_local_forward_to_an_http_server_in_the_container(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    local = free_port()
    server = "mkdir -p /tmp/www && echo hello-from-the-container > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
    client = subprocess.Popen(ssh_args(berth, "-L", f"127.0.0.1:{local}:127.0.0.1:8080") + [server],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = eventually(lambda: fetch(f"http://127.0.0.1:{local}/index.html"))
        assert body == b"hello-from-the-container\n"
        # Several connections through the one shared forward-server.
        assert [fetch(f"http://127.0.0.1:{local}/index.html") for _ in range(5)] == [body] * 5
    finally:
        client.terminate()
        client.wait(timeout=30)
    assert wait_gone()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from the client side {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def client_side_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_remote_forward_reaches_a_server_on_the_client_side(start_berth, example_webhook, client_side_server):
    berth = start(start_berth, example_webhook)
    result = subprocess.run(ssh_args(berth, "-o", "ExitOnForwardFailure=yes", "-R", f"9000:127.0.0.1:{client_side_server}")
                            + ["wget -q -O - http://127.0.0.1:9000/openssh"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello from the client side /openssh"
    assert wait_gone()


def test_remote_forward_port_zero_and_cancel(start_berth, example_webhook, client_side_server):
    berth = start(start_berth, example_webhook)

    async def scenario():
        async with await connect(berth) as conn:
            listener = await conn.forward_remote_port("localhost", 0, "127.0.0.1", client_side_server)
            port = listener.get_port()
            assert port > 0
            reached = await conn.run(f"wget -q -O - http://127.0.0.1:{port}/zero", check=False)
            assert reached.stdout == "hello from the client side /zero"
            listener.close()
            await listener.wait_closed()
            # The agent has stopped listening: nothing answers on the port any more.
            deadline = asyncio.get_running_loop().time() + 30
            while (await conn.run(f"wget -q -T 2 -O - http://127.0.0.1:{port}/", check=False)).exit_status == 0:
                assert asyncio.get_running_loop().time() < deadline, "the port still answers"
                await asyncio.sleep(0.2)
            # And the same port can be asked for again.
            again = await conn.forward_remote_port("localhost", port, "127.0.0.1", client_side_server)
            assert again.get_port() == port
            reached = await conn.run(f"wget -q -O - http://127.0.0.1:{port}/again", check=False)
            assert reached.stdout == "hello from the client side /again"

    asyncio.run(scenario())
    assert wait_gone()


def test_fifty_mebibytes_each_way_through_a_forward(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    size = 50 * 1024 * 1024

    async def scenario():
        async with await connect(berth) as conn:
            # Out of the container: a server sends a random file and closes.
            made = await conn.run(f"head -c {size} /dev/urandom > /tmp/big && sha256sum /tmp/big", check=True)
            expected = made.stdout.split()[0]
            conn_task = asyncio.ensure_future(conn.run("nc -l -p 7001 < /tmp/big", check=False))
            reader, writer = await eventually_async(lambda: conn.open_connection("127.0.0.1", 7001, orig_host="127.0.0.1"))
            digest = hashlib.sha256()
            received = 0
            while chunk := await reader.read(1 << 20):
                digest.update(chunk)
                received += len(chunk)
            writer.close()
            assert received == size and digest.hexdigest() == expected
            await conn_task

            # Into the container: we send and half-close; the server stores it.
            sink = asyncio.ensure_future(conn.run("nc -l -p 7002 > /tmp/up", check=False))
            reader, writer = await eventually_async(lambda: conn.open_connection("127.0.0.1", 7002, orig_host="127.0.0.1"))
            payload = os.urandom(size)
            for offset in range(0, size, 1 << 20):
                writer.write(payload[offset:offset + (1 << 20)])
                await writer.drain()
            writer.write_eof()
            await reader.read()
            writer.close()
            await sink
            stored = await conn.run("sha256sum /tmp/up", check=True)
            assert stored.stdout.split()[0] == hashlib.sha256(payload).hexdigest()

    asyncio.run(scenario())


async def eventually_async(make, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            return await make()
        except (asyncssh.ChannelOpenError, OSError):
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_forwarding_is_refused_unless_enabled(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, security=None)

    async def scenario():
        async with await connect(berth) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_connection("127.0.0.1", 22, orig_host="127.0.0.1")
            # RFC 4254 §5.1: administratively prohibited, with the reason in the message.
            assert refused.value.code == 1
            assert "port forwarding is disabled" in refused.value.reason
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("localhost", 9100, "127.0.0.1", 1)
            # The connection is still fine.
            assert (await conn.run("echo still here", check=True)).stdout == "still here\n"

    asyncio.run(scenario())
    log = berth.process.output()
    assert "SECURITY_FORWARDING_REFUSED" in log


def test_connect_failure_in_the_container_refuses_the_channel(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)

    async def scenario():
        async with await connect(berth) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_connection("127.0.0.1", 1, orig_host="127.0.0.1")
            assert (await conn.run("echo ok", check=True)).stdout == "ok\n"

    asyncio.run(scenario())
    log = berth.process.output()
    assert "FORWARD_CONNECT_FAILED" in log and "Connection refused" in log


def test_session_mode_refuses_forwarding_clearly(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, mode="session")

    async def scenario():
        async with await connect(berth) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_connection("127.0.0.1", 80, orig_host="127.0.0.1")
            assert refused.value.code == 1
            assert "session mode" in refused.value.reason
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("localhost", 9100, "127.0.0.1", 1)

    asyncio.run(scenario())
    assert "port forwarding does not work in session mode" in berth.process.output()


def test_killed_client_with_active_forwards_leaves_no_container(start_berth, example_webhook, client_side_server):
    berth = start(start_berth, example_webhook)
    local = free_port()
    # nc's stdin stays open (a background job's is /dev/null: nc would half-close at once).
    command = "sleep 1000 | nc -l -p 7003 & sleep 1000"
    client = subprocess.Popen(ssh_args(berth, "-L", f"127.0.0.1:{local}:127.0.0.1:7003",
                                       "-R", f"9001:127.0.0.1:{client_side_server}") + [command],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    containers = wait_until(berth_containers, what="the connection's container")
    # The -L's dial only succeeds once nc listens in the container (ssh accepts locally first).
    wait_until(lambda: _listening(containers[0], "1B5B"), what="nc to listen in the container")
    held = eventually(lambda: socket.create_connection(("127.0.0.1", local), timeout=5))
    held.sendall(b"keep this connection open")
    # Both kinds of forward are up in the container.
    assert eventually(lambda: _both_forwards_active(containers[0]))
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    held.close()
    assert wait_gone(), "the container outlived its connection"
    assert berth.process.proc.poll() is None


def _listening(container, port_hex):
    tables = docker("exec", container, "cat", "/proc/net/tcp", "/proc/net/tcp6", check=False).stdout
    return any(len(row) > 3 and row[1].endswith(":" + port_hex) and row[3] == "0A" for row in (line.split() for line in tables.splitlines()))


def _both_forwards_active(container):
    """Something listens on 9001 (the -R) and a connection to 7003 is established (the -L's dial).
    The forward-servers are channels of the agent link (issue 18), not processes of their own,
    so they show as the agent's sockets."""
    tables = docker("exec", container, "cat", "/proc/net/tcp", "/proc/net/tcp6", check=False).stdout
    rows = [line.split() for line in tables.splitlines() if line.strip() and not line.split()[0] == "sl"]
    listening = any(row[1].endswith(":2329") and row[3] == "0A" for row in rows)
    dialled = any(row[2].endswith(":1B5B") and row[3] == "01" for row in rows)
    if not (listening and dialled):
        raise AssertionError(f"listening on 9001: {listening}, connected to 7003: {dialled}\n{tables}")
    return True
