"""Agent forwarding (`ssh -A`, docs/configuration.md, "Unix socket, X11 and agent forwarding"):
a real ssh-agent on the client side, OpenSSH's ssh-add and ssh-keygen in the guest image."""
import subprocess

import pytest

from conftest import SSH_OPTS, wait_until, webhook_auth
from docker_helpers import berth_containers, docker, docker_config

USERS = [{"username": "alice", "password": "pw"}, {"username": "bob", "password": "pw"}]
AGENT = {"forwarding": {"agentForwardingMode": "enable"}}


def start(start_berth, example_webhook, security=AGENT):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config()}
    if security is not None:
        config["security"] = security
    return start_berth(config)


@pytest.fixture
def agent(tmp_path):
    """An ssh-agent holding a fresh Ed25519 key; yields (socket path, public key line)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f", str(key)], check=True)
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(socket_path.exists, what="ssh-agent's socket")
        subprocess.run(["ssh-add", "-q", str(key)], env={"SSH_AUTH_SOCK": str(socket_path)}, check=True, capture_output=True)
        yield socket_path, (tmp_path / "id_ed25519.pub").read_text().strip()
    finally:
        process.terminate()
        process.wait(timeout=30)


def ssh(berth, agent_socket, command, *extra, user="alice", timeout=120):
    args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-o", f"IdentityAgent={agent_socket}", *extra, f"{user}@127.0.0.1", command]
    return subprocess.run(args, capture_output=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(agent_socket)})


def test_forwarded_agent_lists_and_signs_with_the_clients_key(start_berth, example_webhook, agent, tmp_path):
    berth = start(start_berth, example_webhook)
    agent_socket, public_key = agent
    script = ("ssh-add -L > /tmp/key.pub && cat /tmp/key.pub && "
              "stat -c 'dir:%a:%U' \"$(dirname \"$SSH_AUTH_SOCK\")\" && stat -c 'sock:%U' \"$SSH_AUTH_SOCK\" && "
              "printf signed-in-the-container > /tmp/message && "
              "ssh-keygen -q -Y sign -f /tmp/key.pub -n berth-test /tmp/message && cat /tmp/message.sig")
    result = ssh(berth, agent_socket, script, "-A")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].split()[:2] == public_key.split()[:2]
    # A directory of the session's user alone, and the user's socket in it.
    assert lines[1] == "dir:700:alice" and lines[2] == "sock:alice"
    # The signature made through the forwarded agent verifies against the client's key.
    signature = tmp_path / "message.sig"
    signature.write_text("\n".join(lines[3:]) + "\n")
    allowed = tmp_path / "allowed"
    allowed.write_text(f"alice {public_key}\n")
    verified = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "alice", "-n", "berth-test", "-s", str(signature)],
                              input=b"signed-in-the-container", capture_output=True)
    assert verified.returncode == 0, verified.stderr


def test_other_accounts_and_other_users_cannot_reach_the_agent(start_berth, example_webhook, agent):
    berth = start(start_berth, example_webhook)
    agent_socket, public_key = agent
    holder = subprocess.Popen(
        ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no", "-A",
         "-o", f"IdentityAgent={agent_socket}", "alice@127.0.0.1", 'echo "sock:$SSH_AUTH_SOCK"; exec sleep 600'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(agent_socket)})
    try:
        line = holder.stdout.readline().decode().strip()
        assert line.startswith("sock:/tmp/berth-agent-"), line
        path = line[len("sock:"):]
        container = wait_until(berth_containers, what="alice's container")[0]
        # The owner's processes reach it (checked from outside the session, as alice).
        mine = docker("exec", "-u", "alice", "-e", f"SSH_AUTH_SOCK={path}", container, "ssh-add", "-L", check=False)
        assert mine.returncode == 0 and public_key.split()[1] in mine.stdout
        # Another account in the same container does not.
        other = docker("exec", "-u", "65534", "-e", f"SSH_AUTH_SOCK={path}", container, "ssh-add", "-L", check=False)
        assert other.returncode != 0 and public_key.split()[1] not in other.stdout
        # Bob's session without -A has no agent; his container has no socket of alice's.
        bob = ssh(berth, agent_socket, 'echo "agent:${SSH_AUTH_SOCK:-none}"; ls /tmp | grep -c berth-agent || true', user="bob")
        assert bob.stdout.decode().split() == ["agent:none", "0"], bob.stderr
    finally:
        holder.terminate()
        holder.wait(timeout=30)


def test_agent_forwarding_is_refused_unless_enabled(start_berth, example_webhook, agent):
    berth = start(start_berth, example_webhook, security=None)
    agent_socket, _ = agent
    # OpenSSH asks without wanting a reply: the refusal shows as no socket; the session runs.
    result = ssh(berth, agent_socket, 'echo "agent:${SSH_AUTH_SOCK:-none}"', "-A")
    assert (result.returncode, result.stdout) == (0, b"agent:none\n"), result.stderr
    assert wait_until(lambda: "agentForwardingMode is not enable" in berth.process.output())
