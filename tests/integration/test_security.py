"""The security policy layer (docs/configuration.md, "security") with real clients."""
import asyncio
import subprocess

import asyncssh
import paramiko

from conftest import SSH_OPTS, wait_until, webhook_auth
from docker_helpers import GUEST, docker_config


def berth_with(start_berth, example_webhook, security, **extra):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    return start_berth({"auth": webhook_auth(url), "security": security, **extra})


def refusals(berth):
    return [line["message"] for line in berth.process.log_lines() if line.get("code") == "SECURITY_REQUEST_REFUSED"]


def test_env_deny_and_filter(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"env": {"mode": "enable", "deny": ["SECRET"]}})
    result = berth.ssh("alice", "env", password="pw", extra=["-o", "SetEnv=SECRET=1 OTHER=2"])
    assert b"OTHER=2\n" in result.stdout and b"SECRET" not in result.stdout
    filtered = berth_with(start_berth, example_webhook, {"env": {"mode": "filter", "allow": ["ONLY"]}})
    result = filtered.ssh("alice", "env", password="pw", extra=["-o", "SetEnv=ONLY=1 OTHER=2"])
    assert b"ONLY=1\n" in result.stdout and b"OTHER" not in result.stdout


def test_command_filter_is_an_exact_match(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"command": {"mode": "filter", "allow": ["whoami"]}})
    assert berth.ssh("alice", "whoami", password="pw").stdout == b"alice\n"
    refused = berth.ssh("alice", "whoami ", password="pw")
    assert refused.returncode != 0 and refused.stdout == b""
    assert any("command whoami " in message for message in refusals(berth))


def test_shell_disabled_and_tty_disabled(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"shell": {"mode": "disable"}, "tty": {"mode": "disable"}})
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        transport = client.get_transport()
        try:
            transport.open_session().invoke_shell()
            raise AssertionError("shell accepted")
        except paramiko.SSHException:
            pass
        try:
            transport.open_session().get_pty()
            raise AssertionError("pty accepted")
        except paramiko.SSHException:
            pass
        _, stdout, _ = client.exec_command("whoami")
        assert stdout.read() == b"alice\n"
    finally:
        client.close()
    assert any("a shell" in m for m in refusals(berth)) and any("a terminal" in m for m in refusals(berth))


def test_sftp_subsystem_denied(tmp_path, start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "security": {"subsystem": {"mode": "enable", "deny": ["sftp"]}}, **docker_config(GUEST)})
    result = subprocess.run(["sshpass", "-p", "pw", "sftp", "-P", str(berth.port), *SSH_OPTS, "alice@127.0.0.1"],
                            input=b"ls\n", capture_output=True, timeout=60)
    assert result.returncode != 0
    assert any("subsystem sftp" in m for m in refusals(berth))


def test_force_command_replaces_shell_exec_and_subsystem(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"forceCommand": "env"})
    result = berth.ssh("alice", "rm -rf /", password="pw")
    assert b"SSH_ORIGINAL_COMMAND=rm -rf /\n" in result.stdout
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session()
        channel.invoke_subsystem("sftp")
        output = channel.makefile().read()
        assert b"SSH_ORIGINAL_COMMAND=sftp\n" in output
        shell = client.get_transport().open_session()
        shell.invoke_shell()
        assert b"berth echo shell" not in shell.makefile().read()
    finally:
        client.close()


def test_max_sessions_counts_open_sessions(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"maxSessions": 2})
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        transport = client.get_transport()
        first, second = transport.open_session(), transport.open_session()
        for channel in (first, second):
            channel.exec_command("cat")
        try:
            transport.open_session()
            raise AssertionError("third session accepted")
        except paramiko.ChannelException:
            pass
        first.shutdown_write()
        assert first.recv_exit_status() == 0
        first.close()

        def opened():
            # The close reaches Berth's session count a moment after the exit status.
            try:
                return transport.open_session()
            except paramiko.ChannelException:
                return None
        third = wait_until(opened, timeout=30)
        assert third, "a session slot was not freed when the first session closed"
        third.exec_command("whoami")
        assert third.recv_exit_status() == 0
    finally:
        client.close()


