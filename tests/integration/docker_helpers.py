"""Helpers for tests that run Berth against the real Docker engine."""
import json
import subprocess

GUEST = "berth-guest:latest"
BUSYBOX = "berth-busybox:latest"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def berth_containers(**labels):
    args = ["ps", "-a", "-q", "--filter", "label=berth.connection-id"]
    for key, value in labels.items():
        args += ["--filter", f"label=berth.{key}={value}"]
    return docker(*args).stdout.split()


def docker_config(image=GUEST, **execution):
    block = {"container": {"image": image}, "imagePullPolicy": "Never", **execution}
    if image == BUSYBOX:
        block.setdefault("shellCommand", ["/bin/sh"])
    return {"backend": "docker", "docker": {"execution": block}}


def inspect_labels(container):
    return json.loads(docker("inspect", container).stdout)[0]["Config"]["Labels"]
