"""Kubernetes persistent mode beyond one server's life (docs/configuration.md, "persistence";
docs/architecture.md, "Ownership and clean-up"): a PersistentVolumeClaim per user that outlives
the user's pods, and the persistent pods of a dead server, adopted by a live one. Berth runs
against the test API server (kube_apiserver.py), whose pods are Docker containers and whose
claims are Docker volumes."""
import re
import signal

import pytest

from conftest import wait_for_port, wait_until, webhook_auth
from docker_helpers import BUSYBOX, GUEST
from kube_helpers import kube_containers, kube_volumes, start_kube_apiserver, kube_api

TOKEN = "berth-test-token"


def api(server, method, path, body=None):
    return kube_api(server, method, path, body, token=TOKEN)


NS = "/api/v1/namespaces/default"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


@pytest.fixture
def kube(tmp_path, request):
    server = start_kube_apiserver(tmp_path, token=TOKEN, **getattr(request, "param", {}))
    yield server
    assert server.stop() == 0, server.output()[-3000:]
    assert kube_containers(server.instance) == [], "the API server left containers behind"
    assert kube_volumes(server.instance) == [], "the API server left volumes behind"


def user_pods(server):
    return {item["metadata"]["labels"]["berth.username"]: item
            for item in api(server, "GET", f"{NS}/pods?labelSelector=berth.persistent%3Dtrue")["items"]}


def claims(server):
    return {item["metadata"]["name"]: item for item in api(server, "GET", f"{NS}/persistentvolumeclaims")["items"]}


def start(start_berth, example_webhook, server, users, persistence, name="berth", image=BUSYBOX, **pod):
    url, _ = example_webhook([{"username": user, "password": "pw"} for user in users])
    block = {"metadata": {"namespace": "default", "generateName": "berth-"}, "spec": {"containers": [{"name": "shell", "image": image}]},
             "mode": "persistent", "shellCommand": ["/bin/sh"] if image == BUSYBOX else ["/bin/bash"], **pod}
    berth = start_berth({"auth": webhook_auth(url), "backend": "kubernetes", "persistence": persistence, "kubernetes": {
        "connection": {"host": server.url, "bearerToken": TOKEN}, "pod": block, "timeouts": {"podStart": "60s"}}}, name=name)
    # The port opens before the lease is taken; pods made before then carry no lease.
    wait_until(lambda: logged(berth, "KUBERNETES_LEASE_HELD"), what="the server to hold its lease")
    return berth


def logged(berth, code, **fields):
    return [line for line in berth.process.log_lines()
            if line.get("code") == code and all((line.get("details") or {}).get(key) == value for key, value in fields.items())]


def test_a_claim_per_user_keeps_the_home_across_pods_and_is_never_deleted(kube, start_berth, example_webhook):
    volume = {"enabled": True, "namePrefix": "berth-test-home", "size": "2Gi", "storageClass": "fast"}
    berth = start(start_berth, example_webhook, kube, ["frank", "grace"], {"idleTimeout": "2s", "volume": volume}, image=GUEST)
    first = berth.ssh("frank", "echo $HOME; echo saved > ~/notes; id -un", password="pw", timeout=120)
    assert first.returncode == 0, first.stderr
    home, account = first.stdout.decode().split()
    pod = user_pods(kube)["frank"]
    (claim,) = claims(kube).values()
    assert claim["metadata"]["name"].startswith("berth-test-home-frank-")
    assert claim["metadata"]["labels"] == {"berth.username": "frank", "berth.persistent": "true"}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["resources"] == {"requests": {"storage": "2Gi"}}
    assert claim["spec"]["storageClassName"] == "fast"
    assert pod["spec"]["volumes"] == [{"name": "berth-user-volume", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}]
    assert pod["spec"]["containers"][0]["volumeMounts"] == [{"name": "berth-user-volume", "mountPath": home}]

    # The pod goes after idleTimeout; the claim stays, and the next pod has the file.
    wait_until(lambda: "frank" not in user_pods(kube), timeout=120, what="frank's idle pod to be deleted")
    assert list(claims(kube)) == [claim["metadata"]["name"]]
    second = berth.ssh("frank", "cat ~/notes; stat -c %U ~", password="pw", timeout=120)
    assert second.stdout.decode().split() == ["saved", account], second.stderr
    assert user_pods(kube)["frank"]["metadata"]["uid"] != pod["metadata"]["uid"]

    # Another user has a claim of their own, and sees nothing of frank's.
    other = berth.ssh("grace", "cat ~/notes 2>/dev/null || echo clean", password="pw", timeout=120)
    assert other.stdout.decode().split() == ["clean"], other.stderr
    made = claims(kube)
    assert len(made) == 2 and {c["metadata"]["labels"]["berth.username"] for c in made.values()} == {"frank", "grace"}
    berth.process.stop()
    assert len(claims(kube)) == 2, "Berth never deletes a user's claim"


def lease_of(server, pod):
    return api(server, "GET", f"{LEASES}/{pod['metadata']['labels']['berth.lease']}")


