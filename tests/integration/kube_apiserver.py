#!/usr/bin/env python3
"""A minimal Kubernetes API server for tests, backed by real Docker containers.

It serves the part of core/v1 that Berth's Kubernetes backend uses: pods (create, get, list,
watch, delete, and a JSON merge patch of metadata.labels), pods/exec and pods/attach over the WebSocket streaming protocols
(v5.channel.k8s.io, v4.channel.k8s.io, and the older channel.k8s.io, v2, v3), /version and
discovery. Every pod container is a Docker container labelled
berth-test.kube-apiserver=<instance>; on SIGTERM/SIGINT the server removes all of them.
Images are never pulled.

    python3 kube_apiserver.py --listen 127.0.0.1:PORT [--token TOKEN]
        [--tls-cert F --tls-key F [--client-ca F]] [--instance ID] [--docker-socket PATH|none]

With --token, requests need `Authorization: Bearer TOKEN`; with --client-ca, a verified client
certificate authenticates too; otherwise everything is allowed. Any namespace exists.

Pod containers honour name, image, command, args, env (name/value), workingDir, stdin,
stdinOnce, tty, runAsUser/runAsGroup, capabilities (drop/add), allowPrivilegeEscalation: false and
the memory limit; containers of a pod share the first one's network
namespace. Status follows the kubelet: Pending (waiting ContainerCreating; ErrImagePull or
ErrImageNeverPull when the image is not on the engine - the pod then stays Pending, as in a real
cluster), Running with Ready=True when all containers run, Succeeded/Failed when they end under
restartPolicy Never/OnFailure (Always and OnFailure restart with back-off). Deleting a pod also
deletes the pods whose ownerReferences name it, as the garbage collector does. DELETE removes the
containers at once (no grace period) before it answers. The objects of a Berth deployment
(namespaces, service accounts, config maps, secrets, services, deployments, roles, role bindings)
and Leases are stored and validated by kube_objects.py, without controllers.

PersistentVolumeClaims (create, get, list, replace, delete; 409 on a name taken) are stored there
too, each backed by a Docker named volume labelled berth-test.kube-apiserver=<instance> that this
server creates with the claim (which it shows Bound at once) and removes when the claim is
deleted (if a container still uses it: at shutdown). A pod volume of type persistentVolumeClaim
is mounted where the containers' volumeMounts say (empty, root-owned, as a new claim is); a pod
whose claim does not exist stays Pending (Unschedulable), as with a real scheduler. Mounting any
other volume type is refused (422).

A PATCH of a pod takes application/merge-patch+json with metadata.labels only (null removes a
label); a metadata.resourceVersion in the patch, or in a DELETE's preconditions, is a precondition (409 Conflict when the pod has
changed since). --hold-patches N holds the first N patches until all have arrived (at most 60 s),
so that clients racing for one pod meet for certain. Not supported: other resources, other patches, PUT of pods, logs, port-forward,
SPDY and the base64 protocols, protobuf, initContainers, probes, CPU limits, seccomp profiles,
image pulls.
"""
import argparse
import asyncio
import collections
import contextlib
import copy
import json
import logging
import os
import random
import re
import secrets
import signal
import ssl
import struct
import sys
import uuid
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from aiohttp import ClientSession, ClientTimeout, UnixConnector, WSMsgType, web

import kube_objects

log = logging.getLogger("kube-apiserver")

DOCKER_API = "/v1.41"
INSTANCE_LABEL = "berth-test.kube-apiserver"
POD_UID_LABEL = "berth-test.pod-uid"
CHUNK = 64 * 1024
NODE_NAME = "berth-test-node"
# The streaming subprotocols this server speaks, newest first. The empty protocol (no header) is
# the original channel.k8s.io.
PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
             "channel.k8s.io"]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# The alphabet Kubernetes uses for generateName suffixes (no vowels, no confusable digits).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CLAIM_LABEL = "berth-test.claim"


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def docker_time(value):
    """Docker's nanosecond RFC 3339 timestamps, as Kubernetes shows them (seconds, UTC)."""
    if not value or value.startswith("0001-"):
        return None
    return value.split(".")[0].rstrip("Z") + "Z"


# ---------------------------------------------------------------------------------------------
# v1 Status objects

class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body

    def response(self):
        return web.json_response(self.status(), status=self.code)


def not_found(name):
    return ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(name, causes):
    """422 Invalid with field causes [(field, type, message)], as the API's validation reports."""
    text = ", ".join(f"{field}: {message}" for field, _, message in causes)
    return ApiError(422, "Invalid", f'Pod "{name}" is invalid: {text}', {
        "name": name, "kind": "Pod",
        "causes": [{"reason": kind, "message": message, "field": field} for field, kind, message in causes]})


def internal_error(message):
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


# ---------------------------------------------------------------------------------------------
# Docker Engine API over its unix socket

class DockerError(Exception):
    def __init__(self, status, message):
        super().__init__(f"docker: {status} {message}")
        self.status, self.message = status, message


