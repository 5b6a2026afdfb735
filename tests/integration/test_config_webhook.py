"""The per-user configuration webhook (docs/configuration.md, "configserver")."""
import time

from conftest import webhook_auth
from docker_helpers import BUSYBOX, GUEST, berth_containers, docker_config


def test_per_user_image_mode_and_shell(start_berth, example_webhook):
    url, requests = example_webhook([
        {"username": "alice", "password": "pw"},
        {"username": "bob", "password": "pw", "config": {"docker": {"execution": {
            "container": {"image": BUSYBOX}, "mode": "session", "shellCommand": ["/bin/sh"]}}}},
    ])
    config = {"auth": webhook_auth(url), "configserver": {"url": f"{url}/config"}, **docker_config(GUEST)}
    berth = start_berth(config)
    alice = berth.ssh("alice", "test -f /etc/debian_version && echo debian; echo $0", password="pw")
    assert alice.returncode == 0, alice.stderr
    assert alice.stdout == b"debian\n/bin/sh\n"
    bob = berth.ssh("bob", "test -f /etc/debian_version || echo busybox", password="pw")
    assert bob.returncode == 0, bob.stderr
    assert bob.stdout == b"busybox\n"
    bodies = [r["body"] for r in requests() if r["path"] == "/config"]
    assert [b["username"] for b in bodies] == ["alice", "bob"]
    assert all(b["authenticatedUsername"] == b["username"] and len(b["connectionId"]) == 32 for b in bodies)
    assert all("passwordBase64" not in b for b in bodies)


def test_config_webhook_failures_close_the_connection_and_start_nothing(start_berth, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    auth = webhook_auth(url, authTimeout="3s")
    # The auth answers of the fault server only accept password "pw" for ordinary names, so the
    # faulty config users authenticate through a separate static list.
    static = {"users": [{"username": name, "passwordHash": "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"}
                        for name in ("broken", "hang", "badbackend", "badconfig", "good")]}
    auth["password"] = {"method": "static", "static": static}
    config = {"auth": auth, "configserver": {"url": f"{url}/config", "configTimeout": "3s", "timeout": "1s"}, **docker_config(BUSYBOX)}
    berth = start_berth(config)
    for user in ("broken", "hang", "badbackend", "badconfig"):
        started = time.monotonic()
        result = berth.ssh(user, "echo should-not-run", password="secret")
        assert result.returncode == 255, (user, result)
        assert b"should-not-run" not in result.stdout
        assert time.monotonic() - started < 3 + 20
    assert not berth_containers()
    codes = [line.get("code") for line in berth.process.log_lines()]
    assert codes.count("CONFIG_WEBHOOK_UNAVAILABLE") == 2
    assert codes.count("CONFIG_INVALID") == 2
    invalid = [line["message"] for line in berth.process.log_lines() if line.get("code") == "CONFIG_INVALID"]
    assert any("backend: \"nope\"" in message for message in invalid)
    assert any("docker.execution.mode: \"sesion\" is not one of connection, session" in message for message in invalid)
    good = berth.ssh("good", "echo fine", password="secret")
    assert good.returncode == 0 and good.stdout == b"fine\n", good.stderr
