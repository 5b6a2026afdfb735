"""Fixtures that run the real binaries: berth serve, the example webhook server, and a
fault-injecting webhook written here. Every process is started by the test and stopped by PID."""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from waiting import eventually, wait_until  # noqa: E402  (tests/waiting.py, shared by the suites)

BERTH = os.environ.get("BERTH_BIN", str(Path(__file__).resolve().parents[2] / ".build/debug/berth"))
WEBHOOK = os.environ.get("BERTH_WEBHOOK_BIN", str(Path(__file__).resolve().parents[2] / ".build/debug/berth-example-webhook"))
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=20"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


wait_for = wait_until


def wait_for_port(port, proc, timeout=60):
    def listening():
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    wait_until(listening, timeout=timeout, what=f"port {port} to listen")


class Process:
    """A child process whose output goes to a file that is shown when a test fails."""

    def __init__(self, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def log_lines(self):
        lines = []
        for line in self.output().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
        return lines


class Berth:
    def __init__(self, process, port, config_path):
        self.process = process
        self.port = port
        self.config_path = config_path

    def ssh(self, user, command, password=None, key=None, stdin=b"", extra=(), timeout=60):
        args = ["ssh", "-p", str(self.port), *SSH_OPTS, *extra]
        if key:
            args += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
        if password is None:
            args += ["-o", "BatchMode=yes", "-o", "PasswordAuthentication=no"]
        else:
            args = ["sshpass", "-p", password, *args, "-o", "NumberOfPasswordPrompts=1"]
            if not key:
                args += ["-o", "PubkeyAuthentication=no"]
        args += [f"{user}@127.0.0.1", command]
        return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture
def start_berth(tmp_path, request):
    started = []

    def start(config, name="berth", expect_start=True, env_extra=None):
        port = free_port()
        config = json.loads(json.dumps(config))
        config.setdefault("ssh", {}).setdefault("listen", f"127.0.0.1:{port}")
        config["ssh"].setdefault("stateDirectory", str(tmp_path / "state"))
        config.setdefault("backend", "echo")
        config.setdefault("log", {"level": "debug", "format": "ljson"})
        port = int(config["ssh"]["listen"].rsplit(":", 1)[1])
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        env = dict(os.environ, BERTH_ENABLE_TEST_BACKEND="1", **(env_extra or {}))
        process = Process([BERTH, "serve", "--config", str(path)], tmp_path / f"{name}.log", env=env)
        started.append(process)
        if expect_start:
            wait_for_port(port, process.proc)
        return Berth(process, port, path)

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for process in started:
        if process.proc.poll() is None or not process.log.closed:
            process.stop()
        if failed:
            print(f"--- {process.log_path} ---\n{process.output()[-6000:]}")


@pytest.fixture
def example_webhook(tmp_path, request):
    """Starts berth-example-webhook with the given users; returns (base_url, read_requests)."""
    started = []

    def start(users, extra=()):
        users_file = tmp_path / "users.yaml"
        users_file.write_text(json.dumps({"users": users}))
        requests_file = tmp_path / "webhook-requests.jsonl"
        port = free_port()
        process = Process([WEBHOOK, "--listen", f"127.0.0.1:{port}", "--users", str(users_file),
                           "--log-requests", str(requests_file), *extra], tmp_path / "webhook.log")
        started.append(process)
        wait_for_port(port, process.proc)

        def read_requests():
            if not requests_file.exists():
                return []
            return [json.loads(line) for line in requests_file.read_text().splitlines() if line.strip()]

        return f"http://127.0.0.1:{port}", read_requests

    yield start
    for process in started:
        process.stop()


class FaultyWebhook(BaseHTTPRequestHandler):
    """Behaves by username: `broken` → 500, `garbage` → not JSON, `nosuccess` → JSON without
    success, `hang` → never answers in time, `slow` → answers after 2 s, anyone else → accepted
    with password `pw`."""

    hang_seconds = 30

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body))
        user = body.get("username")
        if user == "broken":
            return self.reply(500, b'{"success": true}')
        if user == "garbage":
            return self.reply(200, b"<html>surprise</html>")
        if user == "nosuccess":
            return self.reply(200, b'{"authenticatedUsername": "x"}')
        if user == "hang":
            time.sleep(self.hang_seconds)
            return self.reply(200, b'{"success": true}')
        if user == "slow" and not self.path.endswith(("/config", "/authz")):
            time.sleep(2)
        if self.path.endswith("/config"):
            if user == "badbackend":
                return self.reply(200, b'{"config": {"backend": "nope"}}')
            if user == "badconfig":
                return self.reply(200, b'{"config": {"ssh": {"listen": 5}, "docker": {"execution": {"mode": "sesion"}}}}')
            return self.reply(200, b'{"config": {}}')
        if self.path.endswith("/authz"):
            return self.reply(200, json.dumps({"success": user != "denied"}).encode())
        password = base64.b64decode(body.get("passwordBase64", "")).decode(errors="replace")
        return self.reply(200, json.dumps({"success": password == "pw"}).encode())

    def reply(self, status, data):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyWebhook)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def webhook_auth(url, **webhook):
    block = {"url": url, "timeout": "1s", "authTimeout": "5s", **webhook}
    return {"password": {"method": "webhook", "webhook": block},
            "publicKey": {"method": "webhook", "webhook": block}}


def make_key(tmp_path, kind, name=None):
    path = tmp_path / (name or f"id_{kind}")
    args = ["ssh-keygen", "-q", "-N", "", "-f", str(path)]
    args += {"ed25519": ["-t", "ed25519"], "ecdsa": ["-t", "ecdsa", "-b", "256"], "rsa": ["-t", "rsa", "-b", "2048"]}[kind]
    subprocess.run(args, check=True)
    return path, " ".join(Path(str(path) + ".pub").read_text().split()[:2])