class Docker:
    def __init__(self, socket_path):
        self.socket_path = socket_path
        self.session = None

    async def open(self):
        self.session = ClientSession(connector=UnixConnector(path=self.socket_path, limit=0),
                                     timeout=ClientTimeout(total=None, sock_connect=30))

    async def close(self):
        if self.session:
            await self.session.close()

    async def call(self, method, path, body=None, params=None):
        async with self.session.request(method, "http://docker" + DOCKER_API + path, json=body,
                                        params=params) as response:
            data = await response.read()
            if response.status >= 400:
                raise DockerError(response.status, _docker_message(data))
            if data and response.content_type == "application/json":
                return json.loads(data)
            return None

    async def hijack(self, path, body=None, params=None):
        """POSTs with Upgrade: tcp and returns (reader, writer) of the raw stream that follows."""
        reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=CHUNK)
        try:
            data = json.dumps(body or {}).encode()
            target = DOCKER_API + path + ("?" + urlencode(params) if params else "")
            writer.write(f"POST {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                         .encode() + data)
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            status = int(head.split(" ", 2)[1])
            if status not in (101, 200):
                length = re.search(r"(?im)^content-length:\s*(\d+)", head)
                text = await reader.readexactly(int(length.group(1))) if length else b""
                raise DockerError(status, _docker_message(text))
            return reader, writer
        except BaseException:
            writer.close()
            raise


class NoEngine:
    """`--docker-socket none`: an engine that has no images and no containers, so every pod waits
    for its image (ErrImagePull, or ErrImageNeverPull) - for tests of what clients send, on
    machines without Docker."""

    async def open(self):
        pass

    async def close(self):
        pass

    async def call(self, method, path, body=None, params=None):
        if path == "/version":
            return {}
        if path == "/containers/json":
            return []
        if path.startswith("/volumes"):
            return {"Volumes": []}
        if path.startswith("/images/"):
            raise DockerError(404, "no such image (this API server runs without an engine)")
        raise DockerError(500, "this API server runs without an engine")


def _docker_message(data):
    try:
        return json.loads(data)["message"]
    except (ValueError, KeyError, TypeError):
        return data.decode(errors="replace").strip()


async def demultiplex(reader, tty, emit):
    """Forwards a hijacked Docker stream to emit(channel, bytes) in bounded chunks. Non-TTY
    streams carry 8-byte headers (stream type, 3 zero bytes, big-endian length)."""
    if tty:
        while chunk := await reader.read(CHUNK):
            await emit(STDOUT, chunk)
        return
    while True:
        try:
            header = await reader.readexactly(8)
        except asyncio.IncompleteReadError:
            return
        channel = STDERR if header[0] == 2 else STDOUT
        size = struct.unpack(">I", header[4:])[0]
        while size:
            chunk = await reader.read(min(size, CHUNK))
            if not chunk:
                return
            size -= len(chunk)
            await emit(channel, chunk)


# ---------------------------------------------------------------------------------------------
# Selectors

def parse_label_selector(text):
    """Returns a predicate on a labels dict for `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    `k notin (a,b)`, comma-separated; raises ApiError for a malformed selector."""
    terms = []
    for raw in re.split(r",(?![^(]*\))", text or ""):
        term = raw.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            terms.append(lambda labels, k=key, o=op, vs=values:
                         (labels.get(k) in vs) if o == "in" else (labels.get(k) not in vs))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", term):
            key, op, value = m.groups()
            terms.append(lambda labels, k=key, o=op, v=value:
                         (labels.get(k) != v) if o == "!=" else (labels.get(k) == v))
        elif m := re.fullmatch(r"!\s*([\w./-]+)", term):
            terms.append(lambda labels, k=m.group(1): k not in labels)
        elif re.fullmatch(r"[\w./-]+", term):
            terms.append(lambda labels, k=term: k in labels)
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector: {term!r}")
    return lambda labels: all(term(labels or {}) for term in terms)


FIELDS = {
    "metadata.name": lambda pod: pod["metadata"]["name"],
    "metadata.namespace": lambda pod: pod["metadata"]["namespace"],
    "status.phase": lambda pod: pod["status"].get("phase", ""),
    "spec.nodeName": lambda pod: pod["spec"].get("nodeName", ""),
    "spec.restartPolicy": lambda pod: pod["spec"].get("restartPolicy", ""),
}


def parse_field_selector(text):
    terms = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", term)
        if not m or m.group(1) not in FIELDS:
            raise bad_request(f'"{term.split("=")[0].rstrip("!")}" is not a known field selector: '
                              f'only "{", ".join(FIELDS)}"')
        field, op, value = m.groups()
        terms.append(lambda pod, f=FIELDS[field], o=op, v=value: (f(pod) != v) if o == "!=" else (f(pod) == v))
    return lambda pod: all(term(pod) for term in terms)


def flag(request, name, default=False):
    if name not in request.query:
        return default
    return request.query[name].lower() in ("true", "1", "yes")


# ---------------------------------------------------------------------------------------------
# Pods

class Pod:
    def __init__(self, obj):
        self.obj = obj
        self.container_ids = [None] * len(obj["spec"]["containers"])
        self.started = [False] * len(obj["spec"]["containers"])
        self.tty = [bool(c.get("tty")) for c in obj["spec"]["containers"]]
        self.setup_task = None
        self.supervisors = []
        self.deleting = False
        self.delete_task = None
        self.volumes = {}  # pod volume name -> Docker volume of its claim

    @property
    def key(self):
        return self.obj["metadata"]["namespace"], self.obj["metadata"]["name"]

    @property
    def name(self):
        return self.obj["metadata"]["name"]

    def container_index(self, name):
        names = [c["name"] for c in self.obj["spec"]["containers"]]
        if not name:
            if len(names) == 1:
                return 0
            raise bad_request(f"a container name must be specified for pod {self.name}, "
                              f"choose one of: [{' '.join(names)}]")
        if name not in names:
            raise bad_request(f"container {name} is not valid for pod {self.name}")
        return names.index(name)


def validate_pod(body, namespace):
    if not isinstance(body, dict):
        raise bad_request("the body of the request was not a JSON object")
    if body.get("kind", "Pod") != "Pod" or body.get("apiVersion", "v1") != "v1":
        raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the "
                          f"expected API version (v1) or kind ({body.get('kind')}) is not Pod")
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    if metadata.get("namespace", namespace) != namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
    name = metadata.get("name") or ""
    causes = []
    if not name and not metadata.get("generateName"):
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif name and (len(name) > 253 or not DNS_SUBDOMAIN.match(name)):
        causes.append(("metadata.name", "FieldValueInvalid",
                       f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    for field in ("labels", "annotations"):
        values = metadata.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            causes.append((f"metadata.{field}", "FieldValueInvalid", "Invalid value: values must be strings"))
    for i, owner in enumerate(metadata.get("ownerReferences") or []):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(owner, dict) or not isinstance(owner.get(key), str) or not owner.get(key):
                causes.append((f"metadata.ownerReferences[{i}].{key}", "FieldValueRequired", "Required value"))
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("spec.containers", "FieldValueRequired", "Required value"))
        containers = []
    seen = set()
    for i, container in enumerate(containers):
        path = f"spec.containers[{i}]"
        if not isinstance(container, dict):
            causes.append((path, "FieldValueInvalid", "Invalid value: must be an object"))
            continue
        cname = container.get("name")
        if not cname:
            causes.append((f"{path}.name", "FieldValueRequired", "Required value"))
        elif len(cname) > 63 or not DNS_LABEL.match(cname):
            causes.append((f"{path}.name", "FieldValueInvalid", f'Invalid value: "{cname}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \'-\''))
        elif cname in seen:
            causes.append((f"{path}.name", "FieldValueDuplicate", f'Duplicate value: "{cname}"'))
        seen.add(cname)
        if not container.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
        for key in ("command", "args"):
            if key in container and not (isinstance(container[key], list) and all(isinstance(a, str) for a in container[key])):
                causes.append((f"{path}.{key}", "FieldValueInvalid", "Invalid value: must be a list of strings"))
        for j, env in enumerate(container.get("env") or []):
            if not isinstance(env, dict) or not env.get("name"):
                causes.append((f"{path}.env[{j}].name", "FieldValueRequired", "Required value"))
    claims = {}
    for i, volume in enumerate(spec.get("volumes") or []):
        vname = volume.get("name") if isinstance(volume, dict) else None
        if not vname or not DNS_LABEL.match(vname):
            causes.append((f"spec.volumes[{i}].name", "FieldValueInvalid", "Invalid value: must be a DNS label"))
            continue
        if "persistentVolumeClaim" in volume:
            claim = (volume["persistentVolumeClaim"] or {}).get("claimName")
            if not claim:
                causes.append((f"spec.volumes[{i}].persistentVolumeClaim.claimName", "FieldValueRequired", "Required value"))
            claims[vname] = claim
        else:
            claims[vname] = None
    for i, container in enumerate(containers):
        for j, mount in enumerate((container.get("volumeMounts") or []) if isinstance(container, dict) else []):
            path = f"spec.containers[{i}].volumeMounts[{j}]"
            if mount.get("name") not in claims:
                causes.append((f"{path}.name", "FieldValueNotFound", f'Not found: "{mount.get("name")}"'))
            elif claims[mount["name"]] is None:
                causes.append((f"{path}.name", "FieldValueNotSupported",
                               "Unsupported value: this test API server mounts persistentVolumeClaim volumes only"))
            if not str(mount.get("mountPath", "")).startswith("/"):
                causes.append((f"{path}.mountPath", "FieldValueInvalid", "Invalid value: must be an absolute path"))
    if spec.get("restartPolicy", "Always") not in ("Always", "OnFailure", "Never"):
        causes.append(("spec.restartPolicy", "FieldValueNotSupported",
                       f'Unsupported value: "{spec.get("restartPolicy")}": supported values: "Always", "OnFailure", "Never"'))
    if causes:
        raise invalid(name or metadata.get("generateName") or "", causes)


def memory_bytes(quantity):
    """A Kubernetes memory quantity (plain bytes, or a binary or decimal suffix) in bytes."""
    for suffix, factor in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40),
                           ("k", 10 ** 3), ("M", 10 ** 6), ("G", 10 ** 9), ("T", 10 ** 12)):
        if str(quantity).endswith(suffix):
            return int(float(str(quantity)[:-len(suffix)]) * factor)
    return int(float(quantity))


