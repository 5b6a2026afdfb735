"""Logins through the auth webhook with OpenSSH and paramiko (docs/configuration.md, "Webhook blocks")."""
import base64
import re

import paramiko

from conftest import make_key, webhook_auth


def test_password_accepted_and_rejected(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url)})
    ok = berth.ssh("alice", "whoami", password="secret")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"alice\n"
    bad = berth.ssh("alice", "whoami", password="wrong")
    assert bad.returncode != 0
    assert bad.stdout == b""


def test_ed25519_and_ecdsa_keys_accepted_and_unknown_key_rejected(tmp_path, start_berth, example_webhook):
    ed_key, ed_pub = make_key(tmp_path, "ed25519")
    ec_key, ec_pub = make_key(tmp_path, "ecdsa")
    stranger, _ = make_key(tmp_path, "ed25519", "stranger")
    url, requests = example_webhook([{"username": "alice", "authorizedKeys": [ed_pub + " laptop", ec_pub]}])
    berth = start_berth({"auth": webhook_auth(url)})
    for key in (ed_key, ec_key):
        result = berth.ssh("alice", "whoami", key=key)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"alice\n"
    denied = berth.ssh("alice", "whoami", key=stranger)
    assert denied.returncode == 255
    assert b"Permission denied" in denied.stderr
    offered = [r["body"]["publicKey"] for r in requests() if r["path"].endswith("/pubkey")]
    assert ed_pub in offered and ec_pub in offered


def test_key_rejected_then_password_accepted(tmp_path, start_berth, example_webhook):
    stranger, stranger_pub = make_key(tmp_path, "ed25519", "stranger")
    url, requests = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url)})
    result = berth.ssh("alice", "whoami", password="secret", key=stranger,
                       extra=["-o", "PreferredAuthentications=publickey,password"])
    assert result.returncode == 0, result.stderr
    paths = [r["path"] for r in requests()]
    assert paths == ["/pubkey", "/password"]
    assert requests()[0]["body"]["publicKey"] == stranger_pub


def test_rsa_key_offered_first_then_password(tmp_path, start_berth, example_webhook):
    """OpenSSH ≥ 8.8 offers an RSA key only with rsa-sha2-* signatures and only when the server
    announces them in server-sig-algs; the key is verified and asked about, then the password works."""
    rsa_key, rsa_pub = make_key(tmp_path, "rsa")
    url, requests = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url)})
    result = berth.ssh("alice", "whoami", password="secret", key=rsa_key,
                       extra=["-o", "PreferredAuthentications=publickey,password"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"alice\n"
    assert [r["path"] for r in requests()] == ["/pubkey", "/password"]
    assert requests()[0]["body"]["publicKey"].split()[:2] == rsa_pub.split()[:2]


def test_webhook_request_bodies_match_the_protocol(tmp_path, start_berth, example_webhook):
    key, pub = make_key(tmp_path, "ed25519")
    url, requests = example_webhook([{"username": "alice", "password": "s3cr:t ü", "authorizedKeys": [pub]}])
    berth = start_berth({"auth": webhook_auth(url)})
    assert berth.ssh("alice", "true", password="s3cr:t ü").returncode == 0
    assert berth.ssh("alice", "true", key=key).returncode == 0
    password_request, pubkey_request = [r["body"] for r in requests()]
    common = {"connectionId", "remoteAddress", "clientVersion", "username"}
    assert set(password_request) == common | {"passwordBase64"}
    assert set(pubkey_request) == common | {"publicKey"}
    for body in (password_request, pubkey_request):
        assert re.fullmatch(r"[0-9a-f]{32}", body["connectionId"])
        assert re.fullmatch(r"127\.0\.0\.1:\d+", body["remoteAddress"])
        assert body["clientVersion"].startswith("SSH-2.0-OpenSSH")
        assert body["username"] == "alice"
    assert password_request["connectionId"] != pubkey_request["connectionId"]
    assert base64.b64decode(password_request["passwordBase64"]).decode() == "s3cr:t ü"
    assert pubkey_request["publicKey"] == pub


def test_authenticated_username_kept_when_omitted_and_replaced_when_given(start_berth, example_webhook):
    url, _ = example_webhook([
        {"username": "alice", "password": "a"},
        {"username": "bob", "password": "b", "authenticatedUsername": "bob@corp"},
    ])
    berth = start_berth({"auth": webhook_auth(url)})
    assert berth.ssh("alice", "whoami", password="a").stdout == b"alice\n"
    assert berth.ssh("bob", "whoami", password="b").stdout == b"bob@corp\n"


def test_environment_from_webhook_reaches_the_session(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "a", "environment": {"PROJECT": "berth"}}])
    berth = start_berth({"auth": webhook_auth(url)})
    result = berth.ssh("alice", "env", password="a", extra=["-o", "SetEnv=EXTRA=1"])
    assert b"PROJECT=berth\n" in result.stdout
    assert b"EXTRA=1\n" in result.stdout


def test_base_url_with_sub_path(start_berth, example_webhook):
    url, requests = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url + "/hooks/auth/")})
    assert berth.ssh("alice", "true", password="secret").returncode == 0
    assert [r["path"] for r in requests()] == ["/hooks/auth/password"]


def test_authz_denies_even_a_correct_password(start_berth, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    auth = webhook_auth(url)
    auth["authz"] = {"method": "webhook", "webhook": {"url": url}}
    berth = start_berth({"auth": auth})
    assert berth.ssh("denied", "true", password="pw").returncode != 0
    allowed = berth.ssh("carol", "whoami", password="pw")
    assert allowed.returncode == 0, allowed.stderr
    authz = [body for path, body in faulty_webhook.seen if path == "/authz"]
    assert {b["username"] for b in authz} == {"denied", "carol"}
    assert all(b["authenticatedUsername"] == b["username"] for b in authz)
    assert all("passwordBase64" not in b for b in authz)


def test_paramiko_password_exec_and_pty_shell(start_berth, example_webhook):
    url, _ = example_webhook([{"username": "alice", "password": "secret"}])
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"banner": "Welcome to Berth tests"}})
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="secret",
                   look_for_keys=False, allow_agent=False, timeout=20, banner_timeout=20)
    try:
        assert client.get_transport().get_banner().decode().startswith("Welcome to Berth tests")
        _, stdout, _ = client.exec_command("exit 3")
        assert stdout.channel.recv_exit_status() == 3
        channel = client.get_transport().open_session()
        channel.get_pty(term="xterm", width=100, height=30)
        channel.invoke_shell()
        channel.settimeout(20)
        received = b""
        while b"berth echo shell" not in received:
            received += channel.recv(1024)
        channel.send(b"typed\n")
        while b"typed" not in received.split(b"berth echo shell", 1)[1]:
            received += channel.recv(1024)
        channel.shutdown_write()
        assert channel.recv_exit_status() == 0
    finally:
        client.close()
