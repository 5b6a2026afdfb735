"""deploy/kubernetes/ applied to the test API server (tests/integration/kube_apiserver.py, which
validates these kinds as the real one does) with the official client, object by object, then read
back: the Deployment's pod spec must give Berth what its configuration (the ConfigMap) and its
image need - the bound service account, probes on the health endpoint, the host keys mounted
where the config looks for them, the config itself, the image's non-root user."""
import json
import posixpath
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client, utils
from kubernetes.client.rest import ApiException

from conftest import IMAGE, ROOT, docker
from kube_helpers import start_kube_apiserver

MANIFESTS = ROOT / "deploy" / "kubernetes"
# What Berth's Kubernetes backend calls (README, "Running on Kubernetes").
NEEDED = {("pods", "create"), ("pods", "get"), ("pods", "list"), ("pods", "watch"), ("pods", "delete"), ("pods", "patch"),
          ("persistentvolumeclaims", "create"), ("persistentvolumeclaims", "get"),
          ("pods/exec", "create"), ("pods/exec", "get"), ("pods/attach", "create"), ("pods/attach", "get"),
          ("leases.coordination.k8s.io", "create"), ("leases.coordination.k8s.io", "get"), ("leases.coordination.k8s.io", "update"),
          ("leases.coordination.k8s.io", "delete")}


@pytest.fixture
def api(tmp_path):
    server = start_kube_apiserver(tmp_path, token="pack-token", engine=False)
    configuration = server.client_configuration()
    yield client.ApiClient(configuration)
    server.stop()


def documents():
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def fill_host_keys(docs, release_bin, tmp_path):
    """The Secret ships empty (docs/packaging.md); an operator fills it with berth keygen."""
    for _, doc in docs:
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == "berth-host-keys":
            key = tmp_path / "ssh_host_ed25519_key"
            subprocess.run([str(release_bin / "berth"), "keygen", "--type", "ed25519", "--output", str(key)],
                           check=True, capture_output=True)
            doc["stringData"] = {"ssh_host_ed25519_key": key.read_text()}
            return key
    raise AssertionError("no berth-host-keys Secret in deploy/kubernetes")


def apply_all(api, docs):
    created = []
    for name, doc in docs:
        try:
            utils.create_from_dict(api, doc)
        except utils.FailToCreateError as error:
            raise AssertionError(f"{name}: {doc['kind']} {doc['metadata']['name']} refused: "
                                 f"{[e.body for e in error.api_exceptions]}")
        created.append((doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]))
    return created


