"""Keyboard-interactive as password: one prompt checked by the password method, with OpenSSH
limited to keyboard-interactive and paramiko's auth_interactive; and switched off."""
import subprocess

import paramiko
import pytest

from conftest import SSH_OPTS, webhook_auth
from test_builtin_auth import sha512_crypt


def kbd_ssh(berth, user, password, command="whoami"):
    return subprocess.run(["sshpass", "-p", password, "ssh", "-p", str(berth.port), *SSH_OPTS,
                           "-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
                           "-o", "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1", command], capture_output=True, timeout=60)


def coded(berth, code):
    return [line for line in berth.process.log_lines() if line.get("code") == code]


def interactive(berth, user, answer):
    """paramiko's auth_interactive; returns (prompts seen, transport or the exception)."""
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    transport.start_client(timeout=30)
    seen = []

    def handler(title, instructions, prompts):
        seen.append((title, instructions, list(prompts)))
        return [answer for _ in prompts]

    try:
        transport.auth_interactive(user, handler)
        return seen, transport
    except paramiko.SSHException as error:
        transport.close()
        return seen, error


def test_openssh_keyboard_interactive_only_against_the_webhook(start_berth, example_webhook):
    url, requests = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url)})
    ok = kbd_ssh(berth, "alice", "secret")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"alice\n"
    assert kbd_ssh(berth, "alice", "wrong").returncode != 0
    assert [r["path"] for r in requests()] == ["/password", "/password"]
    failed = [line for line in coded(berth, "AUTH_FAILED") if line["username"] == "alice"]
    assert len(failed) == 1


def test_paramiko_auth_interactive_with_static_users(start_berth):
    static = {"users": [{"username": "bob", "passwordHash": sha512_crypt("bobpw")}]}
    berth = start_berth({"auth": {"password": {"method": "static", "static": static}}})
    seen, transport = interactive(berth, "bob", "bobpw")
    assert isinstance(transport, paramiko.Transport) and transport.is_authenticated()
    try:
        assert seen == [("", "", [("Password: ", False)])]
        channel = transport.open_session()
        channel.exec_command("whoami")
        assert channel.makefile().read() == b"bob\n"
    finally:
        transport.close()
    _, refused = interactive(berth, "bob", "nope")
    assert isinstance(refused, paramiko.AuthenticationException)


def test_switched_off_or_without_a_password_method(tmp_path, start_berth, example_webhook):
    url, requests = example_webhook([{"username": "alice", "password": "secret"}])
    off = start_berth({"auth": {**webhook_auth(url), "keyboardInteractive": {"passwordPrompt": False}}})
    seen, error = interactive(off, "alice", "secret")
    assert seen == [] and isinstance(error, paramiko.BadAuthenticationType)
    assert "keyboard-interactive" not in error.allowed_types and "password" in error.allowed_types
    assert kbd_ssh(off, "alice", "secret").returncode != 0
    assert requests() == []
    # Public keys only: nothing could check the answer, so nothing is asked.
    keys = tmp_path / "keys"
    keys.mkdir()
    only_keys = start_berth({"auth": {"publicKey": {"method": "authorizedkeys", "authorizedKeys": {"pathTemplate": str(keys / "%u")}}}},
                            name="keys")
    seen, error = interactive(only_keys, "alice", "secret")
    assert seen == [] and isinstance(error, paramiko.BadAuthenticationType)


@pytest.mark.parametrize("value", ["yes", 3])
def test_password_prompt_must_be_a_boolean(start_berth, example_webhook, value):
    url, _ = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": {**webhook_auth(url), "keyboardInteractive": {"passwordPrompt": value}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "auth.keyboardInteractive.passwordPrompt" in berth.process.output()
