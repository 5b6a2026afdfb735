"""The audit log (docs/configuration.md, "audit"): a real session through Berth on Docker is recorded; the binary log is
read back with an independent decoder (zlib + cbor2), asciicasts are checked with asciinema's own
parser, and S3 storage runs against moto's S3 server."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import boto3
import paramiko
import pytest

from audit_decoder import decode, io_bytes
from conftest import BERTH, free_port, webhook_auth, wait_for
from docker_helpers import GUEST, berth_containers, docker, docker_config

USERS = [{"username": "alice", "password": "pw"}]
ALL = {"stdin": True, "stdout": True, "stderr": True, "forwarding": True}


def start_audited(start_berth, example_webhook, audit, image=GUEST, name="berth"):
    url, _ = example_webhook(USERS)
    return start_berth({"auth": webhook_auth(url), **docker_config(image=image), "audit": {"enable": True, **audit}}, name=name)


def login(berth):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username="alice", password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    return client


def interactive(client, lines, expect):
    channel = client.get_transport().open_session()
    channel.get_pty(term="xterm", width=100, height=30)
    channel.invoke_shell()
    output = b""
    channel.settimeout(30)
    # The first line's answer is awaited before the rest is typed, as a person would.
    channel.send(lines[0])
    while expect not in output:
        output += channel.recv(65536)
    for line in lines[1:]:
        channel.send(line)
    while not channel.exit_status_ready():
        chunk = channel.recv(65536)
        if not chunk:
            break
        output += chunk
    status = channel.recv_exit_status()
    channel.close()
    return status, output


def user_logs(directory):
    """Logs of connections that logged in (the test harness's port probes are recorded too)."""
    if not directory.exists():
        return []
    return [p for p in sorted(directory.iterdir()) if p.suffix != ".cast" and any(m["type"] == 199 for m in decode(p.read_bytes()))]


def test_a_real_session_is_recorded_in_the_binary_format(tmp_path, start_berth, example_webhook):
    directory = tmp_path / "audit"
    berth = start_audited(start_berth, example_webhook, {"format": "binary", "storage": "file", "file": {"directory": str(directory)},
                                                         "intercept": ALL})
    upload = os.urandom(300_000)
    client = login(berth)
    try:
        status, output = interactive(client, [b"echo typed-$((6*7))\r", b"exit 3\r"], b"typed-42")
        assert status == 3 and b"typed-42" in output
        sftp = client.open_sftp()
        with sftp.open("/tmp/uploaded.bin", "wb") as remote:
            remote.write(upload)
        sftp.close()
    finally:
        client.close()
    logs = wait_for(lambda: user_logs(directory))
    assert len(logs) == 1
    # Complete once the disconnect is recorded: the gzip stream then has its trailer.
    messages = wait_for(lambda: _complete(logs[0]))
    assert messages, "the log never recorded the disconnect"
    connection = logs[0].name
    assert all(m["connectionId"] == connection for m in messages)
    types = [m["type"] for m in messages]
    assert types[:4] == [0, 100, 101, 199] and types[-1] == 1
    assert messages[0]["payload"] == {"remoteAddr": "127.0.0.1", "country": "XX"}
    assert messages[1]["payload"] == {"username": "alice", "password": b""}, "passwords are not recorded by default"
    timestamps = [m["timestamp"] for m in messages]
    assert timestamps == sorted(timestamps) and abs(timestamps[0] / 1e9 - time.time()) < 300

    shell = [m for m in messages if m["channelId"] == 0]
    shell_types = [m["type"] for m in shell]
    assert shell_types[0] == 301 and shell[0]["payload"] == {"channelType": "session"}
    pty = next(m for m in shell if m["type"] == 404)
    assert pty["payload"]["term"] == "xterm" and pty["payload"]["columns"] == 100 and pty["payload"]["rows"] == 30
    assert pty["payload"]["requestId"] == 0 and isinstance(pty["payload"]["modelist"], bytes)
    assert next(m for m in shell if m["type"] == 405)["payload"] == {"requestId": 1}
    assert b"echo typed-$((6*7))" in io_bytes(messages, 0, 0)
    assert b"typed-42" in io_bytes(messages, 0, 1)
    assert next(m for m in shell if m["type"] == 499)["payload"] == {"exitStatus": 3}
    assert shell_types.index(499) < shell_types.index(497)

    sftp_channel = next(m["channelId"] for m in messages if m["type"] == 407)
    assert next(m for m in messages if m["type"] == 407)["payload"] == {"requestId": 0, "subsystem": "sftp"}
    assert sftp_channel != 0
    assert len(io_bytes(messages, sftp_channel, 0)) > len(upload)

    # Berth's own decoder agrees, and recovers the uploaded file.
    decoded = subprocess.run([BERTH, "audit", "decode", str(logs[0])], capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
    lines = [json.loads(line) for line in decoded.stdout.splitlines()]
    assert [line["type"] for line in lines] == types
    assert lines[-1]["typeName"] == "disconnect"
    extracted = subprocess.run([BERTH, "audit", "decode", str(logs[0]), "--extract-sftp", str(tmp_path / "files")],
                               capture_output=True, text=True, timeout=60)
    assert extracted.returncode == 0, extracted.stderr
    files = list((tmp_path / "files").iterdir())
    assert len(files) == 1 and files[0].name.endswith("uploaded.bin")
    assert files[0].read_bytes() == upload


def _complete(path):
    messages = decode(path.read_bytes())
    return messages if messages and messages[-1]["type"] == 1 else None


def test_passwords_are_recorded_only_when_asked(tmp_path, start_berth, example_webhook):
    directory = tmp_path / "audit"
    berth = start_audited(start_berth, example_webhook, {"format": "binary", "storage": "file", "file": {"directory": str(directory)},
                                                         "intercept": {"passwords": True}})
    assert berth.ssh("alice", "true", password="pw").returncode == 0
    log = wait_for(lambda: user_logs(directory))[0]
    messages = wait_for(lambda: _complete(log))
    assert messages[1]["payload"]["password"] == b"pw"
    assert not any(m["type"] == 500 for m in messages), "nothing intercepted without intercept flags"
    assert decode(log.read_bytes(), require_trailer=True)


def test_asciicast_per_session_plays_in_asciinema(tmp_path, start_berth, example_webhook):
    directory = tmp_path / "audit"
    berth = start_audited(start_berth, example_webhook, {"format": "asciinema", "storage": "file", "file": {"directory": str(directory)},
                                                         "intercept": {"stdout": True, "stderr": True}})
    client = login(berth)
    try:
        status, output = interactive(client, [b"echo cast-$((2+3))\r", b"exit\r"], b"cast-5")
        assert status == 0
    finally:
        client.close()
    casts = wait_for(lambda: [p for p in directory.iterdir() if p.suffix == ".cast"])
    assert len(casts) == 1 and casts[0].name.endswith("-0.cast")
    lines = wait_for(lambda: (lambda text: text if b"cast-5" in text else None)(casts[0].read_bytes())).decode().splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and header["width"] == 100 and header["height"] == 30 and header["env"]["TERM"] == "xterm"
    events = [json.loads(line) for line in lines[1:]]
    assert all(isinstance(e[0], float) and e[1] == "o" and isinstance(e[2], str) for e in events)
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    played = subprocess.run([sys.executable, "-m", "asciinema", "cat", str(casts[0])], capture_output=True, timeout=60)
    assert played.returncode == 0, played.stderr
    assert b"cast-5" in played.stdout


def test_a_killed_server_leaves_a_readable_log(tmp_path, start_berth, example_webhook):
    directory = tmp_path / "audit"
    berth = start_audited(start_berth, example_webhook, {"format": "binary", "storage": "file", "file": {"directory": str(directory)},
                                                         "intercept": ALL})
    client = login(berth)
    try:
        channel = client.get_transport().open_session()
        channel.get_pty()
        channel.invoke_shell()
        channel.send(b"echo before-$((1+1))-kill\r")
        output = b""
        channel.settimeout(30)
        while b"before-2-kill" not in output:
            output += channel.recv(65536)
        berth.process.proc.send_signal(signal.SIGKILL)
        berth.process.proc.wait()
    finally:
        client.close()
        for container in berth_containers():
            docker("rm", "-f", container, check=False)
    log = user_logs(directory)[0]
    messages = decode(log.read_bytes())
    assert [m["type"] for m in messages][:4] == [0, 100, 101, 199]
    assert b"before-2-kill" in io_bytes(messages, 0, 1)
    assert messages[-1]["type"] != 1, "no disconnect was recorded: the server died"


class Moto:
    def __init__(self, port, log):
        self.port = port
        self.log = log
        self.process = None

    def start(self):
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        assert wait_for(listening, timeout=60), "moto did not start"
        self.client().create_bucket(Bucket="audit")

    def client(self):
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", aws_access_key_id="AKIDTEST",
                            aws_secret_access_key="secret-test", region_name="us-east-1")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def objects(self):
        """Keys of logs of users who logged in (port probes are recorded too, without a username)."""
        keys = [o["Key"] for o in self.client().list_objects_v2(Bucket="audit").get("Contents", [])]
        return [k for k in keys if self.client().head_object(Bucket="audit", Key=k)["Metadata"].get("username")]


@pytest.fixture
def moto(tmp_path):
    with open(tmp_path / "moto.log", "wb") as log:
        server = Moto(free_port(), log)
        yield server
        server.stop()


def s3_audit(tmp_path, moto, **extra):
    return {"format": "binary", "storage": "s3", "intercept": {"stdout": True},
            "s3": {"endpoint": f"http://127.0.0.1:{moto.port}", "bucket": "audit", "region": "us-east-1", "accessKey": "AKIDTEST",
                   "secretKey": "secret-test", "pathStyleAccess": True, "local": str(tmp_path / "staging"),
                   "metadata": {"ip": True, "username": True}, **extra}}


def test_s3_upload_with_metadata_and_multipart_for_large_logs(tmp_path, start_berth, example_webhook, moto):
    moto.start()
    berth = start_audited(start_berth, example_webhook, s3_audit(tmp_path, moto))
    assert berth.ssh("alice", "echo small", password="pw").returncode == 0
    small = wait_for(lambda: moto.objects())
    assert len(small) == 1
    head = moto.client().head_object(Bucket="audit", Key=small[0])
    assert head["Metadata"] == {"ip": "127.0.0.1", "username": "alice"}
    body = moto.client().get_object(Bucket="audit", Key=small[0])["Body"].read()
    messages = decode(body, require_trailer=True)
    assert b"small" in io_bytes(messages, 0, 1)

    # Random output does not compress: this log is larger than two 5 MiB parts.
    result = berth.ssh("alice", "head -c 12000000 /dev/urandom", password="pw", timeout=120)
    assert result.returncode == 0 and len(result.stdout) == 12000000
    big = wait_for(lambda: [k for k in moto.objects() if k != small[0]], timeout=60)
    assert big, "the large log was not uploaded"
    etag = moto.client().head_object(Bucket="audit", Key=big[0])["ETag"].strip('"')
    assert etag.endswith("-3"), f"not a three-part multipart upload: {etag}"
    messages = decode(moto.client().get_object(Bucket="audit", Key=big[0])["Body"].read(), require_trailer=True)
    assert io_bytes(messages, 0, 1) == result.stdout
    assert wait_for(lambda: not [p for p in (tmp_path / "staging").iterdir()]), "staging files remain after upload"


def test_s3_outage_and_restart_lose_nothing(tmp_path, start_berth, example_webhook, moto):
    berth = start_audited(start_berth, example_webhook, s3_audit(tmp_path, moto))
    assert berth.ssh("alice", "echo during-outage", password="pw").returncode == 0
    staged = wait_for(lambda: [p for p in (tmp_path / "staging").iterdir() if not p.name.endswith((".open", ".meta"))
                               and any(m["type"] == 199 for m in decode(p.read_bytes()))])
    assert staged, "the finished log is not staged"
    assert "AUDIT_UPLOAD_FAILED" in wait_for(lambda: "AUDIT_UPLOAD_FAILED" in berth.process.output() and berth.process.output())
    # Berth stops while S3 is still down; the next run uploads what is staged.
    assert berth.process.stop() == 0
    moto.start()
    again = start_audited(start_berth, example_webhook, s3_audit(tmp_path, moto), name="again")
    keys = wait_for(lambda: moto.objects(), timeout=60)
    assert len(keys) == 1 and keys[0] in [p.name for p in staged]
    messages = decode(moto.client().get_object(Bucket="audit", Key=keys[0])["Body"].read(), require_trailer=True)
    assert b"during-outage" in io_bytes(messages, 0, 1)
    # And while running, an outage during a session only delays the upload.
    moto.stop()
    failures = again.process.output().count("AUDIT_UPLOAD_FAILED")
    assert again.ssh("alice", "echo second-outage", password="pw").returncode == 0
    # S3 comes back only after an upload of this log has failed, so the retry is what delivers it.
    assert wait_for(lambda: again.process.output().count("AUDIT_UPLOAD_FAILED") > failures, timeout=60)
    moto.start()
    later = wait_for(lambda: [k for k in moto.objects() if k != keys[0]], timeout=60)
    assert later, "the log recorded during the outage never arrived"


def test_s3_metadata_with_an_odd_username(tmp_path, start_berth, faulty_webhook, moto):
    """Needs no Docker: the echo backend, a webhook that accepts any name with password pw."""
    from email.header import decode_header, make_header
    moto.start()
    odd = 'Zoë "q"\r\nx-amz-acl: public-read  end'
    berth = start_berth({"auth": webhook_auth(f"http://127.0.0.1:{faulty_webhook.server_port}"),
                         "audit": {"enable": True, **s3_audit(tmp_path, moto)}})
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=berth.port, username=odd, password="pw", look_for_keys=False, allow_agent=False, timeout=30)
    _, stdout, _ = client.exec_command("whoami")
    assert stdout.read().decode() == odd + "\n"
    client.close()
    keys = wait_for(lambda: moto.objects())
    assert len(keys) == 1, keys
    stored = moto.client().head_object(Bucket="audit", Key=keys[0])["Metadata"]["username"]
    assert str(make_header(decode_header(stored))) == odd, stored
    assert "AUDIT_UPLOAD_FAILED" not in berth.process.output()


