"""Scenarios that every container backend must pass the same way, shared by the Docker and
Kubernetes tests."""
from conftest import wait_until


def pty_size_then_window_change(client, timeout=60):
    """Runs tput under a 97x31 terminal, resizes it to 120x40 and returns the four sizes seen
    and the exit status. The program reports the size again for every line it reads until it
    sees the new one, so the test waits for the resize to arrive instead of for a time."""
    channel = client.get_transport().open_session()
    channel.get_pty(term="xterm", width=97, height=31)
    channel.exec_command('tput cols; tput lines; while read line; do [ "$(tput cols)" = 120 ] && break; echo waiting; done; '
                        'tput cols; tput lines')
    channel.settimeout(timeout)
    output = b""
    while output.count(b"\n") < 2:
        output += channel.recv(1024)
    channel.resize_pty(width=120, height=40)

    def finished():
        nonlocal output
        if not channel.exit_status_ready():
            channel.send(b"go\n")
        while channel.recv_ready():
            output += channel.recv(1024)
        return channel.exit_status_ready()
    assert wait_until(finished, timeout=timeout), output
    while True:
        chunk = channel.recv(1024)
        if not chunk:
            break
        output += chunk
    numbers = [line for line in output.replace(b"\r", b"").decode().split("\n") if line.isdigit()]
    return numbers, channel.recv_exit_status()


def signal_through_agent(port, timeout=60):
    """Runs the agent's wait-signal for USR1, sends USR1 over SSH; returns (exit status, stdout).
    USR1 is ignored until wait-signal takes it (an ignored signal stays ignored across exec), so
    it is sent again until the program ends: no sleep decides when the program is ready."""
    import asyncio
    import asyncssh

    async def scenario():
        async with asyncssh.connect("127.0.0.1", port=port, username="alice", password="pw",
                                    known_hosts=None, client_keys=None) as connection:
            process = await connection.create_process(
                "trap '' USR1; echo ready; exec /usr/bin/containerssh-agent wait-signal --signal USR1 --message got-USR1")
            assert await asyncio.wait_for(process.stdout.readline(), timeout) == "ready\n"
            ended = asyncio.ensure_future(process.wait())
            deadline = asyncio.get_running_loop().time() + timeout
            while not ended.done() and asyncio.get_running_loop().time() < deadline:
                process.send_signal("USR1")
                await asyncio.wait([ended], timeout=0.2)
            result = await asyncio.wait_for(ended, 1)
            return result.exit_status, result.stdout

    return asyncio.run(scenario())


def sftp_put_and_get(tmp_path, port, key, size):
    """Uploads `size` random bytes with sftp -b (key login: -b never prompts) and downloads them
    again; returns (sftp result, uploaded bytes, downloaded bytes)."""
    import os
    import subprocess
    from conftest import SSH_OPTS

    source, back, batch = tmp_path / "upload.bin", tmp_path / "download.bin", tmp_path / "batch"
    source.write_bytes(os.urandom(size))
    batch.write_text(f"put {source} /tmp/upload.bin\nget /tmp/upload.bin {back}\n")
    result = subprocess.run(["sftp", "-P", str(port), *SSH_OPTS, "-o", "IdentitiesOnly=yes", "-i", str(key),
                             "-b", str(batch), "alice@127.0.0.1"], capture_output=True, timeout=120)
    return result, source.read_bytes(), back.read_bytes() if back.exists() else b""
