#!/usr/bin/env python3
"""The operator console's cost to a user (docs/console.md, "Watching"): one user's 1 GiB output
stream through Berth, alone and with an operator watching it over the console's WebSocket.
Prints MiB/s for both and their ratio; no threshold (the issue's target is a ratio of >= 0.9).

    bench/console_watch.py [--berth PATH] [--backend docker|echo] [--bytes N] [--reps 3]

docker (default): a session in a container runs `read x; head -c N /dev/zero` (the agent data
plane, Berth's fast output path); the clock starts when the line is sent, after the watcher is
attached. Needs `berth-busybox:latest` on the engine; run it under the shared Docker lock
(`flock -o /tmp/berth-docker.lock bench/console_watch.py`). echo: no container, the test backend's
`cat` echoes N bytes of stdin (BERTH_ENABLE_TEST_BACKEND=1). Use a release build
(`swift build -c release --scratch-path .build-bench`, as bench/run.sh does) and a quiet machine.
Everything started is stopped by PID."""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import websocket

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Console:
    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read().decode(errors="replace")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        connection.close()
        return response.status, data

    def sign_in(self, username, password):
        _, page = self.request("GET", "/signin")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        status, _ = self.request("POST", "/signin", {"csrf": token, "username": username, "password": password})
        assert status == 303, status

    def session(self, program):
        status, body = self.request("GET", "/api/sessions")
        for connection in json.loads(body)["connections"]:
            for session in connection["sessions"]:
                if program in session["program"]:
                    return connection["id"], session["channel"]
        return None


class Watcher(threading.Thread):
    def __init__(self, console, connection, channel):
        super().__init__(daemon=True)
        self.socket = websocket.create_connection(
            f"ws://127.0.0.1:{console.port}/ws/watch?connection={connection}&channel={channel}",
            cookie=f"berth_console={console.cookies['berth_console']}")
        first = self.socket.recv()
        assert json.loads(first)["type"] == "start", first
        self.received = 0
        self.skips = 0

    def run(self):
        try:
            while True:
                opcode, data = self.socket.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    self.received += len(data)
                elif opcode == websocket.ABNF.OPCODE_TEXT:
                    kind = json.loads(data)["type"]
                    if kind == "skipped":
                        self.skips += 1
                    elif kind == "ended":
                        return
                else:
                    return
        except Exception:
            return


def run_once(args, port, key, console, watched):
    command = f"read x; head -c {args.bytes} /dev/zero" if args.backend == "docker" else "cat"
    program = "head -c" if args.backend == "docker" else "cat"
    ssh = subprocess.Popen(
        ["ssh", "-T", "-p", str(port), "-c", "aes128-gcm@openssh.com", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "bench@127.0.0.1", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    connection, channel = wait_for(lambda: console.session(program), "the session in the console")
    watcher = None
    if watched:
        watcher = Watcher(console, connection, channel)
        watcher.start()
    start = time.monotonic()
    if args.backend == "docker":
        ssh.stdin.write(b"go\n")
        ssh.stdin.flush()
    else:
        def feed():
            block = b"\0" * (1 << 20)
            left = args.bytes
            while left > 0:
                ssh.stdin.write(block[:min(left, len(block))])
                left -= len(block)
            ssh.stdin.close()
        threading.Thread(target=feed, daemon=True).start()
    total = 0
    while total < args.bytes:
        chunk = ssh.stdout.read1(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    elapsed = time.monotonic() - start
    if args.backend == "docker":
        ssh.stdin.close()
    ssh.wait(timeout=120)
    if watcher:
        watcher.join(timeout=60)
        watcher.socket.close()
    assert total == args.bytes, f"got {total} of {args.bytes} bytes"
    return args.bytes / elapsed / (1 << 20), (watcher.received if watcher else 0), (watcher.skips if watcher else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_berth = ROOT / ".build-bench/release/berth"
    parser.add_argument("--berth", default=str(default_berth if default_berth.exists() else ROOT / ".build/debug/berth"))
    parser.add_argument("--backend", choices=["docker", "echo"], default="docker")
    parser.add_argument("--image", default="berth-busybox:latest")
    parser.add_argument("--bytes", type=int, default=1 << 30)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="berth-console-bench-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    public = " ".join((work / "id_ed25519.pub").read_text().split()[:2])
    password_hash = subprocess.run(["openssl", "passwd", "-6", "bench-pw"], capture_output=True, text=True, check=True).stdout.strip()
    ssh_port, console_port = free_port(), free_port()
    config = {
        "ssh": {"listen": f"127.0.0.1:{ssh_port}", "stateDirectory": str(work / "state")},
        "log": {"level": "warning", "format": "ljson", "destination": "file", "file": str(work / "berth.log")},
        "auth": {"publicKey": {"method": "static", "static": {"users": [{"username": "bench", "authorizedKeys": [public]}]}}},
        "console": {"enable": True, "listen": f"127.0.0.1:{console_port}", "showWatching": False,
                    "operators": [{"username": "ops", "passwordHash": password_hash, "role": "readonly"}]},
        "backend": args.backend,
    }
    if args.backend == "docker":
        config["docker"] = {"execution": {"container": {"image": args.image}, "imagePullPolicy": "Never", "shellCommand": ["/bin/sh"]}}
    (work / "config.json").write_text(json.dumps(config))
    berth = subprocess.Popen([args.berth, "serve", "--config", str(work / "config.json")],
                             env=dict(os.environ, BERTH_ENABLE_TEST_BACKEND="1"), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", ssh_port), timeout=1).close()
                return True
            except OSError:
                return berth.poll() is not None and SystemExit("berth exited early")
        wait_for(up, "berth to listen")
        console = Console(console_port)
        console.sign_in("ops", "bench-pw")
        rows = {False: [], True: []}
        notes = []
        for rep in range(args.reps):
            for watched in (False, True):
                rate, received, skips = run_once(args, ssh_port, key, console, watched)
                rows[watched].append(rate)
                if watched:
                    notes.append(f"rep {rep + 1}: watcher received {received / (1 << 20):.0f} MiB, resynchronised {skips} times")
                print(f"rep {rep + 1} {'watched' if watched else 'alone  '}: {rate:7.1f} MiB/s", flush=True)
        alone, watched = statistics.median(rows[False]), statistics.median(rows[True])
        print(f"\n{args.backend}, {args.bytes / (1 << 20):.0f} MiB, {args.reps} reps, berth {args.berth}")
        print(f"alone   median {alone:7.1f} MiB/s  (min {min(rows[False]):.1f}, max {max(rows[False]):.1f})")
        print(f"watched median {watched:7.1f} MiB/s  (min {min(rows[True]):.1f}, max {max(rows[True]):.1f})")
        print(f"ratio watched/alone: {watched / alone:.3f}")
        for note in notes:
            print(note)
    finally:
        berth.send_signal(signal.SIGTERM)
        try:
            berth.wait(timeout=60)
        except subprocess.TimeoutExpired:
            berth.kill()
            berth.wait()


if __name__ == "__main__":
    sys.exit(main())
