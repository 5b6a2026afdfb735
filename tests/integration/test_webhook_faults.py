"""A failing webhook affects only the users who need it (docs/configuration.md, "Webhook blocks"; docs/security.md)."""
import threading
import time

from conftest import wait_until, webhook_auth

AUTH_TIMEOUT = 3
SLACK = 15


def test_broken_webhook_answers_fail_within_auth_timeout(start_berth, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = start_berth({"auth": webhook_auth(url, authTimeout=f"{AUTH_TIMEOUT}s")})
    for user in ("broken", "garbage", "nosuccess"):
        started = time.monotonic()
        result = berth.ssh(user, "true", password="pw")
        elapsed = time.monotonic() - started
        assert result.returncode != 0, user
        assert elapsed < AUTH_TIMEOUT + SLACK, (user, elapsed)
        attempts = [body for path, body in faulty_webhook.seen if body.get("username") == user]
        assert len(attempts) >= 2, f"{user}: expected retries, saw {len(attempts)}"
    unavailable = [line for line in berth.process.log_lines() if line.get("code") == "AUTH_WEBHOOK_UNAVAILABLE"]
    assert {line.get("username") for line in unavailable} >= {"broken", "garbage", "nosuccess"}
    assert all("auth server unavailable" in line["message"] for line in unavailable)
    ok = berth.ssh("dave", "whoami", password="pw")
    assert ok.returncode == 0, ok.stderr


def test_hanging_webhook_does_not_block_other_users(start_berth, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = start_berth({"auth": webhook_auth(url, authTimeout=f"{AUTH_TIMEOUT}s", timeout="1s")})
    outcome = {}

    def hanging_login():
        started = time.monotonic()
        outcome["result"] = berth.ssh("hang", "true", password="pw")
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=hanging_login)
    thread.start()
    assert wait_until(lambda: any(body.get("username") == "hang" for _, body in faulty_webhook.seen), timeout=30)
    # While the hanging login waits for its webhook, someone else logs in normally.
    other = berth.ssh("erin", "whoami", password="pw")
    assert other.returncode == 0, other.stderr
    assert other.stdout == b"erin\n"
    thread.join(timeout=AUTH_TIMEOUT + SLACK + 30)
    assert outcome["result"].returncode != 0
    assert outcome["elapsed"] < AUTH_TIMEOUT + SLACK


def test_webhook_not_listening_fails_cleanly(start_berth):
    berth = start_berth({"auth": webhook_auth("http://127.0.0.1:9", authTimeout="2s")})
    started = time.monotonic()
    result = berth.ssh("frank", "true", password="pw")
    assert result.returncode != 0
    assert time.monotonic() - started < 2 + SLACK
    assert berth.process.proc.poll() is None, "berth must keep running"
