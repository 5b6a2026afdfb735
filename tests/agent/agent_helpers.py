"""Helpers for the guest agent tests: the agent run on the host (debug build) and inside the
berth-busybox image (the static release build installed at /usr/bin/containerssh-agent).

Environment:
  BERTH_AGENT_BIN        use this agent binary for the host runs instead of building one
  BERTH_SKIP_IMAGE_BUILD=1  use berth-busybox:latest as it is (don't run images/build-*.sh)
"""
import os
import select
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from waiting import wait_until  # noqa: E402,F401  (tests/waiting.py, shared by the suites)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGE = "berth-busybox:latest"
IN_IMAGE = "/usr/bin/containerssh-agent"
TEST_LABEL = "berth.test=agent"


def docker(*args, check=True, timeout=60, **kwargs):
    return subprocess.run(["docker", *args], capture_output=True, check=check, timeout=timeout, **kwargs)


def docker_available():
    try:
        return docker("info", check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def read_exactly(stream, count, timeout):
    """Reads count bytes from a pipe, failing the test when they don't arrive in time."""
    data = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while len(data) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {data!r} of {count} bytes arrived within {timeout}s"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, count - len(data))
            assert chunk, f"EOF after {data!r}, expected {count} bytes"
            data += chunk
    return data


class HostAgent:
    """The agent as a host process."""

    kind = "host"

    def __init__(self, binary):
        self.binary = binary

    def command(self, args, env=None):
        return [self.binary, *args]

    def run(self, args, input=b"", env=None, timeout=20):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(self.command(args), input=input, capture_output=True, env=full_env, timeout=timeout)

    def popen(self, args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.Popen(self.command(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=full_env)

    def cleanup(self, process):
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def cmdline(self, pid):
        """The argv of process `pid`, as /proc shows it."""
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()


class ContainerAgent:
    """The agent as the main process of a throw-away berth-busybox container (`docker run --rm -i`)."""

    kind = "busybox"

    def __init__(self):
        self.names = []

    def command(self, args, env=None):
        name = f"berth-agent-test-{uuid.uuid4().hex[:12]}"
        self.names.append(name)
        command = ["docker", "run", "--rm", "-i", "--name", name, "--label", TEST_LABEL]
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        return command + [IMAGE, IN_IMAGE, *args]

    def run(self, args, input=b"", env=None, timeout=60):
        return subprocess.run(self.command(args, env), input=input, capture_output=True, timeout=timeout)

    def popen(self, args, env=None):
        return subprocess.Popen(self.command(args, env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def cleanup(self, process):
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        self.remove_all()

    def cmdline(self, pid):
        """The argv of process `pid` in the container started last."""
        return docker("exec", self.names[-1], "cat", f"/proc/{pid}/cmdline").stdout

    def remove_all(self):
        for name in self.names:
            docker("rm", "-f", name, check=False)
        self.names.clear()
