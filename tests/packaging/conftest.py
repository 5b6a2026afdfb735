"""Fixtures of the packaging tests (docs/packaging.md): what packaging/build.sh made (release
binaries, the .deb, berth:latest) in packaging/out, an OpenSSH client key, and the guest image of
scripts/test.sh. Artifacts that are missing fail the tests (they are never skipped).

The integration fixtures' module is loaded under its own name, as tests/clients does."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "tests" / "integration"
sys.path.insert(0, str(INTEGRATION))
_spec = importlib.util.spec_from_file_location("berth_integration_conftest", INTEGRATION / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)

from docker_helpers import GUEST, docker  # noqa: E402

pytest_runtest_makereport = integration.pytest_runtest_makereport
# kube_helpers imports Process, free_port and wait_for_port from "conftest", which is this module here.
Process, free_port, wait_for_port, wait_until, make_key, SSH_OPTS = (
    integration.Process, integration.free_port, integration.wait_for_port, integration.wait_until,
    integration.make_key, integration.SSH_OPTS)

OUT = Path(os.environ.get("BERTH_PACKAGING_OUT", ROOT / "packaging" / "out"))
IMAGE = "berth:latest"
LOGIN = "packtester"


def packaging_setting(name):
    """A variable of packaging/common.sh (the debootstrap base tags)."""
    return subprocess.run(["bash", "-c", f'source packaging/common.sh && printf %s "${name}"'], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def ssh(port, key, command, host="127.0.0.1", user=LOGIN, timeout=120):
    args = ["ssh", "-p", str(port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-i", str(key), f"{user}@{host}", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def docker_socket_gid():
    return os.stat("/var/run/docker.sock").st_gid


@pytest.fixture(scope="session")
def release_bin():
    berth = OUT / "bin" / "berth"
    assert berth.is_file(), f"{berth} is missing: run packaging/build.sh first"
    return OUT / "bin"


@pytest.fixture(scope="session")
def version(release_bin):
    return subprocess.run([str(release_bin / "berth"), "version"], capture_output=True, text=True,
                          check=True).stdout.split()[-1]


@pytest.fixture(scope="session")
def deb(version):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    path = OUT / f"berth_{version}_{arch}.deb"
    assert path.is_file(), f"{path} is missing: run packaging/build.sh first"
    return path


@pytest.fixture(scope="session")
def guest_image():
    assert docker("image", "inspect", GUEST, check=False).returncode == 0, \
        f"{GUEST} is missing: run images/build-guest-image.sh first"
    return GUEST


@pytest.fixture
def client_key(tmp_path):
    """An ed25519 key pair: (private key path, public key line)."""
    return make_key(tmp_path, "ed25519")


def guest_containers(hostname):
    """IDs of the containers that the Berth on `hostname` started (berth.server is
    <host name>_<ssh.listen>)."""
    lines = docker("ps", "-a", "--filter", "label=berth.connection-id",
                   "--format", '{{.ID}} {{.Label "berth.server"}}').stdout.splitlines()
    return [line.split()[0] for line in lines if line.split(" ", 1)[-1].startswith(hostname + "_")]
