"""What Berth asks the Kubernetes API server for, without Docker: the test API server runs
without an engine (pods are kept but never get their image), so these tests look at the pod
objects Berth creates and at what the user is told when the pod cannot start."""
import json
import subprocess
import urllib.request

import pytest

from conftest import SSH_OPTS, wait_until, webhook_auth
from kube_helpers import start_kube_apiserver, kube_api

TOKEN = "berth-test-token"


def api(server, method, path, body=None):
    return kube_api(server, method, path, body, token=TOKEN)


@pytest.fixture
def kube(tmp_path):
    server = start_kube_apiserver(tmp_path, token=TOKEN, engine=False)
    yield server
    assert server.stop() == 0, server.output()[-3000:]


def start(start_berth, example_webhook, server, users, pull="Never", name="berth", **pod):
    """pull: the image pull policy; with Never the pod fails at once (ErrImageNeverPull), with
    IfNotPresent it waits for its image (ErrImagePull) and Berth with it, so it can be looked at."""
    url, _ = example_webhook(users)
    block = {"metadata": {"namespace": "default", "generateName": "berth-"},
             "spec": {"containers": [{"name": "shell", "image": "berth-absent:1", "imagePullPolicy": pull}]}, **pod}
    return start_berth({"auth": webhook_auth(url), "backend": "kubernetes", "kubernetes": {
        "connection": {"host": server.url, "bearerToken": TOKEN}, "pod": block, "timeouts": {"podStart": "60s"}}}, name=name)


def pods(server):
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/default/pods", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return {item["metadata"]["name"]: item for item in json.load(answer)["items"]}


def logins(berth, *users):
    """Logs all of them in at once; returns their stderr."""
    clients = [subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                                 f"{user}@127.0.0.1", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for user in users]
    return [client.communicate(timeout=120)[1] for client in clients]


def waiting_pod(berth, server):
    """Logs alice in and returns the pod Berth made for her while it waits for its image."""
    client = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "alice@127.0.0.1", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (pod,) = wait_until(lambda: pods(server), what="alice's pod").values()
    finally:
        client.kill()
        client.wait()
    # Deleting it ends Berth's wait for it (KUBERNETES_POD_GONE) instead of podStart.
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/default/pods/{pod['metadata']['name']}", method="DELETE",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(request, timeout=10).close()
    wait_until(lambda: "KUBERNETES_POD_GONE" in berth.process.output(), what="Berth to see the pod gone")
    # Waiting is watching: one request per change of the pod, not polling.
    assert server.output().count("watch=true") < 5
    return pod


def test_persistent_mode_makes_one_pod_per_user_also_for_concurrent_first_logins(kube, start_berth, example_webhook):
    users = [{"username": name, "password": "pw"} for name in ("alice", "Alice", "a.lice")]
    berth = start(start_berth, example_webhook, kube, users, mode="persistent")
    logins(berth, "alice", "alice", "alice", "alice", "Alice", "a.lice")
    made = pods(kube)
    assert len(made) == 3, sorted(made)
    by_user = {pod["metadata"]["labels"]["berth.username"]: name for name, pod in made.items()}
    assert sorted(by_user) == ["Alice", "a.lice", "alice"]
    assert by_user["alice"].startswith("berth-alice-") and by_user["Alice"].startswith("berth-alice-")
    assert all(pod["metadata"]["labels"]["berth.persistent"] == "true" for pod in made.values())
    # Nobody removes a user's pod: it outlives the connections and Berth.
    berth.process.stop()
    assert len(pods(kube)) == 3


