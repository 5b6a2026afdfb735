"""Session channel behaviour through the SSH front end, with the test backend."""
import socket
import time


from conftest import make_key, wait_until, webhook_auth


def test_exit_status_stderr_and_stdin_eof(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url)})
    assert berth.ssh("alice", "exit 42", password="pw").returncode == 42
    separated = berth.ssh("alice", "stderr oops", password="pw")
    assert separated.stdout == b"" and separated.stderr == b"oops\n"
    echoed = berth.ssh("alice", "cat", password="pw", stdin=b"abc")
    assert echoed.returncode == 0 and echoed.stdout == b"abc"
    big = bytes(range(256)) * 4096
    assert berth.ssh("alice", "cat", password="pw", stdin=big).stdout == big


def test_max_auth_tries_closes_the_connection(tmp_path, start_berth, example_webhook):
    url, requests = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"maxAuthTries": 2}})
    keys = [make_key(tmp_path, "ed25519", f"wrong{n}")[0] for n in range(4)]
    identities = [arg for key in keys for arg in ("-i", str(key))]
    result = berth.ssh("alice", "true", extra=["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", *identities])
    assert result.returncode == 255
    # Two rejected keys use up the attempts; the other keys are never asked about.
    assert len([r for r in requests() if r["path"] == "/pubkey"]) == 2
    assert any(line.get("code") == "SSH_MAX_AUTH_TRIES" for line in berth.process.log_lines())


def test_login_grace_time_drops_silent_connections(start_berth, example_webhook):
    url, _ = example_webhook([])
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"loginGraceTime": "2s"}})
    with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as sock:
        started = time.monotonic()
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"SSH-2.0-")
        assert 1.5 < time.monotonic() - started < 25


def test_connection_limit_per_ip_refuses_with_a_message(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"maxConnectionsPerIP": 1}})
    def served():
        # The readiness probe's own connection may still hold the slot for a moment.
        connection = socket.create_connection(("127.0.0.1", berth.port), timeout=30)
        if connection.recv(64).startswith(b"SSH-2.0-"):
            return connection
        connection.close()
        return None
    first = wait_until(served, timeout=20)
    assert first, "the first connection was never served"
    with first:
        with socket.create_connection(("127.0.0.1", berth.port), timeout=30) as second:
            refused = second.recv(256)
            assert b"too many connections" in refused
    # Once the first connection is gone a new one is served (as soon as Berth has seen it close).
    assert wait_until(lambda: berth.ssh("alice", "whoami", password="pw").returncode == 0, timeout=30)


def test_sigterm_stops_cleanly(start_berth, example_webhook):
    url, _ = example_webhook([])
    berth = start_berth({"auth": webhook_auth(url)})
    assert berth.process.stop() == 0