def test_manifests_apply_and_give_berth_what_it_needs(api, release_bin, tmp_path):
    docs = documents()
    fill_host_keys(docs, release_bin, tmp_path)
    created = apply_all(api, docs)
    kinds = {kind for kind, _, _ in created}
    assert kinds == {"Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "Deployment", "Service"}

    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    deployment = apps.read_namespaced_deployment("berth", "berth")
    pod = deployment.spec.template.spec
    assert deployment.spec.selector.match_labels.items() <= deployment.spec.template.metadata.labels.items()

    # The configuration Berth reads is the ConfigMap mounted at the path its args name.
    (container,) = pod.containers
    assert container.image == IMAGE.split(":")[0] + ":latest"
    config_path = container.args[container.args.index("--config") + 1]
    volumes = {v.name: v for v in pod.volumes}
    mounts = {m.mount_path: m for m in container.volume_mounts}
    config_mount = mounts[config_path]
    config_map = core.read_namespaced_config_map(volumes[config_mount.name].config_map.name, "berth")
    config_text = config_map.data[config_mount.sub_path]
    config = yaml.safe_load(config_text)

    # berth itself accepts that configuration.
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_text)
    check = subprocess.run([str(release_bin / "berth"), "config", "check", str(config_file)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    # Host keys: every key the config lists is a key of the mounted Secret, and a real key.
    for path in config["ssh"]["hostkeys"]:
        directory, name = posixpath.split(path)
        assert directory in mounts, f"nothing is mounted at {directory} for {path}"
        volume = volumes[mounts[directory].name]
        assert volume.secret is not None, f"{directory} is not a Secret volume"
        secret = core.read_namespaced_secret(volume.secret.secret_name, "berth")
        assert name in secret.data, f"the Secret {secret.metadata.name} has no key {name}"
        assert mounts[directory].read_only
        assert volume.secret.optional is not True

    # Authorized keys: the pathTemplate's directory is mounted.
    template = config["auth"]["publicKey"]["authorizedKeys"]["pathTemplate"]
    assert posixpath.dirname(template) in mounts

    # Probes on the health endpoint the config enables, reachable from the kubelet.
    assert config["health"]["enable"] is True
    health_host, health_port = config["health"]["listen"].rsplit(":", 1)
    assert health_host in ("0.0.0.0", "[::]")
    ports = {p.name: p.container_port for p in container.ports}
    for probe in (container.readiness_probe, container.liveness_probe):
        assert probe is not None and probe.http_get is not None
        port = probe.http_get.port
        assert ports.get(port, port) == int(health_port)
    ssh_port = int(config["ssh"]["listen"].rsplit(":", 1)[1])
    service = core.read_namespaced_service("berth", "berth")
    assert service.spec.selector.items() <= deployment.spec.template.metadata.labels.items()
    (service_port,) = service.spec.ports
    assert ports.get(service_port.target_port, service_port.target_port) == ssh_port
    # Berth drains sessions for ssh.shutdownTimeout (20s) after SIGTERM.
    assert pod.termination_grace_period_seconds > 20

    # Non-root: the image's user, and nothing that could become root.
    image_user = json.loads(docker("image", "inspect", IMAGE).stdout)[0]["Config"]["User"]
    assert pod.security_context.run_as_non_root is True
    assert f"{pod.security_context.run_as_user}:{pod.security_context.run_as_group}" == image_user
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.security_context.read_only_root_filesystem is True
    # A read-only root needs the state directory writable.
    assert config.get("ssh", {}).get("stateDirectory", "/var/lib/berth") in mounts

    # The service account is bound to a Role in the users' pod namespace with the needed verbs.
    assert pod.service_account_name and pod.automount_service_account_token is not False
    core.read_namespaced_service_account(pod.service_account_name, "berth")
    users_namespace = config["kubernetes"]["pod"]["metadata"]["namespace"]
    core.read_namespace(users_namespace)
    granted = set()
    for binding in rbac.list_namespaced_role_binding(users_namespace).items:
        if any(s.kind == "ServiceAccount" and s.name == pod.service_account_name and s.namespace == "berth"
               for s in binding.subjects):
            assert binding.role_ref.kind == "Role"
            role = rbac.read_namespaced_role(binding.role_ref.name, users_namespace)
            for rule in role.rules:
                for group in rule.api_groups:
                    granted |= {(r + (f".{group}" if group else ""), v) for r in rule.resources for v in rule.verbs}
    assert NEEDED <= granted, f"missing: {sorted(NEEDED - granted)}"


def test_api_server_refuses_what_a_real_one_would(api, release_bin, tmp_path):
    """The checks above mean something only if a broken manifest is refused."""
    docs = documents()
    fill_host_keys(docs, release_bin, tmp_path)
    namespaces = [doc for _, doc in docs if doc["kind"] == "Namespace"]
    for doc in namespaces:
        utils.create_from_dict(api, doc)
    deployment = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].append({"name": "nope", "mountPath": "/x"})
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = "missing"
    with pytest.raises(utils.FailToCreateError) as refused:
        utils.create_from_dict(api, broken)
    body = refused.value.api_exceptions[0].body
    assert "volumeMounts[5].name" in body and "livenessProbe.httpGet.port" in body
    binding = next(doc for _, doc in docs if doc["kind"] == "RoleBinding")
    broken = json.loads(json.dumps(binding))
    del broken["subjects"][0]["namespace"]
    with pytest.raises(utils.FailToCreateError):
        utils.create_from_dict(api, broken)
    # A namespaced object in a namespace that does not exist is not found.
    config_map = next(doc for _, doc in docs if doc["kind"] == "ConfigMap")
    orphan = json.loads(json.dumps(config_map))
    orphan["metadata"]["namespace"] = "nowhere"
    with pytest.raises(utils.FailToCreateError) as refused:
        utils.create_from_dict(api, orphan)
    assert refused.value.api_exceptions[0].status == 404
    # Created once, a second create conflicts.
    utils.create_from_dict(api, config_map)
    with pytest.raises(utils.FailToCreateError) as refused:
        utils.create_from_dict(api, config_map)
    assert refused.value.api_exceptions[0].status == 409
    assert isinstance(refused.value.api_exceptions[0], ApiException)
