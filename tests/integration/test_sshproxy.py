"""The SSH proxy backend against a real OpenSSH sshd on loopback (docs/configuration.md, "sshproxy")."""
import asyncio
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

import asyncssh
import paramiko
import pytest
import socket
import threading

from conftest import SSH_OPTS, Process, free_port, make_key, wait_for_port, wait_until, webhook_auth


def start_upstream(directory, host_key_type="ed25519", client_key_type="ed25519", extra=""):
    """An sshd of our own: root logs in with a key made here; returns its details."""
    directory.mkdir()
    host_key = directory / f"ssh_host_{host_key_type}_key"
    key_args = {"ed25519": ["-t", "ed25519"], "rsa": ["-t", "rsa", "-b", "3072"], "ecdsa": ["-t", "ecdsa", "-b", "384"]}
    subprocess.run(["ssh-keygen", "-q", *key_args[host_key_type], "-N", "", "-f", str(host_key)], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{host_key}.pub"], capture_output=True, text=True, check=True).stdout.split()[1]
    client_key, client_pub = make_key(directory, client_key_type, "berth_upstream_key")
    (directory / "authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
PermitRootLogin prohibit-password
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AcceptEnv PROXYTEST
Subsystem sftp /usr/lib/openssh/sftp-server
{extra}
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    log = directory / "sshd.log"
    process = Process(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], log)
    wait_for_port(port, process.proc)
    return {"port": port, "fingerprint": fingerprint, "key": str(client_key), "log": log, "process": process}


@pytest.fixture
def upstream(tmp_path):
    details = start_upstream(tmp_path / "upstream")
    yield details
    details["process"].stop()


@pytest.fixture
def make_upstream(tmp_path):
    started = []

    def make(**options):
        details = start_upstream(tmp_path / f"upstream{len(started)}", **options)
        started.append(details)
        return details
    yield make
    for details in started:
        details["process"].stop()


def proxy_config(upstream, **overrides):
    upstream = {key: value for key, value in upstream.items() if key in ("port", "fingerprint", "key")}
    block = {"server": "127.0.0.1", "port": upstream["port"], "username": "root", "privateKey": upstream["key"],
             "allowedHostKeyFingerprints": [upstream["fingerprint"]], "timeout": "5s", **overrides}
    return {"backend": "sshproxy", "sshproxy": block}


def start(start_berth, example_webhook, upstream, name="berth", **overrides):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    return start_berth({"auth": webhook_auth(url), **proxy_config(upstream, **overrides)}, name=name)


def test_exec_output_stderr_exit_code_and_env(start_berth, example_webhook, upstream):
    berth = start(start_berth, example_webhook, upstream)
    result = berth.ssh("alice", "echo out $PROXYTEST; echo err >&2; whoami; exit 7", password="pw", extra=["-o", "SetEnv=PROXYTEST=relayed"])
    assert result.returncode == 7, result.stderr
    assert result.stdout == b"out relayed\nroot\n"
    assert result.stderr == b"err\n"
    piped = berth.ssh("alice", "cat; echo END", password="pw", stdin=os.urandom(2_000_000))
    assert piped.returncode == 0 and len(piped.stdout) == 2_000_000 + 4


def test_pty_shell_with_resize(start_berth, example_webhook, upstream):
    berth = start(start_berth, example_webhook, upstream)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    try:
        channel = client.get_transport().open_session()
        channel.get_pty(term="xterm", width=91, height=27)
        channel.invoke_shell()
        channel.settimeout(30)
        # After the resize the shell reports the size for every line it reads until it is the
        # new one: the test waits for the resize to arrive upstream, not for a time.
        channel.send(b'stty size; while read x; do [ "$(stty size)" = "$((40+3)) $((130+2))" ] && break; done; stty size; exit 5\n')
        output = b""
        while b"27 91" not in output:
            output += channel.recv(4096)
        channel.resize_pty(width=132, height=43)

        def resized():
            nonlocal output
            if not channel.exit_status_ready():
                channel.send(b"\n")
            while channel.recv_ready():
                output += channel.recv(4096)
            return b"43 132" in output
        assert wait_until(resized, timeout=30), output
        assert channel.recv_exit_status() == 5
    finally:
        client.close()


def test_sftp_through_the_proxy(tmp_path, start_berth, example_webhook, upstream):
    key, pub = make_key(tmp_path, "ed25519", "client")
    url, _ = example_webhook([{"username": "alice", "authorizedKeys": [pub]}])
    berth = start_berth({"auth": webhook_auth(url), **proxy_config(upstream)})
    source = tmp_path / "up.bin"
    source.write_bytes(os.urandom(1024 * 1024))
    target = tmp_path / "proxied.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"put {source} {target}\nget {target} {tmp_path / 'down.bin'}\n")
    result = subprocess.run(["sftp", "-P", str(berth.port), *SSH_OPTS, "-o", "IdentitiesOnly=yes", "-i", str(key), "-b", str(batch),
                             "alice@127.0.0.1"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()


def test_exit_signal_reaches_the_client(start_berth, example_webhook, upstream):
    berth = start(start_berth, example_webhook, upstream)

    async def scenario():
        async with asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw",
                                    known_hosts=None, client_keys=None) as connection:
            return await connection.run("echo before; kill -TERM $$", check=False)

    result = asyncio.run(scenario())
    assert result.stdout == "before\n"
    assert result.exit_signal is not None and result.exit_signal[0] == "TERM"


def test_wrong_fingerprint_and_unreachable_upstream_are_refused(start_berth, example_webhook, upstream):
    wrong = start(start_berth, example_webhook, upstream, allowedHostKeyFingerprints=["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
    result = wrong.ssh("alice", "true", password="pw")
    # The user gets the code and the connection ID; the fingerprint and address stay in the log.
    assert result.returncode == 1
    assert b"cannot start your session upstream" in result.stderr and b"(SSHPROXY_LOGIN_FAILED, connection " in result.stderr
    assert b"SHA256:" not in result.stderr
    assert "not in sshproxy.allowedHostKeyFingerprints" in wrong.process.output()
    assert any(line.get("code") == "SSHPROXY_HOST_KEY_REJECTED" for line in wrong.process.log_lines())
    # A key the upstream does not know: the engine's client role gives up once the key was refused.
    stranger, _ = make_key(Path(upstream["key"]).parent, "ed25519", "stranger")
    unknown = start(start_berth, example_webhook, upstream, name="unknown", privateKey=str(stranger))
    result = unknown.ssh("alice", "true", password="pw")
    assert result.returncode == 1 and b"(SSHPROXY_LOGIN_FAILED, connection " in result.stderr
    assert any(line.get("code") == "SSHPROXY_AUTH_REJECTED" for line in unknown.process.log_lines())
    down = start(start_berth, example_webhook, upstream, name="down", port=free_port(), timeout="2s")
    started = time.monotonic()
    result = down.ssh("alice", "true", password="pw")
    assert result.returncode == 1 and b"(SSHPROXY_UPSTREAM_UNREACHABLE, connection " in result.stderr
    assert b"127.0.0.1" not in result.stderr and "cannot reach the upstream SSH server" in down.process.output()
    assert time.monotonic() - started < 20


def test_per_user_target_from_the_config_webhook(start_berth, example_webhook, upstream):
    url, _ = example_webhook([
        {"username": "alice", "password": "pw"},
        {"username": "bob", "password": "pw", "config": proxy_config(upstream)},
    ])
    configserver = {"url": f"{url}/config", "allow": ["backend", "proxyTarget", "credentials"]}
    berth = start_berth({"auth": webhook_auth(url), "configserver": configserver, "backend": "echo"})
    assert berth.ssh("alice", "whoami", password="pw").stdout == b"alice\n"
    assert berth.ssh("bob", "whoami", password="pw").stdout == b"root\n"
    # Without the operator's permission the same answer ends bob's login before anything starts.
    strict = start_berth({"auth": webhook_auth(url), "configserver": {"url": f"{url}/config"}, "backend": "echo"}, name="strict")
    refused = strict.ssh("bob", "whoami", password="pw")
    assert refused.returncode == 255 and b"CONFIG_WEBHOOK_POLICY_REFUSED" in refused.stderr
    keys = [line["details"]["key"] for line in strict.process.log_lines() if line.get("code") == "CONFIG_WEBHOOK_POLICY_REFUSED"]
    assert keys == ["backend"]


def test_username_pass_through_uses_the_authenticated_name(start_berth, example_webhook, upstream):
    # Typed alice (no such account upstream); the webhook proved root.
    url, _ = example_webhook([{"username": "alice", "password": "pw", "authenticatedUsername": "root"}])
    berth = start_berth({"auth": webhook_auth(url), **proxy_config(upstream, usernamePassThrough=True, username="")})
    result = berth.ssh("alice", "whoami", password="pw")
    assert result.returncode == 0 and result.stdout == b"root\n", result.stderr


def test_rsa_only_upstream_with_an_rsa_user_key(start_berth, example_webhook, make_upstream):
    upstream = make_upstream(host_key_type="rsa", client_key_type="rsa", extra="LogLevel DEBUG3")
    berth = start(start_berth, example_webhook, upstream)
    result = berth.ssh("alice", "whoami", password="pw")
    assert result.returncode == 0 and result.stdout == b"root\n", result.stderr
    log = upstream["log"].read_text()
    # sshd names the user key's signature algorithm: SHA-2 RSA (ssh-rsa would be SHA-1).
    assert "Accepted publickey for root" in log and "RSA SHA256:" in log, log
    assert re.search(r"attempting public key rsa-sha2-(512|256) ", log), log


def test_strict_kex_and_client_version_seen_upstream(start_berth, example_webhook, make_upstream):
    upstream = make_upstream(extra="LogLevel DEBUG3")
    berth = start(start_berth, example_webhook, upstream, clientVersion="SSH-2.0-ProxyProbe7 lab_1.0")
    result = berth.ssh("alice", "echo ok", password="pw")
    assert result.returncode == 0 and result.stdout == b"ok\n", result.stderr
    log = upstream["log"].read_text()
    assert "remote software version ProxyProbe7 lab_1.0" in log, log
    assert "will use strict KEX ordering" in log, log


def test_bad_client_version_is_refused_at_load(start_berth, example_webhook, upstream):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    berth = start_berth({"auth": webhook_auth(url), **proxy_config(upstream, clientVersion="SSH-2.0-bad\r\nx")}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "sshproxy.clientVersion" in berth.process.output()


def test_50_mib_each_way_with_rekeys_upstream(start_berth, example_webhook, make_upstream):
    # RekeyLimit 1M makes sshd rekey about every megabyte, so the transfers cross many rekeys.
    upstream = make_upstream(extra="RekeyLimit 1M\nLogLevel DEBUG1")
    berth = start(start_berth, example_webhook, upstream)
    size = 50 * 1024 * 1024
    payload = os.urandom(size)
    up = berth.ssh("alice", "sha256sum | cut -d' ' -f1", password="pw", stdin=payload, timeout=300)
    assert up.returncode == 0, up.stderr
    assert up.stdout.decode().strip() == hashlib.sha256(payload).hexdigest()
    down = berth.ssh("alice", f"head -c {size} /dev/urandom > /tmp/berth-proxy-down; sha256sum /tmp/berth-proxy-down >&2; "
                     "cat /tmp/berth-proxy-down; rm /tmp/berth-proxy-down", password="pw", timeout=300)
    assert down.returncode == 0
    assert len(down.stdout) == size
    # sshd's own debug lines may share the session's stderr; the hash line is sha256sum's.
    expected = re.search(r"([0-9a-f]{64})  /tmp/berth-proxy-down", down.stderr.decode())
    assert expected and hashlib.sha256(down.stdout).hexdigest() == expected.group(1), down.stderr[-2000:]
    log = upstream["log"].read_text()
    assert log.count("SSH2_MSG_NEWKEYS received") >= 20, log[-2000:]


def _echo_server(family=socket.AF_INET, address=("127.0.0.1", 0)):
    listener = socket.socket(family)
    listener.bind(address)
    listener.listen()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return

            def echo(connection=connection):
                with connection:
                    while data := connection.recv(65536):
                        connection.sendall(data)
            threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=serve, daemon=True).start()
    return listener


def _through(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def test_local_and_remote_forwards_are_relayed_upstream(start_berth, example_webhook, upstream):
    echo = _echo_server()
    try:
        berth_forwarding = {"forwarding": {"forwardingMode": "enable", "reverseForwardingMode": "enable"}}
        url, _ = example_webhook([{"username": "alice", "password": "pw"}])
        berth = start_berth({"auth": webhook_auth(url), "security": berth_forwarding, **proxy_config(upstream)}, name="forwarding")
        echo_port = echo.getsockname()[1]
        local, remote = free_port(), free_port()
        tunnel = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                                   "-o", "ExitOnForwardFailure=yes", "-N", "-L", f"127.0.0.1:{local}:127.0.0.1:{echo_port}",
                                   "-R", f"127.0.0.1:{remote}:127.0.0.1:{echo_port}", "alice@127.0.0.1"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            data = os.urandom(3 * 1024 * 1024)
            # -L: Berth opens direct-tcpip upstream, sshd connects to the echo server.
            assert wait_until(lambda: _try(lambda: _through(local, b"ping")) == b"ping", timeout=60)
            assert _through(local, data) == data
            # -R: sshd listens on `remote` and opens forwarded-tcpip back through Berth to the client.
            assert wait_until(lambda: _try(lambda: _through(remote, b"pong")) == b"pong", timeout=60)
            assert _through(remote, data) == data
        finally:
            tunnel.terminate()
            tunnel.wait(timeout=30)
    finally:
        echo.close()


def _try(body):
    try:
        return body()
    except OSError:
        return None


def test_upstream_keepalives_are_answered(start_berth, example_webhook, make_upstream):
    # sshd drops a client that leaves one keepalive unanswered; the command outlives several.
    upstream = make_upstream(extra="ClientAliveInterval 1\nClientAliveCountMax 1\nLogLevel DEBUG3")
    berth = start(start_berth, example_webhook, upstream)
    result = berth.ssh("alice", "sleep 4; echo alive", password="pw")
    assert result.returncode == 0 and result.stdout == b"alive\n", result.stderr
    log = upstream["log"].read_text()
    assert "keepalive@openssh.com" in log and "Timeout, client not responding" not in log, log[-3000:]


def test_configured_algorithms_are_used_upstream(start_berth, example_webhook, make_upstream):
    upstream = make_upstream(extra="LogLevel DEBUG1")
    berth = start(start_berth, example_webhook, upstream, kex=["diffie-hellman-group-exchange-sha256"],
                  ciphers=["aes256-ctr"], macs=["hmac-sha2-512-etm@openssh.com"])
    result = berth.ssh("alice", "echo ok", password="pw")
    assert result.returncode == 0 and result.stdout == b"ok\n", result.stderr
    log = upstream["log"].read_text()
    assert "kex: algorithm: diffie-hellman-group-exchange-sha256" in log, log
    assert "client->server cipher: aes256-ctr MAC: hmac-sha2-512-etm@openssh.com" in log, log


def _through_unix(path, data):
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(30)
        connection.connect(str(path))
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


RELAY_ALL = {"forwarding": {"socketForwardingMode": "enable", "socketListenMode": "enable", "x11ForwardingMode": "enable",
                            "agentForwardingMode": "enable"}}


def relay_berth(start_berth, example_webhook, upstream, name="relay", console=False):
    url, _ = example_webhook([{"username": "alice", "password": "pw"}])
    extra = {}
    if console:
        # Every middle layer of the stack is there: none of them may stop what it does not know.
        extra["console"] = {"enable": True, "listen": f"127.0.0.1:{free_port()}",
                            "operators": [{"username": "op", "passwordHash": "$6$salt$" + "x" * 86, "role": "admin"}]}
        extra["metrics"] = {"enable": True, "listen": f"127.0.0.1:{free_port()}", "path": "/metrics"}
    return start_berth({"auth": webhook_auth(url), "security": RELAY_ALL, **proxy_config(upstream), **extra}, name=name)


def test_unix_socket_forwards_are_relayed_upstream(tmp_path, start_berth, example_webhook, make_upstream):
    upstream = make_upstream(extra="AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes")
    berth = relay_berth(start_berth, example_webhook, upstream)
    served = tmp_path / "served.sock"
    listened = tmp_path / "listened.sock"
    unix_echo = _echo_server(socket.AF_UNIX, str(served))
    tcp_echo = _echo_server()
    local = free_port()
    tunnel = subprocess.Popen(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                               "-o", "ExitOnForwardFailure=yes", "-N", "-L", f"127.0.0.1:{local}:{served}",
                               "-R", f"{listened}:127.0.0.1:{tcp_echo.getsockname()[1]}", "alice@127.0.0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        data = os.urandom(8 * 1024 * 1024)
        # -L to a socket: direct-streamlocal upstream, sshd connects to the unix echo server.
        assert wait_until(lambda: _try(lambda: _through(local, b"ping")) == b"ping", timeout=60)
        assert hashlib.sha256(_through(local, data)).digest() == hashlib.sha256(data).digest()
        # -R from a socket: sshd listens on it and opens forwarded-streamlocal back through Berth.
        assert wait_until(lambda: _try(lambda: _through_unix(listened, b"pong")) == b"pong", timeout=60)
        assert hashlib.sha256(_through_unix(listened, data)).digest() == hashlib.sha256(data).digest()
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=30)
        unix_echo.close()
        tcp_echo.close()


@pytest.mark.parametrize("console", [False, True])
def test_agent_forwarding_is_relayed_upstream(tmp_path, start_berth, example_webhook, make_upstream, console):
    upstream = make_upstream(extra="AllowAgentForwarding yes")
    berth = relay_berth(start_berth, example_webhook, upstream, console=console)
    key = tmp_path / "id_forwarded"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "relayed-key", "-f", str(key)], check=True)
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_socket)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(agent_socket.exists, what="ssh-agent's socket")
        subprocess.run(["ssh-add", "-q", str(key)], env={"SSH_AUTH_SOCK": str(agent_socket)}, check=True, capture_output=True)
        args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no", "-o", f"IdentityAgent={agent_socket}"]
        # The upstream's program signs through the agent on the client's side of two hops.
        result = subprocess.run([*args, "-A", "alice@127.0.0.1", "ssh-add -L"], capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().strip() == (tmp_path / "id_forwarded.pub").read_text().strip()
        refused = subprocess.run([*args, "alice@127.0.0.1", "ssh-add -L; echo rc=$?"], capture_output=True, timeout=120)
        assert b"rc=2" in refused.stdout, refused.stdout
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def test_x11_forwarding_is_relayed_upstream_with_the_real_cookie(tmp_path, start_berth, example_webhook, make_upstream):
    from forward_programs import X_CLIENT, command
    from test_x11_forwarding import REAL_COOKIE, FakeXServer
    upstream = make_upstream(extra=f"X11Forwarding yes\nX11UseLocalhost yes\nXAuthLocation /usr/bin/xauth\nSetEnv XAUTHORITY={tmp_path}/upstream-Xauthority")
    berth = relay_berth(start_berth, example_webhook, upstream)
    server = FakeXServer()
    try:
        authority = tmp_path / "Xauthority"
        subprocess.run(["xauth", "-f", str(authority), "add", f"127.0.0.1:{server.display}", "MIT-MAGIC-COOKIE-1", REAL_COOKIE],
                       check=True, capture_output=True)
        env = dict(os.environ, DISPLAY=f"127.0.0.1:{server.display}", XAUTHORITY=str(authority))
        result = subprocess.run(["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                                 "-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes", "-o", "XAuthLocation=/usr/bin/xauth",
                                 "alice@127.0.0.1", command(X_CLIENT)], capture_output=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        assert b"answer:pong-from-the-x-server!" in result.stdout, result.stdout
        # The X server saw the real cookie: OpenSSH on the client put it in place of its stand-in.
        assert server.seen == [(b"MIT-MAGIC-COOKIE-1", REAL_COOKIE, b"ping-from-the-x-client")]
    finally:
        server.close()


def test_break_is_relayed_upstream(start_berth, example_webhook, make_upstream):
    upstream = make_upstream(extra="LogLevel DEBUG1")
    berth = start(start_berth, example_webhook, upstream, name="break")
    # OpenSSH sends a break with its ~B escape (escapes work with -tt); sshd logs what it served.
    result = subprocess.run(["sshpass", "-p", "pw", "ssh", "-tt", "-e", "~", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                             "alice@127.0.0.1", "read first; read line; echo got-$line"], input=b"\n~Bdone\n", capture_output=True, timeout=120)
    assert b"got-done" in result.stdout, (result.stdout, result.stderr)
    assert wait_until(lambda: "req break" in upstream["log"].read_text(), timeout=30), upstream["log"].read_text()[-2000:]
