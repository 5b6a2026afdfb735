"""The ssh section's protocol settings reach the wire: the announced version, exactly the
configured algorithm lists in KEXINIT, host key and public key algorithm limits, maxStartups."""
import os
import socket
import struct
import time

from conftest import make_key, webhook_auth

USERS = [{"username": "alice", "password": "pw"}]


def server_hello(port):
    """The server's identification line and its first KEXINIT (sent in clear before any key
    exchange), read from a raw socket after announcing ourselves as an SSH-2.0 client."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"SSH-2.0-settings_test\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, "connection closed before the version line"
            data += chunk
        version, rest = data.split(b"\r\n", 1)
        while len(rest) < 4 or len(rest) < 4 + struct.unpack(">I", rest[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed before KEXINIT"
            rest += chunk
    length = struct.unpack(">I", rest[:4])[0]
    padding = rest[4]
    payload = rest[5:4 + length - padding]
    assert payload[0] == 20, "first packet is not KEXINIT"
    offset = 17
    lists = []
    for _ in range(10):
        size = struct.unpack(">I", payload[offset:offset + 4])[0]
        text = payload[offset + 4:offset + 4 + size].decode()
        lists.append(text.split(",") if text else [])
        offset += 4 + size
    names = ("kex", "hostkey", "cipher_cs", "cipher_sc", "mac_cs", "mac_sc", "comp_cs", "comp_sc", "lang_cs", "lang_sc")
    return version.decode(), dict(zip(names, lists))


def packet(payload):
    padding = 8 - (len(payload) + 5) % 8
    padding += 8 if padding < 4 else 0
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\0" * padding


def name_list(names):
    text = names.encode()
    return struct.pack(">I", len(text)) + text


def read_packet(sock, buffered):
    while len(buffered) < 4 or len(buffered) < 4 + struct.unpack(">I", buffered[:4])[0]:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buffered += chunk
    length = struct.unpack(">I", buffered[:4])[0]
    padding = buffered[4]
    return buffered[5:4 + length - padding], buffered[4 + length:]


def offer_kexinit(port, ciphers):
    """Sends a KEXINIT whose cipher list is `ciphers` (everything else ordinary) and returns the
    server's DISCONNECT reason and description."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"SSH-2.0-settings_test\r\n")
        data = b""
        while b"\r\n" not in data:
            data += sock.recv(4096)
        rest = data.split(b"\r\n", 1)[1]
        kexinit, rest = read_packet(sock, rest)
        assert kexinit[0] == 20
        payload = bytes([20]) + b"\x11" * 16 + name_list("curve25519-sha256") + name_list("ssh-ed25519,rsa-sha2-256")
        payload += name_list(ciphers) * 2 + name_list("hmac-sha2-256") * 2 + name_list("none") * 2 + name_list("") * 2
        payload += b"\0" + struct.pack(">I", 0)
        sock.sendall(packet(payload))
        reply, _ = read_packet(sock, rest)
    assert reply[0] == 1, f"expected DISCONNECT, got message {reply[0]}"
    reason = struct.unpack(">I", reply[1:5])[0]
    size = struct.unpack(">I", reply[5:9])[0]
    return reason, reply[9:9 + size].decode()


def start(start_berth, example_webhook, ssh=None, name="berth"):
    url, _ = example_webhook(USERS)
    return start_berth({"ssh": ssh or {}, "auth": webhook_auth(url)}, name=name)


