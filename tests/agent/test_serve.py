"""`serve`: the agent's data plane (docs/agent-protocol.md), driven by agent_link.py, a client
written from the spec. Tests taking `served` run against the host debug build and inside
berth-busybox (`docker run -i ... serve --stdio`)."""
import os
import random
import socket
import struct
import subprocess
import time

import cbor2
import pytest

from agent_helpers import IN_IMAGE, docker, wait_until
from agent_link import (CLOSE, EOF, ERROR, ERROR_OUTPUT, EXIT, HELLO, INPUT, OK, OPEN_FORWARD, OUTPUT, RESIZE,
                        SIGNAL, WINDOW, WRITE_FILE, Link, data, frame, u32)

SH = "/bin/sh"


@pytest.fixture
def served(agent):
    processes = []

    def start():
        process = agent.popen(["serve", "--stdio"])
        processes.append(process)
        link = Link(process.stdout.fileno(), process.stdin.fileno())
        kind, payload = link.hello()
        assert kind == HELLO and payload[0] == 1, payload
        link.process = process
        return link

    yield start
    for process in processes:
        agent.cleanup(process)


def test_output_error_output_and_exit_status(served):
    link = served()
    link.start(1, [SH, "-c", "echo out; echo err >&2; exit 3"])
    assert link.collect(1) == (b"out\n", b"err\n", ("status", 3))


def test_stdin_with_eof_round_trips_a_mebibyte(served):
    link = served()
    _, window = link.start(1, ["/bin/cat"])
    payload = os.urandom(1 << 20)
    sent, received = 0, b""
    # Send only within the agent's credit; its window frames give more as cat takes the bytes.
    while sent < len(payload) or received != payload:
        while sent < len(payload) and window > 0:
            size = min(32768, window, len(payload) - sent)
            link.send(INPUT, 1, payload[sent:sent + size])
            sent, window = sent + size, window - size
            if sent == len(payload):
                link.send(EOF, 1)
        kind, channel, body = link.receive()
        if kind == WINDOW:
            window += struct.unpack(">I", body)[0]
        elif kind == OUTPUT:
            received += body
            link.send(WINDOW, 1, u32(len(body)))
    out, err, status = link.collect(1)
    assert (out, err, status) == (b"", b"", ("status", 0))


def test_output_stops_at_the_credit_until_more_is_granted(served):
    link = served()
    link.start(1, [SH, "-c", "head -c 300000 /dev/zero"], window=65536)
    received = 0
    while received < 65536:
        kind, channel, body = link.receive()
        assert kind == OUTPUT
        received += len(body)
    assert received == 65536
    # The program is blocked on a full pipe now: nothing more until Berth grants credit.
    assert link.quiet_for(0.5)
    link.send(WINDOW, 1, u32(300000))
    out, _, status = link.collect(1)
    assert received + len(out) == 300000 and status == ("status", 0)


def test_fast_output_on_both_pipes_arrives_whole_and_in_order(served):
    """A program that fills both pipes faster than the link takes them: two pump threads share
    the link, with full reads and credit running out. Every byte arrives, in order, on its own
    stream (numbered lines, so no two pieces look alike)."""
    link = served()
    count = 1_200_000
    script = f"seq 1 {count} & seq 1 {count} | sed 's/^/E/' >&2; wait"
    link.start(1, [SH, "-c", script])
    out, err, status = link.collect(1, timeout=120)
    assert status == ("status", 0)
    expected = "".join(f"{n}\n" for n in range(1, count + 1)).encode()
    assert len(out) == len(expected) and out == expected
    expected = "".join(f"E{n}\n" for n in range(1, count + 1)).encode()
    assert len(err) == len(expected) and err == expected


def test_program_that_closes_stdout_early_still_reports_stderr_and_exit(served):
    link = served()
    link.start(1, [SH, "-c", "echo first; exec >&-; echo after-close >&2; exit 4"])
    assert link.collect(1) == (b"first\n", b"after-close\n", ("status", 4))


