"""Berth's side of the agent link protocol (docs/agent-protocol.md), written from the spec in
Python so the agent is tested against an independent implementation."""
import os
import select
import socket
import struct
import time

HELLO, ERROR, OK = 0x01, 0x02, 0x03
START, STARTED, INPUT, OUTPUT, ERROR_OUTPUT, WINDOW, EOF, RESIZE, SIGNAL, EXIT, CLOSE, DIRECT = range(0x10, 0x1C)
FEATURE_DIRECT_PIPES = 1
WRITE_FILE, USER, OPEN_FORWARD = 0x20, 0x21, 0x30
RESUMABLE, DETACH, SESSIONS, ATTACH = 0x40, 0x41, 0x42, 0x43


def u32(value):
    return struct.pack(">I", value)


def data(value):
    if isinstance(value, str):
        value = value.encode()
    return u32(len(value)) + value


def strings(values):
    return u32(len(values)) + b"".join(data(v) for v in values)


def frame(kind, channel, payload=b""):
    return struct.pack(">IBI", len(payload) + 5, kind, channel) + payload


def user_payload(name, uid=1000, gid=1000, home=None, shell="/bin/bash", flags=0):
    return data(name) + u32(uid) + u32(gid) + data(home or f"/home/{name}") + data(shell) + bytes([flags])


def start_payload(argv, env=(), terminal=None, window=1 << 20, direct=False):
    flags = (1 if terminal else 0) | (2 if direct else 0)
    cols, rows = terminal or (0, 0)
    return bytes([flags]) + u32(cols) + u32(rows) + u32(0) + u32(0) + u32(window) + strings(argv) + strings(list(env))


def resumable_payload(owner, window_seconds, buffer_bytes):
    return data(owner) + u32(window_seconds) + u32(buffer_bytes)


def attach_payload(pid, terminal=(80, 24), window=1 << 20):
    return u32(pid) + u32(terminal[0]) + u32(terminal[1]) + u32(0) + u32(0) + u32(window)


def parse_sessions(payload):
    """[(pid, detached seconds, seconds left, command)] of a `sessions` answer."""
    count, offset, sessions = struct.unpack(">I", payload[:4])[0], 4, []
    for _ in range(count):
        pid, since, left, length = struct.unpack(">IIII", payload[offset:offset + 16])
        offset += 16
        sessions.append((pid, since, left, payload[offset:offset + length].decode()))
        offset += length
    assert offset == len(payload), "trailing bytes in the session list"
    return sessions


def parse_exit(payload):
    if payload[0] == 0:
        return ("status", struct.unpack(">I", payload[1:5])[0])
    length = struct.unpack(">I", payload[2:6])[0]
    return ("signal", payload[6:6 + length].decode(), bool(payload[1]))


class Link:
    """One link over a pair of file descriptors (a socket, or an agent's stdin/stdout)."""

    def __init__(self, read_fd, write_fd):
        self.read_fd, self.write_fd = read_fd, write_fd
        self.buffer = b""
        self.features = None

    @classmethod
    def over_socket(cls, sock):
        link = cls(sock.fileno(), sock.fileno())
        link.sock = sock
        return link

    def send(self, kind, channel, payload=b""):
        view = memoryview(frame(kind, channel, payload))
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def hello(self, secret=b""):
        """The agent's answer; an `ok` on channel 0 before it (the agent's features) is kept in
        `features`."""
        self.send(HELLO, 0, bytes([1]) + data(secret))
        kind, channel, payload = self.receive()
        if (kind, channel) == (OK, 0):
            self.features = struct.unpack(">I", payload[:4])[0]
            kind, channel, payload = self.receive()
        return kind, payload

    def receive(self, timeout=20):
        """The next frame as (type, channel, payload); None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 9:
                length, kind, channel = struct.unpack(">IBI", self.buffer[:9])
                if len(self.buffer) >= 4 + length:
                    payload = self.buffer[9:4 + length]
                    self.buffer = self.buffer[4 + length:]
                    return kind, channel, payload
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no frame from the agent in time"
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    return None
                self.buffer += chunk

    def quiet_for(self, seconds):
        """True when no frame arrives within `seconds` (for checks that something stops)."""
        if len(self.buffer) >= 9:
            return False
        ready, _, _ = select.select([self.read_fd], [], [], seconds)
        return not ready

    def start(self, channel, argv, env=(), terminal=None, window=1 << 20):
        self.send(START, channel, start_payload(argv, env, terminal, window))
        kind, got, payload = self.receive()
        assert (kind, got) == (STARTED, channel), (kind, got, payload[:100])
        pid, input_window = struct.unpack(">II", payload)
        return pid, input_window

    def start_direct(self, channel, argv, env=()):
        """`start` asking for direct pipes: (pid, input window, [(descriptor, inode)] of stdin,
        stdout, stderr), or an empty list when the agent made none."""
        self.send(START, channel, start_payload(argv, env, None, 1 << 20, direct=True))
        kind, got, payload = self.receive()
        assert (kind, got) == (STARTED, channel), (kind, got, payload[:100])
        pid, input_window = struct.unpack(">II", payload[:8])
        ends = [struct.unpack(">IQ", payload[8 + 12 * i:20 + 12 * i]) for i in range(3)] if len(payload) > 8 else []
        return pid, input_window, ends

    def request(self, kind, channel, payload=b""):
        """Sends a request and returns (answer type, payload) of its channel."""
        self.send(kind, channel, payload)
        while True:
            item = self.receive()
            assert item is not None, "link ended before the answer"
            if item[1] == channel:
                return item[0], item[2]

    def resumable(self, channel, owner, window_seconds=60, buffer_bytes=65536):
        kind, payload = self.request(RESUMABLE, channel, resumable_payload(owner, window_seconds, buffer_bytes))
        assert kind == OK, payload

    def sessions(self, channel):
        kind, payload = self.request(SESSIONS, channel)
        assert kind == OK, payload
        return parse_sessions(payload)

    def output_until(self, channel, predicate, timeout=30):
        """Terminal output of `channel` (granting credit back) until `predicate(output)` holds."""
        out = b""
        deadline = time.monotonic() + timeout
        while not predicate(out):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"output never matched; got {out[-300:]!r}"
            item = self.receive(remaining)
            assert item is not None, f"link ended; output so far {out[-300:]!r}"
            kind, got, payload = item
            if got == channel and kind == OUTPUT:
                out += payload
                self.send(WINDOW, channel, u32(len(payload)))
            elif got == channel and kind == EXIT:
                raise AssertionError(f"program exited {parse_exit(payload)}; output {out[-300:]!r}")
        return out

    def collect(self, channel, timeout=30, grant=True):
        """Output, error output and the exit of `channel`, re-granting credit as output arrives.
        Frames of other channels are ignored."""
        out, err = b"", b""
        while True:
            item = self.receive(timeout)
            assert item is not None, "link ended before the exit"
            kind, got, payload = item
            if got != channel:
                continue
            if kind == OUTPUT:
                out += payload
            elif kind == ERROR_OUTPUT:
                err += payload
            elif kind == EXIT:
                return out, err, parse_exit(payload)
            elif kind == WINDOW:
                continue
            else:
                raise AssertionError(f"unexpected frame {kind:#x} {payload[:100]!r}")
            if grant and kind in (OUTPUT, ERROR_OUTPUT):
                self.send(WINDOW, channel, u32(len(payload)))
