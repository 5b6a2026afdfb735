"""X11 forwarding (`ssh -X`, docs/configuration.md, "Unix socket, X11 and agent forwarding"): an X
client in the container (python3 of the guest image, which has no xauth, so Berth writes the
cookie file itself) reaches a test X server on the client side through OpenSSH, which checks and
replaces the cookie, and through paramiko's X11 handler."""
import os
import socket
import subprocess
import threading

import paramiko

from conftest import SSH_OPTS, wait_until, webhook_auth
from docker_helpers import BUSYBOX, docker_config
from forward_programs import X_CLIENT, command, read_x11_setup

USERS = [{"username": "alice", "password": "pw"}]
X11 = {"forwarding": {"x11ForwardingMode": "enable"}}
REAL_COOKIE = "0123456789abcdeffedcba9876543210"


def start(start_berth, example_webhook, security=X11, image=None):
    url, _ = example_webhook(USERS)
    config = {"auth": webhook_auth(url), **(docker_config(image=image) if image else docker_config())}
    if security is not None:
        config["security"] = security
    return start_berth(config)


class FakeXServer:
    """Listens on a free display; for each connection reads the setup, records the cookie it
    carries, reads the client's message and answers."""

    def __init__(self):
        for display in range(20, 90):
            try:
                self.listener = socket.create_server(("127.0.0.1", 6000 + display))
                self.display = display
                break
            except OSError:
                continue
        self.seen = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                def read(n):
                    data = b""
                    while len(data) < n:
                        chunk = conn.recv(n - len(data))
                        if not chunk:
                            raise EOFError
                        data += chunk
                    return data
                name, cookie = read_x11_setup(read)
                message = read(len(b"ping-from-the-x-client"))
                self.seen.append((name, cookie.hex(), message))
                conn.sendall(b"pong-from-the-x-server!")

    def close(self):
        self.listener.close()


