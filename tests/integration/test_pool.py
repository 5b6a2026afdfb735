"""The warm pool (docker.execution.pool): started containers wait for logins, each is used by one
connection only and removed with it; the pool refills and is emptied when Berth stops."""
import json
import time

from conftest import wait_until, webhook_auth
from docker_helpers import BUSYBOX, docker, docker_config

USERS = [{"username": "alice", "password": "pw", "environment": {"FROM_WEBHOOK": "yes"},
          "files": {"/tmp/hello.txt": "file from the webhook"}}]


def pool_containers():
    return docker("ps", "-q", "--no-trunc", "--filter", "label=berth.pool=1").stdout.split()


def test_logins_take_pool_containers_once_and_the_pool_refills(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    berth = start_berth({"auth": webhook_auth(url), **docker_config(image=BUSYBOX, pool={"size": 2, "maxAge": "10m"})})
    first_pool = wait_until(lambda: len(pool_containers()) == 2 and pool_containers())
    assert first_pool, "the pool did not fill"

    result = berth.ssh("alice", "hostname; echo $FROM_WEBHOOK; cat /tmp/hello.txt", password="pw")
    assert result.returncode == 0, result.stderr
    host, env, file = result.stdout.decode().splitlines()
    assert env == "yes" and file == "file from the webhook"
    used = [c for c in first_pool if c.startswith(host)]
    assert used, f"the session ran in {host}, not in a pool container {first_pool}"
    assert "DOCKER_POOL_CONTAINER_TAKEN" in berth.process.output()

    # The used container is removed with its connection, never handed out again; the pool refills.
    assert wait_until(lambda: used[0] not in docker("ps", "-aq", "--no-trunc").stdout.split())
    assert wait_until(lambda: len(pool_containers()) == 2)
    second = berth.ssh("alice", "hostname", password="pw")
    assert second.returncode == 0 and second.stdout.decode().strip() != host

    # Stopping Berth removes the unused pool containers.
    assert berth.process.stop() == 0
    assert wait_until(lambda: not pool_containers(), timeout=30)


def test_left_over_pool_containers_are_removed_at_start(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config(image=BUSYBOX, pool={"size": 1})}
    berth = start_berth(config)
    assert wait_until(lambda: len(pool_containers()) == 1)
    leftover = pool_containers()[0]
    berth.process.proc.kill()
    berth.process.proc.wait()
    # Restarted on its own address, it knows the leftovers as its own.
    again = start_berth(json.loads(berth.config_path.read_text()), name="again")
    assert wait_until(lambda: leftover not in docker("ps", "-aq", "--no-trunc").stdout.split())
    assert wait_until(lambda: len(pool_containers()) == 1)
    assert again.ssh("alice", "echo ok", password="pw").stdout == b"ok\n"
