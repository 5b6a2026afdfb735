"""Client families other than OpenSSH, each as its users run it: dropbear's dbclient, PuTTY's
plink and psftp, curl's sftp:// (libssh2), JSch, paramiko, asyncssh and libssh (ssh-python).
Every client checks the host key against the configured one; exec rows check output and exit
status, SFTP rows upload and download on one connection (Berth's container lives as long as the
connection) and compare the bytes."""
import asyncio
import base64
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

COMMAND = "echo matrix-$((6*7)); exit 3"
EXPECTED = b"matrix-42\n"
JSCH_JAR = Path("/usr/share/java/jsch.jar")
JSCH_CLIENT = Path(__file__).with_name("JschClient.java")


def require(program):
    if not shutil.which(program):
        pytest.fail(f"{program} is not installed: run scripts/install-test-deps.sh", pytrace=False)


def run(args, timeout=120, **kwargs):
    # A session of its own: no controlling terminal, so a client that would prompt fails at once.
    return subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True,
                          **kwargs)


def assert_ran(returncode, stdout, detail=b""):
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else detail
    assert (returncode, stdout) == (3, EXPECTED), detail


@pytest.fixture
def transfer(target, tmp_path):
    """A local file of random bytes, a remote path for it and a local path to download it to."""
    local = tmp_path / "upload.bin"
    local.write_bytes(os.urandom(1024 * 1024 + 123))
    remote = f"/tmp/matrix-{uuid.uuid4().hex}.bin"
    yield local, remote, tmp_path / "download.bin"
    if target.name == "sshd":
        Path(remote).unlink(missing_ok=True)


