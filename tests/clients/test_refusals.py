"""Requests the target does not serve (yet) are refused cleanly and the connection and session go
on: X11 (`ssh -X`), agent forwarding (`ssh -A`), `break` (PuTTY's Send Break), a Unix socket
forward (`ssh -L port:/path`, direct-streamlocal@openssh.com) and keyboard-interactive tried
before the password. The reference sshd is configured to refuse the same things."""
import asyncio
import os
import socket
import subprocess
import threading

import paramiko
import pytest

from conftest import free_port, wait_until

COMMAND = "echo matrix-$((6*7)); exit 3"
EXPECTED = b"matrix-42\n"


def ssh(target, *options, command=COMMAND, env=None, **popen):
    args = target.ssh_args(*options, key=target.user_keys["ed25519"])
    return subprocess.Popen([*args, target.destination(), command], env=env, stdin=popen.pop("stdin", subprocess.DEVNULL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **popen)


def test_x11_request_is_refused_and_the_command_runs(target):
    # Without xauth ssh sends fake cookie data; the request goes out all the same.
    env = dict(os.environ, DISPLAY="127.0.0.1:97")
    process = ssh(target, "-X", "-o", "LogLevel=INFO", env=env)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stdout) == (3, EXPECTED), stderr
    assert b"X11 forwarding request failed" in stderr


@pytest.fixture
def ssh_agent(tmp_path):
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        assert wait_until(socket_path.exists, timeout=30)
        yield socket_path
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def test_agent_forwarding_is_refused_and_the_command_runs(target, ssh_agent):
    # OpenSSH asks for auth-agent-req@openssh.com without wanting a reply: refusal shows as no socket.
    env = dict(os.environ, SSH_AUTH_SOCK=str(ssh_agent))
    process = ssh(target, "-A", "-o", "IdentityAgent=" + str(ssh_agent), env=env,
                  command='echo "agent:${SSH_AUTH_SOCK:-none}"; exit 3')
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stdout) == (3, b"agent:none\n"), stderr


def test_break_is_refused_and_the_session_goes_on(target):
    import asyncssh
    from asyncssh.packet import UInt32

    async def scenario():
        async with asyncssh.connect("127.0.0.1", port=target.port, username=target.user, password=target.password,
                                    known_hosts=None, client_keys=None, agent_path=None, connect_timeout=30) as connection:
            process = await connection.create_process("read line; echo got-$line; exit 3")
            # What PuTTY's Send Break sends (RFC 4335), asking for the answer.
            answer = await process.channel._make_request(b"break", UInt32(500))
            process.stdin.write("go\n")
            process.stdin.write_eof()
            result = await process.wait()
            return answer, result.exit_status, result.stdout

    answer, status, stdout = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert answer is False
    assert (status, stdout) == (3, "got-go\n")


def test_unix_socket_forward_is_refused_and_the_session_goes_on(target):
    port = free_port()
    process = ssh(target, "-o", "LogLevel=INFO", "-o", "ExitOnForwardFailure=no", "-L", f"127.0.0.1:{port}:/tmp/x.sock",
                  command="read line; echo alive-$line; exit 3", stdin=subprocess.PIPE)
    output = {}

    def collect():
        output["stdout"], output["stderr"] = process.stdout.read(), process.stderr.read()

    reader = threading.Thread(target=collect)
    reader.start()
    try:
        connections = []

        def forwarded():
            try:
                connections.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                return True
            except OSError:
                return False

        assert wait_until(forwarded, timeout=60), "ssh never listened on the forwarded port"
        with connections[0] as forwarded_socket:
            forwarded_socket.settimeout(60)
            # The refused channel closes the local connection; the SSH connection stays.
            assert forwarded_socket.recv(1) == b""
        process.stdin.write(b"go\n")
        process.stdin.close()
        assert process.wait(timeout=120) == 3
    finally:
        process.kill()
        reader.join(timeout=60)
    assert output["stdout"] == b"alive-go\n", output["stderr"]
    assert b"open failed" in output["stderr"]


def test_keyboard_interactive_first_then_password(target):
    """As PuTTY and WinSCP do: keyboard-interactive first; its refusal leaves the connection
    ready for the password."""
    transport = paramiko.Transport(("127.0.0.1", target.port))
    try:
        transport.start_client(timeout=30)
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_interactive(target.user, lambda title, instructions, prompts: [])
        assert transport.is_active()
        transport.auth_password(target.user, target.password)
        channel = transport.open_session(timeout=30)
        channel.exec_command(COMMAND)
        stdout = channel.makefile("rb").read()
        assert (channel.recv_exit_status(), stdout) == (3, EXPECTED)
    finally:
        transport.close()
