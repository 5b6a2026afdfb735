"""Resumable sessions end to end (docs/configuration.md, `persistence`): a real OpenSSH client in
a pty is SIGKILLed, the user logs in again and finds the same program still counting, with what
it printed meanwhile; after the window a new shell starts; users never see each other's
sessions; two detached sessions give the menu.

Parametrised over the backends whose containers outlive a connection: Docker's persistent
containers and Kubernetes `persistent` pods (the test API server runs them as Docker
containers)."""
import os
import re
import signal
import subprocess
import threading
import urllib.request

import pytest

from audit_decoder import decode
from conftest import SSH_OPTS, free_port, wait_until, webhook_auth
from docker_helpers import BUSYBOX, docker, docker_config
from kube_helpers import kube_containers, start_kube_apiserver

TOKEN = "berth-test-token"
USERS = [{"username": "alice", "password": "pw"}, {"username": "bob", "password": "pw"}]
COUNTER = "sh -c 'echo pid=$$; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done'"
BACKENDS = ["docker", "kubernetes"]


class Terminal:
    """`ssh -tt` (OpenSSH, password through sshpass) with its output collected as it comes."""

    def __init__(self, berth, user, command=None):
        args = ["sshpass", "-p", "pw", "ssh", "-tt", "-p", str(berth.port), *SSH_OPTS, "-o", "NumberOfPasswordPrompts=1",
                "-o", "PubkeyAuthentication=no", f"{user}@127.0.0.1"]
        if command:
            args.append(command)
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = b""
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            chunk = self.process.stdout.read1(65536)
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def text(self):
        with self.lock:
            return self.output.decode(errors="replace")

    def wait(self, predicate, what, timeout=120):
        assert wait_until(lambda: predicate(self.text()), timeout=timeout), f"{what}; output so far: {self.text()[-800:]!r}"
        return self.text()

    def type(self, text):
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def kill(self):
        """SIGKILL to the ssh client itself (sshpass's child): no goodbye reaches Berth."""
        children = open(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read().split()
        for child in children:
            os.kill(int(child), signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def numbers(text):
    return [int(n) for n in re.findall(r"(?m)^(\d+)\r?$", text)]


def counting_pid(text):
    found = re.findall(r"pid=(\d+)", text)
    return int(found[-1]) if found else None


@pytest.fixture(params=BACKENDS)
def persistent_berth(request, tmp_path, start_berth, example_webhook):
    """Starts Berth with containers that outlive connections; `shared`: one container for all
    users (Kubernetes `persistentShared`). Returns (berth, container names of the backend)."""
    servers, terminals, started_docker = [], [], []

    def start(shared=False, extra=None, **persistence):
        url, _ = example_webhook(USERS)
        if request.param == "docker":
            if shared:
                pytest.skip("Docker's persistent containers are each one user's")
            config = {"auth": webhook_auth(url), **docker_config(BUSYBOX, mode="persistent"), "persistence": persistence, **(extra or {})}
            berth = start_berth(config, name="berth-docker")
            started_docker.append(berth)
            return berth, lambda: docker("ps", "-q", "--filter", "label=berth.persistent").stdout.split()
        server = start_kube_apiserver(tmp_path, token=TOKEN, name=f"kube-apiserver-{len(servers)}")
        servers.append(server)
        metadata = {"namespace": "default", **({"name": "resume-box"} if shared else {"generateName": "berth-"})}
        pod = {"metadata": metadata, "spec": {"containers": [{"name": "shell", "image": BUSYBOX}]},
               "shellCommand": ["/bin/sh"], "mode": "persistent"}
        if shared:
            pod.update(persistentShared=True, createMissingPods=True)
        config = {"auth": webhook_auth(url), "backend": "kubernetes",
                  "kubernetes": {"connection": {"host": server.url, "bearerToken": TOKEN}, "pod": pod, "timeouts": {"podStart": "60s"}},
                  "persistence": persistence, **(extra or {})}
        berth = start_berth(config, name=f"berth-{len(servers)}")
        return berth, lambda: kube_containers(server.instance, all_states=False)

    def terminal(berth, user, command=None):
        term = Terminal(berth, user, command)
        terminals.append(term)
        return term

    start.terminal = terminal
    start.backend = request.param
    yield start
    for term in terminals:
        term.close()
    for server in servers:
        assert server.stop() == 0, server.output()[-3000:]
    for berth in started_docker:
        # Persistent containers outlive Berth by design; the test removes what it made.
        berth.process.stop()
        for name in docker("ps", "-aq", "--filter", "label=berth.persistent").stdout.split():
            docker("rm", "-f", name, check=False)


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def detached_count(berth):
    return berth.process.output().count('"code":"SESSION_DETACHED"')


def holders(containers):
    """Agent processes that hold detached sessions (each listens in the resume directory once it
    holds one; docs/agent-protocol.md, "Resumable sessions")."""
    count = 0
    for name in containers():
        result = docker("exec", name, "sh", "-c", "ls /run/berth-resume /tmp/berth-resume-0 2>/dev/null", check=False)
        count += sum(1 for line in result.stdout.split() if line.endswith(".sock"))
    return count


def detach_counter(start, berth, user="alice", containers=None):
    """Runs the counter in a pty, lets it count, SIGKILLs the client and waits until Berth has
    seen the drop (and, given `containers`, until the agent holds it); returns (pid, last number
    seen)."""
    term = start.terminal(berth, user, COUNTER)
    text = term.wait(lambda t: len(numbers(t)) >= 5, "the counter to count")
    pid = counting_pid(text)
    last = numbers(term.text())[-1]
    before = detached_count(berth)
    term.kill()
    assert wait_until(lambda: detached_count(berth) > before), "Berth never detached the program"
    if containers and start.backend == "kubernetes":
        # Each Kubernetes link is its own agent process: the one left holding the program says so.
        assert wait_until(lambda: process_alive(containers, pid) and holders(containers) >= before + 1), "no agent holds the program"
    elif containers:
        assert wait_until(lambda: process_alive(containers, pid)), "the program did not outlive the client"
    return pid, last


def process_alive(containers, pid):
    for name in containers():
        result = docker("exec", name, "sh", "-c", f"test -d /proc/{pid} && ! grep -q '^State:.*Z' /proc/{pid}/status", check=False)
        if result.returncode == 0:
            return True
    return False


def test_dropped_client_resumes_the_same_counting_program(persistent_berth, tmp_path):
    audit, metrics_port = tmp_path / "audit", free_port()
    audit.mkdir()
    berth, containers = persistent_berth(resumeWindow="10m", extra={
        "audit": {"enable": True, "format": "binary", "storage": "file", "file": {"directory": str(audit)}},
        "metrics": {"enable": True, "listen": f"127.0.0.1:{metrics_port}", "path": "/metrics"}})
    pid, last = detach_counter(persistent_berth, berth, containers=containers)
    assert pid and process_alive(containers, pid)
    again = persistent_berth.terminal(berth, "alice")
    # The replay: from the start (pid=…), past what was seen before the kill, then live.
    text = again.wait(lambda t: counting_pid(t) == pid and numbers(t) and numbers(t)[-1] > last + 20,
                      "the same program to come back and go on counting")
    seen = numbers(text)
    assert seen == list(range(1, seen[-1] + 1)), "numbers printed while away are missing"
    log = berth.process.output()
    assert "SESSION_DETACHED" in log and "SESSION_RESUMED" in log
    # The audit log of the dropped connection records the detach, the new one the resume, both
    # with the program's PID (Berth's own message types 600 and 601).
    def recorded(kind):
        found = []
        for path in audit.iterdir():
            if path.suffix in (".cast", ".open", ".meta"):
                continue
            found += [m["payload"] for m in decode(path.read_bytes()) if m["type"] == kind]
        return found
    assert wait_until(lambda: any(p.get("pid") == pid for p in recorded(600))), "no detach in the audit log"
    assert wait_until(lambda: any(p.get("pid") == pid for p in recorded(601))), "no resume in the audit log"
    assert metric(metrics_port, "berth_sessions_detached_total") >= 1
    assert metric(metrics_port, "berth_sessions_resumed_total") >= 1


def test_after_the_window_the_program_is_gone_and_a_new_shell_starts(persistent_berth):
    metrics_port = free_port()
    berth, containers = persistent_berth(resumeWindow="2s", extra={"metrics": {"enable": True, "listen": f"127.0.0.1:{metrics_port}", "path": "/metrics"}})
    pid, _ = detach_counter(persistent_berth, berth)
    assert wait_until(lambda: not process_alive(containers, pid), timeout=60), "the detached program outlived its window"
    # Berth counts it as expired once the window and the agent's grace have passed unresumed.
    wait_until(lambda: metric(metrics_port, "berth_sessions_expired_total") == 1, timeout=90, what="the expired session to be counted")
    assert '"code":"SESSION_EXPIRED"' in berth.process.output()
    fresh = persistent_berth.terminal(berth, "alice")
    fresh.type("echo fresh-$((20+22))\r")
    text = fresh.wait(lambda t: "fresh-42" in t, "a new shell")
    assert "pid=" not in text


def test_users_never_resume_each_others_sessions(persistent_berth):
    berth, containers = persistent_berth(shared=True, resumeWindow="10m")
    pid, _ = detach_counter(persistent_berth, berth, "alice", containers=containers)
    bob = persistent_berth.terminal(berth, "bob")
    bob.type("echo bob-$((40+2))\r")
    text = bob.wait(lambda t: "bob-42" in t, "bob's new shell")
    assert "pid=" not in text and "Detached sessions" not in text
    assert process_alive(containers, pid)
    alice = persistent_berth.terminal(berth, "alice")
    alice.wait(lambda t: counting_pid(t) == pid, "alice's own session")


def test_two_detached_sessions_give_the_menu(persistent_berth):
    berth, containers = persistent_berth(resumeWindow="10m")
    first, _ = detach_counter(persistent_berth, berth, containers=containers)
    second, _ = detach_counter(persistent_berth, berth, containers=containers)
    term = persistent_berth.terminal(berth, "alice")
    text = term.wait(lambda t: "Resume which?" in t, "the menu")
    assert "0) a new shell" in text and text.count("PID ") == 2
    # Listed longest detached first (then by PID): the second counter is number 2.
    term.type("2\r")
    term.wait(lambda t: counting_pid(t.split("Resume which?")[-1]) == second, "the chosen session")
    assert first != second
