"""`forward-server`: the forwarding protocol (docs/agent-protocol.md, "Forwarding") spoken by a test peer that encodes with
cbor2 (an independent CBOR implementation), against real sockets on the host."""
import hashlib
import os
import random
import select
import socket
import subprocess
import tempfile
import threading
import time

import cbor2
import pytest

SETUP, SUCCESS, ERROR, DATA, NEW, CLOSE, NO_MORE = range(7)
X11, PORT_FORWARD, PORT_DIAL = 0, 1, 2


class Peer:
    """Berth's side of the protocol, by hand."""

    def __init__(self, binary):
        self.process = subprocess.Popen([binary, "forward-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.buffer = b""

    def send(self, type_, conn=0, payload=None):
        self.process.stdin.write(cbor2.dumps({"Type": type_, "ConnectionId": conn, "Payload": payload}))
        self.process.stdin.flush()

    def setup(self, connection_type, host="", port=0, protocol="tcp", single=False):
        payload = cbor2.dumps({"ConnectionType": connection_type, "BindHost": host, "BindPort": port, "Protocol": protocol,
                               "Screen": "0", "SingleConnection": single, "AuthProtocol": "MIT-MAGIC-COOKIE-1",
                               "AuthCookie": "00112233445566778899aabbccddeeff"})
        self.send(SETUP, 0, payload)
        return self.receive()

    def receive(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            if self.buffer:
                try:
                    decoder_input = self.buffer
                    item = cbor2.loads(decoder_input[:self._item_length()])
                    self.buffer = self.buffer[self._item_length():]
                    return item
                except _Incomplete:
                    pass
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no packet from the agent in time"
            ready, _, _ = select.select([self.process.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"agent closed stdout; stderr: {self.process.stderr.read()!r}"
                self.buffer += chunk

    def _item_length(self):
        # cbor2 has no incremental API: find where the first item ends by decoding from a file.
        import io
        stream = io.BytesIO(self.buffer)
        try:
            cbor2.CBORDecoder(stream).decode()
        except (cbor2.CBORDecodeEOF, EOFError):
            raise _Incomplete()
        return stream.tell()

    def receive_data(self, conn, count, timeout=20):
        data = b""
        while len(data) < count:
            packet = self.receive(timeout)
            assert packet["Type"] == DATA and packet["ConnectionId"] == conn, packet
            data += packet["Payload"]
        return data

    def finish(self):
        self.process.stdin.close()
        code = self.process.wait(timeout=10)
        return code, self.process.stderr.read()


class _Incomplete(Exception):
    pass


@pytest.fixture
def peer(host_binary):
    peers = []

    def make():
        p = Peer(host_binary)
        peers.append(p)
        return p

    yield make
    for p in peers:
        if p.process.poll() is None:
            p.process.kill()
            p.process.wait()


def serve_once(handler, family=socket.AF_INET, address=("127.0.0.1", 0)):
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(1)

    def run():
        conn, _ = server.accept()
        with conn:
            handler(conn)
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()


def echo(conn):
    while chunk := conn.recv(65536):
        conn.sendall(chunk)


def digest_after_eof(conn):
    h = hashlib.sha256()
    while chunk := conn.recv(65536):
        h.update(chunk)
    conn.sendall(h.hexdigest().encode())


def new_connection(host, port, protocol="tcp"):
    return cbor2.dumps({"Protocol": protocol, "ConnectedAddress": host, "ConnectedPort": port,
                        "OriginatorAddress": "127.0.0.1", "OriginatorPort": 5555})


def test_dial_echo_and_close(peer):
    host, port = serve_once(echo)
    p = peer()
    assert p.setup(PORT_DIAL)["Type"] == SUCCESS
    p.send(NEW, 1, new_connection(host, port))
    assert p.receive() == {"Type": SUCCESS, "ConnectionId": 1, "Payload": None}
    p.send(DATA, 1, b"hello agent")
    assert p.receive_data(1, 11) == b"hello agent"
    p.send(CLOSE, 1)
    # The echo server sees EOF and closes; the agent then answers our CLOSE.
    assert p.receive() == {"Type": SUCCESS, "ConnectionId": 1, "Payload": None}
    p.send(NO_MORE)
    assert p.process.wait(timeout=10) == 0


def test_close_is_a_half_close_so_the_answer_still_arrives(peer):
    """The client sends everything and EOF; the server answers after EOF (like `nc -N`)."""
    host, port = serve_once(digest_after_eof)
    p = peer()
    p.setup(PORT_DIAL)
    p.send(NEW, 1, new_connection(host, port))
    assert p.receive()["Type"] == SUCCESS
    body = os.urandom(3 << 20)
    for offset in range(0, len(body), 32768):
        p.send(DATA, 1, body[offset:offset + 32768])
    p.send(CLOSE, 1)
    assert p.receive_data(1, 64).decode() == hashlib.sha256(body).hexdigest()
    assert p.receive()["Type"] == SUCCESS


def test_dial_failure_is_an_error_with_a_reason(peer):
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    p = peer()
    p.setup(PORT_DIAL)
    p.send(NEW, 1, new_connection("127.0.0.1", port))
    answer = p.receive()
    assert answer["Type"] == ERROR and answer["ConnectionId"] == 1
    assert b"refused" in answer["Payload"].lower()
    # The server keeps working for the next connection.
    host, port = serve_once(echo)
    p.send(NEW, 2, new_connection(host, port))
    assert p.receive()["Type"] == SUCCESS


def test_reused_connection_id_is_refused(peer):
    host, port = serve_once(echo)
    p = peer()
    p.setup(PORT_DIAL)
    p.send(NEW, 1, new_connection(host, port))
    assert p.receive()["Type"] == SUCCESS
    p.send(NEW, 1, new_connection(host, port))
    answer = p.receive()
    assert answer["Type"] == ERROR and answer["ConnectionId"] == 1


def test_listen_on_port_zero_reports_the_bound_port_and_offers_connections(peer):
    p = peer()
    answer = p.setup(PORT_FORWARD, "127.0.0.1", 0)
    assert answer["Type"] == SUCCESS
    port = cbor2.loads(answer["Payload"])["BindPort"]
    assert 0 < port < 65536
    client = socket.create_connection(("127.0.0.1", port))
    offer = p.receive()
    assert offer["Type"] == NEW and offer["ConnectionId"] == 1
    details = cbor2.loads(offer["Payload"])
    assert details["Protocol"] == "tcp" and details["ConnectedPort"] == port
    assert details["OriginatorAddress"] == "127.0.0.1" and details["OriginatorPort"] == client.getsockname()[1]
    p.send(SUCCESS, 1)
    client.sendall(b"from inside")
    assert p.receive_data(1, 11) == b"from inside"
    p.send(DATA, 1, b"from the client")
    assert client.recv(100) == b"from the client"
    client.shutdown(socket.SHUT_WR)
    assert p.receive() == {"Type": CLOSE, "ConnectionId": 1, "Payload": None}
    p.send(SUCCESS, 1)
    p.send(NO_MORE)
    assert p.process.wait(timeout=10) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_rejected_offer_closes_the_socket(peer):
    p = peer()
    port = cbor2.loads(p.setup(PORT_FORWARD, "127.0.0.1", 0)["Payload"])["BindPort"]
    client = socket.create_connection(("127.0.0.1", port))
    assert p.receive()["Type"] == NEW
    p.send(ERROR, 1, b"client refused")
    client.settimeout(5)
    assert client.recv(10) == b""


def test_listen_failure_is_an_error_and_exit_1(peer):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    p = peer()
    answer = p.setup(PORT_FORWARD, "127.0.0.1", taken.getsockname()[1])
    assert answer["Type"] == ERROR and b"in use" in answer["Payload"].lower()
    assert p.process.wait(timeout=10) == 1
    taken.close()


def test_unix_socket_dial_and_listen(peer, tmp_path):
    path = str(tmp_path / "app.sock")
    serve_once(echo, socket.AF_UNIX, path)
    p = peer()
    p.setup(PORT_DIAL)
    p.send(NEW, 1, new_connection(path, 0, "unix"))
    assert p.receive()["Type"] == SUCCESS
    p.send(DATA, 1, b"over unix")
    assert p.receive_data(1, 9) == b"over unix"

    listen_path = str(tmp_path / "listen.sock")
    q = peer()
    assert q.setup(PORT_FORWARD, listen_path, 0, "unix")["Type"] == SUCCESS
    client = socket.socket(socket.AF_UNIX)
    client.connect(listen_path)
    offer = q.receive()
    assert offer["Type"] == NEW and cbor2.loads(offer["Payload"])["Protocol"] == "unix"
    q.send(SUCCESS, 1)
    client.sendall(b"ping")
    assert q.receive_data(1, 4) == b"ping"
    q.send(NO_MORE)
    client.close()
    assert q.receive()["Type"] == CLOSE
    q.send(SUCCESS, 1)
    assert q.process.wait(timeout=10) == 0
    assert not os.path.exists(listen_path), "the listening socket file is removed"


def test_x11_listens_on_a_display_of_its_own_and_honours_single_connection(peer):
    """Berth's addition (docs/agent-protocol.md): the reply names the display, from 10 up, on
    the loopback address; each X client is a NEW_CONNECTION with its originator."""
    first, second = peer(), peer()
    answer = first.setup(X11, "localhost", 10, single=True)
    assert answer["Type"] == SUCCESS
    display = cbor2.loads(answer["Payload"])["BindPort"]
    other = cbor2.loads(second.setup(X11, "localhost", 10)["Payload"])["BindPort"]
    assert display >= 10 and other >= 10 and display != other
    client = socket.create_connection(("127.0.0.1", 6000 + display))
    offer = first.receive()
    assert offer["Type"] == NEW and offer["ConnectionId"] == 1
    details = cbor2.loads(offer["Payload"])
    assert details["OriginatorAddress"] == "127.0.0.1" and details["OriginatorPort"] == client.getsockname()[1]
    first.send(SUCCESS, 1)
    client.sendall(b"x11 setup")
    assert first.receive_data(1, 9) == b"x11 setup"
    # Single connection: the display no longer listens.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 6000 + display), timeout=5)
    client.close()
    assert first.receive()["Type"] == CLOSE
    first.send(SUCCESS, 1)
    # With its only connection done, a single-connection X11 forward-server ends by itself.
    assert first.process.wait(timeout=10) == 0
    assert second.finish()[0] == 0


def test_stdin_eof_ends_everything_at_once(peer):
    host, port = serve_once(echo)
    p = peer()
    p.setup(PORT_DIAL)
    p.send(NEW, 1, new_connection(host, port))
    assert p.receive()["Type"] == SUCCESS
    code, _ = p.finish()
    assert code == 0


@pytest.mark.parametrize("seed", range(40))
def test_malformed_input_is_a_clean_error(peer, seed):
    """Random bytes, random CBOR and wrong-shaped packets: exit 2 with a message, or (for input
    that happens to be a harmless packet) a normal end; never a crash by signal."""
    rng = random.Random(seed)
    p = peer()
    if seed % 2:
        p.setup(PORT_DIAL)
    choices = [
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))),
        lambda: cbor2.dumps(rng.choice([[1, 2], "text", 5, {"Type": "x"}, {"Type": 99}, {"Type": 3, "Payload": 7},
                                        {"Type": 0, "Payload": b"\xff\xff"}, {"Type": 4, "ConnectionId": 1, "Payload": b"\xa1"}])),
        lambda: b"\xbf" * rng.randrange(1, 100000),
        lambda: b"\x5a\xff\xff\xff\xff",
    ]
    try:
        p.process.stdin.write(rng.choice(choices)())
        p.process.stdin.close()
    except BrokenPipeError:
        pass
    code = p.process.wait(timeout=10)
    assert code in (0, 1, 2), f"agent ended with {code}: {p.process.stderr.read()!r}"
    if code == 2:
        assert b"forwarding protocol" in p.process.stderr.read()
