"""The test Kubernetes API server (kube_apiserver.py), proven with the official `kubernetes`
Python client and a raw WebSocket client: pods as Docker containers, watch, exec/attach over
v5.channel.k8s.io/v4.channel.k8s.io, errors as v1 Status, bearer-token and client-certificate
authentication, and cleanup of every container when the server stops."""
import json
import re
import secrets
import threading
import time
from urllib.parse import urlencode

import pytest
import websocket
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from docker_helpers import BUSYBOX, docker
from kube_helpers import kube_containers, kube_volumes, start_kube_apiserver

TOKEN = "test-token-" + secrets.token_hex(4)
NS = "default"
TIMEOUT = 120  # generous: the machine is small and busy


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    server = start_kube_apiserver(tmp_path_factory.mktemp("kube"), token=TOKEN)
    yield server
    code = server.stop()
    leftovers = kube_containers(server.instance) + kube_volumes(server.instance)
    if code != 0 or leftovers:
        print(server.output()[-6000:])
    assert code == 0
    assert leftovers == []


@pytest.fixture(scope="module")
def v1(kube):
    return client.CoreV1Api(client.ApiClient(kube.client_configuration()))


def unique(prefix="t"):
    return f"{prefix}-{secrets.token_hex(3)}"


def pod_body(name=None, generate_name=None, labels=None, containers=None, restart_policy="Never", **meta):
    metadata = {"labels": labels or {}, **meta}
    if name:
        metadata["name"] = name
    if generate_name:
        metadata["generateName"] = generate_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"restartPolicy": restart_policy, "containers": containers or [
                {"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]}]}}


def is_ready(pod):
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def wait_pod(v1, name, predicate, timeout=TIMEOUT):
    """Watches the pod (official client Watch) until predicate(pod) holds; returns the pod and
    the event types seen."""
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, namespace=NS, field_selector=f"metadata.name={name}",
                          timeout_seconds=timeout):
        seen.append(event["type"])
        if predicate(event["object"]):
            w.stop()
            return event["object"], seen
    raise AssertionError(f"pod {name} did not reach the expected state; events {seen}")


def create_running(v1, body):
    created = v1.create_namespaced_pod(NS, body)
    pod, _ = wait_pod(v1, created.metadata.name, is_ready)
    return pod


def pod_containers(uid):
    return docker("ps", "-a", "-q", "--filter", f"label=berth-test.pod-uid={uid}").stdout.split()


def status_json(error):
    return json.loads(error.body)


# --- raw WebSocket helpers -------------------------------------------------------------------

def ws_url(server, pod, verb="exec", command=(), **flags):
    query = [("command", c) for c in command]
    query += [(k, str(v).lower()) for k, v in flags.items() if v is not None]
    return server.url.replace("http", "ws", 1) + f"/api/v1/namespaces/{NS}/pods/{pod}/{verb}?" + urlencode(query)


def ws_connect(server, pod, verb="exec", command=(), protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"),
               token=TOKEN, sslopt=None, **flags):
    flags = {"stdin": False, "stdout": True, "stderr": True, "tty": False, **flags}
    header = [f"Authorization: Bearer {token}"] if token else []
    return websocket.create_connection(ws_url(server, pod, verb, command, **flags), header=header,
                                       subprotocols=list(protocols), timeout=TIMEOUT, sslopt=sslopt)


def ws_collect(ws, on_stdout=None, keep=True):
    """Reads channel frames until the server closes; returns ({channel: bytes}, byte counts,
    status dict or None)."""
    data, counts = {}, {}
    while True:
        opcode, payload = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) or not payload:
            continue
        channel, body = payload[0], payload[1:]
        counts[channel] = counts.get(channel, 0) + len(body)
        if keep or channel != 1:
            data[channel] = data.get(channel, b"") + body
        if on_stdout and channel == 1:
            on_stdout(data.get(1, b""))
    status = json.loads(data[3]) if data.get(3, b"").startswith(b"{") else None
    return data, counts, status


def ws_read_until(ws, channel, needle):
    buffer = b""
    while needle not in buffer:
        opcode, payload = ws.recv_data(control_frame=True)
        assert opcode != websocket.ABNF.OPCODE_CLOSE, f"closed before {needle!r}; got {buffer!r}"
        if payload and payload[0] == channel:
            buffer += payload[1:]
    return buffer


