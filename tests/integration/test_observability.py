"""Logging with message codes, syslog, Prometheus metrics, health and graceful stop (docs/configuration.md, "log", "metrics and health")."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import paramiko
from prometheus_client.parser import text_string_to_metric_families

from conftest import BERTH, free_port, wait_until, webhook_auth

ROOT = Path(__file__).resolve().parents[2]


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_ljson_lines_carry_codes_and_connection_ids(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url)})
    assert berth.ssh("alice", "true", password="pw").returncode == 0
    lines = [json.loads(line) for line in berth.process.output().splitlines() if line.strip()]
    assert lines and all(re.fullmatch(r"[A-Z][A-Z0-9_]+", line["code"]) for line in lines)
    assert all({"timestamp", "level", "message"} <= set(line) for line in lines)
    success = [line for line in lines if line["code"] == "AUTH_SUCCESSFUL"]
    assert len(success) == 1
    assert re.fullmatch(r"[0-9a-f]{32}", success[0]["connectionId"])
    assert success[0]["username"] == "alice" and success[0]["remoteAddress"].startswith("127.0.0.1:")


def test_message_code_reference_is_in_sync():
    result = subprocess.run(["python3", str(ROOT / "scripts/message-codes.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_syslog_over_udp(start_berth, example_webhook):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(10)
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), "log": {"level": "info", "destination": "syslog",
                         "syslog": {"destination": f"127.0.0.1:{listener.getsockname()[1]}", "facility": "local3", "tag": "berth-test"}}})
    assert berth.ssh("alice", "true", password="pw").returncode == 0
    messages = []
    deadline = time.time() + 10
    while time.time() < deadline and not any(" AUTH_SUCCESSFUL " in m for m in messages):
        messages.append(listener.recv(65536).decode())
    listener.close()
    auth = next(m for m in messages if " AUTH_SUCCESSFUL " in m)
    match = re.match(r"<(\d+)>1 \S+ \S+ berth-test \d+ AUTH_SUCCESSFUL - (\{.*\})$", auth)
    assert match, auth
    assert int(match.group(1)) == 19 * 8 + 6  # local3, informational
    assert json.loads(match.group(2))["username"] == "alice"


def test_metrics_endpoint_counts_logins(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    port = free_port()
    berth = start_berth({"auth": webhook_auth(url), "metrics": {"enable": True, "listen": f"127.0.0.1:{port}", "path": "/metrics"}})
    assert berth.ssh("alice", "cat", password="pw", stdin=b"x" * 1000).returncode == 0
    assert berth.ssh("alice", "true", password="wrong").returncode != 0
    def scrape():
        status, text = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples
    # Both connections are counted once Berth has seen them close.
    samples = wait_until(lambda: (s := scrape()).get(("berth_connections_current", ())) == 0
                         and s.get(("berth_session_duration_seconds_count", ())) == 1 and s, timeout=30)
    assert samples, scrape()
    assert samples[("berth_connections_total", ())] >= 2
    assert samples[("berth_auth_success_total", (("method", "password"), ("outcome", "success")))] == 1
    assert samples[("berth_auth_failures_total", (("method", "password"), ("outcome", "failure")))] == 1
    assert samples[("berth_handshake_successful_total", ())] == 1
    assert samples[("berth_webhook_requests_total", (("webhook", "auth"),))] == 2
    assert samples[("berth_bytes_in_total", ())] == 1000
    assert samples[("berth_bytes_out_total", ())] == 1000
    assert samples[("berth_session_duration_seconds_count", ())] == 1
    assert http_get(f"http://127.0.0.1:{port}/other")[0] == 404


def test_health_and_graceful_stop_let_a_running_session_finish(tmp_path, start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    health_port = free_port()
    berth = start_berth({"auth": webhook_auth(url), "health": {"enable": True, "listen": f"127.0.0.1:{health_port}"},
                         "ssh": {"shutdownTimeout": "20s"}})
    assert http_get(f"http://127.0.0.1:{health_port}/") == (200, "ok")
    env = dict(os.environ, BERTH_ENABLE_TEST_BACKEND="1")
    check = subprocess.run([BERTH, "healthcheck", "--config", str(berth.config_path)], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stdout
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    channel = client.get_transport().open_session()
    channel.exec_command("cat")
    channel.sendall(b"before ")
    berth.process.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: http_get(f"http://127.0.0.1:{health_port}/") == (503, "not ok"), timeout=10)
    assert berth.process.proc.poll() is None, "the session is still running"
    channel.sendall(b"after")
    channel.shutdown_write()
    assert channel.recv_exit_status() == 0
    output = b""
    while channel.recv_ready():
        output += channel.recv(1024)
    assert output == b"before after"
    client.close()
    assert berth.process.proc.wait(timeout=15) == 0
    assert subprocess.run([BERTH, "--config", str(berth.config_path), "--healthcheck"], capture_output=True, env=env).returncode == 1


def test_sighup_reopens_the_log_file(tmp_path, start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    log_file = tmp_path / "berth.log.json"
    berth = start_berth({"auth": webhook_auth(url), "log": {"level": "info", "destination": "file", "file": str(log_file)}})
    assert wait_until(lambda: "SSH_LISTENING" in (log_file.read_text() if log_file.exists() else ""), timeout=10)
    rotated = tmp_path / "berth.log.json.1"
    os.rename(log_file, rotated)
    berth.process.proc.send_signal(signal.SIGHUP)
    assert wait_until(log_file.exists, timeout=10)
    assert berth.ssh("alice", "true", password="pw").returncode == 0
    assert "SSH_LISTENING" in rotated.read_text()
    fresh = wait_until(lambda: "AUTH_SUCCESSFUL" in log_file.read_text() and log_file.read_text(), timeout=10)
    assert fresh and "LOG_REOPENED" in fresh