def test_exit_signal_and_signal_frames(served):
    link = served()
    link.start(1, [SH, "-c", "kill -USR1 $$"])
    assert link.collect(1)[2] == ("signal", "USR1", False)
    link.start(2, [SH, "-c", "echo ready; exec sleep 60"])
    kind, channel, body = link.receive()
    assert (kind, channel, body) == (OUTPUT, 2, b"ready\n")
    link.send(SIGNAL, 2, b"TERM")
    assert link.collect(2)[2] == ("signal", "TERM", False)


def test_terminal_size_and_resize(served):
    link = served()
    link.start(1, [SH, "-c", "stty size; read line; stty size"], env=["TERM=xterm"], terminal=(97, 31))
    seen = b""
    while b"31 97" not in seen:
        kind, channel, body = link.receive()
        assert kind == OUTPUT, (kind, body)
        seen += body
    link.send(RESIZE, 1, u32(120) + u32(40) + u32(0) + u32(0))
    link.send(INPUT, 1, b"go\n")
    out, _, status = link.collect(1)
    assert b"40 120" in out.replace(b"\r", b"") and status == ("status", 0)


def test_environment_is_merged_and_later_entries_win(served):
    link = served()
    link.start(1, [SH, "-c", 'echo "$A|$B|${PATH:+has-path}"'], env=["A=1", "B=x", "B=2"])
    assert link.collect(1)[0] == b"1|2|has-path\n"


def test_missing_program_is_status_127_with_the_reason(served):
    link = served()
    link.start(1, ["/nonexistent/program"])
    out, err, status = link.collect(1)
    assert status == ("status", 127) and b"cannot run /nonexistent/program" in err


def test_close_kills_the_program_and_its_process_group(served, agent):
    link = served()
    link.start(1, [SH, "-c", "sleep 300 & echo $!; wait"])
    kind, _, body = link.receive()
    child = int(body.strip())
    link.send(CLOSE, 1)
    # The channel is gone without an exit frame; the process group is dead. Check from a new
    # program on the same link (in the container the PIDs are the container's).
    link.start(2, [SH, "-c", f"while kill -0 {child} 2>/dev/null; do sleep 0.05; done; echo gone"])
    assert link.collect(2)[0] == b"gone\n"


def test_hundred_programs_on_one_link(served):
    link = served()
    for channel in range(1, 101):
        link.start(channel, [SH, "-c", f"echo {channel}"])
        assert link.collect(channel) == (f"{channel}\n".encode(), b"", ("status", 0))


def test_write_file_with_mode_and_a_clear_error(served):
    link = served()
    path = f"/tmp/berth-serve-test-{os.getpid()}-{random.randrange(1 << 30)}"
    link.send(WRITE_FILE, 5, data(path) + u32(0o600) + data(b"secret contents"))
    assert link.receive()[:2] == (OK, 5)
    link.start(1, [SH, "-c", f"stat -c %a {path}; cat {path}; rm {path}"])
    assert link.collect(1)[0] == b"600\nsecret contents"
    link.send(WRITE_FILE, 6, data("/nonexistent-dir/x") + u32(0o600) + data(b""))
    kind, channel, body = link.receive()
    assert (kind, channel) == (ERROR, 6) and b"cannot open /nonexistent-dir/x" in body


def test_write_file_does_not_follow_a_planted_symlink(served):
    link = served()
    base = f"/tmp/berth-serve-test-{os.getpid()}-{random.randrange(1 << 30)}"
    link.start(1, [SH, "-c", f"echo victim > {base}.victim; ln -s {base}.victim {base}.link"])
    assert link.collect(1)[2] == ("status", 0)
    link.send(WRITE_FILE, 5, data(f"{base}.link") + u32(0o600) + data(b"overwritten"))
    kind, channel, body = link.receive()
    assert (kind, channel) == (ERROR, 5) and f"cannot open {base}.link: it is a symbolic link".encode() in body
    link.start(2, [SH, "-c", f"cat {base}.victim; rm -f {base}.victim {base}.link"])
    assert link.collect(2)[0] == b"victim\n"