# --- the official client ---------------------------------------------------------------------

def test_version_and_discovery(kube, v1):
    version = client.VersionApi(v1.api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    resources = v1.get_api_resources()
    assert "pods/exec" in [r.name for r in resources.resources]


def test_pod_lifecycle_watch_exec_delete(kube, v1):
    label = unique("life")
    created = v1.create_namespaced_pod(NS, pod_body(generate_name="life-", labels={"test": label},
                                                    annotations={"berth/test": "yes"}))
    assert created.metadata.annotations == {"berth/test": "yes"}
    name = created.metadata.name
    assert re.fullmatch(r"life-[a-z0-9]{5}", name)
    assert created.status.phase == "Pending"
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.namespace == NS

    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, namespace=NS, label_selector=f"test={label}",
                          timeout_seconds=TIMEOUT):
        seen.append(event["type"])
        if is_ready(event["object"]):
            w.stop()
            pod = event["object"]
            break
    else:
        raise AssertionError(f"never Running+Ready: {seen}")
    assert seen[0] == "ADDED" and "MODIFIED" in seen
    assert pod.status.container_statuses[0].state.running is not None
    assert pod.status.container_statuses[0].ready is True
    assert pod.spec.node_name and pod.status.pod_ip
    assert len(pod_containers(pod.metadata.uid)) == 1

    # A simple exec: output of stdout and stderr together.
    output = stream(v1.connect_get_namespaced_pod_exec, name, NS, command=["sh", "-c", "echo hello; echo oops >&2"],
                    stdin=False, stdout=True, stderr=True, tty=False)
    assert "hello" in output and "oops" in output

    # Interactive: write stdin, read stdout, exit code from the status channel.
    resp = stream(v1.connect_get_namespaced_pod_exec, name, NS,
                  command=["sh", "-c", "read line; echo got:$line; echo to-stderr >&2; exit 3"],
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    assert resp.subprotocol == "v5.channel.k8s.io"
    resp.write_stdin("hi there\n")
    out = ""
    deadline = time.time() + TIMEOUT
    while "got:hi there" not in out and time.time() < deadline and resp.is_open():
        resp.update(timeout=5)
        out += resp.read_stdout(timeout=0) or ""
    assert "got:hi there" in out
    resp.run_forever(timeout=TIMEOUT)
    assert "to-stderr" in resp.read_stderr()
    assert resp.returncode == 3

    # Interactive with the v5 stdin close: cat ends, exit code 0.
    resp = stream(v1.connect_get_namespaced_pod_exec, name, NS, command=["cat"],
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.write_stdin("line one\nline two\n")
    resp.close_channel(0)
    resp.run_forever(timeout=TIMEOUT)
    assert resp.read_stdout() == "line one\nline two\n"
    assert resp.returncode == 0

    deleted = v1.delete_namespaced_pod(name, NS)
    assert deleted.metadata.name == name and deleted.metadata.deletion_timestamp
    assert pod_containers(pod.metadata.uid) == []
    with pytest.raises(ApiException) as error:
        v1.read_namespaced_pod(name, NS)
    assert error.value.status == 404


def test_watch_reports_deletion_and_completion(kube, v1):
    label = unique("done")
    events = []
    started = threading.Event()
    # The watcher has its own client: stream() and watch share nothing, but threads should not
    # share an ApiClient.
    watch_client = client.CoreV1Api(client.ApiClient(kube.client_configuration()))
    ok = v1.create_namespaced_pod(NS, pod_body(name=unique("ok"), labels={"test": label}, containers=[
        {"name": "main", "image": BUSYBOX, "command": ["true"]}]))
    thread = threading.Thread(target=_watch, args=(watch_client, label, events, started), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT)
    bad = v1.create_namespaced_pod(NS, pod_body(name=unique("bad"), labels={"test": label}, containers=[
        {"name": "main", "image": BUSYBOX, "command": ["sh", "-c", "sleep 1; exit 7"]}]))

    pod, _ = wait_pod(v1, ok.metadata.name, lambda p: p.status.phase == "Succeeded")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    pod, _ = wait_pod(v1, bad.metadata.name, lambda p: p.status.phase == "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 7 and terminated.reason == "Error"

    # exec into a completed pod is refused before the upgrade
    with pytest.raises(ApiException) as error:
        stream(v1.connect_get_namespaced_pod_exec, bad.metadata.name, NS, command=["true"],
               stdin=False, stdout=True, stderr=True, tty=False)
    assert "completed pod" in str(error.value)

    v1.delete_namespaced_pod(bad.metadata.name, NS)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    mine = [e for e in events if e[1] == bad.metadata.name]
    assert mine[0][0] == "ADDED" and mine[-1][0] == "DELETED"
    assert ("MODIFIED", bad.metadata.name, "Failed") in mine
    v1.delete_namespaced_pod(ok.metadata.name, NS)


def test_watch_from_resource_version_and_restart_policy(kube, v1):
    """A watch from the resourceVersion of the create response sees only later changes (no
    synthetic ADDED); restartPolicy Always restarts an exited container, the pod stays Running."""
    name = unique("restart")
    created = v1.create_namespaced_pod(NS, pod_body(name=name, restart_policy="Always", containers=[
        {"name": "main", "image": BUSYBOX, "command": ["sh", "-c", "sleep 1; exit 1"]}]))
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, namespace=NS, field_selector=f"metadata.name={name}",
                          resource_version=created.metadata.resource_version, timeout_seconds=TIMEOUT):
        seen.append(event["type"])
        status = event["object"].status.container_statuses
        if status and status[0].restart_count >= 1 and status[0].state.running:
            w.stop()
            pod = event["object"]
            break
    else:
        raise AssertionError(f"no restart seen: {seen}")
    assert "ADDED" not in seen
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1
    v1.delete_namespaced_pod(name, NS)


def _watch(v1, label, events, started):
    w = watch.Watch()
    started.set()
    for event in w.stream(v1.list_namespaced_pod, namespace=NS, label_selector=f"test={label}",
                          timeout_seconds=TIMEOUT):
        pod = event["object"]
        events.append((event["type"], pod.metadata.name, pod.status.phase))
        if event["type"] == "DELETED" and pod.metadata.name.startswith("bad-"):
            w.stop()


def test_label_and_field_selectors(kube, v1):
    run = unique("sel")
    names = {}
    for role, labels in (("a", {"run": run, "app": "web", "tier": "front"}),
                         ("b", {"run": run, "app": "db"}),
                         ("c", {"run": run, "app": "web"})):
        names[role] = v1.create_namespaced_pod(NS, pod_body(name=f"{run}-{role}", labels=labels)).metadata.name

    def listed(selector=None, field=None, all_namespaces=False):
        selector = f"run={run}" + (f",{selector}" if selector else "")
        if all_namespaces:
            items = v1.list_pod_for_all_namespaces(label_selector=selector, field_selector=field).items
        else:
            items = v1.list_namespaced_pod(NS, label_selector=selector, field_selector=field).items
        return sorted(p.metadata.name[-1] for p in items)

    assert listed() == ["a", "b", "c"]
    assert listed("app=web") == ["a", "c"]
    assert listed("app==web") == ["a", "c"]
    assert listed("app!=web") == ["b"]
    assert listed("tier") == ["a"]
    assert listed("!tier") == ["b", "c"]
    assert listed("app=web,!tier") == ["c"]
    assert listed("app in (db,cache)") == ["b"]
    assert listed("app notin (db)") == ["a", "c"]
    assert listed(field=f"metadata.name={names['b']}") == ["b"]
    assert listed(field=f"metadata.name!={names['b']}") == ["a", "c"]
    assert listed("app=web", all_namespaces=True) == ["a", "c"]
    assert v1.list_namespaced_pod("other-namespace", label_selector=f"run={run}").items == []
    with pytest.raises(ApiException) as error:
        v1.list_namespaced_pod(NS, field_selector="spec.bogus=1")
    assert error.value.status == 400

    removed = v1.delete_collection_namespaced_pod(NS, label_selector=f"run={run}")
    assert listed() == []
    assert removed is not None


def test_errors_are_v1_status(kube, v1):
    with pytest.raises(ApiException) as error:
        v1.read_namespaced_pod("no-such-pod", NS)
    assert error.value.status == 404
    body = status_json(error.value)
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["reason"] == "NotFound"
    assert body["code"] == 404 and body["message"] == 'pods "no-such-pod" not found'

    with pytest.raises(ApiException) as error:
        v1.delete_namespaced_pod("no-such-pod", NS)
    assert error.value.status == 404

    name = unique("dup")
    v1.create_namespaced_pod(NS, pod_body(name=name))
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod(NS, pod_body(name=name))
    assert error.value.status == 409 and status_json(error.value)["reason"] == "AlreadyExists"
    v1.delete_namespaced_pod(name, NS)

    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod(NS, pod_body(name=unique("noimage"), containers=[{"name": "main"}]))
    body = status_json(error.value)
    assert error.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.containers[0].image"

    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod(NS, {"metadata": {}, "spec": {"containers": [{"name": "x", "image": BUSYBOX}]}})
    assert error.value.status == 422

    with pytest.raises(ApiException) as error:
        stream(v1.connect_get_namespaced_pod_exec, "no-such-pod", NS, command=["true"],
               stdin=False, stdout=True, stderr=True, tty=False)
    assert "404" in str(error.value)


def test_missing_image_is_reported_not_pulled(kube, v1):
    name = unique("noimg")
    v1.create_namespaced_pod(NS, pod_body(name=name, containers=[
        {"name": "main", "image": "berth-test-no-such-image:1", "imagePullPolicy": "Never"}]))
    pod, _ = wait_pod(v1, name, lambda p: p.status.container_statuses and p.status.container_statuses[0].state.waiting
                      and p.status.container_statuses[0].state.waiting.reason != "ContainerCreating")
    waiting = pod.status.container_statuses[0].state.waiting
    assert pod.status.phase == "Pending"
    assert waiting.reason == "ErrImageNeverPull" and "berth-test-no-such-image:1" in waiting.message
    assert pod_containers(pod.metadata.uid) == []
    v1.delete_namespaced_pod(name, NS)


def test_unauthorized_without_token(kube, v1):
    anonymous = client.CoreV1Api(client.ApiClient(kube.client_configuration(token=False)))
    with pytest.raises(ApiException) as error:
        anonymous.list_namespaced_pod(NS)
    assert error.value.status == 401 and status_json(error.value)["reason"] == "Unauthorized"
    wrong = kube.client_configuration()
    wrong.api_key = {"authorization": "Bearer wrong"}
    with pytest.raises(ApiException) as error:
        client.CoreV1Api(client.ApiClient(wrong)).read_namespaced_pod("x", NS)
    assert error.value.status == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as error:
        ws_connect(kube, "x", command=["true"], token=None)
    assert error.value.status_code == 401


def test_multi_container_pod_shares_network(kube, v1):
    name = unique("multi")
    pod = create_running(v1, pod_body(name=name, containers=[
        {"name": "first", "image": BUSYBOX, "command": ["sleep", "3600"], "env": [{"name": "WHO", "value": "one"}]},
        {"name": "second", "image": BUSYBOX, "command": ["sleep", "3600"], "workingDir": "/tmp"}]))
    assert len(pod.status.container_statuses) == 2

    def run(container, script):
        return stream(v1.connect_get_namespaced_pod_exec, name, NS, container=container, command=["sh", "-c", script],
                      stdin=False, stdout=True, stderr=True, tty=False)

    assert run("first", "cat /sys/class/net/eth0/address") == run("second", "cat /sys/class/net/eth0/address")
    assert run("first", "echo $WHO") == "one\n"
    assert run("second", "pwd") == "/tmp\n"
    with pytest.raises(ApiException) as error:
        stream(v1.connect_get_namespaced_pod_exec, name, NS, command=["true"], stdin=False, stdout=True,
               stderr=True, tty=False)
    assert "container name must be specified" in str(error.value)
    v1.delete_namespaced_pod(name, NS)
    assert pod_containers(pod.metadata.uid) == []


def test_security_context_and_memory_limit_reach_the_container(kube, v1):
    name = unique("hardened")
    pod = create_running(v1, pod_body(name=name, containers=[
        {"name": "shell", "image": BUSYBOX, "command": ["sleep", "3600"], "resources": {"limits": {"memory": "64Mi"}},
         "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}]))
    (container,) = pod_containers(pod.metadata.uid)
    host = json.loads(docker("inspect", container).stdout)[0]["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["CHOWN"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["Memory"] == 64 << 20
    v1.delete_namespaced_pod(name, NS)


def test_claims_are_docker_volumes_that_pods_mount(kube, v1):
    name = unique("claim")
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": {"who": "alice"}},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    made = v1.create_namespaced_persistent_volume_claim(NS, claim)
    assert made.status.phase == "Bound" and made.status.capacity == {"storage": "1Gi"}
    volume = f"berth-test-pvc-{made.metadata.uid}"
    assert volume in kube_volumes(kube.instance)
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_persistent_volume_claim(NS, claim)
    assert error.value.status == 409 and status_json(error.value)["reason"] == "AlreadyExists"
    for bad in ({"accessModes": []}, {"resources": {"requests": {"storage": "0"}}}, {"resources": {"requests": {"storage": "lots"}}}):
        with pytest.raises(ApiException) as error:
            v1.create_namespaced_persistent_volume_claim(NS, {**claim, "metadata": {"name": unique("bad")}, "spec": {**claim["spec"], **bad}})
        assert error.value.status == 422
    assert name in [c.metadata.name for c in v1.list_namespaced_persistent_volume_claim(NS).items]

    # Two pods in turn: the second sees what the first wrote; the mount starts empty and root-owned.
    def pod_with_claim(pod_name, claim_name, script):
        body = pod_body(name=pod_name, containers=[
            {"name": "main", "image": BUSYBOX, "command": ["sh", "-c", script], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}])
        body["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
        return body

    first = unique("writer")
    v1.create_namespaced_pod(NS, pod_with_claim(first, name, 'echo "$(ls -A /data | wc -l) $(stat -c %u /data) kept" > /data/f'))
    wait_pod(v1, first, lambda p: p.status.phase == "Succeeded")
    second = unique("reader")
    pod = create_running(v1, pod_with_claim(second, name, "sleep 3600"))
    out = stream(v1.connect_get_namespaced_pod_exec, second, NS, command=["cat", "/data/f"], stdin=False, stdout=True, stderr=True, tty=False)
    assert out == "0 0 kept\n"
    (container,) = pod_containers(pod.metadata.uid)
    [mount] = json.loads(docker("inspect", container).stdout)[0]["Mounts"]
    assert mount["Name"] == volume and mount["Destination"] == "/data"
    v1.delete_namespaced_pod(first, NS)
    v1.delete_namespaced_pod(second, NS)

    # A pod whose claim does not exist waits, as a real scheduler makes it.
    waiting = unique("noclaim")
    v1.create_namespaced_pod(NS, pod_with_claim(waiting, "no-such-claim", "true"))
    pod, _ = wait_pod(v1, waiting, lambda p: any(c.reason == "Unschedulable" for c in p.status.conditions or []))
    assert pod.status.phase == "Pending" and 'persistentvolumeclaim "no-such-claim" not found' in pod.status.conditions[0].message
    v1.delete_namespaced_pod(waiting, NS)

    # Only claims can be mounted here; deleting the claim removes its volume.
    with pytest.raises(ApiException) as error:
        v1.create_namespaced_pod(NS, {**pod_body(name=unique("tmp")), "spec": {"volumes": [{"name": "t", "emptyDir": {}}], "containers": [
            {"name": "main", "image": BUSYBOX, "volumeMounts": [{"name": "t", "mountPath": "/t"}]}]}})
    assert error.value.status == 422 and "persistentVolumeClaim" in status_json(error.value)["message"]
    v1.delete_namespaced_persistent_volume_claim(name, NS)
    assert volume not in kube_volumes(kube.instance)


def test_label_patch_with_a_resource_version_precondition(kube, v1):
    name = unique("patch")
    v1.create_namespaced_pod(NS, pod_body(name=name, labels={"keep": "1", "drop": "1"}))
    current = v1.read_namespaced_pod(name, NS)
    merge = "application/merge-patch+json"
    patched = v1.patch_namespaced_pod(name, NS, {"metadata": {"resourceVersion": current.metadata.resource_version,
                                                              "labels": {"owner": "b", "drop": None}}}, _content_type=merge)
    assert patched.metadata.labels == {"keep": "1", "owner": "b"}
    assert int(patched.metadata.resource_version) > int(current.metadata.resource_version)
    # The version read before the change is stale now: the loser of a race re-reads.
    with pytest.raises(ApiException) as error:
        v1.patch_namespaced_pod(name, NS, {"metadata": {"resourceVersion": current.metadata.resource_version, "labels": {"owner": "c"}}},
                                _content_type=merge)
    assert error.value.status == 409 and status_json(error.value)["reason"] == "Conflict"
    assert v1.read_namespaced_pod(name, NS).metadata.labels["owner"] == "b"
    for body in ({"spec": {"restartPolicy": "Always"}}, {"metadata": {"labels": {"bad": "not a value!"}}}):
        with pytest.raises(ApiException) as error:
            v1.patch_namespaced_pod(name, NS, body, _content_type=merge)
        assert error.value.status == 422
    with pytest.raises(ApiException) as error:
        v1.patch_namespaced_pod(name, NS, [{"op": "add", "path": "/metadata/labels/x", "value": "y"}])
    assert error.value.status == 415
    # DeleteOptions.preconditions: a stale version is refused, the current one deletes.
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=current.metadata.resource_version))
    with pytest.raises(ApiException) as error:
        v1.delete_namespaced_pod(name, NS, body=stale)
    assert error.value.status == 409 and status_json(error.value)["reason"] == "Conflict"
    latest = v1.read_namespaced_pod(name, NS).metadata.resource_version
    v1.delete_namespaced_pod(name, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=latest)))


def test_exec_missing_command_fails_like_kubernetes(kube, v1):
    name = unique("nocmd")
    create_running(v1, pod_body(name=name))
    resp = stream(v1.connect_get_namespaced_pod_exec, name, NS, command=["no-such-command"],
                  stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.run_forever(timeout=TIMEOUT)
    status = json.loads(resp.read_channel(3))
    assert status["status"] == "Failure" and status["reason"] == "InternalError" and status["code"] == 500
    assert "executable file not found" in status["message"]
    assert resp.read_stdout(timeout=0) == ""
    v1.delete_namespaced_pod(name, NS)


def test_attach(kube, v1):
    name = unique("attach")
    create_running(v1, pod_body(name=name, containers=[{
        "name": "main", "image": BUSYBOX, "stdin": True, "stdinOnce": True,
        "command": ["sh", "-c", "while read l; do echo attached:$l; done; echo bye >&2"]}]))
    resp = stream(v1.connect_get_namespaced_pod_attach, name, NS, container="main",
                  stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    resp.write_stdin("one\n")
    out = ""
    deadline = time.time() + TIMEOUT
    while "attached:one" not in out and time.time() < deadline and resp.is_open():
        resp.update(timeout=5)
        out += resp.read_stdout(timeout=0) or ""
    assert "attached:one" in out
    resp.close_channel(0)  # stdinOnce: the container's stdin ends, the loop ends, so does the container
    resp.run_forever(timeout=TIMEOUT)
    assert "bye" in resp.read_stderr()
    assert resp.returncode == 0
    pod, _ = wait_pod(v1, name, lambda p: p.status.phase == "Succeeded")
    v1.delete_namespaced_pod(name, NS)


# --- raw WebSocket: the v5 protocol details ---------------------------------------------------

@pytest.fixture(scope="module")
def sleeper(kube, v1):
    name = unique("raw")
    create_running(v1, pod_body(name=name))
    yield name
    v1.delete_namespaced_pod(name, NS)


def test_raw_v5_stdin_close_ends_cat(kube, sleeper):
    ws = ws_connect(kube, sleeper, command=["cat"], stdin=True)
    assert ws.getsubprotocol() == "v5.channel.k8s.io"
    ws.send_binary(b"\x00hello ")
    ws.send_binary(b"\x00world\n")
    assert ws_read_until(ws, 1, b"hello world\n") == b"hello world\n"
    ws.send_binary(bytes([255, 0]))
    _, _, status = ws_collect(ws)
    assert status == {"metadata": {}, "status": "Success"}


def test_raw_v5_nonzero_exit(kube, sleeper):
    ws = ws_connect(kube, sleeper, command=["sh", "-c", "echo out; echo err >&2; exit 42"])
    data, _, status = ws_collect(ws)
    assert data[1] == b"out\n" and data[2] == b"err\n"
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "42"}]
    assert "non-zero exit code" in status["message"]


def test_raw_v5_tty_resize(kube, sleeper):
    ws = ws_connect(kube, sleeper, command=["sh"], stdin=True, tty=True, stderr=False)
    ws.send_binary(b"\x04" + json.dumps({"Width": 123, "Height": 45}).encode())
    ws.send_binary(b"\x00stty size; exit 5\n")
    data, _, status = ws_collect(ws)
    assert b"45 123" in data[1]
    assert 2 not in data
    assert status["details"]["causes"][0]["message"] == "5"


def test_raw_protocol_negotiation(kube, sleeper):
    ws = ws_connect(kube, sleeper, command=["sh", "-c", "exit 0"], protocols=["v4.channel.k8s.io"])
    assert ws.getsubprotocol() == "v4.channel.k8s.io"
    assert ws_collect(ws)[2] == {"metadata": {}, "status": "Success"}
    ws = ws_connect(kube, sleeper, command=["sh", "-c", "exit 0"],
                    protocols=["v4.channel.k8s.io", "v5.channel.k8s.io"])
    assert ws.getsubprotocol() == "v4.channel.k8s.io"  # the client's order decides
    ws.close()
    # channel.k8s.io (v1): no status on success, plain text on failure
    ws = ws_connect(kube, sleeper, command=["sh", "-c", "echo x; exit 2"], protocols=["channel.k8s.io"])
    data, _, _ = ws_collect(ws)
    assert data[1] == b"x\n" and b"exit code 2" in data[3]
    with pytest.raises(websocket.WebSocketBadStatusException) as error:
        ws_connect(kube, sleeper, command=["true"], protocols=["v9.channel.k8s.io"])
    assert error.value.status_code == 400


def test_raw_large_output_and_input_stream_with_bounded_memory(tmp_path):
    """100 MiB of exec output and 20 MiB of input pass through with the server's memory staying
    far below the data size; a server of its own, so that its peak RSS says something."""
    server = start_kube_apiserver(tmp_path, token=TOKEN)
    try:
        api = client.CoreV1Api(client.ApiClient(server.client_configuration()))
        name = unique("big")
        create_running(api, pod_body(name=name))

        def peak_rss_mib():
            for line in open(f"/proc/{server.pid}/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024

        before = peak_rss_mib()
        size = 100 * 1024 * 1024
        ws = ws_connect(server, name, command=["head", "-c", str(size), "/dev/zero"])
        _, counts, status = ws_collect(ws, keep=False)
        assert counts.get(1) == size
        assert status == {"metadata": {}, "status": "Success"}

        ws = ws_connect(server, name, command=["wc", "-c"], stdin=True)
        chunk = b"\x00" + b"y" * (1024 * 1024)
        for _ in range(20):
            ws.send_binary(chunk)
        ws.send_binary(bytes([255, 0]))
        data, _, status = ws_collect(ws)
        assert int(data[1].split()[0]) == 20 * 1024 * 1024
        assert status["status"] == "Success"

        growth = peak_rss_mib() - before
        assert growth < 40, f"the server's peak RSS grew by {growth:.0f} MiB"

        uid = api.read_namespaced_pod(name, NS).metadata.uid
        assert len(pod_containers(uid)) == 1
    finally:
        code = server.stop()
    # stopping the server removes the pod it still had
    assert code == 0
    assert kube_containers(server.instance) == []


def test_tls_with_client_certificate(tmp_path):
    server = start_kube_apiserver(tmp_path, token=TOKEN, tls=True)
    try:
        by_cert = client.CoreV1Api(client.ApiClient(server.client_configuration(token=False, client_cert=True)))
        by_token = client.CoreV1Api(client.ApiClient(server.client_configuration()))
        anonymous = client.CoreV1Api(client.ApiClient(server.client_configuration(token=False)))
        assert by_token.list_namespaced_pod(NS).items == []
        name = unique("tls")
        create_running(by_cert, pod_body(name=name))
        with pytest.raises(ApiException) as error:
            anonymous.read_namespaced_pod(name, NS)
        assert error.value.status == 401
        output = stream(by_cert.connect_get_namespaced_pod_exec, name, NS, command=["echo", "over tls"],
                        stdin=False, stdout=True, stderr=True, tty=False)
        assert output == "over tls\n"
        sslopt = {"ca_certs": server.tls.ca_cert, "certfile": server.tls.client_cert, "keyfile": server.tls.client_key}
        ws = ws_connect(server, name, command=["sh", "-c", "exit 9"], token=None, sslopt=sslopt)
        assert ws_collect(ws)[2]["details"]["causes"][0]["message"] == "9"
        by_cert.delete_namespaced_pod(name, NS)
    finally:
        assert server.stop() == 0
    assert kube_containers(server.instance) == []
