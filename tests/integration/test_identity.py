"""After login Berth uses the name the authenticator proved (`authenticatedUsername`), not the
one the client typed. The first test needs no Docker (the echo backend); the second does."""
import subprocess
import time

from audit_decoder import decode
from conftest import SSH_OPTS, webhook_auth, wait_for
from docker_helpers import BUSYBOX, berth_containers, docker_config, inspect_labels

# The client types root; the webhook says this is bob.
USERS = [{"username": "root", "password": "pw", "authenticatedUsername": "bob"}]


def test_audit_config_webhook_and_session_use_the_authenticated_name(tmp_path, start_berth, example_webhook):
    url, requests = example_webhook(USERS)
    directory = tmp_path / "audit"
    berth = start_berth({"auth": webhook_auth(url), "configserver": {"url": f"{url}/config"},
                         "audit": {"enable": True, "format": "binary", "storage": "file", "file": {"directory": str(directory)}}})
    result = berth.ssh("root", "whoami", password="pw")
    assert result.returncode == 0 and result.stdout == b"bob\n", result.stderr
    # The config webhook request keeps the protocol's meanings: the typed name and the proven one.
    (config_request,) = [r["body"] for r in requests() if r["path"] == "/config"]
    assert (config_request["username"], config_request["authenticatedUsername"]) == ("root", "bob")

    def finished_log():
        for path in sorted(directory.iterdir()) if directory.exists() else []:
            messages = decode(path.read_bytes())
            if any(m["type"] == 199 for m in messages) and messages[-1]["type"] == 1:
                return messages
        return None
    messages = wait_for(finished_log)
    assert messages, "no complete audit log of the login"
    # Authentication records what was typed; from the handshake on, who it is.
    assert next(m for m in messages if m["type"] == 100)["payload"]["username"] == "root"
    assert next(m for m in messages if m["type"] == 199)["payload"] == {"username": "bob"}
    assert [line["details"]["authenticatedUsername"] for line in berth.process.log_lines() if line.get("code") == "AUTH_SUCCESSFUL"] == ["bob"]


def test_docker_labels_carry_the_authenticated_name(start_berth, example_webhook):
    """Needs Docker."""
    url, _ = example_webhook(USERS)
    berth = start_berth({"auth": webhook_auth(url), **docker_config(BUSYBOX)})
    held = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                             "root@127.0.0.1", "echo up; sleep 600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert held.stdout.readline() == b"up\n"
        (container,) = berth_containers()
        assert inspect_labels(container)["berth.username"] == "bob"
    finally:
        held.kill()
        held.wait()