def dropbear_home(target, tmp_path):
    """dbclient reads $HOME/.ssh/known_hosts, whose lines name the host without the port, and
    without a terminal refuses any key not listed there."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text("".join(f"127.0.0.1 {key.public_line}\n" for key in target.host_keys.values()))
    return home


def test_dbclient_password(target, tmp_path):
    require("dbclient")
    env = dict(os.environ, HOME=str(dropbear_home(target, tmp_path)), DROPBEAR_PASSWORD=target.password)
    result = run(["dbclient", "-p", str(target.port), target.destination(), COMMAND], env=env)
    assert_ran(result.returncode, result.stdout, result.stderr)


def test_dbclient_aes_ctr_hmac_sha2(target, tmp_path):
    # What libssh2 1.10, JSch 0.1.x and bots share: CTR mode with an HMAC, no AEAD cipher.
    require("dbclient")
    env = dict(os.environ, HOME=str(dropbear_home(target, tmp_path)), DROPBEAR_PASSWORD=target.password)
    result = run(["dbclient", "-c", "aes128-ctr", "-m", "hmac-sha2-256", "-p", str(target.port), target.destination(),
                  COMMAND], env=env)
    assert_ran(result.returncode, result.stdout, result.stderr)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "rsa"])
def test_dbclient_key_converted_by_dropbearconvert(target, tmp_path, kind):
    require("dropbearconvert")
    converted = tmp_path / f"dropbear_{kind}"
    made = run(["dropbearconvert", "openssh", "dropbear", str(target.user_keys[kind].path), str(converted)])
    assert made.returncode == 0, made.stderr
    # No DROPBEAR_PASSWORD and no terminal: only the key can log in.
    env = dict(os.environ, HOME=str(dropbear_home(target, tmp_path)))
    env.pop("DROPBEAR_PASSWORD", None)
    result = run(["dbclient", "-i", str(converted), "-p", str(target.port),
                  target.destination(), COMMAND], env=env)
    assert_ran(result.returncode, result.stdout, result.stderr)


def putty_host_keys(target):
    # One -hostkey per configured key: PuTTY accepts whichever of them the server signs with.
    return [arg for key in target.host_keys.values() for arg in ("-hostkey", key.sha256)]


def test_plink_password(target):
    require("plink")
    result = run(["plink", "-ssh", "-batch", "-P", str(target.port), "-l", target.user, "-pw", target.password,
                  *putty_host_keys(target), "127.0.0.1", COMMAND])
    assert_ran(result.returncode, result.stdout, result.stderr)


def test_plink_key_converted_by_puttygen(target, tmp_path):
    require("puttygen")
    ppk = tmp_path / "key.ppk"
    made = run(["puttygen", str(target.user_keys["rsa"].path), "-O", "private", "-o", str(ppk)])
    assert made.returncode == 0, made.stderr
    result = run(["plink", "-ssh", "-batch", "-P", str(target.port), "-l", target.user, "-i", str(ppk),
                  *putty_host_keys(target), "127.0.0.1", COMMAND])
    assert_ran(result.returncode, result.stdout, result.stderr)


def test_psftp_put_and_get(target, tmp_path, transfer):
    require("psftp")
    local, remote, back = transfer
    batch = tmp_path / "batch"
    batch.write_text(f"put {local} {remote}\nget {remote} {back}\n")
    result = run(["psftp", "-batch", "-be", "-P", str(target.sftp_port), "-l", target.user, "-pw", target.password,
                  *putty_host_keys(target), "-b", str(batch), "127.0.0.1"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert back.read_bytes() == local.read_bytes()


def test_curl_sftp_upload_and_download(target, transfer):
    """Debian's curl runs sftp:// on libssh2. It pins the host key by the SHA-256 of its blob;
    libssh2 prefers ecdsa-sha2-nistp256 over the other configured kinds."""
    require("curl")
    local, remote, back = transfer
    key = target.host_key_for("ecdsa-sha2-nistp256")
    pin = base64.b64encode(hashlib.sha256(base64.b64decode(key.base64)).digest()).decode()
    url = f"sftp://127.0.0.1:{target.sftp_port}{remote}"
    common = ["-sS", "-u", f"{target.user}:{target.password}", "--hostpubsha256", pin]
    # One curl process reuses the connection for the download (-v would say "Re-using").
    result = run(["curl", *common, "-T", str(local), url, "--next", *common, "-o", str(back), url])
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == local.read_bytes()


def jsch(target, tmp_path, port, *args):
    if not JSCH_JAR.exists():
        pytest.fail("JSch is not installed (libjsch-java): run scripts/install-test-deps.sh", pytrace=False)
    require("java")
    # JSch 0.1.x knows no Ed25519 and signs host keys with ssh-rsa (SHA-1) only, so it settles on ECDSA.
    known_hosts = target.known_hosts(tmp_path / "jsch_known_hosts", ["ecdsa-sha2-nistp256"], port=port)
    return run(["java", "-cp", str(JSCH_JAR), str(JSCH_CLIENT), str(port), target.user, target.password,
                str(known_hosts), *args], timeout=180)


def test_jsch_exec(target, tmp_path):
    result = jsch(target, tmp_path, target.port, "exec", COMMAND)
    assert_ran(result.returncode, result.stdout, result.stderr)


def test_jsch_sftp(target, tmp_path, transfer):
    local, remote, back = transfer
    result = jsch(target, tmp_path, target.sftp_port, "sftp", str(local), remote, str(back))
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == local.read_bytes()


def paramiko_client(target, tmp_path, port):
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(target.known_hosts(tmp_path / "paramiko_known_hosts", port=port)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=port, username=target.user, password=target.password, look_for_keys=False,
                   allow_agent=False, timeout=30, banner_timeout=30, auth_timeout=30, channel_timeout=30)
    return client


def test_paramiko_exec(target, tmp_path):
    client = paramiko_client(target, tmp_path, target.port)
    try:
        _, stdout, _ = client.exec_command(COMMAND, timeout=60)
        output = stdout.read()
        assert_ran(stdout.channel.recv_exit_status(), output)
    finally:
        client.close()


def test_paramiko_sftp(target, tmp_path, transfer):
    local, remote, back = transfer
    client = paramiko_client(target, tmp_path, target.sftp_port)
    try:
        sftp = client.open_sftp()
        sftp.put(str(local), remote)
        sftp.get(remote, str(back))
        sftp.close()
    finally:
        client.close()
    assert back.read_bytes() == local.read_bytes()


def asyncssh_run(target, tmp_path, port, scenario):
    import asyncssh

    known_hosts = str(target.known_hosts(tmp_path / "asyncssh_known_hosts", port=port))

    async def main():
        async with asyncssh.connect("127.0.0.1", port=port, username=target.user, password=target.password,
                                    known_hosts=known_hosts, client_keys=None, agent_path=None,
                                    connect_timeout=30) as connection:
            return await scenario(connection)

    return asyncio.run(asyncio.wait_for(main(), 120))


def test_asyncssh_exec(target, tmp_path):
    async def scenario(connection):
        return await connection.run(COMMAND, encoding=None)

    result = asyncssh_run(target, tmp_path, target.port, scenario)
    assert_ran(result.exit_status, result.stdout, result.stderr)


def test_asyncssh_sftp(target, tmp_path, transfer):
    local, remote, back = transfer

    async def scenario(connection):
        async with connection.start_sftp_client() as sftp:
            await sftp.put(str(local), remote)
            await sftp.get(remote, str(back))

    asyncssh_run(target, tmp_path, target.sftp_port, scenario)
    assert back.read_bytes() == local.read_bytes()


def test_libssh_exec(target):
    """libssh through ssh-python: the server's host key is compared with the configured ones."""
    from ssh import options
    from ssh.session import Session

    session = Session()
    session.options_set(options.HOST, "127.0.0.1")
    session.options_set_port(target.port)
    session.options_set(options.USER, target.user)
    session.options_set(options.TIMEOUT, "30")
    session.connect()
    try:
        server_key = session.get_server_publickey().export_pubkey_base64().decode()
        assert server_key in [key.base64 for key in target.host_keys.values()]
        session.userauth_password(target.user, target.password)
        channel = session.channel_new()
        channel.open_session()
        channel.request_exec(COMMAND)
        output = b""
        deadline = time.monotonic() + 120
        # Reads are bounded: a blocking libssh read spins in C, out of reach of pytest and signals.
        while not (channel.is_eof() or channel.is_closed()):
            assert time.monotonic() < deadline, f"no EOF after 120 s; output so far {output!r}"
            size, data = channel.read_timeout(1000)
            assert size >= 0, f"libssh read failed: {session.get_error()}"
            output += data[:size]
        channel.send_eof()
        channel.close()
        assert_ran(channel.get_exit_status(), output,
                   f"kex {session.get_kex_algo()}, cipher {session.get_cipher_in()}, mac {session.get_hmac_in()}")
    finally:
        session.disconnect()
