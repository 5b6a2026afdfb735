"""The test API server's store for the objects a Berth deployment consists of (namespaces, service
accounts, config maps, secrets, services, deployments, roles, role bindings), the Leases Berth
servers hold and the PersistentVolumeClaims of users' volumes: create, get, list, replace (PUT,
with resourceVersion conflicts) and delete, checked with the API server's own validation rules for the fields a deployment of
Berth uses, so that a manifest the real API server would refuse is refused here too. Nothing acts
on them (no controllers: a Deployment makes no pods, a Service no endpoints) except the hooks
kube_apiserver.py passes in (a claim is backed by a Docker volume there, and shown Bound).

kube_apiserver.py calls register(); errors are its ApiError (passed in, as that module may run
as __main__)."""
import base64
import binascii
import copy
import re
import uuid
from datetime import datetime, timezone

from aiohttp import web

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RBAC_GROUP = "rbac.authorization.k8s.io"


class Kind:
    def __init__(self, group, plural, kind, namespaced, validate, name_pattern=DNS_SUBDOMAIN):
        self.group, self.plural, self.kind, self.namespaced = group, plural, kind, namespaced
        self.validate, self.name_pattern = validate, name_pattern

    @property
    def api_version(self):
        return f"{self.group}/v1" if self.group else "v1"

    @property
    def prefix(self):
        return f"/apis/{self.group}/v1" if self.group else "/api/v1"


def _labels(obj, causes):
    for key in ("labels", "annotations"):
        value = obj.get("metadata", {}).get(key)
        if value is not None and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
            causes.append((f"metadata.{key}", "FieldValueInvalid", "must be a map of strings"))


def _no_checks(obj, causes):
    pass


def _config_data(obj, causes, binary):
    for field in ("data", "stringData") if binary else ("data",):
        data = obj.get(field) or {}
        if not isinstance(data, dict):
            causes.append((field, "FieldValueInvalid", "must be a map"))
            continue
        for key, value in data.items():
            if not CONFIG_KEY.match(key):
                causes.append((f"{field}[{key}]", "FieldValueInvalid", "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"))
            if not isinstance(value, str):
                causes.append((f"{field}[{key}]", "FieldValueInvalid", "must be a string"))
            elif binary and field == "data":
                try:
                    base64.b64decode(value, validate=True)
                except binascii.Error:
                    causes.append((f"{field}[{key}]", "FieldValueInvalid", "illegal base64 data"))


def _port_number(value):
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _validate_service(obj, causes):
    spec = obj.get("spec") or {}
    if spec.get("type", "ClusterIP") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(("spec.type", "FieldValueNotSupported", f'Unsupported value: "{spec.get("type")}"'))
    ports = spec.get("ports") or []
    if not ports:
        causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    for i, port in enumerate(ports):
        if not _port_number(port.get("port")):
            causes.append((f"spec.ports[{i}].port", "FieldValueInvalid", "must be between 1 and 65535, inclusive"))
        target = port.get("targetPort", port.get("port"))
        if not (_port_number(target) or (isinstance(target, str) and len(target) <= 15 and IANA_SVC_NAME.match(target))):
            causes.append((f"spec.ports[{i}].targetPort", "FieldValueInvalid", "must be a port number or an IANA service name"))
        if len(ports) > 1 and not port.get("name"):
            causes.append((f"spec.ports[{i}].name", "FieldValueRequired", "Required value"))


def _validate_probe(probe, path, ports, causes):
    get = probe.get("httpGet")
    if get is None:
        return
    port = get.get("port")
    if isinstance(port, str) and port not in ports:
        causes.append((f"{path}.httpGet.port", "FieldValueInvalid", f'port "{port}" is not a named port of the container'))
    elif not isinstance(port, str) and not _port_number(port):
        causes.append((f"{path}.httpGet.port", "FieldValueInvalid", "must be between 1 and 65535, inclusive"))


