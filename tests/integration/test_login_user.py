"""Programs run as the person who logged in (docs/security.md, "Who programs run as"): the agent
adds the account to the container, and `whoami`, `~`, sftp and Ansible behave as on any Linux box."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap

from conftest import SSH_OPTS, webhook_auth
from docker_helpers import BUSYBOX, GUEST, berth_containers, docker_config
from test_docker_sessions import paramiko_client, wait_until

USERS = [{"username": "alice", "password": "pw", "files": {"/tmp/for-alice.txt": "only alice reads this"}},
         {"username": "robot", "password": "pw", "authenticatedUsername": "Robot.Ops@Example.com"},
         {"username": "tuned", "password": "pw",
          "config": {"docker": {"execution": {"loginUser": {"uid": 4321, "homeRoot": "/srv/people"}}}}}]


def start(start_berth, example_webhook, image=GUEST, configserver=False, **execution):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config(image, **execution)}
    if configserver:
        config["configserver"] = {"url": f"{url}/config"}
    return start_berth(config)


def lines(result):
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().splitlines()


def test_default_guest_runs_programs_as_the_login_user(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    out = lines(berth.ssh("alice", 'whoami; id -u; echo ~; echo ~alice; pwd; echo "$USER $LOGNAME $HOME"; '
                                   'touch ~/mine && stat -c %U ~/mine; stat -c "%U %a" /tmp/for-alice.txt; '
                                   'cat /tmp/for-alice.txt; echo; ls -A ~ | grep -c bashrc; '
                                   'cat /etc/shadow >/dev/null 2>&1 && echo READ-SHADOW || echo no-shadow; '
                                   'python3 -c "import json, ssl, sqlite3; print(json.dumps(1))"; '
                                   'for t in git curl rsync less nano vi ssh sudo; do command -v $t >/dev/null || echo missing $t; done',
                          password="pw"))
    assert out == ["alice", "1000", "/home/alice", "/home/alice", "/home/alice", "alice alice /home/alice", "alice",
                   "alice 600", "only alice reads this", "1", "no-shadow", "1"]


def test_interactive_shell_and_sftp_are_the_login_user(start_berth, example_webhook, tmp_path):
    berth = start(start_berth, example_webhook)
    shell = berth.ssh("alice", "", password="pw", extra=["-tt"], stdin=b"whoami; tty | xargs stat -c %U; exit\n")
    text = shell.stdout.decode(errors="replace")
    assert shell.returncode == 0 and text.count("alice") >= 3, text  # prompt, whoami, the terminal's owner
    client = paramiko_client(berth)
    try:
        sftp = client.open_sftp()
        with sftp.open("upload.txt", "w") as handle:
            handle.write(b"uploaded by sftp\n")
        attributes = sftp.stat("upload.txt")
        assert (sftp.normalize("."), attributes.st_uid, attributes.st_gid) == ("/home/alice", 1000, 1000)
    finally:
        client.close()


def test_authenticated_username_names_the_account(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    assert lines(berth.ssh("robot", "whoami; echo ~", password="pw")) == ["robot.ops_example.com", "/home/robot.ops_example.com"]


def test_webhook_sets_uid_and_home_root(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, configserver=True)
    assert lines(berth.ssh("tuned", "id -u; id -g; echo ~", password="pw")) == ["4321", "4321", "/srv/people/tuned"]


def test_container_mode_runs_as_the_containers_user(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, loginUser={"mode": "container"})
    assert lines(berth.ssh("alice", "whoami; echo ~", password="pw")) == ["root", "/root"]


def test_sudo_when_the_operator_turns_it_on(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, loginUser={"sudo": True})
    assert lines(berth.ssh("alice", "sudo -n whoami 2>/dev/null; whoami", password="pw")) == ["root", "alice"]
    berth = start(start_berth, example_webhook)
    assert lines(berth.ssh("alice", "sudo -n true 2>/dev/null || echo no sudo", password="pw")) == ["no sudo"]


def test_busybox_image_gets_the_account_with_sh(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX)
    assert lines(berth.ssh("alice", "id -un; grep ^alice: /etc/passwd", password="pw")) == [
        "alice", "alice:x:1000:1000::/home/alice:/bin/sh"]


def test_read_only_image_is_a_clear_refusal(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, image=BUSYBOX, host={"ReadonlyRootfs": True})
    # robot's programs fail to start; alice's webhook files (written as her) fail at login.
    result = berth.ssh("robot", "id -un", password="pw")
    assert result.returncode == 1 and b"cannot run your programs as robot.ops_example.com" in result.stderr, result.stderr
    assert b"(AGENT_USER_FAILED, connection " in result.stderr and b"Read-only" not in result.stderr, result.stderr
    result = berth.ssh("alice", "id -un", password="pw")
    assert result.returncode != 0 and b"cannot start your container" in result.stderr, result.stderr
    assert b"(AGENT_USER_FAILED, connection " in result.stderr and b"Read-only" not in result.stderr, result.stderr
    for name in ("robot.ops_example.com", "alice"):
        assert wait_until(lambda: any(line.get("code") == "AGENT_USER_FAILED" and "Read-only file system" in line.get("message", "")
                                      and name in line.get("message", "") for line in berth.process.log_lines())), name
    assert wait_until(lambda: not berth_containers())


def test_login_user_mode_without_the_agent_is_refused_at_load(start_berth, example_webhook):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **docker_config(GUEST, disableAgent=True, loginUser={"mode": "login"})}
    berth = start_berth(config, expect_start=False)
    assert wait_until(lambda: berth.process.proc.poll() is not None)
    assert "docker.execution.loginUser.mode" in berth.process.output() and "needs the agent" in berth.process.output()


def test_ansible_ping_with_ansible_user_set_to_the_login_name(start_berth, example_webhook, tmp_path):
    """Ansible as usual: one multiplexed connection (ControlMaster, as Ansible's defaults), so
    its temporary directory, the module it copies and its run share one container."""
    berth = start(start_berth, example_webhook)
    control = tempfile.mkdtemp(prefix="cm", dir="/tmp")  # a unix socket path must stay short
    inventory = tmp_path / "hosts"
    inventory.write_text(textwrap.dedent(f"""\
        berth ansible_host=127.0.0.1 ansible_port={berth.port} ansible_user=alice ansible_password=pw
        """))
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist=30s -o ControlPath={control}/%C "
                                "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o PubkeyAuthentication=no",
               ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER="auto_silent")
    try:
        ping = subprocess.run(["ansible", "-i", str(inventory), "berth", "-m", "ping"], capture_output=True, text=True, env=env, timeout=300)
        assert ping.returncode == 0 and '"ping": "pong"' in ping.stdout, ping.stdout + ping.stderr
        whoami = subprocess.run(["ansible", "-i", str(inventory), "berth", "-m", "command", "-a", "whoami"],
                                capture_output=True, text=True, env=env, timeout=300)
        assert whoami.returncode == 0 and whoami.stdout.splitlines()[-1] == "alice", whoami.stdout + whoami.stderr
    finally:
        for master in glob.glob(f"{control}/*"):
            subprocess.run(["ssh", "-o", f"ControlPath={master}", "-O", "exit", "berth"], capture_output=True, timeout=30)
        shutil.rmtree(control, ignore_errors=True)
