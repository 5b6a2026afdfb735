"""Direct pipes (docs/agent-protocol.md, "Direct pipes"): the agent offers a program's pipe ends,
Berth takes them with pidfd_getfd and moves the bytes itself, or declines and the link carries
them. Driven by agent_link.py against the host build (a process in a container has a PID this
test cannot name)."""
import ctypes
import os
import stat

import pytest

from agent_link import DIRECT, ERROR, EXIT, FEATURE_DIRECT_PIPES, HELLO, OUTPUT, Link, parse_exit

SH = "/bin/sh"
LIBC = ctypes.CDLL(None, use_errno=True)
SYS_PIDFD_GETFD = 438


def pidfd_getfd(pidfd, descriptor):
    taken = LIBC.syscall(SYS_PIDFD_GETFD, pidfd, descriptor, 0)
    if taken < 0:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")
    return taken


@pytest.fixture
def linked(host_binary):
    from agent_helpers import HostAgent
    agent = HostAgent(host_binary)
    process = agent.popen(["serve", "--stdio"])
    link = Link(process.stdout.fileno(), process.stdin.fileno())
    kind, payload = link.hello()
    assert kind == HELLO, payload
    link.pidfd = os.pidfd_open(process.pid)
    link.agent_pid = process.pid
    yield link
    os.close(link.pidfd)
    agent.cleanup(process)


def take(link, ends):
    """Copies of the agent's ends, each checked to be the pipe the agent described."""
    taken = []
    for descriptor, inode in ends:
        fd = pidfd_getfd(link.pidfd, descriptor)
        info = os.fstat(fd)
        assert stat.S_ISFIFO(info.st_mode) and info.st_ino == inode
        taken.append(fd)
    return taken


def read_all(fd):
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out


def wait_exit(link, channel):
    while True:
        item = link.receive()
        assert item is not None, "link ended before the exit"
        kind, got, payload = item
        assert not (got == channel and kind in (OUTPUT, ERROR)), (kind, payload)
        if got == channel and kind == EXIT:
            return parse_exit(payload)


def test_the_agent_announces_direct_pipes(linked):
    assert linked.features & FEATURE_DIRECT_PIPES


def test_taken_pipes_carry_stdin_stdout_stderr_and_the_exit_follows(linked):
    pid, window, ends = linked.start_direct(1, [SH, "-c", "cat; echo err >&2; exit 5"])
    assert pid > 0 and len(ends) == 3
    stdin, stdout, stderr = take(linked, ends)
    linked.send(DIRECT, 1, bytes([1]))
    payload = os.urandom(1 << 20)
    # More than a pipe holds: cat's output must be read while writing.
    written = 0
    out = b""
    os.set_blocking(stdin, False)
    while written < len(payload):
        try:
            written += os.write(stdin, payload[written:written + 65536])
        except BlockingIOError:
            out += os.read(stdout, 65536)
    os.close(stdin)
    out += read_all(stdout)
    assert out == payload
    assert read_all(stderr) == b"err\n"
    assert wait_exit(linked, 1) == ("status", 5)


def test_declined_pipes_go_over_the_link(linked):
    _, _, ends = linked.start_direct(1, [SH, "-c", "echo through the link; exit 2"])
    assert len(ends) == 3
    linked.send(DIRECT, 1, bytes([0]))
    assert linked.collect(1) == (b"through the link\n", b"", ("status", 2))


def test_the_agent_lets_go_of_taken_ends(linked):
    """Once taken, the agent holds no copy: closing ours is the program's EOF on stdin."""
    _, _, ends = linked.start_direct(1, ["/bin/cat"])
    stdin, stdout, stderr = take(linked, ends)
    linked.send(DIRECT, 1, bytes([1]))
    os.write(stdin, b"last line\n")
    os.close(stdin)
    assert read_all(stdout) == b"last line\n"
    os.close(stderr)
    assert wait_exit(linked, 1) == ("status", 0)


def test_a_terminal_program_gets_no_direct_pipes(linked):
    from agent_link import START, STARTED, start_payload
    # Flags 3 (terminal and direct) is not a valid start: the agent refuses it.
    linked.send(START, 1, start_payload([SH], terminal=(80, 24), direct=True))
    kind, channel, payload = linked.receive()
    assert (kind, channel) == (ERROR, 0) and b"AGENT_PROTOCOL_BAD_FLAGS" in payload


def test_closing_before_answering_kills_the_program_and_frees_the_ends(linked):
    from agent_helpers import wait_until
    from agent_link import CLOSE
    pid, _, ends = linked.start_direct(1, ["/bin/sleep", "300"])
    agent_fds = f"/proc/{linked.agent_pid}/fd"
    assert all(os.path.exists(f"{agent_fds}/{descriptor}") for descriptor, _ in ends)
    linked.send(CLOSE, 1)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the program to be killed and reaped")
    wait_until(lambda: not any(os.path.exists(f"{agent_fds}/{descriptor}") for descriptor, _ in ends),
               what="the agent to close the offered ends")


def test_stdin_taken_alone_and_the_output_goes_over_the_link(linked):
    """What Berth does today: it writes stdin into the pipe itself; the agent reads the output."""
    _, _, ends = linked.start_direct(1, [SH, "-c", "wc -c; echo err >&2; exit 4"])
    stdin = take(linked, ends[:1])[0]
    linked.send(DIRECT, 1, bytes([2]))
    payload = os.urandom(300000)
    view = memoryview(payload)
    while view:
        view = view[os.write(stdin, view):]
    os.close(stdin)
    out, err, status = linked.collect(1)
    assert (out.strip(), err, status) == (b"300000", b"err\n", ("status", 4))
