"""Docker persistent mode (docker.execution.mode: persistent) and the `persistence` section: one
container per user shared by their connections, kept across disconnects and Berth restarts,
removed after idleTimeout / maxLifetime; per-user volumes; server identity and liveness for
orphan clean-up; no container left behind by a start that fails."""
import json
import os
import signal
import subprocess
import threading
import uuid

import pytest

from conftest import SSH_OPTS, wait_until, webhook_auth
from docker_helpers import BUSYBOX, docker, docker_config


def persistent(user):
    return docker("ps", "-aq", "--no-trunc", "--filter", f"label=berth.persistent={user}").stdout.split()


def connection_containers(server=None):
    args = ["ps", "-aq", "--no-trunc", "--filter", "label=berth.connection-id"]
    if server:
        args += ["--filter", f"label=berth.server={server}"]
    return docker(*args).stdout.split()


@pytest.fixture
def users(request):
    """Usernames of this test alone (a leftover of another run cannot answer for them); their
    containers and volumes are removed afterwards."""
    made = []

    def make(count=1):
        names = [f"p{uuid.uuid4().hex[:8]}" for _ in range(count)]
        made.extend(names)
        return names

    yield make
    for name in made:
        for container in persistent(name):
            docker("rm", "-f", container, check=False)
    for volume in docker("volume", "ls", "-q").stdout.split():
        if any(name in volume for name in made):
            docker("volume", "rm", "-f", volume, check=False)


def webhook_users(names):
    return [{"username": name, "password": "pw"} for name in names]


def persistent_config(url, persistence=None, image=BUSYBOX, **execution):
    config = {"auth": webhook_auth(url), **docker_config(image=image, mode="persistent", **execution)}
    if persistence:
        config["persistence"] = persistence
    return config


def hold(berth, user, command="sleep 600"):
    """A connection that stays open, running `command`."""
    return subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, f"{user}@127.0.0.1", command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def end(process):
    if process.poll() is None:
        process.kill()
    return process.communicate()


def test_connections_share_the_users_container_which_outlives_them_until_idle(start_berth, example_webhook, users):
    alice, bob = users(2)
    url, _ = example_webhook(webhook_users([alice, bob]))
    berth = start_berth(persistent_config(url, {"idleTimeout": "3s"}))

    first = berth.ssh(alice, "hostname; echo kept > /tmp/mark", password="pw")
    assert first.returncode == 0, first.stderr
    host = first.stdout.decode().strip()
    [container] = persistent(alice)
    assert container.startswith(host)

    # A second connection while one is open, and one after all have closed: the same container.
    holder = hold(berth, alice)
    try:
        assert wait_until(lambda: b"p" in berth.ssh(alice, "pidof sleep >/dev/null && echo p", password="pw").stdout)
        second = berth.ssh(alice, "hostname; cat /tmp/mark", password="pw")
        assert second.stdout.decode().split() == [host, "kept"]
        assert persistent(alice) == [container]

        # Bob's container, unused, goes after idleTimeout; Alice's, in use all that time, stays.
        assert berth.ssh(bob, "true", password="pw").returncode == 0
        assert len(persistent(bob)) == 1
        assert wait_until(lambda: not persistent(bob), timeout=60)
        assert persistent(alice) == [container]
    finally:
        end(holder)
    # The program of the closed connection ended with it; the container did not.
    assert wait_until(lambda: b"gone" in berth.ssh(alice, "pidof sleep || echo gone", password="pw").stdout)
    assert persistent(alice) == [container]
    # Nobody connected: removed after idleTimeout.
    assert wait_until(lambda: not persistent(alice), timeout=60)
    assert "DOCKER_PERSISTENT_REMOVED" in berth.process.output()