def test_pods_are_hardened_and_the_operators_keys_win(kube, start_berth, example_webhook):
    users = [{"username": "alice", "password": "pw"}]
    spec = {"containers": [
        {"name": "shell", "image": "berth-absent:1"},
        {"name": "helper", "image": "berth-absent:1", "securityContext": {"capabilities": {"add": ["NET_RAW"]}},
         "resources": {"limits": {"memory": "8Gi"}}}]}
    pod = waiting_pod(start(start_berth, example_webhook, kube, users, spec=spec), kube)
    assert pod["spec"]["automountServiceAccountToken"] is False
    shell, helper = pod["spec"]["containers"]
    assert shell["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
                                                  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert shell["resources"] == {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert helper["securityContext"]["capabilities"] == {"add": ["NET_RAW"]}
    assert helper["securityContext"]["allowPrivilegeEscalation"] is False
    assert helper["resources"] == {"limits": {"memory": "8Gi"}}


def test_environment_and_sensitive_metadata_stay_out_of_pod_objects(kube, start_berth, example_webhook):
    users = [{"username": "alice", "password": "pw", "environment": {"PLAIN_VAR": "plain-env-4711", "SECRET_VAR": "secret-env-4712"},
              "metadata": {"token": "secret-meta-4713", "team": "team-meta-4714"}, "sensitive": ["SECRET_VAR", "token"]}]
    berth = start(start_berth, example_webhook, kube, users, pull="IfNotPresent", exposeAuthMetadataAsEnv=True,
                  exposeAuthMetadataAsLabels=True, exposeAuthMetadataAsAnnotations=True)
    pod = waiting_pod(berth, kube)
    text = json.dumps(pod)
    for value in ("plain-env-4711", "secret-env-4712", "secret-meta-4713"):
        assert value not in text, f"{value} is in the pod object"
    assert pod["metadata"]["annotations"]["team"] == "team-meta-4714" and "token" not in pod["metadata"]["annotations"]
    assert all(value not in kube.output() for value in ("plain-env-4711", "secret-env-4712", "secret-meta-4713"))


def test_a_pod_that_cannot_start_shows_the_code_and_connection_not_the_api_servers_text(kube, start_berth, example_webhook):
    berth = start(start_berth, example_webhook, kube, [{"username": "alice", "password": "pw"}])
    (stderr,) = logins(berth, "alice")
    assert b"cannot start your pod" in stderr and b"KUBERNETES_POD_START_FAILED" in stderr, stderr
    assert b"ErrImageNeverPull" not in stderr and b"berth-absent" not in stderr and b"default/" not in stderr
    connection = stderr.split(b"connection ")[1][:32].decode()
    assert any(line.get("code") == "KUBERNETES_POD_START_FAILED" and line.get("connectionId") == connection
               and "ErrImageNeverPull" in line.get("message", "") for line in berth.process.log_lines())


def create_pod(server, name, namespace="default"):
    body = {"metadata": {"name": name}, "spec": {"containers": [{"name": "berth", "image": "berth-absent:1", "imagePullPolicy": "Never"}]}}
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/{namespace}/pods", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def start_as_pod(start_berth, example_webhook, server, namespace="default", **pod):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    block = {"metadata": {"namespace": "default", "generateName": "berth-"},
             "spec": {"containers": [{"name": "shell", "image": "berth-absent:1", "imagePullPolicy": "IfNotPresent"}]}, **pod}
    return start_berth({"auth": webhook_auth(url), "backend": "kubernetes", "kubernetes": {
        "connection": {"host": server.url, "bearerToken": TOKEN}, "pod": block, "timeouts": {"podStart": "60s"}}},
        env_extra={"BERTH_POD_NAME": "berth-server-0", "BERTH_POD_NAMESPACE": namespace})


def pending_login(berth):
    return subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                             "alice@127.0.0.1", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_user_pods_are_owned_by_berths_pod_and_go_with_it(kube, start_berth, example_webhook):
    server_pod = create_pod(kube, "berth-server-0")
    berth = start_as_pod(start_berth, example_webhook, kube)
    wait_until(lambda: "KUBERNETES_OWNER_SET" in berth.process.output(), what="Berth to find its own pod")
    client = pending_login(berth)
    try:
        user_pod = wait_until(lambda: [p for name, p in pods(kube).items() if name != "berth-server-0"], what="alice's pod")[0]
    finally:
        client.kill()
        client.wait()
    assert user_pod["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "berth-server-0",
                                                       "uid": server_pod["metadata"]["uid"], "controller": False, "blockOwnerDeletion": False}]
    # Berth dies without cleaning up; the platform removes what its pod owned.
    berth.process.proc.kill()
    berth.process.proc.wait()
    request = urllib.request.Request(f"{kube.url}/api/v1/namespaces/default/pods/berth-server-0", method="DELETE",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(request, timeout=10).close()
    wait_until(lambda: pods(kube) == {}, what="the garbage collector to remove alice's pod")


@pytest.mark.parametrize("case", ["other-namespace", "persistent"])
def test_no_owner_where_it_would_be_wrong(kube, start_berth, example_webhook, case):
    create_pod(kube, "berth-server-0")
    if case == "persistent":
        berth = start_as_pod(start_berth, example_webhook, kube, mode="persistent")
    else:
        berth = start_as_pod(start_berth, example_webhook, kube, namespace="berth-system")
        wait_until(lambda: "KUBERNETES_OWNER_NOT_SET" in berth.process.output(), what="Berth to say why user pods have no owner")
    client = pending_login(berth)
    try:
        user_pod = wait_until(lambda: [p for name, p in pods(kube).items() if name != "berth-server-0"], what="alice's pod")[0]
    finally:
        client.kill()
        client.wait()
    assert "ownerReferences" not in user_pod["metadata"]


LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def test_a_dead_servers_pods_go_once_its_lease_expires_and_a_live_ones_stay(kube, start_berth, example_webhook):
    first = start(start_berth, example_webhook, kube, [{"username": "alice", "password": "pw"}], pull="IfNotPresent", name="first")
    wait_until(lambda: "KUBERNETES_LEASE_HELD" in first.process.output(), what="the first server to hold its lease")
    (lease,) = api(kube, "GET", LEASES)["items"]
    assert lease["spec"]["leaseDurationSeconds"] == 60 and lease["spec"]["holderIdentity"].endswith(f"127.0.0.1:{first.port}")
    client = pending_login(first)
    try:
        (pod,) = wait_until(lambda: pods(kube), what="alice's pod").values()
    finally:
        client.kill()
        client.wait()
    assert pod["metadata"]["labels"]["berth.lease"] == lease["metadata"]["name"]
    # A second server while the first lives: the first one's pod is not its business.
    second = start(start_berth, example_webhook, kube, [{"username": "alice", "password": "pw"}], pull="IfNotPresent", name="second")
    wait_until(lambda: "KUBERNETES_LEASES_CHECKED" in second.process.output(), what="the second server to check the leases")
    assert list(pods(kube)) == [pod["metadata"]["name"]]
    # The first server dies without cleaning up, and its lease runs out (set back, as time would).
    first.process.proc.kill()
    first.process.proc.wait()
    stale = api(kube, "GET", f"{LEASES}/{lease['metadata']['name']}")
    stale["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    api(kube, "PUT", f"{LEASES}/{lease['metadata']['name']}", stale)
    third = start(start_berth, example_webhook, kube, [{"username": "alice", "password": "pw"}], pull="IfNotPresent", name="third")
    wait_until(lambda: pods(kube) == {}, what="the third server to remove the dead server's pod")
    assert "a server that is no longer running" in third.process.output()
    assert api(kube, "GET", f"{LEASES}/{lease['metadata']['name']}") is None
    # The live servers' leases are there; a graceful stop gives its lease back.
    held = {item["metadata"]["name"] for item in api(kube, "GET", LEASES)["items"]}
    assert len(held) == 2
    second.process.stop()
    assert len(api(kube, "GET", LEASES)["items"]) == 1