def _validate_deployment(obj, causes):
    spec = obj.get("spec") or {}
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not match:
        causes.append(("spec.selector", "FieldValueRequired", "Required value"))
    elif any(labels.get(k) != v for k, v in match.items()):
        causes.append(("spec.template.metadata.labels", "FieldValueInvalid", "`selector` does not match template `labels`"))
    pod = template.get("spec") or {}
    volumes = {v.get("name") for v in pod.get("volumes") or []}
    containers = pod.get("containers") or []
    if not containers:
        causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
    for i, container in enumerate(containers):
        path = f"spec.template.spec.containers[{i}]"
        if not DNS_LABEL.match(container.get("name") or ""):
            causes.append((f"{path}.name", "FieldValueInvalid", "must be a DNS label"))
        if not container.get("image"):
            causes.append((f"{path}.image", "FieldValueRequired", "Required value"))
        ports = set()
        for j, port in enumerate(container.get("ports") or []):
            if not _port_number(port.get("containerPort")):
                causes.append((f"{path}.ports[{j}].containerPort", "FieldValueInvalid", "must be between 1 and 65535, inclusive"))
            if "name" in port:
                if len(port["name"]) > 15 or not IANA_SVC_NAME.match(port["name"]):
                    causes.append((f"{path}.ports[{j}].name", "FieldValueInvalid", "must be an IANA service name"))
                ports.add(port["name"])
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in container:
                _validate_probe(container[probe], f"{path}.{probe}", ports, causes)
        for j, mount in enumerate(container.get("volumeMounts") or []):
            if mount.get("name") not in volumes:
                causes.append((f"{path}.volumeMounts[{j}].name", "FieldValueNotFound", f'Not found: "{mount.get("name")}"'))
            if not str(mount.get("mountPath", "")).startswith("/"):
                causes.append((f"{path}.volumeMounts[{j}].mountPath", "FieldValueInvalid", "must be an absolute path"))


def _validate_role(obj, causes):
    for i, rule in enumerate(obj.get("rules") or []):
        if not rule.get("verbs"):
            causes.append((f"rules[{i}].verbs", "FieldValueRequired", "verbs must contain at least one value"))
        if rule.get("resources") and "apiGroups" not in rule:
            causes.append((f"rules[{i}].apiGroups", "FieldValueRequired", "resource rules must supply at least one api group"))


def _validate_role_binding(obj, causes):
    ref = obj.get("roleRef") or {}
    if ref.get("apiGroup") != RBAC_GROUP:
        causes.append(("roleRef.apiGroup", "FieldValueNotSupported", f'Unsupported value: "{ref.get("apiGroup")}"'))
    if ref.get("kind") not in ("Role", "ClusterRole"):
        causes.append(("roleRef.kind", "FieldValueNotSupported", f'Unsupported value: "{ref.get("kind")}"'))
    if not ref.get("name"):
        causes.append(("roleRef.name", "FieldValueRequired", "Required value"))
    for i, subject in enumerate(obj.get("subjects") or []):
        if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
            causes.append((f"subjects[{i}].namespace", "FieldValueRequired", "Required value"))
        if not subject.get("name"):
            causes.append((f"subjects[{i}].name", "FieldValueRequired", "Required value"))


MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _validate_lease(obj, causes):
    spec = obj.get("spec") or {}
    if not isinstance(spec.get("holderIdentity", ""), str):
        causes.append(("spec.holderIdentity", "FieldValueInvalid", "must be a string"))
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        causes.append(("spec.leaseDurationSeconds", "FieldValueInvalid", "must be greater than 0"))
    for field in ("acquireTime", "renewTime"):
        if field in spec and not (isinstance(spec[field], str) and MICRO_TIME.match(spec[field])):
            causes.append((f"spec.{field}", "FieldValueInvalid", f'Invalid value: "{spec[field]}": not a MicroTime (RFC 3339 with 6 fractional digits)'))


QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _validate_claim(obj, causes):
    spec = obj.get("spec") or {}
    modes = spec.get("accessModes")
    if not isinstance(modes, list) or not modes:
        causes.append(("spec.accessModes", "FieldValueRequired", "Required value: at least 1 access mode is required"))
    else:
        for mode in modes:
            if mode not in ACCESS_MODES:
                causes.append(("spec.accessModes", "FieldValueNotSupported", f'Unsupported value: "{mode}"'))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        causes.append(("spec.resources[storage]", "FieldValueRequired", "Required value"))
    elif not isinstance(storage, str) or not QUANTITY.match(storage) or float(QUANTITY.match(storage).group(1)) <= 0:
        causes.append(("spec.resources[storage]", "FieldValueInvalid", f'Invalid value: "{storage}": must be greater than zero'))
    if "storageClassName" in spec and not (isinstance(spec["storageClassName"], str)
                                           and (spec["storageClassName"] == "" or DNS_SUBDOMAIN.match(spec["storageClassName"]))):
        causes.append(("spec.storageClassName", "FieldValueInvalid", f'Invalid value: "{spec["storageClassName"]}"'))


KINDS = [
    Kind("", "namespaces", "Namespace", False, _no_checks, DNS_LABEL),
    Kind("", "serviceaccounts", "ServiceAccount", True, _no_checks),
    Kind("", "configmaps", "ConfigMap", True, lambda o, c: _config_data(o, c, binary=False)),
    Kind("", "secrets", "Secret", True, lambda o, c: _config_data(o, c, binary=True)),
    Kind("", "services", "Service", True, _validate_service, DNS_LABEL),
    Kind("apps", "deployments", "Deployment", True, _validate_deployment),
    Kind(RBAC_GROUP, "roles", "Role", True, _validate_role),
    Kind(RBAC_GROUP, "rolebindings", "RoleBinding", True, _validate_role_binding),
    Kind("coordination.k8s.io", "leases", "Lease", True, _validate_lease),
    Kind("", "persistentvolumeclaims", "PersistentVolumeClaim", True, _validate_claim),
]


