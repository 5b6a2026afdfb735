"""The Kubernetes backend end to end (docs/configuration.md, "kubernetes"): Berth against the test API server
(kube_apiserver.py), whose pods are real Docker containers. The same scenarios as the Docker
tests: shell, exec, pty, resize, signals, exit codes, SFTP, forwarding, clean-up."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import paramiko
import pytest

from session_scenarios import pty_size_then_window_change, sftp_put_and_get, signal_through_agent
from conftest import SSH_OPTS, free_port, make_key, webhook_auth, wait_until
from docker_helpers import BUSYBOX, GUEST
from kube_helpers import kube_containers, kube_volumes, start_kube_apiserver

USERS = [{"username": "alice", "password": "pw", "environment": {"FROM_WEBHOOK": "yes"},
          "files": {"/tmp/hello.txt": "file from the webhook"}}]
TOKEN = "berth-test-token"


@pytest.fixture
def kube(tmp_path):
    servers = []

    def start(**options):
        server = start_kube_apiserver(tmp_path, token=TOKEN, name=f"kube-apiserver-{len(servers)}", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.stop() == 0, server.output()[-3000:]
        assert kube_containers(server.instance) == [], "the API server left containers behind"
        assert kube_volumes(server.instance) == [], "the API server left volumes behind"


def kube_config(server, image=GUEST, connection=None, **pod):
    container = {"name": "shell", "image": image}
    block = {"metadata": {"namespace": "default", "generateName": "berth-"}, "spec": {"containers": [container]}, **pod}
    if image == BUSYBOX:
        block.setdefault("shellCommand", ["/bin/sh"])
    return {"backend": "kubernetes", "kubernetes": {
        "connection": connection or {"host": server.url, "bearerToken": TOKEN},
        "pod": block, "timeouts": {"podStart": "60s"}}}


def start(start_berth, example_webhook, server, users=USERS, name="berth", **config):
    url, _ = example_webhook(users)
    return start_berth({"auth": webhook_auth(url), **kube_config(server, **config)}, name=name)


def pods(server, selector="berth.connection-id"):
    """The pods the API server holds, as {name: pod}, read through its REST API."""
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/default/pods?labelSelector={selector}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return {item["metadata"]["name"]: item for item in json.load(answer)["items"]}


def paramiko_client(berth):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False,
                   allow_agent=False, timeout=30, banner_timeout=30, auth_timeout=60)
    return client


def test_output_exit_code_stderr_stdin_and_removal(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server)
    result = berth.ssh("alice", "echo out; echo err >&2; exit 42", password="pw")
    assert result.returncode == 42, result.stderr
    assert result.stdout == b"out\n" and result.stderr == b"err\n"
    piped = berth.ssh("alice", "cat; echo END", password="pw", stdin=b"abc")
    assert piped.returncode == 0 and piped.stdout == b"abcEND\n"
    assert wait_until(lambda: not pods(server)), "the connection's pod was not deleted"


def test_programs_run_as_the_login_user_in_the_pod(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server)
    result = berth.ssh("alice", "whoami; echo ~; id -u", password="pw")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"alice\n/home/alice\n1000\n"
    root = start(start_berth, example_webhook, server, name="root", loginUser={"mode": "container"})
    assert root.ssh("alice", "whoami", password="pw").stdout == b"root\n"


def test_labels_environment_files_and_env_requests(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server)
    client = paramiko_client(berth)
    try:
        assert wait_until(lambda: len(pods(server)) == 1)
        (pod,) = pods(server).values()
        labels = pod["metadata"]["labels"]
        assert labels["berth.username"] == "alice" and len(labels["berth.connection-id"]) == 32
        assert pod["metadata"]["annotations"]["berth.remote-ip"] == "127.0.0.1"
        channel = client.get_transport().open_session()
        channel.set_environment_variable("SENT", "by-client")
        channel.exec_command("echo $FROM_WEBHOOK $SENT; cat /tmp/hello.txt; echo; stat -c %a /tmp/hello.txt")
        output = channel.makefile().read()
        assert channel.recv_exit_status() == 0
        assert output == b"yes by-client\nfile from the webhook\n600\n"
    finally:
        client.close()


def test_ten_mebibytes_both_ways(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX)
    data = os.urandom(10 * 1024 * 1024)
    echoed = berth.ssh("alice", "cat", password="pw", stdin=data, timeout=180)
    assert echoed.returncode == 0, echoed.stderr
    assert hashlib.sha256(echoed.stdout).hexdigest() == hashlib.sha256(data).hexdigest()


def test_pty_size_and_window_change(start_berth, example_webhook, kube):
    berth = start(start_berth, example_webhook, kube())
    client = paramiko_client(berth)
    try:
        assert pty_size_then_window_change(client) == (["97", "31", "120", "40"], 0)
    finally:
        client.close()


def test_interactive_shell_with_a_terminal(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server)
    client = paramiko_client(berth)
    try:
        channel = client.invoke_shell(term="xterm", width=80, height=24)
        channel.settimeout(60)
        channel.send(b"echo $((6*7)) $TERM; exit 3\n")
        output = b""
        while True:
            chunk = channel.recv(4096)
            if not chunk:
                break
            output += chunk
        assert b"42 xterm" in output
        assert channel.recv_exit_status() == 3
    finally:
        client.close()


def test_signal_reaches_the_program_through_the_agent(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server)
    status, stdout = signal_through_agent(berth.port)
    assert status == 0
    assert stdout == "got-USR1"  # wait-signal adds no newline (ContainerSSH compatible)


def test_sftp_put_and_get(tmp_path, start_berth, example_webhook, kube):
    server = kube()
    key, pub = make_key(tmp_path, "ed25519")
    berth = start(start_berth, example_webhook, server, users=[{"username": "alice", "authorizedKeys": [pub]}])
    result, uploaded, downloaded = sftp_put_and_get(tmp_path, berth.port, key, 3 * 1024 * 1024 + 17)
    assert result.returncode == 0, result.stderr
    assert downloaded == uploaded


def test_session_mode_gives_each_session_its_own_pod(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, mode="session")
    first = berth.ssh("alice", "hostname; echo $FROM_WEBHOOK; cat /tmp/hello.txt; exit 7", password="pw", timeout=120)
    assert first.returncode == 7, first.stderr
    host, env, file = first.stdout.decode().splitlines()
    assert env == "yes" and file == "file from the webhook"
    second = berth.ssh("alice", "hostname", password="pw", timeout=120)
    assert second.returncode == 0 and second.stdout.decode().strip() != host
    assert wait_until(lambda: not pods(server)), "session pods were not deleted"


def test_persistent_mode_gives_each_user_a_pod_that_outlives_connections(start_berth, example_webhook, kube):
    server = kube()
    users = [{"username": name, "password": "pw"} for name in ("alice", "Alice", "bob")]
    berth = start(start_berth, example_webhook, server, users=users, image=BUSYBOX, mode="persistent")
    first = berth.ssh("alice", "echo alice-was-here > /tmp/state; hostname", password="pw", timeout=120)
    assert first.returncode == 0, first.stderr
    again = berth.ssh("alice", "cat /tmp/state; hostname", password="pw", timeout=120)
    assert again.stdout.decode().splitlines() == ["alice-was-here", first.stdout.decode().strip()], again.stderr
    # Another user, also one whose name reads the same in a pod name, never sees alice's pod.
    for other in ("bob", "Alice"):
        theirs = berth.ssh(other, "cat /tmp/state 2>/dev/null || echo clean; hostname", password="pw", timeout=120)
        assert theirs.returncode == 0, theirs.stderr
        assert theirs.stdout.decode().splitlines()[0] == "clean"
        assert theirs.stdout.decode().splitlines()[1] != first.stdout.decode().strip()
    persistent = pods(server, selector="berth.persistent")
    assert len(persistent) == 3
    assert sorted(pod["metadata"]["labels"]["berth.username"] for pod in persistent.values()) == ["Alice", "alice", "bob"]
    berth.process.stop()
    assert len(pods(server, selector="berth.persistent")) == 3, "the users' pods must survive"


def test_persistent_mode_concurrent_first_logins_of_one_user_share_one_pod(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX, mode="persistent")
    logins = [subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                                "alice@127.0.0.1", "hostname"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    results = [login.communicate(timeout=180) for login in logins]
    assert all(login.returncode == 0 for login in logins), [err for _, err in results]
    assert len({out for out, _ in results}) == 1
    assert len(pods(server, selector="berth.persistent")) == 1


def test_persistent_shared_mode_shares_one_pod_that_outlives_connections(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, mode="persistent", persistentShared=True, createMissingPods=True,
                  metadata={"namespace": "default", "name": "shared-box"})
    first = berth.ssh("alice", "echo kept > /tmp/state; hostname", password="pw", timeout=120)
    assert first.returncode == 0, first.stderr
    second = berth.ssh("alice", "cat /tmp/state; hostname", password="pw", timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.decode().splitlines() == ["kept", first.stdout.decode().strip()]
    berth.process.stop()
    assert "shared-box" in pods(server, selector="berth.persistent"), "the persistent pod must survive"


def test_persistent_mode_without_the_pod_refuses_clearly(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, mode="persistent", persistentShared=True,
                  metadata={"namespace": "default", "name": "absent"})
    result = berth.ssh("alice", "true", password="pw", timeout=120)
    assert result.returncode != 0
    # The user gets the code and the connection to quote; the reason is in the log only.
    assert b"KUBERNETES_POD_NOT_FOUND" in result.stderr and b"absent" not in result.stderr
    assert "KUBERNETES_POD_NOT_FOUND" in berth.process.output() and "createMissingPods" in berth.process.output()


def test_v4_only_api_server_still_gives_exit_codes_and_output(start_berth, example_webhook, kube):
    server = kube(protocols=["v4.channel.k8s.io"])
    berth = start(start_berth, example_webhook, server, image=BUSYBOX)
    result = berth.ssh("alice", "echo v4; exit 5", password="pw")
    assert result.returncode == 5 and result.stdout == b"v4\n", result.stderr


def test_kubeconfig_with_tls_and_client_certificate(tmp_path, start_berth, example_webhook, kube):
    server = kube(tls=True)
    kubeconfig = server.kubeconfig(tmp_path / "kubeconfig.yaml", client_cert=True)
    # No token: the client certificate is what authenticates.
    config = json.loads((tmp_path / "kubeconfig.yaml").read_text())
    config["users"][0]["user"].pop("token")
    (tmp_path / "kubeconfig.yaml").write_text(json.dumps(config))
    berth = start(start_berth, example_webhook, server, image=BUSYBOX, connection={"kubeconfig": kubeconfig})
    result = berth.ssh("alice", "echo over-tls", password="pw")
    assert result.returncode == 0 and result.stdout == b"over-tls\n", result.stderr


def test_server_name_is_the_name_tls_checks(start_berth, example_webhook, kube):
    # The certificate names only api.kube.test; Berth dials 127.0.0.1.
    server = kube(tls="DNS:api.kube.test")
    connection = {"host": server.url, "bearerToken": TOKEN, "cacert": server.tls.ca_cert}
    named = start(start_berth, example_webhook, server, image=BUSYBOX, name="named",
                  connection={**connection, "serverName": "api.kube.test"})
    result = named.ssh("alice", "echo by-name", password="pw")
    assert result.returncode == 0 and result.stdout == b"by-name\n", result.stderr
    named.process.stop()
    unnamed = start(start_berth, example_webhook, server, image=BUSYBOX, name="unnamed", connection=connection)
    result = unnamed.ssh("alice", "echo by-address", password="pw")
    assert result.returncode != 0 and b"by-address" not in result.stdout
    assert any(line.get("code") == "KUBERNETES_API_UNREACHABLE" and "hostname" in line.get("message", "").lower()
               for line in unnamed.process.log_lines()), unnamed.process.output()[-3000:]


def test_wrong_token_gives_a_one_line_error_and_no_pod(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, connection={"host": server.url, "bearerToken": "wrong"})
    result = berth.ssh("alice", "true", password="pw")
    assert result.returncode != 0
    assert b"cannot start your pod" in result.stderr and b"KUBERNETES_API_ERROR" in result.stderr
    # The API server's own text stays in the log, with the connection ID the user was given.
    assert b"401" not in result.stderr and b"Unauthorized" not in result.stderr
    connection = result.stderr.split(b"connection ")[1][:32].decode()
    assert any(line.get("code") == "KUBERNETES_API_ERROR" and line.get("connectionId") == connection and "401" in line.get("message", "")
               for line in berth.process.log_lines())
    assert not pods(server)


def test_local_forward_to_a_server_in_the_pod(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX)
    berth_config = json.loads(berth.config_path.read_text())
    berth.process.stop()
    berth_config["security"] = {"forwarding": {"forwardingMode": "enable"}}
    berth_config["ssh"].pop("listen")
    berth = start_berth(berth_config, name="berth-forwarding")
    local = free_port()
    tunnel = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "-L", f"127.0.0.1:{local}:127.0.0.1:8080", "alice@127.0.0.1",
                               "mkdir -p /tmp/www && echo served-from-the-pod > /tmp/www/index.html && httpd -f -p 127.0.0.1:8080 -h /tmp/www"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=5) as answer:
                    return answer.read()
            except OSError:
                return None
        assert wait_until(lambda: fetch() == b"served-from-the-pod\n", timeout=60)
    finally:
        tunnel.send_signal(signal.SIGKILL)
        tunnel.wait()
    assert wait_until(lambda: not pods(server), timeout=60), "a killed client with a forward left its pod"


def test_killed_server_leaves_an_orphan_that_the_next_start_removes(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX)
    client = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "sleep 600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(pods(server)) == 1, timeout=60)
        berth.process.proc.send_signal(signal.SIGKILL)
        berth.process.proc.wait()
        assert len(pods(server)) == 1
        restarted = start_berth(json.loads(berth.config_path.read_text()), name="berth-restarted")
        assert wait_until(lambda: not pods(server), timeout=60), "the orphan pod was not removed at start-up"
        assert "KUBERNETES_ORPHAN_REMOVED" in restarted.process.output()
    finally:
        client.kill()
        client.wait()


def test_sigterm_ends_running_programs_and_removes_pods(start_berth, example_webhook, kube):
    server = kube()
    url, _ = example_webhook(USERS)
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"shutdownTimeout": "8s"}, **kube_config(server, image=BUSYBOX)})
    client = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "trap 'echo got-TERM; exit 0' TERM; echo ready; while true; do sleep 1; done"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: len(pods(server)) == 1, timeout=60)
    # The trap is set once the program says so.
    assert client.stdout.readline() == b"ready\n"
    berth.process.proc.send_signal(signal.SIGTERM)
    out, _ = client.communicate(timeout=60)
    assert berth.process.proc.wait(timeout=60) == 0
    assert b"got-TERM" in out
    assert not pods(server)


def test_metadata_as_env_labels_and_annotations(start_berth, example_webhook, kube):
    server = kube()
    users = [{"username": "alice", "password": "pw", "metadata": {"team": "research lab"}}]
    berth = start(start_berth, example_webhook, server, users=users, image=BUSYBOX, exposeAuthMetadataAsEnv=True,
                  exposeAuthMetadataAsLabels=True, exposeAuthMetadataAsAnnotations=True)
    client = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "echo $team; sleep 600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert client.stdout.readline() == b"research lab\n"
        (pod,) = pods(server).values()
        assert pod["metadata"]["labels"]["team"] == "research-lab"
        assert pod["metadata"]["annotations"]["team"] == "research lab"
    finally:
        client.kill()
        client.wait()


def test_config_webhook_moves_one_user_to_kubernetes(start_berth, example_webhook, kube):
    server = kube()
    users = [{"username": "alice", "password": "pw", "config": kube_config(server, image=BUSYBOX)},
             {"username": "bob", "password": "pw"}]
    url, _ = example_webhook(users)
    # Another backend on another API server with a token: the operator allows each of those.
    configserver = {"url": f"{url}/config", "allow": ["backend", "engineEndpoint", "credentials"]}
    berth = start_berth({"auth": webhook_auth(url), "configserver": configserver, "backend": "echo"})
    result = berth.ssh("alice", "echo in-a-pod; exit 4", password="pw")
    assert result.returncode == 4 and result.stdout == b"in-a-pod\n", result.stderr
    assert berth.ssh("bob", "whoami", password="pw").stdout == b"bob\n"
    assert wait_until(lambda: not pods(server))


def test_session_mode_without_the_agent(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX, mode="session", disableAgent=True)
    # Without the agent nothing holds the program until the attach, so it waits for input
    # (as a shell does) to keep its output.
    result = berth.ssh("alice", "/bin/sh -c 'read go; echo $FROM_WEBHOOK $go; test -e /tmp/hello.txt || echo no-files; exit 3'",
                       password="pw", stdin=b"now\n", timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"yes now\nno-files\n"
    assert "KUBERNETES_AGENT_DISABLED" in berth.process.output()
    assert wait_until(lambda: not pods(server))


def test_missing_image_is_refused_at_once_with_the_reason(start_berth, example_webhook, kube):
    server = kube()
    url, _ = example_webhook(USERS)
    config = kube_config(server, image="berth-no-such-image:latest")
    config["kubernetes"]["pod"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    config["kubernetes"]["timeouts"]["podStart"] = "600s"
    berth = start_berth({"auth": webhook_auth(url), **config})
    started = time.time()
    result = berth.ssh("alice", "true", password="pw", timeout=300)
    assert result.returncode != 0
    assert b"KUBERNETES_POD_START_FAILED" in result.stderr and b"ErrImageNeverPull" not in result.stderr, result.stderr
    assert "ErrImageNeverPull" in berth.process.output()
    assert time.time() - started < 300, "Berth waited for podStart (600s) instead of reading the pod status"
    assert "KUBERNETES_POD_START_FAILED" in berth.process.output()
    assert wait_until(lambda: not pods(server))


def test_pods_are_hardened_by_default(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, image=BUSYBOX)
    # NoNewPrivs 1, and the bounding set without NET_RAW (bit 13) and MKNOD (bit 27).
    result = berth.ssh("alice", "grep -E '^(NoNewPrivs|CapBnd)' /proc/self/status", password="pw")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":\t") for line in result.stdout.decode().splitlines() if ":\t" in line)
    assert lines["NoNewPrivs"] == "1"
    bounding = int(lines["CapBnd"], 16)
    assert bounding & (1 << 13) == 0 and bounding & (1 << 27) == 0 and bounding & (1 << 0) != 0
    # The pod object as the API server keeps it (of a new connection, once the first one's pod is gone).
    assert wait_until(lambda: not pods(server))
    client = paramiko_client(berth)
    try:
        assert wait_until(lambda: len(pods(server)) == 1)
        (pod,) = pods(server).values()
        assert pod["spec"]["automountServiceAccountToken"] is False
        (container,) = pod["spec"]["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert "NET_RAW" not in container["securityContext"]["capabilities"]["add"]
        assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    finally:
        client.close()


def test_operator_pod_spec_values_replace_the_hardening(start_berth, example_webhook, kube):
    server = kube()
    url, _ = example_webhook(USERS)
    config = kube_config(server, image=BUSYBOX)
    config["kubernetes"]["pod"]["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["NET_RAW"]}}
    berth = start_berth({"auth": webhook_auth(url), **config})
    result = berth.ssh("alice", "grep ^CapBnd /proc/self/status", password="pw")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.decode().split()[1], 16) & (1 << 13), "the operator's capabilities must replace Berth's"


def test_environment_never_travels_in_urls_or_pod_objects(start_berth, example_webhook, kube):
    server = kube()
    users = [{"username": "alice", "password": "pw", "environment": {"PLAIN_VAR": "plain-env-4711", "SECRET_VAR": "secret-env-4712"},
              "metadata": {"token": "secret-meta-4713", "team": "team-meta-4714"}, "sensitive": ["SECRET_VAR", "token"]}]
    seen = []
    for mode in ("connection", "session", "persistent"):
        berth = start(start_berth, example_webhook, server, users=users, image=BUSYBOX, mode=mode, exposeAuthMetadataAsEnv=True,
                      exposeAuthMetadataAsLabels=True, exposeAuthMetadataAsAnnotations=True, name=f"berth-{mode}")
        client = paramiko_client(berth)
        try:
            channel = client.get_transport().open_session()
            channel.set_environment_variable("CLIENT_VAR", "client-env-4715")
            channel.exec_command("echo $PLAIN_VAR $SECRET_VAR $token $team $CLIENT_VAR; sleep 600")
            line = channel.makefile("rb").readline()
            # The programs get everything, sensitive entries too (over the agent link).
            assert line == b"plain-env-4711 secret-env-4712 secret-meta-4713 team-meta-4714 client-env-4715\n", (mode, line)
            seen += [json.dumps(pod) for pod in pods(server, selector="").values()]
        finally:
            client.close()
        berth.process.stop()
    # The test API server's access log has every request line, URL and query included.
    assert wait_until(lambda: "stream request /api/v1/namespaces/default/pods/" in server.output() and "/exec?" in server.output()), \
        "the API server's log must show the exec request URLs"
    urls = server.output()
    for value in ("plain-env-4711", "secret-env-4712", "secret-meta-4713", "client-env-4715"):
        assert value not in urls, f"{value} travelled in a URL"
        assert not any(value in pod for pod in seen), f"{value} is in a pod object"


def test_persistent_user_pods_are_deleted_when_idle_and_when_too_old(start_berth, example_webhook, kube):
    server = kube()
    users = [{"username": name, "password": "pw"} for name in ("alice", "bob")]
    url, _ = example_webhook(users)
    config = {"auth": webhook_auth(url), **kube_config(server, image=BUSYBOX, mode="persistent"), "persistence": {"idleTimeout": "3s"}}
    berth = start_berth(config)

    def user_pods(user):
        return [name for name, pod in pods(server, selector="berth.persistent").items() if pod["metadata"]["labels"].get("berth.username") == user]

    holder = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "sleep 600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(user_pods("alice")) == 1, timeout=120)
        assert berth.ssh("bob", "true", password="pw", timeout=120).returncode == 0
        assert len(user_pods("bob")) == 1
        # Bob's pod, unused, is deleted after idleTimeout; Alice's, in use all along, stays.
        assert wait_until(lambda: not user_pods("bob"), timeout=120)
        assert len(user_pods("alice")) == 1
    finally:
        holder.kill()
        holder.communicate()
    assert wait_until(lambda: not user_pods("alice"), timeout=120)
    assert "KUBERNETES_PERSISTENT_REMOVED" in berth.process.output()

    # maxLifetime: a pod in use is deleted once it is older than that.
    berth.process.stop()
    config["persistence"] = {"idleTimeout": "0s", "maxLifetime": "6s"}
    again = start_berth(config, name="again")
    holder = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(again.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "sleep 600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(user_pods("alice")) == 1, timeout=120)
        assert wait_until(lambda: holder.poll() is not None, timeout=120)
        assert wait_until(lambda: not user_pods("alice"), timeout=120)
        assert "maxLifetime" in again.process.output()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()


# --- the pod-IP link (Berth in the cluster; docs/agent-protocol.md, "Links") -------------------

def link_events(berth):
    return [(line.get("code"), line.get("details", {}).get("link")) for line in berth.process.log_lines()
            if line.get("code") in ("AGENT_LINK_UP", "AGENT_POD_IP_FAILED")]


def exec_requests(server):
    return [line for line in server.output().splitlines() if "stream request" in line and "/exec?" in line]


def test_pod_ip_link_carries_sessions_without_an_exec_and_closes_the_agents_port(start_berth, example_webhook, kube):
    server = kube()
    berth = start(start_berth, example_webhook, server, agentLink="podIP")
    client = paramiko_client(berth)
    try:
        channel = client.get_transport().open_session()
        channel.exec_command("echo $FROM_WEBHOOK; cat /tmp/hello.txt; sleep 600")
        assert channel.makefile("rb").readline() == b"yes\n"
        (name, pod), = pods(server).items()
        console = pod["spec"]["containers"][0]
        # The agent is the pod's main process, listening on the pod's IP; Berth proved itself
        # with the pod's secret, and the port closed behind it.
        assert console["command"][1:4] == ["serve", "--listen", ":7322"], console["command"]
        address = pod["status"]["podIP"]
        assert link_events(berth) == [("AGENT_LINK_UP", "tcp")]
        def port_open():
            try:
                socket.create_connection((address, 7322), timeout=5).close()
                return True
            except OSError:
                return False
        assert wait_until(lambda: not port_open()), "the agent's port stayed open after Berth linked"
        result = berth.ssh("alice", "echo out; echo err >&2; cat; exit 42", password="pw", stdin=b"in")
        assert (result.returncode, result.stdout, result.stderr) == (42, b"out\nin", b"err\n")
    finally:
        client.close()
    assert exec_requests(server) == [], "a session went through an exec although the pod-IP link was up"
    assert wait_until(lambda: not pods(server)), "the pods were not deleted"

    session_mode = start(start_berth, example_webhook, server, agentLink="podIP", mode="session", name="berth-session")
    for code in (3, 4):
        result = session_mode.ssh("alice", f"hostname; exit {code}", password="pw", timeout=120)
        assert result.returncode == code, result.stderr
    assert [kind for _, kind in link_events(session_mode)] == ["tcp", "tcp"]
    assert exec_requests(server) == []
    assert wait_until(lambda: not pods(server)), "session pods were not deleted"


def test_pod_ip_link_falls_back_to_exec_when_the_pod_has_no_ip(start_berth, example_webhook, kube):
    server = kube(pod_ip=False)
    berth = start(start_berth, example_webhook, server, agentLink="podIP")
    result = berth.ssh("alice", "echo through the exec; exit 9", password="pw")
    assert (result.returncode, result.stdout) == (9, b"through the exec\n"), result.stderr
    assert link_events(berth) == [("AGENT_POD_IP_FAILED", None), ("AGENT_LINK_UP", "exec")]
    failed = [line for line in berth.process.log_lines() if line.get("code") == "AGENT_POD_IP_FAILED"]
    assert "KUBERNETES_NO_POD_IP" in failed[0]["message"]
    assert wait_until(lambda: not pods(server))


def test_auto_is_the_pod_ip_link_inside_the_cluster_only_and_exec_is_always_exec(start_berth, example_webhook, kube):
    server = kube()
    url, _ = example_webhook(USERS)
    # KUBERNETES_SERVICE_HOST is what tells Berth it runs in the cluster.
    for choice, cluster, expected in (("auto", "", "exec"), ("auto", "127.0.0.1", "tcp"), ("exec", "127.0.0.1", "exec")):
        berth = start_berth({"auth": webhook_auth(url), **kube_config(server, agentLink=choice)}, name=f"berth-{choice}-{bool(cluster)}",
                            env_extra={"KUBERNETES_SERVICE_HOST": cluster})
        assert berth.ssh("alice", "true", password="pw").returncode == 0
        assert link_events(berth) == [("AGENT_LINK_UP", expected)], (choice, cluster)
        berth.process.stop()
    assert wait_until(lambda: not pods(server))