def pull_policy(image):
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    return "Always" if not tagged or image.endswith(":latest") else "IfNotPresent"


class KubeServer:
    def __init__(self, docker, instance, token, client_ca, listen, protocols=tuple(PROTOCOLS)):
        self.docker = docker
        self.protocols = list(protocols)
        self.instance = instance
        self.token = token
        self.client_ca = client_ca
        self.listen = listen
        self.pods = {}
        self.resource_version = 1000
        self.history = collections.deque(maxlen=10000)
        self.watchers = set()
        self.closing = False
        self.report_pod_ip = True
        self.objects = None  # kube_objects.ObjectStore, set by build_app
        # --hold-patches N: the first N pod patches wait for each other, so that N clients that
        # read a pod before any of them wrote it really meet at its resourceVersion.
        self.patch_hold = 0
        self.held_patches = []

    # -- claims: a Docker volume each ----------------------------------------------------------

    @staticmethod
    def volume_name(claim):
        return f"berth-test-pvc-{claim['metadata']['uid']}"

    async def claim_created(self, claim):
        meta = claim["metadata"]
        await self.docker.call("POST", "/volumes/create", {"Name": self.volume_name(claim), "Labels": {
            INSTANCE_LABEL: self.instance, CLAIM_LABEL: f"{meta['namespace']}/{meta['name']}"}})
        spec = claim["spec"]
        spec["volumeName"] = f"pvc-{meta['uid']}"
        spec.setdefault("storageClassName", "standard")
        spec.setdefault("volumeMode", "Filesystem")
        claim["status"] = {"phase": "Bound", "accessModes": spec["accessModes"],
                           "capacity": {"storage": spec["resources"]["requests"]["storage"]}}
        log.info("created claim %s/%s (volume %s)", meta["namespace"], meta["name"], self.volume_name(claim))

    async def claim_deleted(self, claim):
        try:
            await self.docker.call("DELETE", f"/volumes/{self.volume_name(claim)}")
        except DockerError as error:
            # In use by a pod's container: removed at shutdown.
            log.info("claim %s/%s deleted, its volume stays until shutdown: %s",
                     claim["metadata"]["namespace"], claim["metadata"]["name"], error)

    def claim_volume(self, namespace, name):
        """The Docker volume behind claim `name`, or None when there is no such claim."""
        kind = next(k for k in kube_objects.KINDS if k.plural == "persistentvolumeclaims")
        claim = self.objects.objects.get((kind.plural, namespace, name)) if self.objects else None
        return self.volume_name(claim) if claim else None

    async def remove_volumes(self):
        filters = json.dumps({"label": [f"{INSTANCE_LABEL}={self.instance}"]})
        try:
            volumes = (await self.docker.call("GET", "/volumes", params={"filters": filters}) or {}).get("Volumes") or []
        except DockerError as error:
            log.error("listing volumes: %s", error)
            return
        for volume in volumes:
            try:
                await self.docker.call("DELETE", f"/volumes/{volume['Name']}", params={"force": "1"})
            except DockerError as error:
                log.error("removing volume %s: %s", volume["Name"], error)

    # -- bookkeeping --------------------------------------------------------------------------

    def publish(self, kind, pod):
        self.resource_version += 1
        pod.obj["metadata"]["resourceVersion"] = str(self.resource_version)
        event = (self.resource_version, kind, copy.deepcopy(pod.obj))
        self.history.append(event)
        for queue in self.watchers:
            queue.put_nowait(event)

    def find(self, namespace, name):
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise not_found(name)
        return pod

    def set_container_state(self, pod, index, state, ready=False, last_state=None, restarted=False):
        status = pod.obj["status"]["containerStatuses"][index]
        if last_state is not None:
            status["lastState"] = last_state
        if restarted:
            status["restartCount"] += 1
        status["state"] = state
        status["ready"] = ready
        status["started"] = "running" in state
        if pod.container_ids[index]:
            status["containerID"] = "docker://" + pod.container_ids[index]

    def refresh_phase(self, pod):
        """Derives the phase and conditions from the container states, as the kubelet does."""
        status = pod.obj["status"]
        states = [cs["state"] for cs in status["containerStatuses"]]
        policy = pod.obj["spec"].get("restartPolicy", "Always")
        if not all(pod.started):
            phase = "Pending"
        elif all("terminated" in s for s in states):
            codes = [s["terminated"]["exitCode"] for s in states]
            phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            if policy == "Always" or (policy == "OnFailure" and phase == "Failed"):
                phase = "Running"
        else:
            phase = "Running"
        ready = all("running" in s for s in states) and phase == "Running"
        status["phase"] = phase
        reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        not_ready = [c["name"] for c, s in zip(pod.obj["spec"]["containers"], states) if "running" not in s]
        for condition in status["conditions"]:
            if condition["type"] in ("Ready", "ContainersReady"):
                value = "True" if ready else "False"
                if condition["status"] != value:
                    condition["lastTransitionTime"] = now()
                condition["status"] = value
                if ready:
                    condition.pop("reason", None)
                    condition.pop("message", None)
                else:
                    condition["reason"] = reason
                    condition["message"] = f"containers with unready status: [{' '.join(not_ready)}]"

    # -- pod lifecycle -------------------------------------------------------------------------

    def new_pod(self, body, namespace):
        metadata = copy.deepcopy(body.get("metadata") or {})
        name = metadata.get("name")
        if not name:
            for _ in range(10):
                name = metadata["generateName"][:58] + "".join(random.choices(NAME_ALPHABET, k=5))
                if (namespace, name) not in self.pods:
                    break
        if (namespace, name) in self.pods:
            raise ApiError(409, "AlreadyExists", f'pods "{name}" already exists', {"name": name, "kind": "pods"})
        for key in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "selfLink"):
            metadata.pop(key, None)
        metadata.update(name=name, namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now())
        spec = copy.deepcopy(body["spec"])
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        for container in spec["containers"]:
            container.setdefault("imagePullPolicy", pull_policy(container["image"]))
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
        pod = Pod({"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec,
                   "status": {"phase": "Pending", "qosClass": "BestEffort"}})
        self.pods[pod.key] = pod
        self.publish("ADDED", pod)
        pod.setup_task = asyncio.create_task(self.setup_pod(pod))
        return pod

    async def setup_pod(self, pod):
        """Schedules the pod, creates and starts its containers, then supervises them. It checks
        pod.deleting between Docker calls so that a delete can wait for it without races."""
        spec, status = pod.obj["spec"], pod.obj["status"]
        await asyncio.sleep(0)
        for volume in spec.get("volumes") or []:
            if "persistentVolumeClaim" not in volume:
                continue
            claim = volume["persistentVolumeClaim"]["claimName"]
            pod.volumes[volume["name"]] = self.claim_volume(pod.key[0], claim)
            if pod.volumes[volume["name"]] is None:
                # As the scheduler: the pod waits (a claim made later is not looked at again here).
                status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                         "message": f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.',
                                         "lastProbeTime": None, "lastTransitionTime": now()}]
                self.publish("MODIFIED", pod)
                return
        spec["nodeName"] = NODE_NAME
        status.update(hostIP="127.0.0.1", startTime=now(), conditions=[
            {"type": t, "status": "True" if t in ("PodScheduled", "Initialized") else "False",
             "lastProbeTime": None, "lastTransitionTime": now()}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")])
        status["containerStatuses"] = [
            {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
             "started": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
            for c in spec["containers"]]
        self.refresh_phase(pod)
        self.publish("MODIFIED", pod)
        try:
            images = []
            for i, container in enumerate(spec["containers"]):
                try:
                    image = await self.docker.call("GET", f"/images/{quote(container['image'], safe='')}/json")
                    images.append(image)
                    status["containerStatuses"][i]["imageID"] = "docker://" + image["Id"]
                except DockerError as error:
                    if error.status != 404:
                        raise
                    policy = container["imagePullPolicy"]
                    reason, message = ("ErrImageNeverPull", f'Container image "{container["image"]}" is not '
                                       "present with pull policy of Never") if policy == "Never" else (
                        "ErrImagePull", f'failed to pull and unpack image "{container["image"]}": this test API '
                        "server never pulls images and the image is not present on the Docker engine")
                    self.set_container_state(pod, i, {"waiting": {"reason": reason, "message": message}})
            if len(images) < len(spec["containers"]) or pod.deleting:
                self.refresh_phase(pod)
                if not pod.deleting:
                    self.publish("MODIFIED", pod)
                return
            for i, container in enumerate(spec["containers"]):
                if pod.deleting:
                    return
                config = self.container_config(pod, i, images[i])
                metadata = pod.obj["metadata"]
                docker_name = f"k8s_{container['name']}_{metadata['name']}_{metadata['namespace']}_{metadata['uid'][:8]}"
                created = await self.docker.call("POST", "/containers/create", config, params={"name": docker_name})
                pod.container_ids[i] = created["Id"]
                await self.start_container(pod, i)
            if pod.deleting:
                return
            if self.report_pod_ip:
                inspect = await self.docker.call("GET", f"/containers/{pod.container_ids[0]}/json")
                status["podIP"] = inspect["NetworkSettings"].get("IPAddress") or "127.0.0.1"
                status["podIPs"] = [{"ip": status["podIP"]}]
            self.refresh_phase(pod)
            self.publish("MODIFIED", pod)
        except DockerError as error:
            log.error("pod %s/%s: %s", *pod.key, error)
            if not pod.deleting:
                status["message"] = str(error)
                self.publish("MODIFIED", pod)
            return
        pod.supervisors = [asyncio.create_task(self.supervise(pod, i)) for i in range(len(spec["containers"]))]

    def container_config(self, pod, index, image):
        container = pod.obj["spec"]["containers"][index]
        metadata = pod.obj["metadata"]
        env = [f"{e['name']}={e.get('value', '')}" for e in container.get("env") or []]
        env += [f"HOSTNAME={metadata['name'][:63]}", "KUBERNETES_SERVICE_HOST=127.0.0.1", "KUBERNETES_SERVICE_PORT=443"]
        config = {
            "Image": image["Id"], "Env": env,
            "OpenStdin": bool(container.get("stdin")), "StdinOnce": bool(container.get("stdinOnce")),
            "AttachStdin": bool(container.get("stdin")), "AttachStdout": True, "AttachStderr": True,
            "Tty": bool(container.get("tty")),
            "Labels": {INSTANCE_LABEL: self.instance, POD_UID_LABEL: metadata["uid"],
                       "berth-test.pod": f"{metadata['namespace']}/{metadata['name']}",
                       "berth-test.container": container["name"]},
            "HostConfig": {},
        }
        if "command" in container:
            config["Entrypoint"] = container["command"]
            config["Cmd"] = container.get("args") or []
        elif "args" in container:
            config["Cmd"] = container["args"]
        if container.get("workingDir"):
            config["WorkingDir"] = container["workingDir"]
        security = {**(pod.obj["spec"].get("securityContext") or {}), **(container.get("securityContext") or {})}
        if "runAsUser" in security:
            config["User"] = str(security["runAsUser"]) + (
                f":{security['runAsGroup']}" if "runAsGroup" in security else "")
        capabilities = security.get("capabilities") or {}
        if capabilities.get("drop"):
            config["HostConfig"]["CapDrop"] = capabilities["drop"]
        if capabilities.get("add"):
            config["HostConfig"]["CapAdd"] = capabilities["add"]
        if security.get("allowPrivilegeEscalation") is False:
            config["HostConfig"]["SecurityOpt"] = ["no-new-privileges:true"]
        mounts = [{"Type": "volume", "Source": pod.volumes[m["name"]], "Target": m["mountPath"],
                   "ReadOnly": bool(m.get("readOnly")), "VolumeOptions": {"NoCopy": True}}
                  for m in container.get("volumeMounts") or []]
        if mounts:
            config["HostConfig"]["Mounts"] = mounts
        memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if memory:
            config["HostConfig"]["Memory"] = memory_bytes(memory)
        if index == 0:
            config["Hostname"] = metadata["name"][:63]
        else:
            config["HostConfig"]["NetworkMode"] = f"container:{pod.container_ids[0]}"
        return config

    async def start_container(self, pod, index, restarted=False, last_state=None):
        cid = pod.container_ids[index]
        try:
            await self.docker.call("POST", f"/containers/{cid}/start")
        except DockerError as error:
            if error.status == 304:
                pass
            elif error.status in (400, 500):
                # The kubelet reports an unrunnable command as a terminated StartError.
                pod.started[index] = True
                self.set_container_state(pod, index, {"terminated": {
                    "exitCode": 128, "reason": "StartError", "message": error.message,
                    "startedAt": now(), "finishedAt": now(), "containerID": "docker://" + cid}},
                    last_state=last_state, restarted=restarted)
                return
            else:
                raise
        inspect = await self.docker.call("GET", f"/containers/{cid}/json")
        pod.started[index] = True
        self.set_container_state(pod, index, {"running": {"startedAt": docker_time(inspect["State"]["StartedAt"]) or now()}},
                                 ready=True, last_state=last_state, restarted=restarted)

    async def supervise(self, pod, index):
        """Waits for a container to end, records it, and restarts it as restartPolicy says."""
        policy = pod.obj["spec"].get("restartPolicy", "Always")
        backoff = 1
        cid = pod.container_ids[index]
        try:
            while True:
                if "running" in pod.obj["status"]["containerStatuses"][index]["state"]:
                    await self.docker.call("POST", f"/containers/{cid}/wait", params={"condition": "not-running"})
                    state = (await self.docker.call("GET", f"/containers/{cid}/json"))["State"]
                    code = state["ExitCode"]
                    terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                  "startedAt": docker_time(state["StartedAt"]), "finishedAt": docker_time(state["FinishedAt"]) or now(),
                                  "containerID": "docker://" + cid}
                    if state.get("OOMKilled"):
                        terminated["reason"] = "OOMKilled"
                    self.set_container_state(pod, index, {"terminated": terminated})
                terminated = pod.obj["status"]["containerStatuses"][index]["state"]["terminated"]
                restart = policy == "Always" or (policy == "OnFailure" and terminated["exitCode"] != 0)
                if restart:
                    self.set_container_state(pod, index, {"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {backoff}s restarting failed container={pod.obj['spec']['containers'][index]['name']} pod={pod.name}"}},
                        last_state={"terminated": terminated})
                self.refresh_phase(pod)
                self.publish("MODIFIED", pod)
                if not restart:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                await self.start_container(pod, index, restarted=True, last_state={"terminated": terminated})
                self.refresh_phase(pod)
                self.publish("MODIFIED", pod)
        except DockerError as error:
            log.warning("pod %s/%s container %d: %s", *pod.key, index, error)

    async def delete_pod(self, pod, grace=None):
        """Deletes the pod once, whoever asks (and however often); a client that goes away does
        not interrupt the deletion."""
        if pod.delete_task is None:
            pod.delete_task = asyncio.create_task(self.remove_pod(pod, grace))
        return await asyncio.shield(pod.delete_task)

    async def remove_pod(self, pod, grace):
        """Marks the pod deleted, waits for its setup to stop, removes its Docker containers and
        reports DELETED. DELETE answers after this, so that the containers are gone by then."""
        pod.deleting = True
        metadata = pod.obj["metadata"]
        metadata["deletionTimestamp"] = now()
        metadata["deletionGracePeriodSeconds"] = pod.obj["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace
        self.publish("MODIFIED", pod)
        response = copy.deepcopy(pod.obj)
        if pod.setup_task:
            with contextlib.suppress(Exception):
                await asyncio.shield(pod.setup_task)
        for task in pod.supervisors:
            task.cancel()
        await asyncio.gather(*pod.supervisors, return_exceptions=True)
        await self.remove_containers(f"{POD_UID_LABEL}={metadata['uid']}")
        for i, cs in enumerate(pod.obj["status"].get("containerStatuses", [])):
            if "running" in cs["state"]:
                self.set_container_state(pod, i, {"terminated": {
                    "exitCode": 137, "reason": "Error", "startedAt": cs["state"]["running"]["startedAt"],
                    "finishedAt": now(), "containerID": cs.get("containerID", "")}})
        if pod.obj["status"].get("containerStatuses"):
            self.refresh_phase(pod)
        self.pods.pop(pod.key, None)
        self.publish("DELETED", pod)
        # The garbage collector (background propagation): pods that name this one as an owner go too.
        for dependent in list(self.pods.values()):
            if any(owner.get("uid") == metadata["uid"] for owner in dependent.obj["metadata"].get("ownerReferences") or []):
                asyncio.create_task(self.delete_pod(dependent))
        return response

    async def remove_containers(self, label):
        """Removes (force) every container carrying the label, newest first so that pod
        containers go before the one whose network namespace they share."""
        filters = json.dumps({"label": [label]})
        try:
            containers = await self.docker.call("GET", "/containers/json", params={"all": "1", "filters": filters})
        except DockerError as error:
            log.error("listing containers: %s", error)
            return
        for container in containers:
            try:
                await self.docker.call("DELETE", f"/containers/{container['Id']}", params={"force": "1", "v": "1"})
            except DockerError as error:
                if error.status != 404:
                    log.error("removing container %s: %s", container["Id"][:12], error)

    async def shutdown(self):
        self.closing = True
        for queue in self.watchers:
            queue.put_nowait(None)
        await asyncio.gather(*(self.delete_pod(pod) for pod in list(self.pods.values())), return_exceptions=True)
        await self.remove_containers(f"{INSTANCE_LABEL}={self.instance}")
        await self.remove_volumes()

    # -- HTTP handlers -------------------------------------------------------------------------

    def authenticated(self, request):
        if not self.token and not self.client_ca:
            return True
        header = request.headers.get("Authorization", "")
        if self.token and header == f"Bearer {self.token}":
            return True
        if self.client_ca and request.transport is not None:
            if request.transport.get_extra_info("peercert"):
                return True
        return False

    @web.middleware
    async def middleware(self, request, handler):
        try:
            if not self.authenticated(request):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await handler(request)
        except ApiError as error:
            return error.response()
        except web.HTTPNotFound:
            return ApiError(404, "NotFound", "the server could not find the requested resource").response()
        except web.HTTPMethodNotAllowed as error:
            return ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({error.method})").response()

    async def version(self, request):
        return web.json_response({
            "major": "1", "minor": "31", "gitVersion": "v1.31.0-berth-test", "gitCommit": "0" * 40,
            "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
            "compiler": "gc", "platform": "linux/amd64"})

    async def api(self, request):
        return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.listen}]})

    async def apis(self, request):
        groups = sorted({k.group for k in kube_objects.KINDS if k.group})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]})

    async def api_group(self, request):
        group = request.match_info["group"]
        resources = kube_objects.discovery(group)
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return web.json_response({"kind": "APIResourceList", "groupVersion": f"{group}/v1", "resources": resources})

    def next_version(self):
        self.resource_version += 1
        return self.resource_version

    async def api_v1(self, request):
        def resource(name, kind, verbs, namespaced=True):
            return {"name": name, "singularName": "" if "/" in name else name.rstrip("s"), "namespaced": namespaced,
                    "kind": kind, "verbs": verbs}
        return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            {**resource("pods", "Pod", ["create", "delete", "deletecollection", "get", "list", "patch", "watch"]), "shortNames": ["po"]},
            resource("pods/attach", "PodAttachOptions", ["create", "get"]),
            resource("pods/exec", "PodExecOptions", ["create", "get"])] + kube_objects.discovery("")})

    async def healthz(self, request):
        return web.Response(text="ok")

    async def create_pod(self, request):
        if self.closing:
            raise ApiError(503, "ServiceUnavailable", "the server is shutting down")
        namespace = request.match_info["namespace"]
        try:
            body = await request.json()
        except ValueError as error:
            raise bad_request(f"the body of the request was in an unknown format: {error}")
        validate_pod(body, namespace)
        pod = self.new_pod(body, namespace)
        log.info("created pod %s/%s", namespace, pod.name)
        return web.json_response(pod.obj, status=201)

    async def get_pod(self, request):
        return web.json_response(self.find(request.match_info["namespace"], request.match_info["name"]).obj)

    def selector(self, request):
        namespace = request.match_info.get("namespace")
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        return lambda pod: ((namespace is None or pod["metadata"]["namespace"] == namespace)
                            and labels(pod["metadata"].get("labels")) and fields(pod))

    async def list_pods(self, request):
        match = self.selector(request)
        if flag(request, "watch"):
            return await self.watch_pods(request, match)
        items = [copy.deepcopy(p.obj) for _, p in sorted(self.pods.items()) if match(p.obj)]
        return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.resource_version)}, "items": items})

    async def watch_pods(self, request, match):
        timeout = request.query.get("timeoutSeconds")
        since = request.query.get("resourceVersion", "")
        queue = asyncio.Queue()
        if since in ("", "0"):
            initial = [("ADDED", copy.deepcopy(p.obj)) for _, p in sorted(self.pods.items()) if match(p.obj)]
        else:
            if not since.isdigit():
                raise bad_request(f'invalid resource version "{since}"')
            oldest = self.history[0][0] if self.history else self.resource_version + 1
            if len(self.history) == self.history.maxlen and int(since) < oldest - 1:
                initial = [("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                      "message": f"too old resource version: {since} ({oldest - 1})",
                                      "reason": "Expired", "code": 410})]
            else:
                initial = [(kind, obj) for rv, kind, obj in self.history if rv > int(since) and match(obj)]
        self.watchers.add(queue)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout) if timeout else None
        try:
            await response.prepare(request)
            for kind, obj in initial:
                await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            if initial and initial[0][0] == "ERROR":
                return response
            while not self.closing:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if event is None:
                    break
                _, kind, obj = event
                if match(obj):
                    await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.discard(queue)
        return response

    async def patch_pod(self, request):
        """A JSON merge patch of metadata.labels, with metadata.resourceVersion as a precondition."""
        if self.patch_hold > 0:
            waiter = asyncio.get_running_loop().create_future()
            self.held_patches.append(waiter)
            if len(self.held_patches) >= self.patch_hold:
                self.patch_hold = 0
                for held in self.held_patches:
                    held.set_result(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), 60)
        pod = self.find(request.match_info["namespace"], request.match_info["name"])
        if request.content_type != "application/merge-patch+json":
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types "
                           f"include: application/merge-patch+json (this test API server), got {request.content_type}")
        try:
            patch = await request.json()
        except ValueError as error:
            raise bad_request(f"the body of the request was in an unknown format: {error}")
        metadata = patch.get("metadata") if isinstance(patch, dict) else None
        if not isinstance(metadata, dict) or set(patch) != {"metadata"} or not set(metadata) <= {"labels", "resourceVersion"}:
            raise ApiError(422, "Invalid", f'Pod "{pod.name}" is invalid: this test API server patches metadata.labels only')
        sent = metadata.get("resourceVersion")
        if sent is not None and sent != pod.obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods "{pod.name}": the object has been modified; '
                           "please apply your changes to the latest version and try again", {"name": pod.name, "kind": "pods"})
        labels = metadata.get("labels") or {}
        if not isinstance(labels, dict):
            raise ApiError(422, "Invalid", f'Pod "{pod.name}" is invalid: metadata.labels: must be a map')
        for key, value in labels.items():
            if value is not None and (not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value)):
                raise invalid(pod.name, [(f"metadata.labels[{key}]", "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: not a label value")])
        current = pod.obj["metadata"].setdefault("labels", {})
        for key, value in labels.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        self.publish("MODIFIED", pod)
        log.info("relabelled pod %s/%s", *pod.key)
        return web.json_response(pod.obj)

    async def delete_pod_handler(self, request):
        pod = self.find(request.match_info["namespace"], request.match_info["name"])
        grace = request.query.get("gracePeriodSeconds")
        if request.can_read_body:
            with contextlib.suppress(ValueError):
                body = await request.json()
                if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                    grace = body["gracePeriodSeconds"]
                # DeleteOptions.preconditions, as the API server checks them.
                wanted = (body.get("preconditions") or {}).get("resourceVersion") if isinstance(body, dict) else None
                if wanted is not None and wanted != pod.obj["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on pods "{pod.name}": the object has been modified; '
                                   "please apply your changes to the latest version and try again", {"name": pod.name, "kind": "pods"})
        log.info("deleting pod %s/%s", *pod.key)
        return web.json_response(await self.delete_pod(pod, None if grace is None else int(grace)))

    async def delete_collection(self, request):
        match = self.selector(request)
        pods = [p for p in self.pods.values() if match(p.obj)]
        deleted = await asyncio.gather(*(self.delete_pod(p) for p in pods))
        return web.json_response({"kind": "PodList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.resource_version)}, "items": deleted})

    # -- exec and attach ----------------------------------------------------------------------

    async def exec_pod(self, request):
        return await self.stream(request, attach=False)

    async def attach_pod(self, request):
        return await self.stream(request, attach=True)

    async def stream(self, request, attach):
        pod = self.find(request.match_info["namespace"], request.match_info["name"])
        query = request.query
        # PodExecOptions default to false; PodAttachOptions say stdout and stderr default to true.
        stdin, tty = flag(request, "stdin"), flag(request, "tty")
        stdout, stderr = flag(request, "stdout", attach), flag(request, "stderr", attach)
        index = pod.container_index(query.get("container"))
        command = query.getall("command", [])
        if not attach and not command:
            raise bad_request("you must specify at least one command for the container")
        if not (stdin or stdout or stderr):
            raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
        phase = pod.obj["status"].get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot {'attach to' if attach else 'exec into'} a container in a completed pod; current phase is {phase}")
        cid = pod.container_ids[index]
        cname = pod.obj["spec"]["containers"][index]["name"]
        if not cid or "running" not in pod.obj["status"]["containerStatuses"][index]["state"]:
            raise bad_request(f'unable to upgrade connection: container not found ("{cname}")')
        if tty:
            stderr = False  # a terminal merges stderr into stdout, as the kubelet does
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise bad_request("Upgrade request required")
        protocol = next((p for p in offered if p in self.protocols), None)
        if offered and protocol is None:
            raise bad_request(f"unable to upgrade connection: requested protocol(s) are not supported: "
                              f"{offered}; supports {self.protocols}")
        protocol = protocol or "channel.k8s.io"

        if attach:
            tty = pod.tty[index]
            exec_id = None
        else:
            try:
                created = await self.docker.call("POST", f"/containers/{cid}/exec", {
                    "Cmd": command, "AttachStdin": stdin, "AttachStdout": stdout, "AttachStderr": stderr, "Tty": tty})
            except DockerError as error:
                raise internal_error(f"error executing command in container: {error.message}")
            exec_id = created["Id"]

        ws = web.WebSocketResponse(protocols=[protocol] if offered else (), max_msg_size=64 * 1024 * 1024,
                                   autoping=True, timeout=30)
        await ws.prepare(request)
        log.info("%s %s/%s[%s] %s protocol=%r tty=%s", "attach" if attach else "exec", *pod.key, cname,
                 command, ws.ws_protocol, tty)
        # What an API server's audit log keeps: the whole request line (aiohttp's access log
        # leaves out upgraded WebSocket requests).
        log.info("stream request %s", request.path_qs)
        stream = Stream(self.docker, ws, protocol, cid, exec_id, stdin, tty)
        try:
            await stream.run(command)
        finally:
            await ws.close()
        return ws


class Stream:
    """One exec or attach session: WebSocket channels <-> a hijacked Docker stream."""

    def __init__(self, docker, ws, protocol, container_id, exec_id, stdin, tty):
        self.docker, self.ws, self.protocol = docker, ws, protocol
        self.container_id, self.exec_id, self.stdin, self.tty = container_id, exec_id, stdin, tty
        self.writer = None
        self.held = None  # Docker's "OCI runtime exec failed" text, held until the exec's fate is known
        self.sent_output = False

    async def send(self, channel, data):
        await self.ws.send_bytes(bytes([channel]) + data)

    async def emit(self, channel, data):
        if self.exec_id and not self.sent_output and self.held is None and data.startswith(b"OCI runtime exec failed"):
            self.held = data
            return
        if self.held is not None:
            await self.send(STDOUT, self.held)
            self.held = None
        self.sent_output = True
        await self.send(channel, data)

    async def run(self, command):
        try:
            if self.exec_id:
                reader, self.writer = await self.docker.hijack(f"/exec/{self.exec_id}/start", {"Detach": False, "Tty": self.tty})
            else:
                reader, self.writer = await self.docker.hijack(f"/containers/{self.container_id}/attach", params={
                    "stream": "1", "stdin": "1" if self.stdin else "0", "stdout": "1", "stderr": "1"})
        except (DockerError, OSError) as error:
            await self.write_status(internal_error(f"error {'executing command in' if self.exec_id else 'attaching to'} container: {error}").status())
            return
        input_task = asyncio.create_task(self.pump_input())
        try:
            output = asyncio.create_task(demultiplex(reader, self.tty, self.emit))
            done, _ = await asyncio.wait({output, input_task}, return_when=asyncio.FIRST_COMPLETED)
            if output not in done:
                # The client went away: drop the Docker stream too (the process gets EOF/SIGPIPE).
                output.cancel()
                return
            await output
            await self.write_status(await self.final_status(command))
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            input_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await input_task
            self.writer.close()

    async def pump_input(self):
        """Client messages: stdin data, terminal resizes, v5 channel close. Handled in order, so a
        resize is applied before the stdin bytes that follow it."""
        async for message in self.ws:
            if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            data = message.data if message.type == WSMsgType.BINARY else message.data.encode()
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and self.stdin and payload:
                try:
                    self.writer.write(payload)
                    await self.writer.drain()
                except (ConnectionResetError, BrokenPipeError):
                    pass
            elif channel == RESIZE and self.protocol not in ("channel.k8s.io", "v2.channel.k8s.io"):
                await self.resize(payload)
            elif channel == CLOSE and self.protocol == "v5.channel.k8s.io" and payload[:1] == bytes([STDIN]):
                if self.writer.can_write_eof() and not self.writer.is_closing():
                    self.writer.write_eof()

    async def resize(self, payload):
        try:
            size = json.loads(payload)
            params = {"h": str(int(size["Height"])), "w": str(int(size["Width"]))}
        except (ValueError, KeyError, TypeError):
            log.warning("bad resize message %r", payload[:100])
            return
        path = f"/exec/{self.exec_id}/resize" if self.exec_id else f"/containers/{self.container_id}/resize"
        for _ in range(40):  # the exec may not have started yet right after the upgrade
            try:
                await self.docker.call("POST", path, params=params)
                return
            except DockerError as error:
                last = error
                await asyncio.sleep(0.05)
        log.warning("resize failed: %s", last)

    async def final_status(self, command):
        if not self.exec_id:
            if self.held is not None:
                await self.send(STDOUT, self.held)
            return {"metadata": {}, "status": "Success"}
        delay = 0.02
        while True:  # the output can end before the process does; wait for its exit, as the kubelet does
            try:
                info = await self.docker.call("GET", f"/exec/{self.exec_id}/json")
            except DockerError:  # the container went away (pod deleted): killed
                info = {"Running": False, "ExitCode": 137, "Pid": -1}
            if not info["Running"] and info["ExitCode"] is not None:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1)
        code = info["ExitCode"]
        if info.get("Pid", 0) == 0 and code in (126, 127) and self.held is not None:
            reason = self.held.decode(errors="replace").strip()
            return internal_error(f'error executing command in container: failed to exec in container: '
                                  f'failed to start exec "{self.exec_id}": {reason}').status()
        if self.held is not None:
            await self.send(STDOUT, self.held)
        if code == 0:
            return {"metadata": {}, "status": "Success"}
        return {"metadata": {}, "status": "Failure",
                "message": f"command terminated with non-zero exit code: error executing command "
                           f"[{' '.join(command)}], exit code {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}

    async def write_status(self, status):
        if status.get("status") == "Success" and self.protocol in ("channel.k8s.io", "v2.channel.k8s.io", "v3.channel.k8s.io"):
            return  # the old protocols report only failures, as plain text
        if self.protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            data = json.dumps(status).encode()
        else:
            data = status.get("message", "").encode()
        await self.send(ERROR, data)


# ---------------------------------------------------------------------------------------------

def build_app(server):
    app = web.Application(middlewares=[server.middleware], client_max_size=16 * 1024 * 1024)
    ns_pods = "/api/v1/namespaces/{namespace}/pods"
    for path, handler in (("/version", server.version), ("/api", server.api), ("/apis", server.apis),
                          ("/api/v1", server.api_v1)):
        app.router.add_get(path, handler)
        app.router.add_get(path + "/", handler)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, server.healthz)
    app.router.add_get("/api/v1/pods", server.list_pods)
    app.router.add_get(ns_pods, server.list_pods)
    app.router.add_post(ns_pods, server.create_pod)
    app.router.add_delete(ns_pods, server.delete_collection)
    app.router.add_get(ns_pods + "/{name}", server.get_pod)
    app.router.add_delete(ns_pods + "/{name}", server.delete_pod_handler)
    app.router.add_patch(ns_pods + "/{name}", server.patch_pod)
    for verb, handler in (("exec", server.exec_pod), ("attach", server.attach_pod)):
        app.router.add_get(f"{ns_pods}/{{name}}/{verb}", handler)
        app.router.add_post(f"{ns_pods}/{{name}}/{verb}", handler)
    app.router.add_get("/apis/{group}/v1", server.api_group)
    server.objects = kube_objects.register(app, sys.modules[__name__], server.next_version, hooks={
        "persistentvolumeclaims": (server.claim_created, server.claim_deleted)})
    return app


async def serve(args):
    host, port = args.listen.rsplit(":", 1)
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ssl_context.load_verify_locations(args.client_ca)
            ssl_context.verify_mode = ssl.CERT_OPTIONAL
    docker = NoEngine() if args.docker_socket == "none" else Docker(args.docker_socket)
    await docker.open()
    await docker.call("GET", "/version")
    server = KubeServer(docker, args.instance, args.token, args.client_ca, args.listen,
                        [p.strip() for p in args.protocols.split(",") if p.strip()])
    server.patch_hold = args.hold_patches
    server.report_pod_ip = not args.no_pod_ip
    runner = web.AppRunner(build_app(server), handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=5, access_log=log)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s://%s instance=%s", "https" if ssl_context else "http", args.listen, args.instance)
    await stop.wait()
    log.info("stopping: removing the containers of instance %s", args.instance)
    await server.shutdown()
    await runner.cleanup()
    await server.remove_containers(f"{INSTANCE_LABEL}={args.instance}")
    await server.remove_volumes()
    await docker.close()
    log.info("stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--token", help="require Authorization: Bearer TOKEN")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--client-ca", help="accept client certificates signed by this CA as authentication")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="the streaming subprotocols to accept, comma-separated (to test a client's fallback)")
    parser.add_argument("--instance", default=secrets.token_hex(6), help="value of the berth-test.kube-apiserver label")
    default_socket = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parser.add_argument("--docker-socket", default=default_socket.removeprefix("unix://"),
                        help="the engine's socket; none: no engine, so pods never get their image")
    parser.add_argument("--no-pod-ip", action="store_true",
                        help="never report a pod's IP (as before a network plugin gives one; to test a client's fallback)")
    parser.add_argument("--hold-patches", type=int, default=0, metavar="N",
                        help="hold the first N pod patches until all N have arrived (to make adopters race)")
    args = parser.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        parser.error("--tls-cert and --tls-key go together; --client-ca needs them")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