def test_max_lifetime_ends_connections_with_a_notice(start_berth, example_webhook, users):
    [carol] = users()
    url, _ = example_webhook(webhook_users([carol]))
    berth = start_berth(persistent_config(url, {"idleTimeout": "0s", "maxLifetime": "4s"}))
    holder = hold(berth, carol)
    assert wait_until(lambda: len(persistent(carol)) == 1)
    first = persistent(carol)[0]
    # The connection is not idle, yet it ends once the container is older than maxLifetime.
    assert wait_until(lambda: holder.poll() is not None, timeout=60)
    _, stderr = end(holder)
    assert b"maximum lifetime" in stderr and b"DOCKER_PERSISTENT_EXPIRED" in stderr
    assert wait_until(lambda: first not in persistent(carol))
    # A new login gets a new container.
    again = berth.ssh(carol, "true", password="pw")
    assert again.returncode == 0
    assert persistent(carol) and persistent(carol)[0] != first


def test_persistent_container_survives_a_killed_berth_and_is_reused(start_berth, example_webhook, users):
    [dave] = users()
    url, _ = example_webhook(webhook_users([dave]))
    config = persistent_config(url, {"idleTimeout": "10m"})
    berth = start_berth(config, name="first")
    assert berth.ssh(dave, "echo state > /tmp/state", password="pw").returncode == 0
    [container] = persistent(dave)
    berth.process.proc.send_signal(signal.SIGKILL)
    berth.process.proc.wait()

    again = start_berth(json.loads(berth.config_path.read_text()), name="again")
    result = again.ssh(dave, "cat /tmp/state", password="pw")
    assert result.stdout == b"state\n", result.stderr
    assert persistent(dave) == [container]
    assert "DOCKER_PERSISTENT_ADOPTED" in again.process.output()
    # A container the engine stopped (an engine restart, `docker kill`) is started again.
    docker("kill", container)
    result = again.ssh(dave, "echo back", password="pw")
    assert result.stdout == b"back\n", result.stderr
    assert persistent(dave) == [container]


def test_fifty_concurrent_first_logins_make_one_container(start_berth, example_webhook, users):
    [erin] = users()
    url, _ = example_webhook(webhook_users([erin]))
    berth = start_berth({**persistent_config(url), "ssh": {"maxStartups": "100", "perSourceMaxStartups": 0}})
    count = int(os.environ.get("BERTH_TEST_LOGINS", "50"))
    results = [None] * count

    def login(index):
        results[index] = berth.ssh(erin, "hostname", password="pw", timeout=120)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hosts = {r.stdout.decode().strip() for r in results if r.returncode == 0}
    failures = [r.stderr for r in results if r.returncode != 0]
    assert not failures, failures[:3]
    assert len(hosts) == 1
    assert len(persistent(erin)) == 1


def test_a_volume_per_user_survives_the_container(start_berth, example_webhook, users):
    [frank] = users()
    url, _ = example_webhook(webhook_users([frank]))
    berth = start_berth(persistent_config(url, {"idleTimeout": "2s", "volume": {"enabled": True, "namePrefix": "berth-test-home"}},
                                          image="berth-guest:latest", shellCommand=["/bin/bash"]))
    first = berth.ssh(frank, "echo $HOME; echo saved > ~/notes; id -un", password="pw")
    assert first.returncode == 0, first.stderr
    home, account = first.stdout.decode().split()
    [container] = persistent(frank)
    mounts = json.loads(docker("inspect", container).stdout)[0]["Mounts"]
    [volume] = [m for m in mounts if m["Type"] == "volume" and m["Destination"] == home]
    assert volume["Name"].startswith("berth-test-home-") and frank in volume["Name"]
    assert wait_until(lambda: not persistent(frank), timeout=60)

    second = berth.ssh(frank, "cat ~/notes; stat -c %U ~", password="pw")
    assert second.stdout.decode().split() == ["saved", account], second.stderr
    assert persistent(frank) and persistent(frank)[0] != container


