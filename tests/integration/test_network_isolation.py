"""User containers join Berth's own network, which reaches neither the host nor link-local
addresses (docs/security.md, "Docker network"). The metadata address is served from a network
namespace this test creates, so no probe ever leaves the machine: without Berth's rules the
container would reach that namespace, with them it is refused."""
import json
import os
import subprocess

import pytest

from conftest import free_port, webhook_auth
from docker_helpers import GUEST, berth_containers, docker, docker_config
from test_docker_sessions import paramiko_client, wait_until

USERS = [{"username": "alice", "password": "pw"}]
METADATA = "169.254.169.254"

# Prints, per target, whether a TCP connection opens, is refused, or times out.
PROBE = """python3 - <<'EOF'
import socket, sys
for host, port in (("{gateway}", {metrics}), ("{metadata}", 80)):
    try:
        socket.create_connection((host, port), timeout=10).close()
        print("open")
    except ConnectionRefusedError:
        print("refused")
    except OSError as error:
        print("failed", error)
EOF"""


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def metadata_service():
    """169.254.169.254:80 inside a network namespace of the test's own, routed from the host."""
    tag = f"{os.getpid() % 100000}"
    namespace, host_end, inner_end = f"berth-meta-{tag}", f"bmh{tag}", f"bmn{tag}"
    server = None
    try:
        ip("netns", "add", namespace)
        ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        ip("link", "set", inner_end, "netns", namespace)
        ip("addr", "add", "169.254.169.1/32", "dev", host_end)
        ip("link", "set", host_end, "up")
        ip("route", "add", f"{METADATA}/32", "dev", host_end)
        ip("-n", namespace, "addr", "add", f"{METADATA}/32", "dev", inner_end)
        ip("-n", namespace, "link", "set", inner_end, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", namespace, "route", "add", "default", "dev", inner_end)
        server = subprocess.Popen(["ip", "netns", "exec", namespace, "python3", "-m", "http.server", "--bind", METADATA, "80"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: ip("netns", "exec", namespace, "python3", "-c",
                                     f"import socket; socket.create_connection(('{METADATA}', 80), 2)", check=False).returncode == 0)
        yield
    finally:
        if server:
            server.kill()
            server.wait()
        ip("link", "del", host_end, check=False)
        ip("netns", "del", namespace, check=False)


def probe(start_berth, example_webhook, network, **execution):
    url, _ = example_webhook(USERS)
    metrics = free_port()
    config = {"auth": webhook_auth(url), **docker_config(GUEST, **execution),
              "metrics": {"enable": True, "listen": f"0.0.0.0:{metrics}"}}
    berth = start_berth(config)
    # The network is made on first use: log in once, then look it up.
    first = berth.ssh("alice", "true", password="pw")
    assert first.returncode == 0, first.stderr
    details = json.loads(docker("network", "inspect", network).stdout)[0]
    gateway = details["IPAM"]["Config"][0]["Gateway"]
    result = berth.ssh("alice", PROBE.format(gateway=gateway, metrics=metrics, metadata=METADATA), password="pw")
    assert result.returncode == 0, result.stderr
    assert wait_until(lambda: not berth_containers())
    return berth, details, result.stdout.decode().splitlines()


def test_user_network_reaches_neither_the_host_nor_metadata(start_berth, example_webhook, metadata_service):
    berth, details, outcome = probe(start_berth, example_webhook, "berth-users")
    assert details["Options"].get("com.docker.network.bridge.enable_icc") == "false"
    assert outcome == ["refused", "refused"], outcome
    assert any(line.get("code") == "DOCKER_FIREWALL_APPLIED" for line in berth.process.log_lines())


def test_without_the_firewall_both_are_reachable(start_berth, example_webhook, metadata_service):
    """The control: the same probe on a network without Berth's rules reaches both, so the
    refusals above come from the rules."""
    network = f"berth-test-open-{os.getpid()}"
    try:
        _, details, outcome = probe(start_berth, example_webhook, network, userNetwork=network, userNetworkFirewall=False)
        assert outcome == ["open", "open"], outcome
    finally:
        docker("network", "rm", network, check=False)


def test_operator_network_mode_is_left_alone(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    berth = start_berth({"auth": webhook_auth(url), **docker_config(GUEST, host={"NetworkMode": "bridge"})})
    client = paramiko_client(berth)
    try:
        assert wait_until(lambda: len(berth_containers()) == 1)
        host = json.loads(docker("inspect", berth_containers()[0]).stdout)[0]["HostConfig"]
        assert host["NetworkMode"] == "bridge"
    finally:
        client.close()
    assert not any(line.get("code", "").startswith("DOCKER_FIREWALL") for line in berth.process.log_lines())
