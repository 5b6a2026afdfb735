"""The guest agent's command line (docs/agent-protocol.md), on the host and inside berth-busybox.

Every test taking the `agent` fixture runs twice: against the host debug build and as the main
process of a throw-away berth-busybox container (the static release build).
"""
import hashlib
import os
import pty
import signal
import stat
import struct
import subprocess
import tempfile
import termios
import time

import pytest

from agent_helpers import IN_IMAGE, docker, read_exactly, wait_until

SH = "/bin/sh"


def pid_prefix(output):
    assert len(output) >= 4, f"no PID prefix in {output!r}"
    return struct.unpack("<I", output[:4])[0], output[4:]


# --- console ---------------------------------------------------------------------------------

def test_console_pid_is_the_program_pid_and_env_is_merged(agent):
    result = agent.run(
        ["console", "--env", "FOO=bar baz", "--env", "OVERRIDDEN=new", "--env", "EMPTY=", "--env", "EQ=a=b",
         "--pid", "--", SH, "-c", 'echo "$$"; echo "FOO=$FOO"; echo "OVERRIDDEN=$OVERRIDDEN"; '
                                  'echo "INHERITED=$INHERITED"; echo "EMPTY=${EMPTY-unset}"; echo "EQ=$EQ"; '
                                  'env | grep -c "^OVERRIDDEN="'],
        env={"INHERITED": "yes", "OVERRIDDEN": "old"})
    assert result.returncode == 0, result.stderr
    pid, rest = pid_prefix(result.stdout)
    lines = rest.decode().splitlines()
    # exec keeps the PID: the shell's $$ is the PID the agent reported.
    assert int(lines[0]) == pid
    assert lines[1:] == ["FOO=bar baz", "OVERRIDDEN=new", "INHERITED=yes", "EMPTY=", "EQ=a=b", "1"]


def test_console_without_pid_writes_nothing_extra(agent):
    result = agent.run(["console", "--", SH, "-c", "printf hello; echo oops >&2; exit 7"])
    assert result.returncode == 7
    assert result.stdout == b"hello"
    assert result.stderr == b"oops\n"


def test_console_passes_arguments_verbatim(agent):
    args = ["a b", "", "--pid", "-- x", "ü"]
    result = agent.run(["console", "--", SH, "-c", 'for a in "$@"; do printf "[%s]" "$a"; done', "sh", *args])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "".join(f"[{a}]" for a in args)


@pytest.mark.parametrize("byte", [b"\n", b"\0"])
def test_console_wait_accepts_newline_or_nul(agent, byte):
    result = agent.run(["console", "--wait", "--", SH, "-c", "echo started; cat"], input=byte + b"rest of stdin")
    assert result.returncode == 0, result.stderr
    # The start byte is consumed, the rest of stdin reaches the program.
    assert result.stdout == b"started\nrest of stdin"


@pytest.mark.parametrize("stdin", [b"x", b" \n", b""], ids=["wrong-byte", "space", "eof"])
def test_console_wait_rejects_other_bytes_and_eof(agent, stdin):
    result = agent.run(["console", "--wait", "--", SH, "-c", "echo must-not-run"], input=stdin)
    assert result.returncode == 2
    assert b"must-not-run" not in result.stdout
    assert b"NUL or newline" in result.stderr


def test_console_reports_pid_before_waiting(agent):
    """Berth's Docker backend reads the PID, sizes the terminal, then sends the start byte."""
    process = agent.popen(["console", "--pid", "--wait", "--", SH, "-c", 'echo "pid=$$"'])
    try:
        pid, _ = pid_prefix(read_exactly(process.stdout, 4, timeout=30))
        # That PID still runs the agent, waiting: the program has not been exec'd yet.
        assert b"console" in agent.cmdline(pid), "the program ran before the start byte"
        process.stdin.write(b"\n")
        process.stdin.close()
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
        assert rest == f"pid={pid}\n".encode()
    finally:
        agent.cleanup(process)


def read_pty_until_eof(master, timeout=20):
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every slave end is closed
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no EOF on the terminal; got {data!r}")