class ObjectStore:
    def __init__(self, errors, next_version):
        self.errors = errors
        self.next_version = next_version
        self.objects = {}  # (plural, namespace or "", name) -> object

    def _not_found(self, kind, name):
        return self.errors.ApiError(404, "NotFound", f'{kind.plural} "{name}" not found',
                                    {"name": name, "kind": kind.plural})

    def _require_namespace(self, namespace):
        if ("namespaces", "", namespace) not in self.objects and namespace != "default":
            raise self._not_found(KINDS[0], namespace)

    def create(self, kind, namespace, body):
        if not isinstance(body, dict):
            raise self.errors.bad_request("the body of the request was in an unknown format")
        if body.get("kind") != kind.kind or body.get("apiVersion") != kind.api_version:
            raise self.errors.bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the "
                                          f"expected API version ({kind.api_version}) or kind ({body.get('kind')} is not {kind.kind})")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        if kind.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise self.errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            self._require_namespace(namespace)
            meta["namespace"] = namespace
        causes = []
        if not name:
            causes.append(("metadata.name", "FieldValueRequired", "name or generateName is required"))
        elif not kind.name_pattern.match(name) or len(name) > 253:
            causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}"'))
        _labels(obj, causes)
        kind.validate(obj, causes)
        if causes:
            text = ", ".join(f"{field}: {message}" for field, _, message in causes)
            raise self.errors.ApiError(422, "Invalid", f'{kind.kind} "{name}" is invalid: {text}', {
                "name": name, "kind": kind.kind,
                "causes": [{"reason": reason, "message": message, "field": field} for field, reason, message in causes]})
        key = (kind.plural, namespace if kind.namespaced else "", name)
        if key in self.objects:
            raise self.errors.ApiError(409, "AlreadyExists", f'{kind.plural} "{name}" already exists',
                                       {"name": name, "kind": kind.plural})
        if kind.kind == "Secret":
            data = obj.setdefault("data", {}) or {}
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            obj["data"] = data
            obj.setdefault("type", "Opaque")
        if kind.kind == "Service":
            obj["spec"].setdefault("type", "ClusterIP")
            obj["spec"]["clusterIP"] = f"10.96.{len(self.objects) // 250}.{len(self.objects) % 250 + 1}"
        if kind.kind == "Deployment":
            obj["spec"].setdefault("replicas", 1)
            meta["generation"] = 1
            obj["status"] = {}
        if kind.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        meta.update(uid=str(uuid.uuid4()), resourceVersion=str(self.next_version()),
                    creationTimestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.objects[key] = obj
        return obj

    def replace(self, kind, namespace, name, body):
        """PUT: the whole object anew; a resourceVersion that is not the current one is a conflict."""
        current = self.get(kind, namespace, name)
        if not isinstance(body, dict) or (body.get("metadata") or {}).get("name") != name:
            raise self.errors.bad_request("the name of the object does not match the name on the URL")
        sent = (body.get("metadata") or {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise self.errors.ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has been modified; '
                                       "please apply your changes to the latest version and try again", {"name": name, "kind": kind.plural})
        key = (kind.plural, namespace if kind.namespaced else "", name)
        del self.objects[key]
        try:
            obj = self.create(kind, namespace, {**body, "metadata": {k: v for k, v in body["metadata"].items() if k != "resourceVersion"}})
        except Exception:
            self.objects[key] = current
            raise
        obj["metadata"].update(uid=current["metadata"]["uid"], creationTimestamp=current["metadata"]["creationTimestamp"])
        return obj

    def get(self, kind, namespace, name):
        obj = self.objects.get((kind.plural, namespace if kind.namespaced else "", name))
        if obj is None:
            raise self._not_found(kind, name)
        return obj

    def list(self, kind, namespace):
        return [copy.deepcopy(o) for (plural, ns, _), o in sorted(self.objects.items())
                if plural == kind.plural and (namespace is None or ns == namespace)]

    def delete(self, kind, namespace, name):
        obj = self.get(kind, namespace, name)
        del self.objects[(kind.plural, namespace if kind.namespaced else "", name)]
        if kind.kind == "Namespace":
            for key in [k for k in self.objects if k[1] == name]:
                del self.objects[key]
        return obj


def discovery(group):
    """APIResourceList entries of the kinds in `group` ("" is core/v1)."""
    return [{"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced, "kind": k.kind,
             "verbs": ["create", "delete", "get", "list", "update"]} for k in KINDS if k.group == group]


def register(app, errors, next_version, hooks=None):
    """Adds the routes of every kind in KINDS to `app` (after the pod routes, which win).
    hooks: {plural: (created, deleted)}, coroutines called with the stored object after a create
    (a failure undoes it: 500) and after a delete."""
    store = ObjectStore(errors, next_version)
    hooks = hooks or {}

    def handlers(kind):
        def namespace_of(request):
            return request.match_info.get("namespace", "")

        async def create(request):
            try:
                body = await request.json()
            except ValueError as error:
                raise errors.bad_request(f"the body of the request was in an unknown format: {error}")
            obj = store.create(kind, namespace_of(request), body)
            if kind.plural in hooks:
                try:
                    await hooks[kind.plural][0](obj)
                except Exception as error:
                    store.delete(kind, namespace_of(request), obj["metadata"]["name"])
                    raise errors.internal_error(str(error))
            return web.json_response(obj, status=201)

        async def get(request):
            return web.json_response(store.get(kind, namespace_of(request), request.match_info["name"]))

        async def list_(request):
            namespace = request.match_info.get("namespace")
            return web.json_response({"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                                      "metadata": {"resourceVersion": str(next_version())},
                                      "items": store.list(kind, namespace)})

        async def delete(request):
            obj = store.delete(kind, namespace_of(request), request.match_info["name"])
            if kind.plural in hooks:
                await hooks[kind.plural][1](obj)
                # As the real API server answers for claims: the object as it was deleted.
                return web.json_response(obj)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})

        async def replace(request):
            try:
                body = await request.json()
            except ValueError as error:
                raise errors.bad_request(f"the body of the request was in an unknown format: {error}")
            return web.json_response(store.replace(kind, namespace_of(request), request.match_info["name"], body))

        return create, get, list_, delete, replace

    for kind in KINDS:
        create, get, list_, delete, replace = handlers(kind)
        base = f"{kind.prefix}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{kind.prefix}/{kind.plural}"
        app.router.add_post(base, create)
        app.router.add_get(base, list_)
        app.router.add_get(base + "/{name}", get)
        app.router.add_delete(base + "/{name}", delete)
        app.router.add_put(base + "/{name}", replace)
        if kind.namespaced:
            app.router.add_get(f"{kind.prefix}/{kind.plural}", list_)
    return store
