"""The config webhook policy (`configserver.allow`): what a webhook's answer may change beyond
ordinary settings. The first two tests need no Docker (the echo backend); the last one does."""
from conftest import webhook_auth
from docker_helpers import BUSYBOX, berth_containers, docker_config

PRIVILEGED = {"docker": {"execution": {"host": {"privileged": True}}}}


def policy_lines(berth):
    return [line for line in berth.process.log_lines() if line.get("code") == "CONFIG_WEBHOOK_POLICY_REFUSED"]


def test_a_privileged_answer_is_refused_and_the_login_ends_with_one_line(start_berth, example_webhook):
    url, _ = example_webhook([
        {"username": "alice", "password": "pw", "config": PRIVILEGED},
        {"username": "bob", "password": "pw", "config": {"docker": {"execution": {"host": {"Memory": 268435456}}}}},
    ])
    berth = start_berth({"auth": webhook_auth(url), "configserver": {"url": f"{url}/config"}})
    result = berth.ssh("alice", "whoami", password="pw")
    assert result.returncode == 255 and result.stdout == b"", result
    assert b"Berth could not prepare your session (CONFIG_WEBHOOK_POLICY_REFUSED)" in result.stderr
    assert b"privileged" not in result.stderr, "the user is not told the operator's details"
    (line,) = policy_lines(berth)
    assert line["details"]["key"] == "docker.execution.host.privileged"
    assert 'needs "privileged" in configserver.allow' in line["message"]
    assert line["username"] == "alice"
    # Ordinary settings still pass, for the next user on the same server.
    bob = berth.ssh("bob", "whoami", password="pw")
    assert bob.returncode == 0 and bob.stdout == b"bob\n", bob.stderr


def test_an_operator_can_allow_a_category(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw", "config": PRIVILEGED}])
    berth = start_berth({"auth": webhook_auth(url), "configserver": {"url": f"{url}/config", "allow": ["privileged"]}})
    result = berth.ssh("alice", "whoami", password="pw")
    assert result.returncode == 0 and result.stdout == b"alice\n", result.stderr
    assert not policy_lines(berth)


def test_a_privileged_answer_starts_no_container(start_berth, example_webhook):
    """Needs Docker."""
    url, _ = example_webhook([{"username": "alice", "password": "pw", "config": {"docker": {"execution": {"host": {"Privileged": True}}}}}])
    berth = start_berth({"auth": webhook_auth(url), "configserver": {"url": f"{url}/config"}, **docker_config(BUSYBOX)})
    result = berth.ssh("alice", "echo should-not-run", password="pw")
    assert result.returncode == 255 and b"should-not-run" not in result.stdout
    assert [line["details"]["key"] for line in policy_lines(berth)] == ["docker.execution.host.Privileged"]
    assert not berth_containers()