def test_forward_channel_dials_through_the_forward_server_protocol(served):
    link = served()
    link.send(OPEN_FORWARD, 7, u32(1 << 20))
    kind, channel, _ = link.receive()
    assert (kind, channel) == (OK, 7)

    def packet(type_, conn=0, payload=None):
        return cbor2.dumps({"Type": type_, "ConnectionId": conn, "Payload": payload})

    # Dial mode, then a connection to a shell-made listener is overkill here: dial a port
    # nothing listens on and expect the protocol's clean refusal, then end the channel.
    setup = cbor2.dumps({"ConnectionType": 2, "BindHost": "", "BindPort": 0, "Protocol": "tcp", "Screen": "",
                         "SingleConnection": False, "AuthProtocol": "", "AuthCookie": ""})
    link.send(INPUT, 7, packet(0, 0, setup))
    stream = b""

    def next_packet():
        # The agent writes one packet per output frame here; frames of other kinds are credit.
        nonlocal stream
        while True:
            kind, channel, body = link.receive()
            if kind == OUTPUT and channel == 7:
                stream += body
                try:
                    item = cbor2.loads(stream)
                except Exception:
                    continue
                stream = b""
                return item

    assert next_packet()["Type"] == 1  # SUCCESS
    target = cbor2.dumps({"Protocol": "tcp", "ConnectedAddress": "127.0.0.1", "ConnectedPort": 1,
                          "OriginatorAddress": "127.0.0.1", "OriginatorPort": 5555})
    link.send(INPUT, 7, packet(4, 1, target))
    answer = next_packet()
    assert answer["Type"] == 2 and answer["ConnectionId"] == 1 and b"connect" in answer["Payload"]
    link.send(CLOSE, 7)
    # The link still serves programs afterwards.
    link.start(1, [SH, "-c", "echo alive"])
    assert link.collect(1)[0] == b"alive\n"