@pytest.fixture(scope="module")
def image_without_agent():
    tag = f"berth-no-agent:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=f"FROM {BUSYBOX}\nRUN rm -f /usr/bin/containerssh-agent\n",
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    yield tag
    docker("rmi", "-f", tag, check=False)


def all_with_image(image):
    return docker("ps", "-aq", "--filter", f"ancestor={image}").stdout.split()


@pytest.mark.parametrize("mode", ["connection", "persistent"])
def test_an_image_without_the_agent_leaves_no_container(start_berth, example_webhook, users, image_without_agent, mode):
    [gina] = users()
    url, _ = example_webhook(webhook_users([gina]))
    berth = start_berth({"auth": webhook_auth(url), **docker_config(image=image_without_agent, mode=mode, shellCommand=["/bin/sh"])})
    for _ in range(3):
        result = berth.ssh(gina, "true", password="pw")
        assert result.returncode != 0
        assert b"cannot start your container" in result.stderr
    assert wait_until(lambda: not all_with_image(image_without_agent))
    assert berth.process.proc.poll() is None


@pytest.mark.parametrize("mode", ["connection", "persistent"])
def test_a_start_the_engine_refuses_leaves_no_container(start_berth, example_webhook, users, mode):
    [hank] = users()
    url, _ = example_webhook(webhook_users([hank]))
    # The engine creates the container and refuses to start it: the device is not there.
    device = {"PathOnHost": f"/dev/berth-missing-{hank}", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}
    config = {"auth": webhook_auth(url), **docker_config(image=BUSYBOX, mode=mode, host={"Devices": [device]})}
    berth = start_berth(config)
    for _ in range(3):
        result = berth.ssh(hank, "true", password="pw")
        assert result.returncode != 0
    assert "start container" in berth.process.output()
    assert wait_until(lambda: not docker("ps", "-aq", "--filter", f"label=berth.username={hank}").stdout.split())


def test_identity_and_liveness_decide_what_is_reaped(start_berth, example_webhook, users):
    [ivan] = users()
    url, _ = example_webhook(webhook_users([ivan]))
    first = start_berth({"auth": webhook_auth(url), **docker_config(image=BUSYBOX), "persistence": {"serverIdentity": "berth-test-a"}}, name="first")
    holder = hold(first, ivan)
    try:
        assert wait_until(lambda: len(connection_containers("berth-test-a")) == 1)
        [container] = connection_containers("berth-test-a")
        labels = json.loads(docker("inspect", container).stdout)[0]["Config"]["Labels"]
        assert labels["berth.liveness"].endswith("/berth-test-a.lock")

        # A second identity on the same engine: the first is alive, its container stays, through
        # the start-up clean-up and the periodic sweeps after it.
        second = start_berth({"auth": webhook_auth(url), **docker_config(image=BUSYBOX),
                              "persistence": {"serverIdentity": "berth-test-b", "idleTimeout": "1s"}}, name="second")
        assert wait_until(lambda: second.process.output().count("DOCKER_SWEEP_DONE") >= 3)
        assert "DOCKER_ORPHAN_REMOVED" not in second.process.output()
        assert connection_containers("berth-test-a") == [container]
        # The same identity twice is refused: each would remove the other's containers.
        twin = start_berth({"auth": webhook_auth(url), **docker_config(image=BUSYBOX), "persistence": {"serverIdentity": "berth-test-a"}},
                           name="twin", expect_start=False)
        assert wait_until(lambda: twin.process.proc.poll() is not None)
        assert twin.process.proc.returncode != 0 and "SERVER_IDENTITY_IN_USE" in twin.process.output()
        assert connection_containers("berth-test-a") == [container]

        # Once the first is dead, the second reaps its orphan without a restart.
        first.process.proc.send_signal(signal.SIGKILL)
        first.process.proc.wait()
        assert wait_until(lambda: not connection_containers("berth-test-a"), timeout=60)
        assert "removed a container of a server that is no longer running" in second.process.output()
    finally:
        end(holder)
