"""authorized_keys options (sshd(8) "AUTHORIZED_KEYS FILE FORMAT") on the path template's files and
the static users' lists, each allowed and refused with the real OpenSSH client (asyncssh where a
channel's refusal reason is checked)."""
import asyncio
import json
import subprocess
import urllib.request

import asyncssh
import pytest

from conftest import SSH_OPTS, free_port, make_key, wait_until
from docker_helpers import BUSYBOX, berth_containers, docker_config

FORWARDING = {"forwarding": {"forwardingMode": "enable", "reverseForwardingMode": "enable"}}


def keys_berth(tmp_path, start_berth, lines, **extra):
    """Berth whose user `deploy` has an authorized_keys file with `lines` (`{key}` is the key)."""
    keys_dir = tmp_path / f"keys{len(list(tmp_path.glob('keys*')))}"
    keys_dir.mkdir()
    key, pub = make_key(tmp_path, "ed25519", f"id_{keys_dir.name}")
    (keys_dir / "deploy").write_text("".join(line.format(key=pub) + "\n" for line in lines))
    config = {"auth": {"publicKey": {"method": "authorizedkeys", "authorizedKeys": {"pathTemplate": str(keys_dir / "%u")}}}, **extra}
    return start_berth(config), key


def coded(berth, code):
    return [line for line in berth.process.log_lines() if line.get("code") == code]


def refused_lines(berth):
    return [json.dumps(line) for line in coded(berth, "AUTH_KEYS_LINE_REFUSED")]


def test_command_becomes_the_forced_command_with_the_original_and_environment(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['command="env",environment="DEPLOY_TARGET=prod",environment="DEPLOY_TARGET=ignored" {key} ci'])
    result = berth.ssh("deploy", "whoami", key=key)
    assert result.returncode == 0, result.stderr
    assert b"SSH_ORIGINAL_COMMAND=whoami\n" in result.stdout
    assert b"DEPLOY_TARGET=prod\n" in result.stdout and b"ignored" not in result.stdout
    # A shell request runs the forced command too.
    shell = subprocess.run(["ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
                            "-T", "deploy@127.0.0.1"], input=b"", capture_output=True, timeout=60)
    assert b"DEPLOY_TARGET=prod\n" in shell.stdout and b"berth echo shell" not in shell.stdout


def test_operator_force_command_wins_over_the_key_command(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['command="whoami" {key}'], security={"forceCommand": "env"})
    result = berth.ssh("deploy", "ls", key=key)
    assert b"SSH_ORIGINAL_COMMAND=ls\n" in result.stdout


def test_from_allows_and_refuses_by_address(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['from="10.0.0.0/8,192.168.*" {key}'])
    refused = berth.ssh("deploy", "whoami", key=key)
    assert refused.returncode != 0 and refused.stdout == b""
    assert wait_until(lambda: any("does not match 127.0.0.1" in line for line in refused_lines(berth)))
    negated, key2 = keys_berth(tmp_path, start_berth, ['from="!127.0.0.2,127.0.0.*" {key}'])
    assert negated.ssh("deploy", "whoami", key=key2).stdout == b"deploy\n"
    denied, key3 = keys_berth(tmp_path, start_berth, ['from="!127.0.0.1,127.0.0.0/8" {key}'])
    assert denied.ssh("deploy", "whoami", key=key3).returncode != 0


def test_expiry_time(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['expiry-time="20200101Z" {key}'])
    assert berth.ssh("deploy", "whoami", key=key).returncode != 0
    assert wait_until(lambda: any("expiry-time" in line for line in refused_lines(berth)))
    later, key2 = keys_berth(tmp_path, start_berth, ['expiry-time="29991231235959Z" {key}'])
    assert later.ssh("deploy", "whoami", key=key2).stdout == b"deploy\n"


