"""Rekeying under load, no byte lost or reordered: 1 GiB out of and into the target with OpenSSH
rekeying every MiB, and 128 MiB each way with paramiko rekeying every MiB (a second, independent
implementation). SHA-256 of both ends must match; the client's own log proves the rekeys ran."""
import hashlib
import logging
import os
import subprocess
import threading

import paramiko
import pytest

GIB = 1 << 30
CHUNK = 1 << 20


def pull_command(size):
    # The program's stdout carries the bytes, its stderr their SHA-256 (busybox sh has no >(...)).
    return (f"f=/tmp/rekey.$$; mkfifo $f || exit 1; sha256sum <$f >&2 & head -c {size} /dev/urandom | tee $f; "
            "status=$?; wait; rm -f $f; exit $status")


def remote_digest(stderr):
    words = [word for word in stderr.decode(errors="replace").split() if len(word) == 64]
    assert words, f"no SHA-256 on the program's stderr: {stderr[-2000:]!r}"
    return words[-1]


def newkeys_in(log):
    return log.read_text(errors="replace").count("SSH2_MSG_NEWKEYS received")


def openssh(target, log, *command):
    args = target.ssh_args("-v", "-E", str(log), "-o", "RekeyLimit=1M", key=target.user_keys["ed25519"])
    return subprocess.Popen([*args, target.destination(), *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def drain(stream, into):
    into.append(stream.read())


def test_openssh_pulls_one_gib_with_rekeys_every_mib(target, tmp_path):
    log = tmp_path / "ssh.log"
    ssh = openssh(target, log, pull_command(GIB))
    ssh.stdin.close()
    stderr = []
    reader = threading.Thread(target=drain, args=(ssh.stderr, stderr))
    reader.start()
    digest, received = hashlib.sha256(), 0
    try:
        while chunk := ssh.stdout.read(CHUNK):
            digest.update(chunk)
            received += len(chunk)
        assert ssh.wait(timeout=900) == 0, f"exit {ssh.returncode} after {received} bytes: {stderr}"
    finally:
        ssh.kill()
        reader.join(timeout=60)
    assert received == GIB
    assert digest.hexdigest() == remote_digest(stderr[0])
    assert newkeys_in(log) > 500, "OpenSSH did not rekey as often as RekeyLimit=1M asks"


def test_openssh_pushes_one_gib_with_rekeys_every_mib(target, tmp_path):
    log = tmp_path / "ssh.log"
    ssh = openssh(target, log, "sha256sum")
    digest = hashlib.sha256()

    def feed():
        try:
            for _ in range(GIB // CHUNK):
                chunk = os.urandom(CHUNK)
                digest.update(chunk)
                ssh.stdin.write(chunk)
            ssh.stdin.close()
        except BrokenPipeError:
            pass

    stdout, stderr = [], []
    threads = [threading.Thread(target=feed), threading.Thread(target=drain, args=(ssh.stdout, stdout)),
               threading.Thread(target=drain, args=(ssh.stderr, stderr))]
    for thread in threads:
        thread.start()
    try:
        ssh.wait(timeout=900)
    finally:
        ssh.kill()
        for thread in threads:
            thread.join(timeout=60)
    assert ssh.returncode == 0, stderr[0][-3000:]
    assert stdout[0].split()[0].decode() == digest.hexdigest()
    assert newkeys_in(log) > 500, "OpenSSH did not rekey as often as RekeyLimit=1M asks"


class NewKeysCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        if "Switch to new keys" in record.getMessage():
            self.count += 1


@pytest.fixture
def paramiko_rekeying(target, tmp_path):
    """A paramiko transport that rekeys after every MiB either way (its default is 512 MiB)."""
    transport = paramiko.Transport(("127.0.0.1", target.port))
    transport.packetizer.REKEY_BYTES = CHUNK
    counter = NewKeysCounter()
    transport.logger.addHandler(counter)
    level = transport.logger.level
    transport.logger.setLevel(logging.DEBUG)
    try:
        transport.connect(username=target.user, password=target.password)
        host_key = transport.get_remote_server_key()
        assert host_key.get_base64() in [key.base64 for key in target.host_keys.values()]
        yield transport, counter
    finally:
        transport.logger.setLevel(level)
        transport.logger.removeHandler(counter)
        transport.close()


PARAMIKO_SIZE = 128 * CHUNK


def test_paramiko_pulls_with_rekeys_every_mib(paramiko_rekeying):
    transport, counter = paramiko_rekeying
    channel = transport.open_session(timeout=60)
    channel.settimeout(120)
    channel.exec_command(pull_command(PARAMIKO_SIZE))
    digest, received = hashlib.sha256(), 0
    while chunk := channel.recv(CHUNK):
        digest.update(chunk)
        received += len(chunk)
    stderr = b""
    while part := channel.recv_stderr(4096):
        stderr += part
    assert channel.recv_exit_status() == 0
    assert received == PARAMIKO_SIZE
    assert digest.hexdigest() == remote_digest(stderr)
    assert counter.count > 64, "paramiko did not rekey every MiB"


def test_paramiko_pushes_with_rekeys_every_mib(paramiko_rekeying):
    transport, counter = paramiko_rekeying
    channel = transport.open_session(timeout=60)
    channel.settimeout(120)
    channel.exec_command("sha256sum")
    digest = hashlib.sha256()
    for _ in range(PARAMIKO_SIZE // CHUNK):
        chunk = os.urandom(CHUNK)
        digest.update(chunk)
        channel.sendall(chunk)
    channel.shutdown_write()
    stdout = b""
    while part := channel.recv(4096):
        stdout += part
    assert channel.recv_exit_status() == 0
    assert stdout.split()[0].decode() == digest.hexdigest()
    assert counter.count > 64, "paramiko did not rekey every MiB"
