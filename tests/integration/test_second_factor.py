"""TOTP second factor (RFC 6238) over keyboard-interactive after a password or a key, with
paramiko and the real OpenSSH client; secrets from static users and from the auth webhook."""
import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import time

import paramiko
import pytest

from conftest import SSH_OPTS, make_key
from json_http import JSONHandler, serve
from test_builtin_auth import sha512_crypt

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
TOTP = {"method": "totp"}


def totp(secret=SECRET, at=None, offset=0):
    key = base64.b32decode(secret)
    counter = int((at or time.time()) // 30) + offset
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    start = digest[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", digest[start:start + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def static_berth(start_berth, users, second_factor=TOTP, name="berth"):
    static = {"users": users}
    return start_berth({"auth": {"password": {"method": "static", "static": static},
                                 "publicKey": {"method": "static", "static": static},
                                 "secondFactor": second_factor}}, name=name)


def login(berth, user, password, code):
    """Password, then the code over keyboard-interactive; returns (methods after the password,
    prompts seen, authenticated transport or the exception)."""
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    transport.start_client(timeout=30)
    prompts = []
    try:
        remaining = transport.auth_password(user, password)

        def handler(title, instructions, asked):
            prompts.extend(asked)
            return [code for _ in asked]

        if transport.is_authenticated():
            return remaining, prompts, transport
        transport.auth_interactive(user, handler)
        return remaining, prompts, transport
    except paramiko.SSHException as error:
        transport.close()
        return None, prompts, error


def run(transport, command):
    try:
        channel = transport.open_session()
        channel.exec_command(command)
        return channel.makefile().read()
    finally:
        transport.close()


def coded(berth, code):
    return [line for line in berth.process.log_lines() if line.get("code") == code]


def test_password_then_code_and_replay_refused(start_berth):
    berth = static_berth(start_berth, [{"username": "alice", "passwordHash": sha512_crypt("pw"), "totpSecret": SECRET}])
    code = totp()
    remaining, prompts, transport = login(berth, "alice", "pw", code)
    assert isinstance(transport, paramiko.Transport), transport
    assert remaining == ["keyboard-interactive"]
    assert prompts == [("Verification code: ", False)]
    assert run(transport, "whoami") == b"alice\n"
    # The same code (or an older one) never works twice.
    _, _, replay = login(berth, "alice", "pw", code)
    assert isinstance(replay, paramiko.AuthenticationException)
    _, _, wrong = login(berth, "alice", "pw", "%06d" % ((int(totp(offset=1)) + 1) % 1_000_000))
    assert isinstance(wrong, paramiko.AuthenticationException)
    # A wrong password never reaches the code prompt.
    _, prompts, refused = login(berth, "alice", "nope", code)
    assert isinstance(refused, paramiko.AuthenticationException) and prompts == []
    assert any(line["details"]["method"] == "totp" for line in coded(berth, "AUTH_SUCCESSFUL"))
    assert len(coded(berth, "AUTH_SECOND_FACTOR_REQUIRED")) >= 3


def test_users_without_a_secret_and_required(start_berth):
    users = [{"username": "bob", "passwordHash": sha512_crypt("pw")}]
    optional = static_berth(start_berth, users)
    remaining, prompts, transport = login(optional, "bob", "pw", "")
    assert isinstance(transport, paramiko.Transport) and prompts == []
    assert run(transport, "whoami") == b"bob\n"
    required = static_berth(start_berth, users, {"method": "totp", "required": True}, name="required")
    _, prompts, refused = login(required, "bob", "pw", "")
    assert isinstance(refused, paramiko.AuthenticationException) and prompts == []
    assert any("no second factor is enrolled" in line["details"]["reason"] for line in coded(required, "AUTH_FAILED"))


def test_openssh_key_then_code_through_askpass(tmp_path, start_berth):
    key, pub = make_key(tmp_path, "ed25519")
    berth = static_berth(start_berth, [{"username": "carol", "authorizedKeys": [pub], "totpSecret": SECRET}])
    askpass = tmp_path / "askpass.py"
    log = tmp_path / "prompts.txt"
    askpass.write_text(f"""#!/usr/bin/env python3
import base64, hashlib, hmac, struct, sys, time
open({str(log)!r}, "a").write(sys.argv[1] + "\\n")
digest = hmac.new(base64.b32decode({SECRET!r}), struct.pack(">Q", int(time.time() // 30)), hashlib.sha1).digest()
start = digest[-1] & 0x0F
print("%06d" % ((struct.unpack(">I", digest[start:start + 4])[0] & 0x7FFFFFFF) % 1000000))
""")
    askpass.chmod(0o755)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    result = subprocess.run(["ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "IdentitiesOnly=yes", "-i", str(key),
                             "-o", "PasswordAuthentication=no", "-o", "NumberOfPasswordPrompts=1", "carol@127.0.0.1", "whoami"],
                            stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"carol\n"
    assert "Verification code" in log.read_text()
    # Without the code the key alone does not sign in.
    no_code = subprocess.run(["ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
                              "carol@127.0.0.1", "whoami"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert no_code.returncode != 0 and no_code.stdout == b""


class SecretWebhook(JSONHandler):
    """Password `pw` for anyone; the reply carries the TOTP secret in metadata. Records bodies."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body))
        if self.path.endswith("/authz"):
            reply = {"success": True}
        else:
            ok = base64.b64decode(body.get("passwordBase64", "")) == b"pw"
            reply = {"success": ok, "metadata": {"totpSecret": {"value": SECRET, "sensitive": True}, "team": {"value": "ops"}}}
        self.reply(200, reply)


@pytest.fixture
def secret_webhook():
    server, _ = serve(SecretWebhook)
    server.seen = []
    yield server
    server.shutdown()
    server.server_close()


def test_secret_from_the_auth_webhook_goes_no_further(start_berth, secret_webhook):
    url = f"http://127.0.0.1:{secret_webhook.server_port}"
    berth = start_berth({"auth": {"password": {"method": "webhook", "webhook": {"url": url}},
                                  "authz": {"method": "webhook", "webhook": {"url": url}},
                                  "secondFactor": TOTP}})
    remaining, _, transport = login(berth, "dave", "pw", totp())
    assert isinstance(transport, paramiko.Transport), transport
    assert remaining == ["keyboard-interactive"]
    assert run(transport, "whoami") == b"dave\n"
    authz = [body for path, body in secret_webhook.seen if path.endswith("/authz")]
    assert len(authz) == 1
    assert "totpSecret" not in authz[0].get("metadata", {}) and authz[0]["metadata"]["team"]["value"] == "ops"


def test_a_spent_code_stays_spent_after_a_restart(start_berth, tmp_path):
    users = [{"username": "alice", "passwordHash": sha512_crypt("pw"), "totpSecret": SECRET}]
    berth = static_berth(start_berth, users)
    code = totp()
    _, _, transport = login(berth, "alice", "pw", code)
    assert isinstance(transport, paramiko.Transport), transport
    transport.close()
    berth.process.stop()
    state = tmp_path / "state" / "auth-state.json"
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    restarted = static_berth(start_berth, users, name="restarted")
    _, _, replay = login(restarted, "alice", "pw", code)
    assert isinstance(replay, paramiko.AuthenticationException), replay
