"""Unix socket, agent and X11 forwarding in Kubernetes connection mode: the same agent link
carries them as on Docker (test API server, kube_apiserver.py, whose pods are Docker containers)."""
import os
import subprocess

from conftest import SSH_OPTS, free_port, wait_until, webhook_auth
from forward_programs import UNIX_ECHO_SERVER, X_CLIENT, command
from test_agent_forwarding import agent  # noqa: F401  (fixture)
from test_kubernetes import TOKEN, kube, kube_config, pods  # noqa: F401  (fixture)
from test_socket_forwarding import echo_through
from test_x11_forwarding import REAL_COOKIE, FakeXServer

USERS = [{"username": "alice", "password": "pw"}]
ALL = {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable", "x11ForwardingMode": "enable",
                      "agentForwardingMode": "enable"}}


def start(start_berth, example_webhook, server):
    url, _ = example_webhook(USERS)
    return start_berth({"auth": webhook_auth(url), **kube_config(server), "security": ALL})


def ssh_args(berth, *extra):
    return ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", *extra, "alice@127.0.0.1"]


def test_socket_agent_and_x11_forwarding_in_a_pod(start_berth, example_webhook, kube, agent, tmp_path):
    server = kube()
    berth = start(start_berth, example_webhook, server)

    # ssh -L to a unix socket in the pod: 8 MiB each way, equal SHA-256.
    local = free_port()
    echo = subprocess.Popen(ssh_args(berth, "-L", f"127.0.0.1:{local}:/tmp/s.sock") + [command(UNIX_ECHO_SERVER, "/tmp/s.sock")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert echo.stdout.readline() == b"listening\n"
        sent, received, count = echo_through(local, size=8 * 1024 * 1024)
        assert count == 8 * 1024 * 1024 and sent == received
    finally:
        echo.terminate()
        echo.wait(timeout=30)

    # ssh -A: the pod's ssh-add lists the client's key.
    agent_socket, public_key = agent
    listed = subprocess.run(ssh_args(berth, "-A", "-o", f"IdentityAgent={agent_socket}") + ["ssh-add -L"], capture_output=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(agent_socket)})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.decode().split()[:2] == public_key.split()[:2]

    # ssh -X: an X client in the pod reaches the test X server with the real cookie.
    x_server = FakeXServer()
    try:
        authority = tmp_path / "Xauthority"
        subprocess.run(["xauth", "-f", str(authority), "add", f"127.0.0.1:{x_server.display}", "MIT-MAGIC-COOKIE-1", REAL_COOKIE],
                       check=True, capture_output=True)
        env = dict(os.environ, DISPLAY=f"127.0.0.1:{x_server.display}", XAUTHORITY=str(authority))
        result = subprocess.run(ssh_args(berth, "-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes") + [command(X_CLIENT)],
                                capture_output=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"answer:pong-from-the-x-server!\n"
        assert x_server.seen == [(b"MIT-MAGIC-COOKIE-1", REAL_COOKIE, b"ping-from-the-x-client")]
    finally:
        x_server.close()
    assert wait_until(lambda: not pods(server), timeout=60)