def test_link_end_kills_running_programs(host_binary, tmp_path):
    marker = tmp_path / "pid"
    process = subprocess.Popen([host_binary, "serve", "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        link = Link(process.stdout.fileno(), process.stdin.fileno())
        assert link.hello()[0] == HELLO
        pid, _ = link.start(1, [SH, "-c", f"echo $$ > {marker}; exec sleep 300"])
        wait_until(lambda: marker.exists() and marker.read_text().strip() != "", what="the program to start")
        process.stdin.close()
        assert process.wait(timeout=10) == 0
        wait_until(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split(")")[-1][:3],
                   what="the program to be killed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("seed", range(8))
def test_malformed_input_ends_the_link_cleanly(host_binary, seed):
    """Fuzz: random frames after a valid hello — the agent answers with an error frame or
    ignores them, never crashes, and ends within the time limit once its input ends."""
    rng = random.Random(seed)
    process = subprocess.Popen([host_binary, "serve", "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        link = Link(process.stdout.fileno(), process.stdin.fileno())
        assert link.hello()[0] == HELLO
        blob = b""
        for _ in range(50):
            kind = rng.choice([0x00, 0x01, 0x12, 0x15, 0x16, 0x17, 0x18, 0x1A, 0x20, 0x30, 0x10, 0x7F])
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            blob += frame(kind, rng.randrange(0, 4), payload)
        if seed % 2:
            blob += bytes(rng.randrange(256) for _ in range(64))
        try:
            process.stdin.write(blob)
            process.stdin.close()
        except BrokenPipeError:
            pass
        assert process.wait(timeout=20) == 0, process.stderr.read()
        rest = process.stdout.read()
        # Whatever came back is well-formed frames.
        while rest:
            length = struct.unpack(">I", rest[:4])[0]
            assert 5 <= length <= len(rest) - 4
            rest = rest[4 + length:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the socket link -------------------------------------------------------------------------

def socket_agent(binary, path, secret):
    env = dict(os.environ, BERTH_AGENT_SECRET=secret)
    return subprocess.Popen([binary, "serve", "--socket", str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return Link.over_socket(sock)


def test_socket_link_needs_the_secret_and_accepts_only_one_link(host_binary, tmp_path):
    path = tmp_path / "agent.sock"
    process = socket_agent(host_binary, path, "correct-horse")
    try:
        wait_until(path.exists, what="the socket")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        intruder = connect(path)
        kind, payload = intruder.hello(b"wrong")
        assert kind == ERROR and b"AGENT_SECRET_MISMATCH" in payload
        assert intruder.receive() is None
        berth = connect(path)
        kind, payload = berth.hello(b"correct-horse")
        assert kind == HELLO
        # Once Berth is in, the socket is gone: nobody can connect to take over its streams.
        wait_until(lambda: not path.exists(), what="the socket to be removed")
        with pytest.raises(OSError):
            connect(path)
        berth.start(1, [SH, "-c", "env"])
        out, _, status = berth.collect(1)
        assert status == ("status", 0) and b"BERTH_AGENT_SECRET" not in out
        # The agent's own initial environment (what /proc/PID/environ shows) no longer holds it.
        berth.start(2, [SH, "-c", "tr '\\0' '\\n' < /proc/$PPID/environ"])
        out, _, status = berth.collect(2)
        assert status == ("status", 0) and b"correct-horse" not in out
    finally:
        process.kill()
        process.wait()


def test_socket_link_in_a_container_as_pid_1_with_a_bind_mounted_directory(busybox_image, tmp_path):
    """How Berth runs it: PID 1, the socket in a 0700 directory bind-mounted from the host."""
    directory = tmp_path / "link"
    directory.mkdir(mode=0o700)
    name = f"berth-agent-test-serve-{os.getpid()}-{random.randrange(1 << 30)}"
    try:
        docker("run", "-d", "--name", name, "--label", "berth.test=agent", "-e", "BERTH_AGENT_SECRET=s3",
               "-v", f"{directory}:/run/berth", busybox_image, IN_IMAGE, "serve", "--socket", "/run/berth/agent.sock",
               "--signal", "TERM")
        path = directory / "agent.sock"
        wait_until(path.exists, timeout=30, what="the agent's socket")
        link = connect(path)
        assert link.hello(b"s3")[0] == HELLO
        link.start(1, [SH, "-c", "echo $$; ls /run/berth; sleep 1 & exit 0"])
        out, _, status = link.collect(1)
        assert status == ("status", 0) and b"agent.sock" not in out
        # The orphaned sleep is reaped by PID 1 (the agent), leaving no zombie.
        link.start(2, [SH, "-c", "sleep 1.5; cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z || true"])
        assert link.collect(2)[0].strip() == b"0"
        docker("kill", "--signal", "TERM", name)
        assert docker("wait", name, timeout=30).stdout.strip() == b"0"
    finally:
        docker("rm", "-f", name, check=False)


# --- the TCP link (a pod's IP) ----------------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tcp_connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def test_tcp_link_needs_the_secret_does_not_wait_for_a_silent_peer_and_closes_the_port(host_binary):
    port = free_port()
    env = dict(os.environ, BERTH_AGENT_SECRET="pod-secret")
    process = subprocess.Popen([host_binary, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def reachable():
            try:
                tcp_connect(port).close()
                return True
            except OSError:
                return False
        wait_until(reachable, what="the agent's port")
        # Someone else on the pod network connects first and says nothing: Berth still gets in.
        silent = tcp_connect(port)
        intruder = Link.over_socket(tcp_connect(port))
        kind, payload = intruder.hello(b"guess")
        assert kind == ERROR and b"AGENT_SECRET_MISMATCH" in payload
        assert intruder.receive() is None
        berth = Link.over_socket(tcp_connect(port))
        assert berth.hello(b"pod-secret")[0] == HELLO
        # Once Berth is in, the port is closed: nobody can connect to take over its streams.
        wait_until(lambda: not reachable(), what="the port to close")
        berth.start(1, [SH, "-c", "echo linked; env"])
        out, _, status = berth.collect(1)
        assert status == ("status", 0) and out.startswith(b"linked") and b"BERTH_AGENT_SECRET" not in out
        silent.close()
    finally:
        process.kill()
        process.wait()


def test_tcp_link_refuses_to_listen_without_a_secret(host_binary):
    env = {k: v for k, v in os.environ.items() if k != "BERTH_AGENT_SECRET"}
    result = subprocess.run([host_binary, "serve", "--listen", f"127.0.0.1:{free_port()}"], env=env,
                            capture_output=True, timeout=30)
    assert result.returncode == 1 and b"BERTH_AGENT_SECRET" in result.stderr


@pytest.mark.parametrize("address", ["7000", "host:0", "host:70000", "host:x"])
def test_tcp_link_address_must_have_a_port(host_binary, address):
    result = subprocess.run([host_binary, "serve", "--listen", address], capture_output=True, timeout=30)
    assert result.returncode == 1 and b"--listen needs HOST:PORT" in result.stderr


# Accounts (`user`): only in a throw-away container, never on the host's own account files.

@pytest.fixture
def contained(request):
    request.getfixturevalue("busybox_image")
    from agent_helpers import ContainerAgent
    runner = ContainerAgent()
    processes = []

    def start(extra_args=()):
        command = runner.command(["serve", "--stdio"])
        if extra_args:
            command[3:3] = list(extra_args)  # docker run options go before the image
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        processes.append(process)
        link = Link(process.stdout.fileno(), process.stdin.fileno())
        assert link.hello()[0] == HELLO
        return link

    yield start
    for process in processes:
        runner.cleanup(process)


def set_user(link, channel, name, **options):
    from agent_link import USER, user_payload
    link.send(USER, channel, user_payload(name, **options))
    return link.receive()


def test_user_adds_the_login_account_and_programs_run_as_it(contained):
    link = contained()
    kind, channel, body = set_user(link, 3, "alice")
    assert (kind, channel) == (OK, 3), body
    assert struct.unpack(">II", body[:8]) == (1000, 1000) and body[12:] == b"/home/alice"
    link.start(1, [SH, "-c", 'id -u; id -g; id -un; echo "$HOME $USER $LOGNAME"; pwd; echo ~alice; '
                             'stat -c "%u %a" /home/alice; touch ~/made && stat -c %u ~/made; '
                             'grep "^alice:" /etc/passwd; cat /etc/shadow 2>&1 >/dev/null | head -c 0; '
                             'echo x > /etc/passwd 2>/dev/null && echo WROTE-PASSWD || echo denied'])
    out, err, status = link.collect(1)
    assert status == ("status", 0), err
    assert out.decode().splitlines() == [
        "1000", "1000", "alice", "/home/alice alice alice", "/home/alice", "/home/alice", "1000 750", "1000",
        "alice:x:1000:1000::/home/alice:/bin/sh", "denied"]


def test_user_owns_its_terminal_and_the_files_berth_writes(contained):
    link = contained()
    assert set_user(link, 3, "bob", uid=2000, gid=2000)[0] == OK
    link.send(WRITE_FILE, 4, data("/home/bob/secret") + u32(0o600) + data(b"for bob"))
    assert link.receive()[:2] == (OK, 4)
    link.start(1, [SH, "-c", 'stat -c "%u %a" "$(tty)"; cat ~/secret'], terminal=(80, 24))
    out, _, status = link.collect(1)
    assert status == ("status", 0) and out.replace(b"\r\n", b"\n").split(b"\n")[:2] == [b"2000 620", b"for bob"], out


def test_user_that_the_image_has_is_used_as_it_is(contained):
    link = contained()
    kind, _, body = set_user(link, 3, "root")
    assert kind == OK and struct.unpack(">II", body[:8]) == (0, 0) and body[12:] == b"/root"
    link.start(1, [SH, "-c", "id -u; grep -c '^root:' /etc/passwd"])
    assert link.collect(1)[0] == b"0\n1\n"


def test_user_uid_taken_by_the_image_moves_to_the_next_free_one(contained):
    link = contained()
    link.start(1, [SH, "-c", "echo 'img:x:1000:1000::/home/img:/bin/sh' >> /etc/passwd"])
    assert link.collect(1)[2] == ("status", 0)
    kind, _, body = set_user(link, 3, "carol")
    assert kind == OK and struct.unpack(">II", body[:8]) == (1001, 1001), body


def test_user_with_an_invalid_name_ends_the_link_with_a_protocol_error(contained):
    link = contained()
    kind, channel, body = set_user(link, 3, "Alice:0:0")
    assert (kind, channel) == (ERROR, 0) and b"AGENT_PROTOCOL_BAD_USER" in body


def test_user_on_a_read_only_root_filesystem_is_a_clear_error(contained):
    link = contained(["--read-only"])
    kind, channel, body = set_user(link, 3, "dave")
    assert (kind, channel) == (ERROR, 3) and body.startswith(b"AGENT_USER_FAILED: cannot add the account to /etc/"), body