def kill_and_expire(server, berth, lease):
    """SIGKILL, then the lease set back as if it had run out (time would do the same)."""
    berth.process.proc.send_signal(signal.SIGKILL)
    berth.process.proc.wait()
    stale = api(server, "GET", f"{LEASES}/{lease['metadata']['name']}")
    stale["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    api(server, "PUT", f"{LEASES}/{lease['metadata']['name']}", stale)


def test_a_dead_servers_pod_is_used_and_adopted_at_login_then_reaped_by_its_new_server(kube, start_berth, example_webhook):
    users = ["alice"]
    live = start(start_berth, example_webhook, kube, users, {"serverIdentity": "berth-test-b", "idleTimeout": "3s"}, name="b")
    doomed = start(start_berth, example_webhook, kube, users, {"serverIdentity": "berth-test-a", "idleTimeout": "10m"}, name="a")
    made = doomed.ssh("alice", "echo kept > /tmp/mark; hostname", password="pw", timeout=120)
    assert made.returncode == 0, made.stderr
    pod = user_pods(kube)["alice"]
    assert pod["metadata"]["labels"]["berth.server"] == "berth-test-a"
    lease = lease_of(kube, pod)
    assert lease["spec"]["holderIdentity"] == "berth-test-a"

    # While a lives, b uses its pod but leaves it to a: no relabelling, not under b's timers.
    shared = live.ssh("alice", "cat /tmp/mark", password="pw", timeout=120)
    assert shared.stdout == b"kept\n", shared.stderr
    wait_until(lambda: logged(live, "KUBERNETES_PERSISTENT_FOREIGN"), what="b to leave the live server's pod alone")
    assert user_pods(kube)["alice"]["metadata"]["labels"] == pod["metadata"]["labels"]

    kill_and_expire(kube, doomed, lease)
    again = live.ssh("alice", "cat /tmp/mark; hostname", password="pw", timeout=120)
    assert again.stdout.decode().split() == ["kept", made.stdout.decode().strip()], again.stderr
    adopted = user_pods(kube)["alice"]
    assert adopted["metadata"]["uid"] == pod["metadata"]["uid"], "the pod must be used, not recreated"
    assert adopted["metadata"]["labels"]["berth.server"] == "berth-test-b"
    own = api(kube, "GET", LEASES)["items"]
    assert adopted["metadata"]["labels"]["berth.lease"] in {item["metadata"]["name"] for item in own if item["spec"]["holderIdentity"] == "berth-test-b"}
    assert logged(live, "KUBERNETES_PERSISTENT_ADOPTED", pod=f"default/{pod['metadata']['name']}")
    # b's idle timer looks after it now.
    wait_until(lambda: "alice" not in user_pods(kube), timeout=120, what="b's idle timer to delete the adopted pod")
    assert logged(live, "KUBERNETES_PERSISTENT_REMOVED", reason="idleTimeout")


# The first two pod patches (both servers' takeover of alice's pod, read before either wrote it)
# wait for each other: the race is certain, not a matter of timing.
@pytest.mark.parametrize("kube", [{"hold_patches": 2}], indirect=True)
def test_servers_starting_together_adopt_each_dead_pod_exactly_once(kube, start_berth, example_webhook):
    users = ["alice", "bob", "carol", "dave"]
    doomed = start(start_berth, example_webhook, kube, users, {"serverIdentity": "berth-test-a", "idleTimeout": "10m"}, name="a")
    for user in users:
        result = doomed.ssh(user, f"echo {user} > /tmp/mark", password="pw", timeout=120)
        assert result.returncode == 0, result.stderr
    before = user_pods(kube)
    kill_and_expire(kube, doomed, lease_of(kube, before["alice"]))

    persistence = {"idleTimeout": "10m"}
    url, _ = example_webhook([{"username": user, "password": "pw"} for user in users])
    servers = {}
    for identity in ("berth-test-c", "berth-test-d"):
        block = {"metadata": {"namespace": "default", "generateName": "berth-"}, "mode": "persistent", "shellCommand": ["/bin/sh"],
                 "spec": {"containers": [{"name": "shell", "image": BUSYBOX}]}}
        servers[identity] = start_berth({"auth": webhook_auth(url), "backend": "kubernetes", "persistence": {**persistence, "serverIdentity": identity},
                                         "kubernetes": {"connection": {"host": kube.url, "bearerToken": TOKEN}, "pod": block}},
                                        name=identity, expect_start=False)
    for berth in servers.values():
        wait_for_port(berth.port, berth.process.proc)
        wait_until(lambda: logged(berth, "KUBERNETES_PERSISTENT_CHECKED"), timeout=120, what="the start-up look for persistent pods")
    after = user_pods(kube)
    assert {user: pod["metadata"]["uid"] for user, pod in after.items()} == {user: pod["metadata"]["uid"] for user, pod in before.items()}
    leases = {item["spec"]["holderIdentity"]: item["metadata"]["name"] for item in api(kube, "GET", LEASES)["items"]}
    for user, pod in after.items():
        owner = pod["metadata"]["labels"]["berth.server"]
        assert owner in servers and pod["metadata"]["labels"]["berth.lease"] == leases[owner]
        # Exactly one server took it over, and only that one looks after it.
        takers = [identity for identity, berth in servers.items()
                  if logged(berth, "KUBERNETES_PERSISTENT_ADOPTED", pod=f"default/{pod['metadata']['name']}")]
        assert takers == [owner], (user, takers)
    # The loser of alice's pod met the winner's write (409), read the pod again and left it.
    assert re.search(rf'"PATCH {NS}/pods/{after["alice"]["metadata"]["name"]} HTTP/1.1" 409', kube.output()), kube.output()[-3000:]
    # The adopted pods are the same containers: what a wrote is there, through either server.
    for user in users:
        result = servers["berth-test-d"].ssh(user, "cat /tmp/mark", password="pw", timeout=120)
        assert result.stdout.decode().strip() == user, result.stderr
