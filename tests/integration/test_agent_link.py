"""The agent link (docs/agent-protocol.md) end to end on the Docker backend: which link is used,
programs that close stdout early, many sessions on one connection, signals and exit signals,
a killed agent, and a user process that tries to reach the link socket."""
import asyncio
import json
import os
import signal
import subprocess
import time

import asyncssh
import paramiko

from conftest import SSH_OPTS, webhook_auth, wait_until
from docker_helpers import BUSYBOX, berth_containers, docker, docker_config

USERS = [{"username": "alice", "password": "pw"}]


def start(start_berth, example_webhook, **execution):
    url, _ = example_webhook(USERS)
    return start_berth({"auth": webhook_auth(url), **docker_config(**execution)})


def link_kinds(berth):
    return [line.get("details", {}).get("link") for line in berth.process.log_lines() if line.get("code") == "AGENT_LINK_UP"]


def pipe_kinds(berth):
    return [line.get("details", {}).get("pipes") for line in berth.process.log_lines() if line.get("code") == "AGENT_LINK_UP"]


def run_async(port, scenario):
    async def main():
        async with asyncssh.connect("127.0.0.1", port=port, username="alice", password="pw",
                                    known_hosts=None, client_keys=None) as connection:
            return await scenario(connection)
    return asyncio.run(main())


def test_local_engine_uses_the_socket_link_and_exec_link_is_the_fallback(start_berth, example_webhook, tmp_path):
    berth = start(start_berth, example_webhook, agentSocketRoot=str(tmp_path / "links"))
    result = berth.ssh("alice", "echo out; echo err >&2; exit 5", password="pw")
    assert (result.returncode, result.stdout, result.stderr) == (5, b"out\n", b"err\n")
    assert link_kinds(berth) == ["socket"]
    # Berth runs as root on the engine's host: it takes the programs' pipes from the agent
    # (docs/agent-protocol.md, "Direct pipes").
    assert pipe_kinds(berth) == ["direct"]
    # The link directory is the container's alone and goes with it.
    assert wait_until(lambda: not berth_containers())
    # (`servers/` holds the server's own liveness record, docs/architecture.md "Ownership and clean-up".)
    assert wait_until(lambda: [name for name in os.listdir(tmp_path / "links") if name != "servers"] == [])

    exec_only = start(start_berth, example_webhook, agentSocketRoot="")
    result = exec_only.ssh("alice", "cat; exit 6", password="pw", stdin=b"through docker exec")
    assert (result.returncode, result.stdout) == (6, b"through docker exec")
    assert link_kinds(exec_only) == ["exec"]


def test_program_that_closes_stdout_early(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX)
    result = berth.ssh("alice", "echo first; exec >&-; sleep 0.3; echo after-close >&2; exit 4", password="pw")
    assert (result.returncode, result.stdout, result.stderr) == (4, b"first\n", b"after-close\n")


def test_hundred_sessions_on_one_connection(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False)
    try:
        for number in range(100):
            _, stdout, _ = client.exec_command(f"echo {number}; exit {number % 7}")
            assert stdout.read() == f"{number}\n".encode()
            assert stdout.channel.recv_exit_status() == number % 7
        assert len(berth_containers()) == 1
    finally:
        client.close()
    assert wait_until(lambda: not berth_containers())


def test_signals_and_exit_signals_are_reported(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX)

    async def scenario(connection):
        killed_itself = await connection.run("kill -SEGV $$", check=False)
        process = await connection.create_process("echo ready; exec sleep 60")
        assert await process.stdout.readline() == "ready\n"
        process.send_signal("USR1")
        signalled = await asyncio.wait_for(process.wait(check=False), 30)
        return killed_itself.exit_signal, signalled.exit_signal

    own, sent = run_async(berth.port, scenario)
    assert own[0] == "SEGV"
    assert sent[0] == "USR1"


def test_killed_agent_ends_the_session_clearly_and_the_container_goes(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    ssh = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "alice@127.0.0.1", "echo started; sleep 300"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert ssh.stdout.readline() == b"started\n"
        container = berth_containers()[0]
        agent_pid = int(docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip())
        os.kill(agent_pid, signal.SIGKILL)
        out, err = ssh.communicate(timeout=30)
        assert ssh.returncode != 0
        assert b"the agent in the container is gone" in err
        assert any(line.get("code") == "SESSION_AGENT_LOST" for line in berth.process.log_lines())
        assert wait_until(lambda: not berth_containers())
    finally:
        if ssh.poll() is None:
            ssh.kill()
            ssh.wait()


def test_user_process_cannot_reach_the_link_socket(start_berth, example_webhook):
    """The socket is unlinked once Berth's link is up, and the secret is not readable: a user
    process in the container, even as root (loginUser.mode container), has nothing to connect to
    and nothing to prove. The login user (the default) cannot even look."""
    berth = start(start_berth, example_webhook, loginUser={"mode": "container"})
    script = (
        "import os, socket\n"
        "print(sorted(os.listdir('/run/berth-agent')))\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect('/run/berth-agent/agent.sock'); print('connected')\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "print('BERTH_AGENT_SECRET' in os.environ)\n"
        "env = open('/proc/1/environ', 'rb').read().split(b'\\0')\n"
        "print([e for e in env if e.startswith(b'BERTH_AGENT_SECRET=') and e.strip(b'0').endswith(b'=') is False])\n"
    )
    result = berth.ssh("alice", f"python3 -c \"{script}\"", password="pw")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["[]", "refused 2", "False", "[]"]
    # The session that made the attempt and the link are unharmed.
    assert berth.ssh("alice", "echo still-fine", password="pw").stdout == b"still-fine\n"
    as_login_user = start(start_berth, example_webhook).ssh(
        "alice", "ls /run/berth-agent 2>&1; cat /proc/1/environ 2>&1 >/dev/null; whoami", password="pw")
    assert as_login_user.stdout.decode().splitlines() == [
        "ls: cannot open directory '/run/berth-agent': Permission denied", "cat: /proc/1/environ: Permission denied", "alice"]


def test_pool_container_is_named_after_the_connection_that_takes_it(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    berth = start_berth({"auth": webhook_auth(url), **docker_config(image=BUSYBOX, pool={"size": 1})})
    assert wait_until(lambda: docker("ps", "-q", "--filter", "label=berth.pool=1").stdout.split(), timeout=60)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False)
    try:
        _, stdout, _ = client.exec_command("hostname")
        host = stdout.read().decode().strip()
        taken = [line for line in berth.process.log_lines() if line.get("code") == "DOCKER_POOL_CONTAINER_TAKEN"]
        assert taken and taken[0]["details"]["containerId"].startswith(host)
        name = docker("inspect", "-f", "{{.Name}}", host).stdout.strip()
        assert name.startswith("/berth-") and len(name) == len("/berth-") + 32
    finally:
        client.close()
