"""Resumable sessions in the agent (docs/agent-protocol.md, "Resumable sessions"): a terminal
program of a `resumable` link outlives the link, is listed to its owner only, keeps a bounded
history, is attached from another agent process (each `serve --stdio` is its own process, as on
Kubernetes) with a new window size, and is hung up when its window ends."""
import os
import random
import re
import shutil
import struct
import subprocess
import tempfile

import pytest

from agent_helpers import wait_until
from agent_link import (ATTACH, DETACH, ERROR, HELLO, INPUT, RESUMABLE, SESSIONS, STARTED, Link, attach_payload, frame,
                        resumable_payload)

SH = "/bin/sh"
COUNTER = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def agents(host_binary):
    """Starts `serve --stdio` agent processes sharing one resume directory (short: unix socket
    paths hold 107 bytes); kills what is left."""
    processes, pids = [], []
    parent = tempfile.mkdtemp(prefix="berth-resume-test-")
    directory = os.path.join(parent, "r")

    def start():
        process = subprocess.Popen([host_binary, "serve", "--stdio", "--resume-dir", directory, "--signal", "TERM"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        processes.append(process)
        link = Link(process.stdout.fileno(), process.stdin.fileno())
        assert link.hello()[0] == HELLO
        link.process = process
        return link

    start.directory = directory
    start.programs = pids
    yield start
    for pid in pids:
        try:
            os.killpg(pid, 9)
        except ProcessLookupError:
            pass
    for process in processes:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
    shutil.rmtree(parent, ignore_errors=True)


def counter(agents, link, owner="alice", window_seconds=60, buffer_bytes=65536, terminal=(80, 24)):
    link.resumable(1, owner, window_seconds, buffer_bytes)
    pid, _ = link.start(2, [SH, "-c", COUNTER], terminal=terminal)
    agents.programs.append(pid)
    link.output_until(2, lambda out: b"3\r\n" in out)
    return pid


def numbers(output):
    return [int(n) for n in re.findall(rb"(?m)^(\d+)\r$", output)]


def attach(link, channel, pid, terminal=(80, 24)):
    kind, payload = link.request(ATTACH, channel, attach_payload(pid, terminal))
    assert kind == STARTED, payload
    return struct.unpack(">II", payload)


def test_dropped_link_leaves_the_program_running_and_another_agent_attaches_it(agents):
    first = agents()
    pid = counter(agents, first)
    first.process.stdin.close()
    # The first agent process stays for its detached program; the program keeps counting.
    second = agents()
    second.resumable(1, "alice")
    wait_until(lambda: [s[0] for s in second.sessions(2)] == [pid], what="the session to be listed")
    (listed,) = second.sessions(3)
    assert listed[3] == f"{SH} -c {COUNTER}" and listed[2] <= 60
    assert first.process.poll() is None and alive(pid)
    got_pid, _ = attach(second, 4, pid)
    assert got_pid == pid
    # The replay starts with what was printed before and while away, then goes on live, without a gap.
    out = second.output_until(4, lambda out: len(numbers(out)) >= 2 and numbers(out)[-1] >= numbers(out)[0] + 40)
    seen = numbers(out)
    assert seen[0] == 1, seen[:5]
    assert seen == list(range(1, seen[-1] + 1))


def test_detach_on_a_live_link_then_attach_on_the_same_link(agents):
    link = agents()
    pid = counter(agents, link)
    link.send(DETACH, 2)
    assert [s[0] for s in link.sessions(3)] == [pid]
    attach(link, 4, pid)
    out = link.output_until(4, lambda out: b"\r\n" in out and numbers(out) and numbers(out)[-1] >= 5)
    assert numbers(out)[0] == 1
    # Attached: no longer listed.
    assert link.sessions(5) == []


def test_another_user_neither_sees_nor_attaches_the_session(agents):
    first = agents()
    pid = counter(agents, first, owner="alice")
    first.send(DETACH, 2)
    other = agents()
    other.resumable(1, "bob")
    assert other.sessions(2) == []
    kind, payload = other.request(ATTACH, 3, attach_payload(pid))
    assert kind == ERROR and payload.startswith(b"AGENT_SESSION_NOT_FOUND"), payload
    # Nor on alice's own link under a second owner: a link's owner is fixed.
    kind, payload = first.request(RESUMABLE, 9, resumable_payload("bob", 60, 4096))
    assert kind == ERROR and payload.startswith(b"AGENT_RESUME_OWNER_FIXED"), payload
    # alice still can.
    assert [s[0] for s in first.sessions(10)] == [pid]


def test_history_is_bounded_to_the_newest_bytes(agents):
    link = agents()
    link.resumable(1, "alice", buffer_bytes=1024)
    pid, _ = link.start(2, [SH, "-c", "read go; seq 1 20000; echo done; exec sleep 300"], terminal=(80, 24))
    agents.programs.append(pid)
    link.send(DETACH, 2)
    attach(link, 3, pid)
    link.send(INPUT, 3, b"go\r")
    link.output_until(3, lambda out: b"done" in out)
    link.send(DETACH, 3)
    wait_until(lambda: [s[0] for s in link.sessions(4)] == [pid], what="the detach")
    attach(link, 5, pid)
    replay = link.output_until(5, lambda out: b"done\r\n" in out)
    assert len(replay) <= 1024
    assert replay.endswith(b"20000\r\ndone\r\n") and len(replay) > 900


def test_attach_sets_the_new_window_size(agents):
    link = agents()
    link.resumable(1, "alice")
    pid, _ = link.start(2, [SH], terminal=(80, 24))
    agents.programs.append(pid)
    link.send(DETACH, 2)
    attach(link, 3, pid, terminal=(91, 37))
    link.send(INPUT, 3, b"stty size\r")
    link.output_until(3, lambda out: b"37 91" in out)


def test_window_end_hangs_up_and_forgets_the_session(agents):
    first = agents()
    pid = counter(agents, first, window_seconds=1)
    first.process.stdin.close()
    # SIGHUP ends the counter; the agent process, left with nothing, exits.
    wait_until(lambda: not alive(pid), timeout=30, what="the detached program to be hung up")
    assert first.process.wait(timeout=30) == 0
    second = agents()
    second.resumable(1, "alice")
    assert second.sessions(2) == []


def test_programs_without_a_terminal_still_end_with_the_link(agents):
    link = agents()
    link.resumable(1, "alice")
    pid, _ = link.start(2, [SH, "-c", "exec sleep 300"])
    link.process.stdin.close()
    assert link.process.wait(timeout=10) == 0
    wait_until(lambda: not alive(pid), what="the program to be killed")


def test_exit_after_attach_reaches_the_new_link(agents):
    first = agents()
    first.resumable(1, "alice")
    pid, _ = first.start(2, [SH, "-c", "read line; echo got-$line; exit 7"], terminal=(80, 24))
    first.process.stdin.close()
    second = agents()
    second.resumable(1, "alice")
    wait_until(lambda: second.sessions(2) != [], what="the session to be listed")
    attach(second, 3, pid)
    second.send(INPUT, 3, b"x\r")
    out, _, status = second.collect(3)
    assert b"got-x" in out and status == ("status", 7)
    # The first agent process, left with nothing, exits.
    assert first.process.wait(timeout=10) == 0


@pytest.mark.parametrize("seed", range(6))
def test_malformed_resume_frames_end_the_link_cleanly(agents, seed):
    """Fuzz the new frames: random `resumable`, `detach`, `sessions` and `attach` payloads (and
    well-formed ones among them) get an error frame or are ignored, never crash the agent, and
    with no program left it ends once its input ends."""
    rng = random.Random(seed)
    link = agents()
    blob = b""
    for _ in range(60):
        kind = rng.choice([RESUMABLE, DETACH, SESSIONS, ATTACH])
        if rng.random() < 0.3:
            payload = resumable_payload("alice", rng.randrange(5), rng.randrange(1 << 21)) if kind == RESUMABLE else \
                attach_payload(rng.randrange(1, 1 << 16)) if kind == ATTACH else b""
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        blob += frame(kind, rng.randrange(0, 5), payload)
    try:
        link.process.stdin.write(blob)
        link.process.stdin.close()
    except BrokenPipeError:
        pass
    assert link.process.wait(timeout=20) == 0
    rest = link.process.stdout.read()
    while rest:
        length = struct.unpack(">I", rest[:4])[0]
        assert 5 <= length <= len(rest) - 4
        rest = rest[4 + length:]