def test_unknown_option_refuses_the_line_with_a_logged_reason(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['no-pty,frobnicate {key}'])
    assert berth.ssh("deploy", "whoami", key=key).returncode != 0
    assert wait_until(lambda: any('unknown option \\"frobnicate\\"' in line and "/deploy:1" in line for line in refused_lines(berth)))
    # tunnel= is OpenSSH's, but Berth cannot honour it: refused rather than half-applied.
    tunnel, key2 = keys_berth(tmp_path, start_berth, ['tunnel="0" {key}'])
    assert tunnel.ssh("deploy", "whoami", key=key2).returncode != 0


def test_cert_authority_line_is_not_a_login_key(tmp_path, start_berth):
    berth, key = keys_berth(tmp_path, start_berth, ['cert-authority,principals="deploy" {key}'])
    assert berth.ssh("deploy", "whoami", key=key).returncode != 0
    assert wait_until(lambda: any("cert-authority" in line for line in refused_lines(berth)))


def pty_env(berth, key):
    return subprocess.run(["ssh", "-tt", "-p", str(berth.port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                           "-i", str(key), "deploy@127.0.0.1", "env"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


@pytest.mark.parametrize("options,pty", [("no-pty", False), ("restrict", False), ("restrict,pty", True), ("pty", True),
                                         ("no-agent-forwarding,no-X11-forwarding,no-user-rc", True)])
def test_pty_options(tmp_path, start_berth, options, pty):
    berth, key = keys_berth(tmp_path, start_berth, [options + " {key}"])
    result = pty_env(berth, key)
    # ssh -tt gives up when the pty is refused.
    assert (result.returncode == 0) == pty, result.stderr
    assert (b"PTY allocation request failed" in result.stderr) == (not pty)
    refusals = [line["message"] for line in coded(berth, "SECURITY_REQUEST_REFUSED")]
    assert any("no-pty or restrict" in message for message in refusals) == (not pty)


async def open_direct(berth, key, host, port):
    async with asyncssh.connect("127.0.0.1", port=berth.port, username="deploy", client_keys=[str(key)], known_hosts=None,
                                preferred_auth="publickey") as conn:
        with pytest.raises(asyncssh.ChannelOpenError) as refused:
            await conn.open_connection(host, port, orig_host="127.0.0.1")
        try:
            await conn.forward_remote_port("localhost", 9100, "127.0.0.1", 1)
            listen = "granted"
        except asyncssh.ChannelListenError as error:
            listen = str(error)
        return refused.value.reason, listen


@pytest.mark.parametrize("options,direct,listen", [
    # Allowed by the key: the request reaches the echo backend, which has no forwarding.
    ("", "port forwarding is not available", None),
    ("no-port-forwarding", "does not allow port forwarding", "no-port-forwarding"),
    ("restrict", "does not allow port forwarding", "no-port-forwarding"),
    ("restrict,port-forwarding", "port forwarding is not available", None),
    ('permitopen="db.internal:5432",permitlisten="localhost:9100"', "port forwarding is not available", None),
    ('permitopen="db.internal:*",permitlisten="9100"', "port forwarding is not available", None),
    ('permitopen="db.internal:5433",permitlisten="localhost:9101"', "not in the login key's permitopen", "permitlisten"),
])
def test_forwarding_options_before_the_backend(tmp_path, start_berth, options, direct, listen):
    berth, key = keys_berth(tmp_path, start_berth, [(options + " {key}").strip()], security=FORWARDING)
    reason, _ = asyncio.run(open_direct(berth, key, "db.internal", 5432))
    assert direct in reason
    refusals = [line["message"] for line in coded(berth, "SECURITY_FORWARDING_REFUSED") if "tcpip-forward" in line["message"]]
    if listen is None:
        assert refusals == []
    else:
        assert any(listen in message for message in refusals), refusals


def test_static_users_options_and_refusal_at_load(tmp_path, start_berth):
    key, pub = make_key(tmp_path, "ed25519")
    static = {"users": [{"username": "ci", "authorizedKeys": [f'command="env",environment="FROM_STATIC=1" {pub}']}]}
    berth = start_berth({"auth": {"publicKey": {"method": "static", "static": static}}})
    result = berth.ssh("ci", "whoami", key=key)
    assert b"FROM_STATIC=1\n" in result.stdout and b"SSH_ORIGINAL_COMMAND=whoami\n" in result.stdout
    bad = {"users": [{"username": "ci", "authorizedKeys": [f"no-pty,frobnicate {pub}"]}]}
    broken = start_berth({"auth": {"publicKey": {"method": "static", "static": bad}}}, name="broken", expect_start=False)
    assert broken.process.proc.wait(timeout=60) != 0
    output = broken.process.output()
    assert "authorizedKeys[0]" in output and "frobnicate" in output


def test_permitopen_allows_a_real_forward_and_refuses_another_port(tmp_path, start_berth):
    """Through the Docker backend: the permitted destination carries bytes, the other is refused."""
    berth, key = keys_berth(tmp_path, start_berth, ['permitopen="127.0.0.1:8080" {key}'], security=FORWARDING, **docker_config(image=BUSYBOX))
    allowed, refused = free_port(), free_port()
    server = "mkdir -p /tmp/www && echo hello-through-permitopen > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
    client = subprocess.Popen(["ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
                               "-L", f"127.0.0.1:{allowed}:127.0.0.1:8080", "-L", f"127.0.0.1:{refused}:127.0.0.1:8081",
                               "deploy@127.0.0.1", server], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def fetch(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=30) as response:
                return response.read()
        except OSError:
            return None

    try:
        assert wait_until(lambda: fetch(allowed), timeout=90) == b"hello-through-permitopen\n"
        assert fetch(refused) is None
        assert wait_until(lambda: any("127.0.0.1:8081 is not in the login key's permitopen" in line["message"]
                                      for line in coded(berth, "SECURITY_FORWARDING_REFUSED")))
    finally:
        client.terminate()
        client.wait(timeout=30)
    assert wait_until(lambda: not berth_containers())


@pytest.mark.parametrize("options,refused", [
    # Allowed by the key: the echo backend, which cannot forward, refuses.
    ("", False),
    ("restrict", True),
    ("no-port-forwarding,no-X11-forwarding,no-agent-forwarding", True),
])
def test_socket_x11_and_agent_options(tmp_path, start_berth, options, refused):
    import paramiko
    everything = {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable", "x11ForwardingMode": "enable",
                                 "agentForwardingMode": "enable"}}
    berth, key = keys_berth(tmp_path, start_berth, [(options + " {key}").strip()], security=everything)

    async def sockets():
        async with asyncssh.connect("127.0.0.1", port=berth.port, username="deploy", client_keys=[str(key)], known_hosts=None,
                                    preferred_auth="publickey") as conn:
            with pytest.raises(asyncssh.ChannelOpenError) as direct:
                await conn.open_unix_connection("/tmp/app.sock")
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_path_to_port("/tmp/r.sock", "127.0.0.1", 1)
            return direct.value.reason

    reason = asyncio.run(sockets())
    expected = "unix socket forwarding is disabled" if refused else "unix socket forwarding is not available"
    assert reason == expected

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="deploy", key_filename=str(key), look_for_keys=False, allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session()
        channel.request_forward_agent(lambda _: None)
        with pytest.raises(paramiko.SSHException):
            channel.request_x11(auth_cookie="00112233445566778899aabbccddeeff", handler=lambda *_: None)
        # paramiko closes a channel whose request failed; the connection goes on.
        again = client.get_transport().open_session()
        again.exec_command("echo still here")
        # The echo backend answers with the command it was given.
        assert b"still here" in again.makefile("rb").read()
    finally:
        client.close()
    messages = [line["message"] for line in coded(berth, "SECURITY_FORWARDING_REFUSED")]
    for option in ("no-port-forwarding", "no-X11-forwarding", "no-agent-forwarding"):
        assert any(option in message for message in messages) == refused, messages
    unavailable = [line["message"] for line in coded(berth, "FORWARD_NOT_AVAILABLE")]
    assert any("X11 forwarding is not available" in message for message in unavailable) == (not refused)
    assert any("agent forwarding is not available" in message for message in unavailable) == (not refused)