def test_openssh_forwards_x11_and_substitutes_the_real_cookie(start_berth, example_webhook, tmp_path):
    berth = start(start_berth, example_webhook)
    server = FakeXServer()
    try:
        authority = tmp_path / "Xauthority"
        subprocess.run(["xauth", "-f", str(authority), "add", f"127.0.0.1:{server.display}", "MIT-MAGIC-COOKIE-1", REAL_COOKIE],
                       check=True, capture_output=True)
        env = dict(os.environ, DISPLAY=f"127.0.0.1:{server.display}", XAUTHORITY=str(authority))
        args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                "-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes", "-o", "XAuthLocation=/usr/bin/xauth",
                "alice@127.0.0.1", 'echo "display:$DISPLAY"; echo "xauthority:${XAUTHORITY:-home}"; ' + command(X_CLIENT)]
        result = subprocess.run(args, capture_output=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.decode().splitlines()
        assert lines[0].startswith("display:localhost:1") and lines[0].endswith(".0")
        # The guest image has xauth: the cookie went into the user's own ~/.Xauthority, as with sshd.
        assert lines[1] == "xauthority:home"
        assert lines[2] == "answer:pong-from-the-x-server!"
        # OpenSSH gave the container a fake cookie and put the real one back on its side.
        assert server.seen == [(b"MIT-MAGIC-COOKIE-1", REAL_COOKIE, b"ping-from-the-x-client")]
    finally:
        server.close()


def test_paramiko_x11_handler_single_connection_and_two_displays(start_berth, example_webhook):
    berth = start(start_berth, example_webhook)
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    channels = []
    arrived = threading.Condition()

    def handler(channel, origin):
        with arrived:
            channels.append((channel, origin))
            arrived.notify_all()

    try:
        transport.start_client(timeout=30)
        transport.auth_password("alice", "pw")
        cookie = "00112233445566778899aabbccddeeff"
        session = transport.open_session(timeout=30)
        session.request_x11(auth_cookie=cookie, single_connection=True, handler=handler)
        session.exec_command(command(X_CLIENT, "again"))

        with arrived:
            assert arrived.wait_for(lambda: channels, timeout=60)
        x11, origin = channels[0]
        assert origin[0] == "127.0.0.1" and origin[1] > 0

        def read(n):
            data = b""
            while len(data) < n:
                chunk = x11.recv(n - len(data))
                assert chunk, "the x11 channel ended early"
                data += chunk
            return data

        # paramiko does not substitute: the container's client sends the cookie given in x11-req.
        assert read_x11_setup(read) == (b"MIT-MAGIC-COOKIE-1", bytes.fromhex(cookie))
        assert read(len(b"ping-from-the-x-client")) == b"ping-from-the-x-client"
        x11.sendall(b"pong-from-paramiko!")
        output = session.makefile("rb").read().decode()
        assert session.recv_exit_status() == 0, output
        # The single-connection flag: the display stops listening after the first client.
        assert output.splitlines() == ["answer:pong-from-paramiko!", "second:refused"]
        assert len(channels) == 1

        # Two sessions of one connection get two displays.
        displays = []
        for _ in range(2):
            other = transport.open_session(timeout=30)
            other.request_x11(auth_cookie=cookie, handler=handler)
            other.exec_command('echo "$DISPLAY"; exec cat')
            displays.append(other.makefile("rb").readline().decode().strip())
        assert len(set(displays)) == 2 and all(d.startswith("localhost:") for d in displays), displays
    finally:
        transport.close()


def test_x11_is_refused_unless_enabled_and_the_command_runs(start_berth, example_webhook):
    berth = start(start_berth, example_webhook, security=None)
    env = dict(os.environ, DISPLAY="127.0.0.1:97")
    args = ["sshpass", "-p", "pw", "ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
            "-o", "LogLevel=INFO", "-X", "alice@127.0.0.1", 'echo "display:${DISPLAY:-none}"']
    result = subprocess.run(args, capture_output=True, timeout=120, env=env)
    assert (result.returncode, result.stdout) == (0, b"display:none\n"), result.stderr
    assert b"X11 forwarding request failed" in result.stderr
    assert wait_until(lambda: "x11ForwardingMode is not enable" in berth.process.output())


def test_without_xauth_berth_writes_the_cookie_file_itself(start_berth, example_webhook):
    """The busybox image has no xauth: a file of the session's own, FamilyWild, 0600, in
    XAUTHORITY; busybox's nc is the X client."""
    berth = start(start_berth, example_webhook, image=BUSYBOX)
    cookie = "8899aabbccddeeff0011223344556677"
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    channels = []
    arrived = threading.Condition()

    def handler(channel, origin):
        with arrived:
            channels.append(channel)
            arrived.notify_all()

    try:
        transport.start_client(timeout=30)
        transport.auth_password("alice", "pw")
        session = transport.open_session(timeout=30)
        session.request_x11(auth_cookie=cookie, screen_number=1, handler=handler)
        session.exec_command('echo "$DISPLAY"; echo "$XAUTHORITY"; stat -c %a "$XAUTHORITY" "$(dirname "$XAUTHORITY")"; '
                             'od -An -v -tx1 "$XAUTHORITY" | tr -d " \\n"; echo; '
                             'n=${DISPLAY#localhost:}; printf hello-x | nc 127.0.0.1 $((6000 + ${n%.*}))')
        stdout = session.makefile("rb")
        display = stdout.readline().decode().strip()
        authority = stdout.readline().decode().strip()
        modes = [stdout.readline().decode().strip() for _ in range(2)]
        entry = stdout.readline().decode().strip()
        number = display.split(":")[1].split(".")[0]
        assert display.endswith(".1") and authority.startswith("/tmp/berth-x11-") and modes == ["600", "700"]
        name = b"MIT-MAGIC-COOKIE-1"
        expected = (b"\xff\xff\x00\x00" + len(number).to_bytes(2, "big") + number.encode() + len(name).to_bytes(2, "big") + name
                    + (16).to_bytes(2, "big") + bytes.fromhex(cookie))
        assert entry == expected.hex()
        with arrived:
            assert arrived.wait_for(lambda: channels, timeout=60)
        received = b""
        while len(received) < len(b"hello-x"):
            chunk = channels[0].recv(100)
            assert chunk, "the x11 channel ended early"
            received += chunk
        assert received == b"hello-x"
        channels[0].close()
        assert session.recv_exit_status() == 0
    finally:
        transport.close()