def test_console_wait_on_terminal_hides_start_byte_and_restores_echo(host_binary):
    master, slave = pty.openpty()
    process = None
    try:
        settings = termios.tcgetattr(slave)
        settings[1] &= ~termios.OPOST  # raw PID bytes; ONLCR on the PID is the decoder's business
        termios.tcsetattr(slave, termios.TCSANOW, settings)
        process = subprocess.Popen(
            [host_binary, "console", "--pid", "--wait", "--", SH, "-c", "stty -a; echo done"],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        pid = struct.unpack("<I", read_exactly(os.fdopen(os.dup(master), "rb", buffering=0), 4, timeout=20))[0]
        assert pid == process.pid
        assert not termios.tcgetattr(slave)[3] & termios.ECHO, "echo still on while waiting for the start byte"
        os.close(slave)
        slave = None
        os.write(master, b"\n")
        output = read_pty_until_eof(master)
        assert process.wait(timeout=20) == 0
        # No echoed start byte ahead of the program's output, and echo is back on for the program.
        assert not output.startswith((b"\n", b"\r")), output
        assert output.rstrip().endswith(b"done")
        flags = output.replace(b";", b" ").split()
        assert b"echo" in flags and b"-echo" not in flags, output
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def test_console_exec_failure_is_127(agent):
    result = agent.run(["console", "--pid", "--", "/nonexistent/program", "arg"])
    assert result.returncode == 127
    assert b"/nonexistent/program" in result.stderr
    # The PID was reported before the exec failed.
    assert len(result.stdout) == 4


def test_console_does_not_search_path(agent):
    result = agent.run(["console", "--", "sh", "-c", "true"])
    assert result.returncode == 127


@pytest.mark.parametrize("args", [
    ["console"],
    ["console", "--pid"],
    ["console", "--pid", "--"],
    ["console", "--env", "NOEQUALS", "--", SH],
    ["console", "--env", "=value", "--", SH],
    ["console", "--env"],
    ["console", "--bogus", "--", SH],
], ids=["nothing", "no-separator", "no-program", "env-no-equals", "env-empty-name", "env-no-value", "unknown-option"])
def test_console_bad_arguments_exit_1(agent, args):
    result = agent.run(args)
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"Usage:" in result.stderr


def test_console_pid_write_failure_is_3(host_binary):
    with open(os.devnull, "rb") as devnull:
        result = subprocess.run([host_binary, "console", "--pid", "--", "/bin/true"], stdin=devnull,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=lambda: os.close(1))
    assert result.returncode == 3
    assert b"cannot write the PID" in result.stderr


def test_console_closed_pipe_is_3_not_sigpipe(host_binary):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([host_binary, "console", "--pid", "--", "/bin/true"], stdout=write_end,
                                stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 3
    assert b"Broken pipe" in result.stderr


# --- signal ----------------------------------------------------------------------------------

def test_signal_usr1_kills_sleep_on_host(host_binary):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        result = subprocess.run([host_binary, "signal", "--pid", str(sleeper.pid), "--signal", "USR1"],
                                capture_output=True)
        assert result.returncode == 0, result.stderr
        assert sleeper.wait(timeout=10) == -signal.SIGUSR1
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_signal_usr1_kills_sleep_in_container(idle_container):
    docker("exec", "-d", idle_container, "sleep", "60")
    pid = None

    def sleeping():
        nonlocal pid
        out = docker("exec", idle_container, "pidof", "sleep", check=False).stdout.split()
        pid = out[0].decode() if out else None
        return pid is not None

    wait_until(sleeping, what="sleep to start")
    result = docker("exec", idle_container, IN_IMAGE, "signal", "--pid", pid, "--signal", "USR1", check=False)
    assert result.returncode == 0, result.stderr
    wait_until(lambda: docker("exec", idle_container, "pidof", "sleep", check=False).returncode != 0,
               what="sleep to end after USR1")


def test_signal_no_such_process_is_2(agent):
    result = agent.run(["signal", "--pid", "2147483646", "--signal", "TERM"])
    assert result.returncode == 2
    assert b"no such process" in result.stderr


@pytest.mark.parametrize("args", [
    [],
    ["--pid", "1"],
    ["--signal", "TERM"],
    ["--pid", "1", "--signal", "BOGUS"],
    ["--pid", "1", "--signal", "CHLD"],
    ["--pid", "0", "--signal", "TERM"],
    ["--pid", "-5", "--signal", "TERM"],
    ["--pid", "abc", "--signal", "TERM"],
    ["--pid", "1", "--pid", "2", "--signal", "TERM"],
    ["--pid", "1", "--signal"],
    ["--pid", "1", "--signal", "TERM", "--extra", "x"],
], ids=["nothing", "no-signal", "no-pid", "unknown-name", "unlisted-name", "pid-zero", "pid-negative",
        "pid-text", "pid-twice", "signal-no-value", "unknown-option"])
def test_signal_bad_arguments_exit_1(agent, args):
    result = agent.run(["signal", *args])
    assert result.returncode == 1
    assert b"containerssh-agent:" in result.stderr


# --- wait-signal -----------------------------------------------------------------------------

def in_sigwait(pid):
    """True while the process sleeps in rt_sigtimedwait (SigBlk can't tell: the kernel moves the
    awaited signals out of the blocked set for the duration of the wait)."""
    try:
        if "sigtimedwait" in open(f"/proc/{pid}/wchan").read():
            return True
        return open(f"/proc/{pid}/syscall").read().split()[0] == "128"  # x86_64 rt_sigtimedwait
    except (OSError, IndexError):
        return False


def test_wait_signal_on_host_prints_message(host_binary):
    process = subprocess.Popen([host_binary, "wait-signal", "--signal", "USR1", "--signal", "TERM",
                                "--message", "got it"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: in_sigwait(process.pid), what="the agent to wait for USR1")
        assert process.poll() is None
        process.send_signal(signal.SIGUSR1)
        out, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
        # Exactly the text, no newline, as ContainerSSH's agent writes it.
        assert out == b"got it"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_wait_signal_as_pid_1_ignores_other_signals_and_returns_on_listed_one(busybox_image):
    name = f"berth-agent-test-wait-{os.getpid()}-{int(time.monotonic() * 1000)}"
    try:
        docker("run", "-d", "--name", name, "--label", "berth.test=agent", busybox_image,
               IN_IMAGE, "wait-signal", "--signal", "USR1", "--signal", "INT", "--message", "got-USR1")
        wait_until(lambda: docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == b"true",
                   what="the container to run")
        # Not listed: PID 1 has no handler for it, so it must keep waiting.
        # A fatal USR2 would end the container with 140 instead of the 0 asserted below.
        docker("kill", "--signal", "USR2", name)
        docker("kill", "--signal", "USR1", name)
        code = docker("wait", name, timeout=30).stdout.strip()
        assert code == b"0"
        assert docker("logs", name).stdout == b"got-USR1"
    finally:
        docker("rm", "-f", name, check=False)


def zombies(container):
    """Zombie processes in the container, from /proc/*/stat."""
    out = docker("exec", container, SH, "-c", "cat /proc/[0-9]*/stat 2>/dev/null", check=False).stdout.decode()
    found = []
    for line in out.splitlines():
        # pid (comm) state ... — comm may contain spaces, the state follows the last ')'.
        head, _, tail = line.rpartition(")")
        if tail.split() and tail.split()[0] == "Z":
            found.append(head)
    return found


def test_wait_signal_as_pid_1_reaps_orphans(idle_container):
    # The subshell exits at once, so its sleeps are orphaned and reparented to PID 1.
    # Their stdio is redirected, or `docker exec` would wait for them to close its pipes.
    docker("exec", idle_container, SH, "-c",
           "(sleep 1 & sleep 1.2 & sleep 1.5 &) </dev/null >/dev/null 2>&1; exit 0")
    ppids = docker("exec", idle_container, SH, "-c",
                   "for p in $(pidof sleep); do grep PPid /proc/$p/status; done").stdout.decode()
    assert "PPid:\t1" in ppids, f"orphans were not reparented to PID 1: {ppids!r}"
    wait_until(lambda: docker("exec", idle_container, "pidof", "sleep", check=False).returncode != 0
               and not zombies(idle_container), timeout=10, what="the orphans to end and be reaped")
    assert docker("inspect", "-f", "{{.State.Running}}", idle_container).stdout.strip() == b"true"
    docker("kill", "--signal", "TERM", idle_container)
    assert docker("wait", idle_container, timeout=30).stdout.strip() == b"0"
    assert docker("logs", idle_container).stdout == b"idle-stopped"


@pytest.mark.parametrize("args", [
    [],
    ["--message", "x"],
    ["--signal", "BOGUS"],
    ["--signal"],
    ["--signal", "TERM", "--other"],
], ids=["nothing", "message-only", "unknown-signal", "signal-no-value", "unknown-option"])
def test_wait_signal_bad_arguments_exit_1(agent, args):
    result = agent.run(["wait-signal", *args])
    assert result.returncode == 1
    assert b"containerssh-agent:" in result.stderr


# --- write-file ------------------------------------------------------------------------------

CONTENT = bytes(range(256)) * 600 + b"\0end"  # > 64 KiB, binary, NUL bytes


def test_write_file_on_host(host_binary):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "credentials")
        old_umask = os.umask(0o022)
        try:
            result = subprocess.run([host_binary, "write-file", path], input=CONTENT, capture_output=True)
        finally:
            os.umask(old_umask)
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert open(path, "rb").read() == CONTENT

        # An existing file is truncated and its mode forced to 0600.
        os.chmod(path, 0o644)
        result = subprocess.run([host_binary, "write-file", path], input=b"short", capture_output=True)
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert open(path, "rb").read() == b"short"


def test_write_file_does_not_follow_a_symlink_or_open_a_fifo(host_binary):
    """A user who plants a symlink at the path cannot make the agent (root in the container)
    overwrite the file it points at; a FIFO there is an error, not a hang."""
    with tempfile.TemporaryDirectory() as directory:
        victim = os.path.join(directory, "victim")
        with open(victim, "wb") as file:
            file.write(b"victim")
        os.chmod(victim, 0o644)
        path = os.path.join(directory, "planted")
        os.symlink(victim, path)
        result = subprocess.run([host_binary, "write-file", path], input=b"overwritten", capture_output=True, timeout=30)
        assert result.returncode == 1
        assert f"cannot open {path}: it is a symbolic link".encode() in result.stderr
        assert open(victim, "rb").read() == b"victim"
        assert stat.S_IMODE(os.stat(victim).st_mode) == 0o644

        fifo = os.path.join(directory, "fifo")
        os.mkfifo(fifo)
        result = subprocess.run([host_binary, "write-file", fifo], input=b"data", capture_output=True, timeout=30)
        assert result.returncode == 1
        assert b"containerssh-agent: cannot open" in result.stderr


def test_write_file_with_size_stops_after_n_bytes_without_eof(host_binary):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sized")
        reader, writer = os.pipe()
        process = subprocess.Popen([host_binary, "write-file", "--size", str(len(CONTENT)), path], stdin=reader,
                                   stderr=subprocess.PIPE)
        os.close(reader)
        os.write(writer, CONTENT)
        try:
            # stdin stays open: the agent must finish on the byte count alone.
            assert process.wait(timeout=30) == 0, process.stderr.read()
        finally:
            os.close(writer)
        assert open(path, "rb").read() == CONTENT
        short = subprocess.run([host_binary, "write-file", "--size", "10", path], input=b"abc", capture_output=True)
        assert short.returncode == 1 and b"short" in short.stderr
        bad = subprocess.run([host_binary, "write-file", "--size", "x", path], input=b"abc", capture_output=True)
        assert bad.returncode == 1


def test_write_file_in_container(busybox_image):
    script = (f"{IN_IMAGE} write-file /tmp/f && stat -c %a /tmp/f && md5sum < /tmp/f && "
              f"chmod 644 /tmp/f && echo -n short | {IN_IMAGE} write-file /tmp/f && stat -c %a /tmp/f && cat /tmp/f")
    result = docker("run", "--rm", "-i", "--label", "berth.test=agent", busybox_image, SH, "-c", script,
                    input=CONTENT)
    lines = result.stdout.decode().split("\n")
    assert lines[0] == "600"
    assert lines[1].split()[0] == hashlib.md5(CONTENT).hexdigest()
    assert lines[2] == "600"
    assert lines[3] == "short"


@pytest.mark.parametrize("args", [[], ["/nonexistent/dir/file"], ["/tmp/a", "/tmp/b"]],
                         ids=["no-path", "missing-parent", "two-paths"])
def test_write_file_errors_exit_1(agent, args):
    result = agent.run(["write-file", *args], input=b"data")
    assert result.returncode == 1
    assert b"containerssh-agent:" in result.stderr


# --- modes and usage -------------------------------------------------------------------------

def test_help_prints_usage_on_stdout(agent):
    for flag in ("-h", "--help"):
        result = agent.run([flag])
        assert result.returncode == 0
        assert result.stdout.startswith(b"Usage: containerssh-agent MODE")
        for mode in (b"console", b"signal", b"wait-signal", b"write-file"):
            assert mode in result.stdout


@pytest.mark.parametrize("args", [[], ["bogus"], ["CONSOLE", "--", "/bin/true"]], ids=["no-mode", "unknown", "case"])
def test_unknown_or_missing_mode_exits_1_with_usage_on_stderr(agent, args):
    result = agent.run(args)
    assert result.returncode == 1
    assert result.stdout == b""
    assert b"Usage: containerssh-agent MODE" in result.stderr


def test_static_binary_in_image_runs_without_libc(busybox_image):
    """berth-busybox has no libc at all; the agent must still run there."""
    result = docker("run", "--rm", "--label", "berth.test=agent", busybox_image, SH, "-c",
                    f"ls /lib /lib64 /usr/lib 2>&1; {IN_IMAGE} --help >/dev/null && echo agent-ok")
    assert b"agent-ok" in result.stdout
    assert b"libc" not in result.stdout
