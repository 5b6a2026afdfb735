"""Fixtures for the guest agent tests (see agent_helpers.py for the runners and the environment
variables they honour)."""
import os
import subprocess
import uuid

import pytest

from agent_helpers import IMAGE, IN_IMAGE, ROOT, TEST_LABEL, ContainerAgent, HostAgent, docker, docker_available, wait_until


@pytest.fixture(scope="session")
def host_binary():
    binary = os.environ.get("BERTH_AGENT_BIN")
    if binary:
        return binary
    subprocess.run(["swift", "build", "--product", "berth-agent"], cwd=ROOT, check=True, capture_output=True, timeout=900)
    bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout.strip()
    return os.path.join(bin_path, "berth-agent")


@pytest.fixture(scope="session")
def busybox_image():
    if not docker_available():
        pytest.skip("no Docker engine (scripts/ensure-docker.sh starts one)")
    if os.environ.get("BERTH_SKIP_IMAGE_BUILD") != "1":
        for script in ("images/build-agent.sh", "images/build-test-image.sh"):
            result = subprocess.run([os.path.join(ROOT, script)], cwd=ROOT, capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    docker("image", "inspect", IMAGE)
    return IMAGE


@pytest.fixture(params=["host", "busybox"])
def agent(request):
    if request.param == "host":
        yield HostAgent(request.getfixturevalue("host_binary"))
    else:
        request.getfixturevalue("busybox_image")
        runner = ContainerAgent()
        try:
            yield runner
        finally:
            runner.remove_all()


@pytest.fixture
def idle_container(busybox_image):
    """A berth-busybox container whose PID 1 is `wait-signal --signal TERM`, like Berth's
    connection containers; removed afterwards."""
    name = f"berth-agent-test-{uuid.uuid4().hex[:12]}"
    try:
        docker("run", "-d", "--name", name, "--label", TEST_LABEL, busybox_image,
               IN_IMAGE, "wait-signal", "--signal", "TERM", "--message", "idle-stopped")
        wait_until(lambda: docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == b"true",
                   what="the idle container to run")
        yield name
    finally:
        docker("rm", "-f", name, check=False)
