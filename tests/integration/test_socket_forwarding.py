"""Unix socket forwarding both ways (docs/configuration.md, "Unix socket, X11 and agent
forwarding"): OpenSSH's `-L PORT:/path` and `-R /path:host:port` and asyncssh against Berth on the
real Docker engine, with the guest image's python3 at the container end."""
import asyncio
import hashlib
import os
import socket
import subprocess
import threading

import asyncssh
import pytest

from conftest import SSH_OPTS, eventually, free_port, wait_until, webhook_auth
from docker_helpers import berth_containers, docker, docker_config
from forward_programs import UNIX_ECHO_CLIENT, UNIX_ECHO_SERVER, command

USERS = [{"username": "alice", "password": "pw"}]
SOCKETS = {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable"}}
SIZE = 50 * 1024 * 1024


def start(start_berth, example_webhook, security=SOCKETS):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config()}
    if security is not None:
        config["security"] = security
    return start_berth(config)


def ssh_args(berth, *extra):
    return ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", *extra, "alice@127.0.0.1"]


async def connect(berth):
    return await asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw", known_hosts=None,
                                  client_keys=None, preferred_auth="password", agent_path=None)


def echo_through(port, size=SIZE):
    """Sends `size` random bytes to 127.0.0.1:port while reading the echo; returns both SHA-256s and the count."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=120)
    sent = hashlib.sha256()

    def send():
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            sent.update(chunk)
            conn.sendall(chunk)
            left -= len(chunk)
        conn.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=send)
    writer.start()
    received, count = hashlib.sha256(), 0
    while data := conn.recv(1 << 20):
        received.update(data)
        count += len(data)
    writer.join()
    conn.close()
    return sent.hexdigest(), received.hexdigest(), count


def test_local_forward_to_a_unix_socket_fifty_mebibytes_each_way(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    local = free_port()
    server = subprocess.Popen(ssh_args(berth, "-L", f"127.0.0.1:{local}:/tmp/s.sock") + [command(UNIX_ECHO_SERVER, "/tmp/s.sock")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.stdout.readline() == b"listening\n"
        sent, received, count = echo_through(local)
        assert count == SIZE and sent == received
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert wait_until(lambda: not berth_containers(), timeout=60)


@pytest.fixture
def tcp_echo():
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn):
        with conn:
            while data := conn.recv(1 << 20):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


def test_remote_forward_from_a_unix_socket_fifty_mebibytes_each_way(start_berth, example_webhook, tcp_echo):
    berth = start(start_berth, example_webhook)
    script = ("stat -c 'owner:%U mode:%a' /tmp/r.sock && " + command(UNIX_ECHO_CLIENT, "/tmp/r.sock", str(SIZE)))
    result = subprocess.run(ssh_args(berth, "-o", "ExitOnForwardFailure=yes", "-R", f"/tmp/r.sock:127.0.0.1:{tcp_echo}") + [script],
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr
    owner, digests = result.stdout.decode().splitlines()
    # The agent bound the socket as the login account, so the account's programs may connect.
    assert owner.startswith("owner:alice ")
    sent, received, count = digests.split()
    assert int(count) == SIZE and sent == received


def test_remote_socket_forward_cancel_removes_the_socket(start_berth, example_webhook, tcp_echo):
    berth = start(start_berth, example_webhook)

    async def scenario():
        async with await connect(berth) as conn:
            listener = await conn.forward_remote_path_to_port("/tmp/c.sock", "127.0.0.1", tcp_echo)
            done = await conn.run(command(UNIX_ECHO_CLIENT, "/tmp/c.sock", "1000"), check=True)
            sent, received, count = done.stdout.split()
            assert count == "1000" and sent == received
            listener.close()
            await listener.wait_closed()
            deadline = asyncio.get_running_loop().time() + 60
            while (await conn.run("test -e /tmp/c.sock", check=False)).exit_status == 0:
                assert asyncio.get_running_loop().time() < deadline, "the socket is still there"
                await asyncio.sleep(0.2)
            # The path can be forwarded again.
            again = await conn.forward_remote_path_to_port("/tmp/c.sock", "127.0.0.1", tcp_echo)
            done = await conn.run(command(UNIX_ECHO_CLIENT, "/tmp/c.sock", "10"), check=True)
            assert done.stdout.split()[2] == "10"
            again.close()

    asyncio.run(scenario())


def test_a_socket_the_account_cannot_reach_is_refused(start_berth, example_webhook):
    """The agent is root, but dials as the login account: a root-only socket stays out of reach."""
    berth = start(start_berth, example_webhook)

    async def scenario():
        async with await connect(berth) as conn:
            assert (await conn.run("true", check=True)).exit_status == 0
            container = wait_until(berth_containers, what="the connection's container")[0]
            root_only = ("import os, socket, time; s = socket.socket(socket.AF_UNIX); s.bind('/run/root-only.sock'); "
                         "os.chmod('/run/root-only.sock', 0o600); s.listen(); time.sleep(600)")
            docker("exec", "-d", container, "python3", "-c", root_only)
            wait_until(lambda: docker("exec", container, "test", "-S", "/run/root-only.sock", check=False).returncode == 0,
                       what="the root-only socket")
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_unix_connection("/run/root-only.sock")
            assert refused.value.code == 2
            assert "Permission denied" in refused.value.reason
            # The same path made by the account is reachable.
            server = await conn.create_process(command(UNIX_ECHO_SERVER, "/tmp/mine.sock"))
            assert (await server.stdout.readline()) == "listening\n"
            reader, writer = await conn.open_unix_connection("/tmp/mine.sock")
            writer.write(b"hello")
            writer.write_eof()
            assert await reader.read() == b"hello"
            server.close()

    asyncio.run(scenario())


def test_socket_forwarding_is_refused_unless_enabled_and_the_connection_goes_on(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, security={"forwarding": {"forwardingMode": "enable"}})
    local = free_port()
    tunnel = subprocess.Popen(ssh_args(berth, "-N", "-L", f"127.0.0.1:{local}:/tmp/app.sock"), stderr=subprocess.PIPE)
    try:
        with eventually(lambda: socket.create_connection(("127.0.0.1", local), timeout=5)) as client:
            client.settimeout(30)
            assert client.recv(1) == b""
        assert tunnel.poll() is None
    finally:
        tunnel.kill()
        tunnel.wait()

    async def scenario():
        async with await connect(berth) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_unix_connection("/tmp/app.sock")
            assert refused.value.code == 1
            assert "unix socket forwarding is disabled" in refused.value.reason
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_path_to_port("/tmp/r.sock", "127.0.0.1", 1)
            assert (await conn.run("echo still here", check=True)).stdout == "still here\n"

    asyncio.run(scenario())
    log = berth.process.output()
    assert "socketForwardingMode is not enable" in log and "socketListenMode is not enable" in log


def test_session_mode_refuses_socket_x11_and_agent_forwarding_clearly(start_berth, example_webhook):
    import paramiko
    url, _ = example_webhook(USERS)
    everything = {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable", "x11ForwardingMode": "enable",
                                 "agentForwardingMode": "enable"}}
    berth = start_berth({"auth": webhook_auth(url), **docker_config(mode="session"), "security": everything})

    async def sockets():
        async with await connect(berth) as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as refused:
                await conn.open_unix_connection("/tmp/app.sock")
            assert refused.value.code == 1 and "session mode" in refused.value.reason
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_path_to_port("/tmp/r.sock", "127.0.0.1", 1)

    asyncio.run(sockets())
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session()
        channel.request_forward_agent(lambda _: None)
        with pytest.raises(paramiko.SSHException):
            channel.request_x11(auth_cookie="00112233445566778899aabbccddeeff", handler=lambda *_: None)
        # paramiko closes a channel whose request failed; an agent request alone (no reply
        # wanted) leaves the session without SSH_AUTH_SOCK.
        again = client.get_transport().open_session()
        again.request_forward_agent(lambda _: None)
        again.exec_command('echo "agent:${SSH_AUTH_SOCK:-none} display:${DISPLAY:-none}"')
        assert again.makefile("rb").read() == b"agent:none display:none\n"
    finally:
        client.close()
    messages = [line.get("message", "") for line in berth.process.log_lines() if line.get("code") == "FORWARDING_UNAVAILABLE"]
    assert any("X11 forwarding is not available" in m and "session mode" in m for m in messages), messages
    assert any("agent forwarding is not available" in m and "session mode" in m for m in messages), messages
    assert wait_until(lambda: not berth_containers(), timeout=60)


def test_removing_a_listening_socket_cannot_be_turned_against_root_files(start_berth, example_webhook, tcp_echo):
    """The user swaps a directory on the socket's path for a symlink to a root-owned one; when the
    forward stops, the agent (root) removes the socket as the account, so the root file stays."""
    berth = start(start_berth, example_webhook)

    async def scenario():
        async with await connect(berth) as conn:
            await conn.run("mkdir /tmp/d", check=True)
            listener = await conn.forward_remote_path_to_port("/tmp/d/victim", "127.0.0.1", tcp_echo)
            container = wait_until(berth_containers, what="the connection's container")[0]
            docker("exec", container, "sh", "-c", "mkdir -p /rootdir && echo precious > /rootdir/victim")
            await conn.run("mv /tmp/d /tmp/d.old && ln -s /rootdir /tmp/d", check=True)
            listener.close()
            await listener.wait_closed()
            # The agent removes the name before it closes the socket: once nothing accepts there,
            # the removal has been tried.
            probe = command(UNIX_ECHO_CLIENT, "/tmp/d.old/victim", "1")
            deadline = asyncio.get_running_loop().time() + 60
            while (await conn.run(probe, check=False)).exit_status == 0:
                assert asyncio.get_running_loop().time() < deadline, "the socket still accepts"
                await asyncio.sleep(0.2)
            assert docker("exec", container, "cat", "/rootdir/victim").stdout == "precious\n"

    asyncio.run(scenario())
