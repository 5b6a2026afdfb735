"""The Docker engine-call budgets (docs/configuration.md, "docker"): `timeouts.window`,
`signal` and `commandStart` end the engine calls they bound, against a real engine behind a relay
that answers those calls late; with a larger budget the same late calls succeed."""
import asyncio

import asyncssh
import paramiko
import pytest

from conftest import wait_until, webhook_auth
from docker_helpers import BUSYBOX, berth_containers, docker_config
from slow_engine import SlowEngine

DELAY = 3


@pytest.fixture
def slow_engine(tmp_path):
    engines = []

    def start(pattern):
        engine = SlowEngine(tmp_path / f"engine-{len(engines)}.sock", pattern, DELAY)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()


def start(start_berth, example_webhook, engine, timeouts, **execution):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    config = {"auth": webhook_auth(url), **docker_config(BUSYBOX, disableAgent=True, **execution)}
    config["docker"]["connection"] = {"host": engine.url}
    config["docker"]["timeouts"] = timeouts
    return start_berth(config)


def timeouts_logged(berth, what):
    return [line for line in berth.process.log_lines()
            if line.get("code") == "DOCKER_TIMEOUT" and what in line.get("message", "")]


def pty_shell(berth):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False,
                   allow_agent=False, timeout=30, banner_timeout=30, auth_timeout=60)
    channel = client.get_transport().open_session()
    channel.get_pty(width=80, height=24)
    channel.invoke_shell()
    return client, channel


def run_in_shell(channel, command, marker):
    """Sends `command` and returns the output up to `marker` (computed by the shell, so the echo
    of the typed line does not count)."""
    channel.send(command + b"\n")
    seen = b""

    def arrived():
        nonlocal seen
        while channel.recv_ready():
            seen += channel.recv(65536)
        return marker in seen
    assert wait_until(arrived, timeout=60), seen
    return seen


@pytest.mark.parametrize("budget, applied", [("1s", False), ("30s", True)])
def test_window_budget_ends_a_late_resize(start_berth, example_webhook, slow_engine, budget, applied):
    engine = slow_engine(r"POST /v[0-9.]+/exec/[^/]+/resize")
    berth = start(start_berth, example_webhook, engine, {"window": budget})
    client, channel = pty_shell(berth)
    try:
        run_in_shell(channel, b"echo up-$((1+1))", b"up-2")
        held_before = len(engine.held)
        channel.resize_pty(width=100, height=40)
        assert wait_until(lambda: len(engine.held) > held_before, timeout=30)
        if applied:
            # The late answer arrives within the budget: the size is the new one.
            assert wait_until(lambda: b"size=40 100" in run_in_shell(channel, b"echo size=$(stty size)-$((2+3))", b"-5"), timeout=60)
            assert not timeouts_logged(berth, "resizing the window")
        else:
            assert wait_until(lambda: timeouts_logged(berth, "resizing the window took longer than 1s"), timeout=30)
            # The session goes on.
            run_in_shell(channel, b"echo still-$((20+22))", b"still-42")
    finally:
        client.close()
    assert wait_until(lambda: not berth_containers(), timeout=60)


@pytest.mark.parametrize("budget, starts", [("1s", False), ("30s", True)])
def test_command_start_budget_ends_a_late_exec(start_berth, example_webhook, slow_engine, budget, starts):
    engine = slow_engine(r"POST /v[0-9.]+/exec/[^/]+/start")
    berth = start(start_berth, example_webhook, engine, {"commandStart": budget})
    result = berth.ssh("alice", "echo started", password="pw")
    assert engine.held, "the relay saw no exec start"
    if starts:
        assert result.returncode == 0 and result.stdout == b"started\n", result.stderr
        assert not timeouts_logged(berth, "starting the program")
    else:
        assert result.returncode != 0 and b"started" not in result.stdout
        assert timeouts_logged(berth, "starting the program took longer than 1s")
    assert wait_until(lambda: not berth_containers(), timeout=60)


@pytest.mark.parametrize("budget, delivered", [("1s", False), ("30s", True)])
def test_signal_budget_ends_a_late_kill(start_berth, example_webhook, slow_engine, budget, delivered):
    engine = slow_engine(r"POST /v[0-9.]+/containers/[^/]+/kill\?signal=(SIG)?USR1")
    berth = start(start_berth, example_webhook, engine, {"signal": budget}, mode="session")

    async def run():
        async with asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw",
                                    known_hosts=None, client_keys=None) as connection:
            process = await connection.create_process(
                "trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 1; done")
            assert (await asyncio.wait_for(process.stdout.readline(), 60)) == "ready\n"
            process.send_signal("USR1")
            if delivered:
                assert (await asyncio.wait_for(process.stdout.readline(), 60)) == "got-usr1\n"
                await asyncio.wait_for(process.wait_closed(), 60)
                return process.exit_status
            assert await asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_until(lambda: timeouts_logged(berth, "sending signal USR1 took longer than 1s"), timeout=30))
            process.close()
            return None

    status = asyncio.run(run())
    if delivered:
        assert status == 7
        assert not timeouts_logged(berth, "sending signal")
    assert wait_until(lambda: not berth_containers(), timeout=60)
