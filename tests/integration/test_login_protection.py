"""Limits before login against a running berth (echo backend, no Docker): login protection
(auth.protection), unauthenticated connections per source (ssh.perSourceMaxStartups) and the
descriptor reserve (ssh.descriptorReserve) with a real OpenSSH client, paramiko and raw sockets."""
import json
import os
import socket
import time
import urllib.request

import paramiko

from conftest import BERTH, Berth, Process, free_port, make_key, wait_for_port, wait_until, webhook_auth


def users(pub=None):
    alice = {"username": "alice", "password": "pw"}
    if pub:
        alice["authorizedKeys"] = [pub]
    return [alice, {"username": "bob", "password": "bobpw"}]


def protection(**settings):
    # Short delays keep the test quick; the rules are the same as with the defaults.
    return {"delayAfter": 1, "baseDelay": "50ms", "maxDelay": "100ms", **settings}


def greeting(port):
    """What the server sends first on a fresh connection ('' when it just closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
        return data.split(b"\n", 1)[0].decode(errors="replace") + ("\n" if b"\n" in data else "")


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def codes(berth):
    return [line.get("code") for line in berth.process.log_lines()]


def test_failed_passwords_block_the_address_until_the_block_ends(start_berth, example_webhook):
    url, requests = example_webhook(users())
    metrics_port = free_port()
    berth = start_berth({"auth": {**webhook_auth(url), "protection": protection(addressThreshold=3, userThreshold=0, blockDuration="3s")},
                         "metrics": {"enable": True, "listen": f"127.0.0.1:{metrics_port}"}})
    # A connection past key exchange before the block: its password is refused once blocked.
    early = paramiko.Transport(("127.0.0.1", berth.port))
    early.start_client(timeout=30)
    for user in ("alice", "bob", "carol"):
        assert berth.ssh(user, "whoami", password="wrong").returncode != 0
    asked = len(requests())
    # Blocked: closed before key exchange, whatever the credentials, and the webhook is not asked.
    assert greeting(berth.port) == "Berth: too many failed logins from your address; try again later\r\n"
    refused = berth.ssh("bob", "whoami", password="bobpw")
    assert refused.returncode != 0
    assert len(requests()) == asked
    try:
        early.auth_password("bob", "bobpw")
        assert False, "the password was accepted from a blocked address"
    except paramiko.SSHException:
        pass
    finally:
        early.close()
    assert len(requests()) == asked
    assert "SSH_LOGIN_BLOCKED" in codes(berth)
    assert "AUTH_PROTECTION_BLOCKED" in codes(berth)
    assert metric(metrics_port, 'berth_login_protection_blocks_total{kind="address"}') == 1
    assert metric(metrics_port, 'berth_login_protection_refusals_total{kind="address"}') >= 3
    assert metric(metrics_port, "berth_login_protection_delays_total") >= 1
    # The block ends on its own.
    wait_until(lambda: not greeting(berth.port).startswith("Berth:"), what="the block to end")
    assert berth.ssh("bob", "whoami", password="bobpw").stdout == b"bob\n"


def test_allow_listed_addresses_are_never_blocked(start_berth, example_webhook):
    url, _ = example_webhook(users())
    berth = start_berth({"auth": {**webhook_auth(url), "protection": protection(addressThreshold=2, userThreshold=2, allow=["127.0.0.0/8"])}})
    for _ in range(4):
        assert berth.ssh("alice", "whoami", password="wrong").returncode != 0
    assert berth.ssh("alice", "whoami", password="pw").stdout == b"alice\n"
    assert "AUTH_PROTECTION_BLOCKED" not in codes(berth)


def test_a_blocked_username_does_not_lock_out_others_or_its_key(tmp_path, start_berth, example_webhook):
    key, pub = make_key(tmp_path, "ed25519")
    url, requests = example_webhook(users(pub))
    berth = start_berth({"auth": {**webhook_auth(url), "protection": protection(addressThreshold=0, userThreshold=2)}})
    for _ in range(2):
        assert berth.ssh("alice", "whoami", password="wrong").returncode != 0
    asked = len(requests())
    # alice's right password is refused without asking the webhook…
    assert berth.ssh("alice", "whoami", password="pw").returncode != 0
    assert len(requests()) == asked
    assert "AUTH_PROTECTION_USER_BLOCKED" in codes(berth)
    # …while bob, from the same address, and alice's key still get in.
    assert berth.ssh("bob", "whoami", password="bobpw").stdout == b"bob\n"
    assert berth.ssh("alice", "whoami", key=key).stdout == b"alice\n"


def test_unauthenticated_connections_per_source_are_capped(start_berth, example_webhook):
    url, _ = example_webhook(users())
    berth = start_berth({"auth": webhook_auth(url), "ssh": {"perSourceMaxStartups": 2}})
    held = []

    def hold_one():
        # The start-up probe's connection may not have been counted out yet; retry, bounded.
        deadline = time.time() + 30
        while True:
            sock = socket.create_connection(("127.0.0.1", berth.port), timeout=20)
            if sock.recv(64).startswith(b"SSH-2.0-"):
                return sock
            sock.close()
            assert time.time() < deadline
            time.sleep(0.1)

    try:
        held += [hold_one(), hold_one()]
        assert greeting(berth.port) == "Berth: too many unauthenticated connections from 127.0.0.1/32\r\n"
    finally:
        for sock in held:
            sock.close()
    result = wait_until(lambda: (r := berth.ssh("alice", "whoami", password="pw")).returncode == 0 and r, timeout=30,
                        what="alice to be served again")
    assert result.stdout == b"alice\n"


def test_descriptor_reserve_keeps_room_for_logged_in_users(tmp_path, example_webhook):
    """berth runs with an open-files limit of 256 (soft and hard); a client holding hundreds of
    idle connections gets the extra ones closed at once instead of hanging everyone, and a user
    who is already in keeps working."""
    url, _ = example_webhook(users())
    port = free_port()
    config = {"auth": webhook_auth(url), "backend": "echo", "log": {"level": "debug", "format": "ljson"},
              "ssh": {"listen": f"127.0.0.1:{port}", "stateDirectory": str(tmp_path / "state"),
                      "maxStartups": "0", "perSourceMaxStartups": 0, "descriptorReserve": 128}}
    path = tmp_path / "berth.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, BERTH_ENABLE_TEST_BACKEND="1")
    process = Process(["prlimit", "--nofile=256:256", BERTH, "serve", "--config", str(path)], tmp_path / "berth.log", env=env)
    held = []
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        wait_for_port(port, process.proc)
        berth = Berth(process, port, path)
        client.connect("127.0.0.1", port=port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
        closed = 0
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            held.append(sock)
            if sock.recv(64) == b"":
                closed += 1
        assert closed > 0
        assert codes(berth).count("SSH_DESCRIPTOR_RESERVE") == 1
        stdin, stdout, _ = client.exec_command("whoami", timeout=30)
        assert stdout.read() == b"alice\n"
        for sock in held:
            sock.close()
        held = []
        result = wait_until(lambda: (r := berth.ssh("bob", "whoami", password="bobpw")).returncode == 0 and r, timeout=30,
                            what="bob to be served again")
        assert result.stdout == b"bob\n"
    finally:
        client.close()
        for sock in held:
            sock.close()
        process.stop()
