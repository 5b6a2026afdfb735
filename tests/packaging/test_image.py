"""Berth's own image (packaging/build-image.sh): run with the engine's socket mounted, it turns
healthy through its HEALTHCHECK (berth healthcheck), runs as a non-root user and serves a login
into a guest container, which is gone after logout. The Compose file (deploy/compose) is
validated by docker-compose and brought up the same way."""
import json
import os
import secrets
import shutil
import subprocess

import pytest
import yaml

from conftest import IMAGE, LOGIN, ROOT, docker, docker_socket_gid, free_port, guest_containers, ssh, wait_until

COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"


def health(container):
    state = json.loads(docker("inspect", container).stdout)[0]["State"]
    return state.get("Health", {}).get("Status"), state["Running"]


def keys_directory(tmp_path, public_key):
    """An authorized_keys directory the image's user (10001) can read."""
    directory = tmp_path / "authorized_keys"
    directory.mkdir()
    (directory / LOGIN).write_text(public_key + "\n")
    for path in (tmp_path, directory):
        path.chmod(0o755)
    (directory / LOGIN).chmod(0o644)
    return directory


def container_logs(container):
    logs = docker("logs", container, check=False)
    return (logs.stdout + logs.stderr)[-4000:]


def login_and_leave(port, key, hostname, container):
    result = ssh(port, key, "id -un; cat /etc/os-release | head -1")
    assert result.returncode == 0, (result.stderr, container_logs(container))
    assert result.stdout.splitlines()[0] == LOGIN
    # The guest container of that login is removed when the connection ends.
    assert wait_until(lambda: guest_containers(hostname) == [], timeout=60), guest_containers(hostname)


def test_image_metadata(release_bin):
    config = json.loads(docker("image", "inspect", IMAGE).stdout)[0]["Config"]
    user = config["User"]
    assert user and user.split(":")[0] not in ("", "0", "root")
    assert config["Healthcheck"]["Test"][:3] == ["CMD", "/usr/bin/berth", "healthcheck"]
    assert config["Entrypoint"] == ["/usr/bin/berth"]
    # The image's own config is valid for the berth it carries.
    check = docker("run", "--rm", "--entrypoint", "/usr/bin/berth", IMAGE, "config", "check", "/etc/berth/config.yaml",
                   check=False)
    assert check.returncode == 0, check.stderr


def test_image_serves_a_login_and_turns_healthy(tmp_path, client_key, guest_image):
    key, public = client_key
    port = free_port()
    name = f"berth-pack-image-{secrets.token_hex(4)}"
    run = docker("run", "-d", "--name", name, "--hostname", name, "--group-add", str(docker_socket_gid()),
                 "-v", "/var/run/docker.sock:/var/run/docker.sock",
                 "-v", f"{keys_directory(tmp_path, public)}:/etc/berth/authorized_keys:ro",
                 "-p", f"127.0.0.1:{port}:2222", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                 # Host keys are generated here on first start (a volume keeps them in production).
                 "--tmpfs", "/var/lib/berth:uid=10001,gid=10001,mode=0700",
                 "--security-opt", "no-new-privileges:true", IMAGE, check=False)
    assert run.returncode == 0, run.stderr
    try:
        assert wait_until(lambda: health(name) == ("healthy", True), timeout=120), \
            (health(name), docker("logs", name).stderr[-3000:])
        uid = docker("exec", name, "id", "-u").stdout.strip()
        assert uid != "0"
        main_uid = docker("exec", name, "sh", "-c", "awk '/^Uid:/ {print $2}' /proc/1/status").stdout.strip()
        assert main_uid == uid
        inspect = json.loads(docker("inspect", name).stdout)[0]
        assert inspect["Config"]["User"].split(":")[0] == uid
        login_and_leave(port, key, name, name)
        # Host keys were generated on first start in the state directory.
        keys = docker("exec", name, "ls", "/var/lib/berth").stdout.split()
        assert {"ssh_host_ed25519_key", "ssh_host_ecdsa_key", "ssh_host_rsa_key"} <= set(keys)
    finally:
        logs = docker("logs", name, check=False)
        docker("rm", "-f", name, check=False)
    assert guest_containers(name) == [], logs.stdout[-2000:]


def compose(*args, env):
    return subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), *args], capture_output=True, text=True, env=env)


def test_compose_file_validates_and_serves(tmp_path, client_key, guest_image):
    assert shutil.which("docker-compose"), "docker-compose is missing (scripts/install-test-deps.sh installs it)"
    key, public = client_key
    port = free_port()
    project = f"berthpack{secrets.token_hex(4)}"
    base_env = {**os.environ, "BERTH_SSH_PORT": str(port),
                "BERTH_AUTHORIZED_KEYS": str(keys_directory(tmp_path, public))}
    base_env.pop("DOCKER_GID", None)

    missing = compose("-p", project, "config", env=base_env)
    assert missing.returncode != 0 and "DOCKER_GID" in missing.stderr

    env = {**base_env, "DOCKER_GID": str(docker_socket_gid())}
    rendered = compose("-p", project, "config", env=env)
    assert rendered.returncode == 0, rendered.stderr
    service = yaml.safe_load(rendered.stdout)["services"]["berth"]
    assert service["image"] == IMAGE
    assert str(docker_socket_gid()) in [str(g) for g in service["group_add"]]
    assert any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in service["volumes"])

    up = compose("-p", project, "up", "-d", env=env)
    try:
        assert up.returncode == 0, up.stderr
        container = compose("-p", project, "ps", "-q", "berth", env=env).stdout.strip()
        assert container
        assert wait_until(lambda: health(container) == ("healthy", True), timeout=120), \
            (health(container), docker("logs", container).stderr[-3000:])
        login_and_leave(port, key, "berth", container)
    finally:
        down = compose("-p", project, "down", "-v", "--timeout", "30", env=env)
    assert down.returncode == 0, down.stderr
    assert docker("ps", "-a", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.strip() == ""