def test_server_version_and_algorithm_lists_are_announced_exactly(start_berth, example_webhook):
    ssh = {
        "serverVersion": "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5",
        "kex": ["curve25519-sha256", "diffie-hellman-group14-sha256"],
        "ciphers": ["aes256-ctr", "aes128-gcm@openssh.com"],
        "macs": ["hmac-sha2-512", "hmac-sha2-256-etm@openssh.com"],
        "hostKeyAlgorithms": ["rsa-sha2-256", "ssh-ed25519"],
    }
    berth = start(start_berth, example_webhook, ssh)
    version, lists = server_hello(berth.port)
    assert version == "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5"
    # Strict kex (Terrapin) is always offered on top of the configured list.
    assert lists["kex"] == ssh["kex"] + ["kex-strict-s-v00@openssh.com"]
    assert lists["cipher_cs"] == lists["cipher_sc"] == ssh["ciphers"]
    assert lists["mac_cs"] == lists["mac_sc"] == ssh["macs"]
    assert lists["hostkey"] == ssh["hostKeyAlgorithms"]
    assert lists["comp_cs"] == ["none"]
    # A real client negotiates within those lists and logs in.
    result = berth.ssh("alice", "whoami", password="pw",
                       extra=["-o", "Ciphers=aes256-ctr", "-o", "MACs=hmac-sha2-512", "-o", "KexAlgorithms=diffie-hellman-group14-sha256",
                              "-o", "HostKeyAlgorithms=rsa-sha2-256"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"alice\n"
    # OpenSSH gives up by itself when nothing matches; a client that insists gets DISCONNECT
    # (key exchange failed) naming the category and both lists, and Berth logs why.
    reason, description = offer_kexinit(berth.port, ciphers="chacha20-poly1305@openssh.com")
    assert reason == 3
    assert "cipher" in description and "aes256-ctr" in description and "chacha20-poly1305@openssh.com" in description
    deadline = time.time() + 30
    while "SSH_KEX_NO_COMMON_ALGORITHM" not in berth.process.output() and time.time() < deadline:
        time.sleep(0.1)
    assert "SSH_KEX_NO_COMMON_ALGORITHM" in berth.process.output()


def test_default_lists_offer_every_default_algorithm(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    version, lists = server_hello(berth.port)
    assert version == "SSH-2.0-Berth"
    assert lists["kex"][0] == "mlkem768x25519-sha256" and "kex-strict-s-v00@openssh.com" in lists["kex"]
    assert "diffie-hellman-group1-sha1" not in lists["kex"]
    assert lists["cipher_cs"][0] == "chacha20-poly1305@openssh.com" and "aes128-cbc" not in lists["cipher_cs"]
    # Generated host keys: ed25519, ECDSA P-256 and RSA (SHA-2 signatures only by default).
    assert lists["hostkey"] == ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]


def test_public_key_algorithms_limit_user_keys(tmp_path, start_berth, example_webhook):
    rsa_key, rsa_pub = make_key(tmp_path, "rsa")
    ed_key, ed_pub = make_key(tmp_path, "ed25519")
    url, requests = example_webhook([{"username": "alice", "authorizedKeys": [rsa_pub, ed_pub]}])
    berth = start_berth({"ssh": {"publicKeyAlgorithms": ["ssh-ed25519"]}, "auth": webhook_auth(url)})
    refused = berth.ssh("alice", "whoami", key=rsa_key)
    assert refused.returncode == 255
    # The RSA signature is refused before any authenticator is asked.
    assert requests() == []
    accepted = berth.ssh("alice", "whoami", key=ed_key)
    assert accepted.returncode == 0, accepted.stderr
    assert [r["path"] for r in requests()] == ["/pubkey"]


def test_max_startups_refuses_unauthenticated_floods_and_recovers(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, {"maxStartups": "2"})
    held = []

    def hold_one():
        # The start-up probe's connection may not have been counted out yet; retry until the
        # server greets us, bounded.
        deadline = time.time() + 30
        while True:
            sock = socket.create_connection(("127.0.0.1", berth.port), timeout=20)
            greeting = sock.recv(64)
            if greeting.startswith(b"SSH-2.0-"):
                return sock
            sock.close()
            assert time.time() < deadline, greeting
            time.sleep(0.1)

    try:
        held.append(hold_one())
        held.append(hold_one())
        with socket.create_connection(("127.0.0.1", berth.port), timeout=20) as third:
            assert third.recv(256) == b"Berth: too many unauthenticated connections\r\n"
    finally:
        for sock in held:
            sock.close()
    # Once the silent connections are gone, logins work again.
    deadline = time.time() + 30
    while True:
        result = berth.ssh("alice", "whoami", password="pw")
        if result.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert result.stdout == b"alice\n", result.stderr
    assert "SSH_CONNECTION_REFUSED" in berth.process.output()


def test_client_alive_ends_unresponsive_connections_only(start_berth, example_webhook):
    """ssh.clientAliveInterval/CountMax: keepalive@openssh.com requests go to authenticated
    clients; one that stops answering (here: its process is stopped) is disconnected, one that
    answers stays."""
    import signal
    import subprocess

    berth = start(start_berth, example_webhook, {"clientAliveInterval": "1s", "clientAliveCountMax": 2})
    args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "PubkeyAuthentication=no", "alice@127.0.0.1", "cat"]
    live = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    frozen = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for proc in (live, frozen):
            proc.stdin.write(b"ping\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"ping\n"
        ssh_pids = subprocess.run(["pgrep", "-P", str(frozen.pid)], capture_output=True, text=True).stdout.split()
        for pid in ssh_pids + [str(frozen.pid)]:
            os.kill(int(pid), signal.SIGSTOP)
        deadline = time.time() + 60
        while "SSH_KEEPALIVE_NORESP" not in berth.process.output() and time.time() < deadline:
            time.sleep(0.1)
        assert "SSH_KEEPALIVE_NORESP" in berth.process.output()
        # The answering client went through the same keepalive rounds and is still connected.
        live.stdin.write(b"still here\n")
        live.stdin.flush()
        assert live.stdout.readline() == b"still here\n"
        assert berth.process.output().count("SSH_KEEPALIVE_NORESP") == 1
    finally:
        for pid in subprocess.run(["pgrep", "-P", str(frozen.pid)], capture_output=True, text=True).stdout.split() + [str(frozen.pid)]:
            try:
                os.kill(int(pid), signal.SIGCONT)
            except ProcessLookupError:
                pass
        for proc in (live, frozen):
            proc.kill()
            proc.wait()