def test_socket_x11_and_agent_forwarding_are_recorded(tmp_path, start_berth, example_webhook):
    """ContainerSSH's types for streamlocal (204, 306, 307) and X11 (409, 305); Berth's 602 for
    auth-agent-req@openssh.com, which ContainerSSH lacks."""
    import asyncio
    import threading

    import asyncssh

    from forward_programs import UNIX_ECHO_CLIENT, UNIX_ECHO_SERVER, X_CLIENT, command

    directory = tmp_path / "audit"
    url, _ = example_webhook(USERS)
    forwarding = {"socketForwardingMode": "enable", "socketListenMode": "enable", "x11ForwardingMode": "enable",
                  "agentForwardingMode": "enable"}
    berth = start_berth({"auth": webhook_auth(url), **docker_config(), "security": {"forwarding": forwarding},
                         "audit": {"enable": True, "format": "binary", "storage": "file", "file": {"directory": str(directory)},
                                   "intercept": ALL}})
    echo = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()

    async def sockets():
        async with asyncssh.connect("127.0.0.1", port=berth.port, username="alice", password="pw", known_hosts=None,
                                    client_keys=None, agent_path=None) as conn:
            listener = await conn.forward_remote_path_to_port("/tmp/audit-r.sock", "127.0.0.1", echo.getsockname()[1])
            assert (await conn.run(command(UNIX_ECHO_CLIENT, "/tmp/audit-r.sock", "100"), check=True)).stdout.split()[2] == "100"
            listener.close()
            server = await conn.create_process(command(UNIX_ECHO_SERVER, "/tmp/audit-l.sock"))
            assert (await server.stdout.readline()) == "listening\n"
            reader, writer = await conn.open_unix_connection("/tmp/audit-l.sock")
            writer.write(b"through-the-socket")
            writer.write_eof()
            assert await reader.read() == b"through-the-socket"
            server.close()

    asyncio.run(sockets())

    client = login(berth)
    try:
        x11_channels = []
        channel = client.get_transport().open_session()
        channel.request_forward_agent(lambda agent_channel: None)
        channel.request_x11(auth_cookie="00112233445566778899aabbccddeeff", single_connection=True,
                            handler=lambda x11, origin: x11_channels.append(x11) or x11.sendall(b"pong!"))
        channel.exec_command(command(X_CLIENT))
        assert channel.makefile("rb").read() == b"answer:pong!\n"
        assert channel.recv_exit_status() == 0
    finally:
        client.close()
    logs = wait_for(lambda: user_logs(directory) if len(user_logs(directory)) == 2 else None)
    messages = [m for log in logs for m in wait_for(lambda log=log: _complete(log))]
    by_type = {}
    for m in messages:
        by_type.setdefault(m["type"], []).append(m)
    assert by_type[204][0]["payload"] == {"Path": "/tmp/audit-r.sock"}
    assert by_type[307][0]["payload"] == {"Path": "/tmp/audit-r.sock"}
    assert by_type[306][0]["payload"] == {"Path": "/tmp/audit-l.sock"}
    assert b"through-the-socket" in io_bytes(messages, by_type[306][0]["channelId"], 0)
    x11 = by_type[409][0]["payload"]
    assert x11["singleConnection"] is True and x11["authProtocol"] == "MIT-MAGIC-COOKIE-1" and x11["screen"] == "0"
    assert by_type[602][0]["payload"]["requestId"] == x11["requestId"] - 1
    assert by_type[305][0]["payload"]["OriginatorHost"] == "127.0.0.1"
    opened = {m["payload"]["channelType"] for m in by_type[301]}
    assert {"x11", "forwarded-streamlocal@openssh.com", "direct-streamlocal@openssh.com"} <= opened