def test_signal_filter(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "security": {"signal": {"mode": "filter", "allow": ["USR2"]}}, **docker_config(GUEST)})

    async def scenario():
        async with asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw",
                                    known_hosts=None, client_keys=None) as connection:
            # Both traps are set before "ready". Berth serves a channel's requests in order and
            # the shell runs pending traps lowest signal first, so a USR1 that got through would
            # print before USR2's line: no sleep is needed to see that it did not.
            process = await connection.create_process(
                "trap 'echo got-USR1' USR1; trap 'echo got-USR2; exit 0' USR2; echo ready; while :; do sleep 0.1; done")
            assert await asyncio.wait_for(process.stdout.readline(), 30) == "ready\n"
            process.send_signal("USR1")
            process.send_signal("USR2")
            result = await asyncio.wait_for(process.wait(), 30)
            return result.exit_status, result.stdout

    status, stdout = asyncio.run(scenario())
    assert status == 0 and stdout == "got-USR2\n", stdout
    assert any("signal USR1" in m for m in refusals(berth))


def run_with_env(berth, command, variables):
    """Runs `command` over paramiko after sending each (name, value) as an env request."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session()
        for name, value in variables:
            channel.set_environment_variable(name, value)
        channel.exec_command(command)
        output = b""
        while chunk := channel.recv(65536):
            output += chunk
        return channel.recv_exit_status(), output
    finally:
        client.close()


def test_env_tricks_do_not_pass_a_forced_command(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"forceCommand": "env", "env": {"deny": ["LD_PRELOAD"]}})
    status, output = run_with_env(berth, "anything", [
        ("LD_PRELOAD=/x.so:", "y"), ("LD_PRELOAD", "/x.so"), ("BASH_FUNC_ls%%", "() { id; }"), ("BASH_ENV", "/tmp/x"),
        ("PROMPT_COMMAND", "id"), ("LANG", "C.UTF-8"), ("GIT_PROTOCOL", "version=2"),
    ])
    assert status == 0
    lines = output.decode().splitlines()
    assert "LANG=C.UTF-8" in lines and "GIT_PROTOCOL=version=2" in lines and "SSH_ORIGINAL_COMMAND=anything" in lines, lines
    assert not any(line.startswith(("LD_", "BASH_", "PROMPT_COMMAND")) for line in lines), lines
    invalid = [line for line in berth.process.log_lines() if line.get("code") == "SECURITY_ENV_INVALID_NAME"]
    assert sum(line["message"].startswith("env request refused") for line in invalid) == 2
    assert sum(m.startswith("refused by the security policy") and "with forceCommand" in m for m in refusals(berth)) == 3


def test_env_count_cap(start_berth, example_webhook):
    berth = berth_with(start_berth, example_webhook, {"env": {"maxVariables": 2}})
    status, output = run_with_env(berth, "env", [("A", "1"), ("B", "2"), ("C", "3")])
    assert status == 0 and b"A=1\nB=2\n" in output and b"C=3" not in output
    assert any(line.get("code") == "SECURITY_ENV_LIMIT" for line in berth.process.log_lines())


def test_text_log_lines_cannot_be_forged_before_login(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "log": {"level": "debug", "format": "text"}})
    forged = "mallory\n2030-01-01T00:00:00.000Z\tnotice\tAUTH_OK\tadmin logged in"
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect("127.0.0.1", port=berth.port, username=forged, password="wrong", look_for_keys=False, allow_agent=False, timeout=30)
    except paramiko.AuthenticationException:
        pass
    finally:
        client.close()
    output = wait_until(lambda: "mallory" in berth.process.output() and berth.process.output(), timeout=10)
    assert "mallory\\n2030-01-01" in output, output[-3000:]
    assert not any(line.startswith("2030-01-01") for line in output.splitlines())
