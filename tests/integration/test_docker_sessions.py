"""A real shell in a real container: the Docker backend end to end (docs/configuration.md, "docker"; docs/agent-protocol.md)."""
import glob
import hashlib
import json
import os
import signal
import subprocess
import time

import paramiko

from session_scenarios import pty_size_then_window_change, sftp_put_and_get, signal_through_agent
from conftest import SSH_OPTS, make_key, webhook_auth, wait_until
from docker_helpers import BUSYBOX, berth_containers, docker, docker_config, inspect_labels

USERS = [{"username": "alice", "password": "pw", "environment": {"FROM_WEBHOOK": "yes"},
          "files": {"/tmp/hello.txt": "file from the webhook"}}]


def start(start_berth, example_webhook, users=USERS, ssh=None, **config):
    url, _ = example_webhook(users)
    merged = {"auth": webhook_auth(url), **docker_config(**config)}
    if ssh:
        merged["ssh"] = ssh
    return start_berth(merged)


def paramiko_client(berth):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False,
                   allow_agent=False, timeout=30, banner_timeout=30, auth_timeout=30)
    return client


def test_output_exit_code_stderr_and_stdin(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    result = berth.ssh("alice", "echo out; echo err >&2; exit 42", password="pw")
    assert result.returncode == 42
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    piped = berth.ssh("alice", "cat; echo END", password="pw", stdin=b"abc")
    assert piped.returncode == 0 and piped.stdout == b"abcEND\n"
    assert wait_until(lambda: not berth_containers())


def test_ten_mebibytes_both_ways(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX)
    data = os.urandom(10 * 1024 * 1024)
    echoed = berth.ssh("alice", "cat", password="pw", stdin=data, timeout=120)
    assert echoed.returncode == 0
    assert hashlib.sha256(echoed.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    produced = berth.ssh("alice", "head -c 10485760 /dev/urandom | tee /tmp/out | sha256sum; cat /tmp/out", password="pw", timeout=120)
    digest, payload = produced.stdout[:64].decode(), produced.stdout[len(produced.stdout) - 10485760:]
    assert hashlib.sha256(payload).hexdigest() == digest


def test_webhook_environment_files_and_env_requests(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    result = berth.ssh("alice", "echo $FROM_WEBHOOK $SENT; cat /tmp/hello.txt; echo; stat -c %a /tmp/hello.txt", password="pw",
                       extra=["-o", "SetEnv=SENT=by-client"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"yes by-client\nfile from the webhook\n600\n"


def test_pty_size_and_window_change(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    client = paramiko_client(berth)
    try:
        assert pty_size_then_window_change(client) == (["97", "31", "120", "40"], 0)
    finally:
        client.close()


def test_signal_reaches_the_program_through_the_agent(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    status, stdout = signal_through_agent(berth.port)
    assert status == 0
    assert stdout == "got-USR1"  # wait-signal adds no newline (ContainerSSH compatible)


def test_sftp_put_and_get(tmp_path, start_berth, example_webhook):
    key, pub = make_key(tmp_path, "ed25519")
    berth = start(start_berth, example_webhook, users=[{"username": "alice", "authorizedKeys": [pub]}])
    result, uploaded, downloaded = sftp_put_and_get(tmp_path, berth.port, key, 5 * 1024 * 1024)
    assert result.returncode == 0, result.stderr
    assert downloaded == uploaded


def test_connection_mode_shares_one_container_and_labels_it(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    client = paramiko_client(berth)
    try:
        hostnames = []
        for _ in range(2):
            _, stdout, _ = client.exec_command("hostname")
            hostnames.append(stdout.read().strip())
        assert hostnames[0] == hostnames[1]
        containers = berth_containers(username="alice")
        assert len(containers) == 1
        labels = inspect_labels(containers[0])
        assert len(labels["berth.connection-id"]) == 32
        assert labels["berth.remote-ip"] == "127.0.0.1"
    finally:
        client.close()
    assert wait_until(lambda: not berth_containers())


def test_session_mode_gives_each_session_its_own_container(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX, mode="session")
    client = paramiko_client(berth)
    try:
        hostnames = []
        for _ in range(2):
            _, stdout, _ = client.exec_command("hostname; exit 3")
            hostnames.append(stdout.read().strip())
            assert stdout.channel.recv_exit_status() == 3
        assert hostnames[0] != hostnames[1]
    finally:
        client.close()
    assert wait_until(lambda: not berth_containers())


def test_request_rules_keep_the_channel_usable(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    client = paramiko_client(berth)
    try:
        transport = client.get_transport()
        channel = transport.open_session()
        try:
            channel.invoke_subsystem("nonexistent")
            raise AssertionError("unknown subsystem accepted")
        except paramiko.SSHException:
            pass
        channel = transport.open_session()
        channel.exec_command("sleep 2; echo done")
        # paramiko closes a channel whose request was refused, so the refusal is all we can see.
        try:
            channel.exec_command("echo second")
            raise AssertionError("second exec accepted")
        except paramiko.SSHException:
            pass
        _, stdout, _ = client.exec_command("echo still-works")
        assert stdout.read() == b"still-works\n"
    finally:
        client.close()


def test_client_killed_mid_command_leaves_no_container(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    ssh = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "alice@127.0.0.1", "sleep 300"])
    assert wait_until(lambda: len(berth_containers()) == 1)
    ssh.send_signal(signal.SIGKILL)
    ssh.wait()
    assert wait_until(lambda: not berth_containers())


def test_server_killed_then_restarted_removes_the_orphan(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config()}
    first = start_berth(config, name="first")
    ssh = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(first.port), *SSH_OPTS, "alice@127.0.0.1", "sleep 300"])
    try:
        assert wait_until(lambda: len(berth_containers()) == 1)
        first.process.proc.send_signal(signal.SIGKILL)
        first.process.proc.wait()
        assert len(berth_containers()) == 1
        # Restarted on another address (another identity), Berth finds that no live server holds
        # the container's liveness record and removes it (test_persistent.py: a live one's stay).
        start_berth(config, name="other")
        assert wait_until(lambda: not berth_containers())
    finally:
        ssh.kill()
        ssh.wait()


def test_engine_down_gives_a_one_line_error(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config()}
    config["docker"]["connection"] = {"host": "unix:///nonexistent/docker.sock"}
    berth = start_berth(config)
    result = berth.ssh("alice", "true", password="pw")
    assert result.returncode == 1
    # The code and the connection for the operator; the engine's address stays in the log.
    assert b"DOCKER_ENGINE_UNAVAILABLE" in result.stderr and b"nonexistent" not in result.stderr
    assert "cannot reach the Docker engine" in berth.process.output()
    assert berth.process.proc.poll() is None


def test_missing_image_with_never_is_refused_clearly(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image="berth-no-such-image:latest")
    result = berth.ssh("alice", "true", password="pw")
    assert result.returncode == 1
    assert b"DOCKER_IMAGE_NOT_FOUND" in result.stderr and b"berth-no-such-image" not in result.stderr
    assert "imagePullPolicy is Never" in berth.process.output()


def test_sigterm_ends_running_programs_and_removes_containers(start_berth, example_webhook):
    # Sessions get until shortly before shutdownTimeout to end on their own, then TERM.
    berth = start(start_berth, example_webhook, ssh={"shutdownTimeout": "4s"})
    ssh = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "alice@127.0.0.1", "sleep 300"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(berth_containers()) == 1)
        # The program runs (a stop before it started would prove nothing about TERM).
        assert wait_until(lambda: "sleep 300" in docker("top", berth_containers()[0], check=False).stdout, timeout=30)
        started = time.monotonic()
        assert berth.process.stop() == 0
        assert time.monotonic() - started < 25
        assert ssh.wait(timeout=30) != 0
        assert not berth_containers()
    finally:
        ssh.kill()
        ssh.wait()


def test_terminal_session_with_stdin_closed_keeps_its_output(start_berth, example_webhook):
    # `ssh -tt host cmd < /dev/null`: the client's EOF must not cut the program's output.
    berth = start(start_berth, example_webhook)
    result = berth.ssh("alice", "echo hi; tput cols; exit 3", password="pw", extra=["-tt", "-o", "RequestTTY=force"])
    assert result.returncode == 3, result.stderr
    assert result.stdout.replace(b"\r", b"") == b"hi\n80\n"


def test_client_gone_before_auth_answer_starts_no_container(start_berth, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = start_berth({"auth": webhook_auth(url, timeout="5s", authTimeout="10s"), **docker_config(image=BUSYBOX)})
    client = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "slow@127.0.0.1", "sleep 300"])
    assert wait_until(lambda: any(path == "/password" for path, _ in faulty_webhook.seen), timeout=30)
    client.kill()
    client.wait()
    # Logged once the late answer was dropped: nothing can start a container after it.
    assert wait_until(lambda: "SSH_AUTH_AFTER_DISCONNECT" in berth.process.output(), timeout=30)
    assert not berth_containers(username="slow")
    assert "DOCKER_CONTAINER_STARTED" not in berth.process.output()


def _program_status(berth):
    client = paramiko_client(berth)
    try:
        _, stdout, _ = client.exec_command("grep -E '^(CapEff|NoNewPrivs):' /proc/self/status")
        status = dict(line.split(":", 1) for line in stdout.read().decode().splitlines())
        host = json.loads(docker("inspect", berth_containers()[0]).stdout)[0]["HostConfig"]
        return int(status["CapEff"].strip(), 16), status["NoNewPrivs"].strip(), host
    finally:
        client.close()


def test_containers_are_hardened_by_default_and_the_operator_can_override(start_berth, example_webhook):
    """No NET_RAW (ARP spoofing on the shared bridge) and no MKNOD, no privilege gain through
    set-uid programs, process, memory and CPU limits; an operator's HostConfig key replaces
    Berth's (any case). Root programs (loginUser.mode container) show the capability set; the
    login user's own programs have none at all."""
    cap_kill, cap_net_raw, cap_mknod = 1 << 5, 1 << 13, 1 << 27
    capabilities, no_new_privileges, host = _program_status(start(start_berth, example_webhook))
    assert capabilities == 0 and no_new_privileges == "1"
    assert wait_until(lambda: not berth_containers())

    capabilities, no_new_privileges, host = _program_status(start(start_berth, example_webhook, loginUser={"mode": "container"}))
    assert capabilities & cap_kill and not capabilities & cap_net_raw and not capabilities & cap_mknod
    assert no_new_privileges == "1"
    assert host["PidsLimit"] == 4096 and host["CapDrop"] == ["ALL"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (2 << 30, 2 << 30, 2_000_000_000)
    assert wait_until(lambda: not berth_containers())

    capabilities, no_new_privileges, host = _program_status(start(
        start_berth, example_webhook, loginUser={"mode": "container"},
        host={"pidslimit": 64, "CapAdd": ["NET_RAW", "KILL"], "Memory": 3 << 30, "CpuQuota": 50000}))
    assert capabilities & cap_net_raw and capabilities & cap_kill and not capabilities & (1 << 0)  # CHOWN no longer added
    assert host["PidsLimit"] == 64 and no_new_privileges == "1"
    # A larger Memory takes Berth's MemorySwap with it (the engine picks its own, twice the
    # memory), a CFS quota its NanoCpus.
    assert (host["Memory"], host["NanoCpus"], host["CpuQuota"]) == (3 << 30, 0, 50000)
    assert host["MemorySwap"] in (0, -1, 2 * (3 << 30))

def test_fork_bomb_stays_in_its_container(start_berth, example_webhook):
    """The default PidsLimit holds a fork bomb inside its container: it reaches the limit, and
    meanwhile another login starts and runs. (The test's own CPU cap only keeps a 2-core CI
    machine usable; the process limit under test is Berth's default.)"""
    berth = start(start_berth, example_webhook, image=BUSYBOX, host={"NanoCpus": 500_000_000})
    args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "alice@127.0.0.1", "b() { b | b & }; b; sleep 600"]
    bomb = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(berth_containers()) == 1, timeout=60)
        full_id = docker("inspect", "-f", "{{.Id}}", berth_containers()[0]).stdout.strip()

        def pids():
            # From the host: inside, at the limit, not even `docker exec` can start a process.
            for pattern in (f"/sys/fs/cgroup/pids/docker/{full_id}/pids.current", f"/sys/fs/cgroup/pids/**/{full_id}*/pids.current",
                            f"/sys/fs/cgroup/**/*{full_id}*/pids.current"):
                for path in glob.glob(pattern, recursive=True):
                    return int(open(path).read())
            return 0

        assert wait_until(lambda: pids() >= 4000, timeout=120), pids()
        other = berth.ssh("alice", "echo still serving", password="pw", timeout=120)
        assert other.returncode == 0 and other.stdout == b"still serving\n", other.stderr
    finally:
        bomb.kill()
        bomb.wait()
    assert wait_until(lambda: not berth_containers(), timeout=120)


def test_webhook_environment_reaches_programs_but_not_the_container_spec(start_berth, example_webhook):
    """The webhook's environment and exposed metadata travel over the agent link only: the
    container's spec (what `docker inspect` and anyone with engine access see) holds neither."""
    users = [{"username": "alice", "password": "pw", "environment": {"PLAIN_VAR": "plain-4711", "SECRET_VAR": "secret-4712"},
              "metadata": {"token": "secret-meta-4713"}, "sensitive": ["SECRET_VAR", "token"]}]
    berth = start(start_berth, example_webhook, users=users, exposeAuthMetadataAsEnv=True)
    client = paramiko_client(berth)
    try:
        _, stdout, _ = client.exec_command("echo $PLAIN_VAR $SECRET_VAR $token")
        assert stdout.read() == b"plain-4711 secret-4712 secret-meta-4713\n"
        spec = docker("inspect", berth_containers()[0]).stdout
        for value in ("plain-4711", "secret-4712", "secret-meta-4713"):
            assert value not in spec
    finally:
        client.close()
