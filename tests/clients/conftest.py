"""The target server of the client matrix: Berth (Docker backend) or, to prove the tests
themselves right, OpenSSH's sshd on a loopback port with a temporary config.

BERTH_CLIENTS_TARGET=berth (default) or sshd chooses it. BERTH_CLIENTS_HOST_KEYS (a comma list
of ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa; default all) limits the host keys the
target is configured with; it exists only to diagnose a server that refuses one kind at start-up.

The servers are started once per session (a matrix row is one login, not one server start) by
PID and stopped by PID; their log is shown for a failing test."""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(INTEGRATION.parent))
from waiting import wait_until  # noqa: E402,F401  (tests/waiting.py, shared by the suites)

# The integration fixtures' module is loaded under its own name: both folders have a
# conftest.py and the module name `conftest` may only be taken once.
_spec = importlib.util.spec_from_file_location("berth_integration_conftest", INTEGRATION / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)

from docker_helpers import BUSYBOX, GUEST, docker, docker_config  # noqa: E402

# A failing test's report is needed to decide whether to show the server log.
pytest_runtest_makereport = integration.pytest_runtest_makereport
Process, free_port, wait_for_port, webhook_auth = (integration.Process, integration.free_port,
                                                   integration.wait_for_port, integration.webhook_auth)

USER = "berthtest"
PASSWORD = "pw"

# kind -> (ssh-keygen arguments, SSH host key algorithms that use it)
HOST_KEY_KINDS = {
    "ed25519": (["-t", "ed25519"], ["ssh-ed25519"]),
    "ecdsa-p256": (["-t", "ecdsa", "-b", "256"], ["ecdsa-sha2-nistp256"]),
    "ecdsa-p384": (["-t", "ecdsa", "-b", "384"], ["ecdsa-sha2-nistp384"]),
    "ecdsa-p521": (["-t", "ecdsa", "-b", "521"], ["ecdsa-sha2-nistp521"]),
    "rsa": (["-t", "rsa", "-b", "3072"], ["rsa-sha2-512", "rsa-sha2-256"]),
}
USER_KEY_KINDS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-p256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-p384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-p521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "3072"],
}

# What Berth must offer by default (issue 15); the reference sshd is configured with the same
# lists, less what the local OpenSSH does not implement.
KEX = ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
       "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256",
       "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256"]
CIPHERS = ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
           "aes128-ctr", "aes192-ctr", "aes256-ctr"]
MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"]
HOST_KEY_ALGORITHMS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                       "rsa-sha2-512", "rsa-sha2-256"]


def local_ssh_supports(query, name):
    return name in subprocess.run(["ssh", "-Q", query], capture_output=True, text=True).stdout.split()


class Key:
    def __init__(self, kind, path):
        self.kind = kind
        self.path = Path(path)
        self.type, self.base64 = Path(str(path) + ".pub").read_text().split()[:2]
        self.public_line = f"{self.type} {self.base64}"
        self.sha256 = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path) + ".pub"], capture_output=True,
                                     text=True, check=True).stdout.split()[1]


def make_keys(folder, kinds):
    folder.mkdir(parents=True, exist_ok=True)
    keys = {}
    for kind, args in kinds.items():
        path = folder / kind
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"matrix-{kind}", "-f", str(path), *args], check=True)
        keys[kind] = Key(kind, path)
    return keys


class Server:
    """One listening server and the log it writes."""

    def __init__(self, process, port):
        self.process = process
        self.port = port

    def log_size(self):
        return len(self.process.output())

    def running(self):
        return self.process.proc.poll() is None


class Target:
    def __init__(self, name, folder, host_keys, user_keys):
        self.name = name
        self.folder = folder
        self.host_keys = host_keys
        self.user_keys = user_keys
        self.user = USER
        self.password = PASSWORD
        self.servers = {}
        self.failed = {}
        self.stoppers = []

    @property
    def port(self):
        return self.server("main").port

    @property
    def sftp_port(self):
        """Berth serves SFTP with the image's sftp-server, which the busybox image lacks."""
        return self.server("sftp").port

    def server(self, role):
        if role in self.failed:
            pytest.fail(self.failed[role], pytrace=False)
        if role not in self.servers:
            try:
                self.servers[role] = self.start(role)
            except RuntimeError as error:
                logs = sorted(self.folder.glob(f"*-{role}.log"))
                tail = "\n".join(path.read_text(errors="replace")[-3000:] for path in logs)
                self.failed[role] = f"{self.name} ({role}) did not start: {error}\n{tail}"
                pytest.fail(self.failed[role], pytrace=False)
        return self.servers[role]

    def host_key_for(self, algorithm):
        for key in self.host_keys.values():
            if algorithm in HOST_KEY_KINDS[key.kind][1]:
                return key
        pytest.fail(f"{self.name} is not configured with a host key for {algorithm} (BERTH_CLIENTS_HOST_KEYS)")

    def known_hosts(self, path, algorithms=None, port=None):
        """A known_hosts file with the configured host keys (only those for `algorithms`)."""
        port = port or self.port
        keys = self.host_keys.values() if algorithms is None else [self.host_key_for(a) for a in algorithms]
        path.write_text("".join(f"[127.0.0.1]:{port} {key.public_line}\n" for key in keys))
        return path

    def ssh_args(self, *options, port=None, key=None, known_hosts=None, password=False):
        """OpenSSH client arguments up to (not including) the destination. `options` come first:
        for ssh the first value given for an option wins."""
        args = ["ssh", *options, "-p", str(port or self.port), "-F", "/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=30"]
        if known_hosts:
            args += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}"]
        else:
            args += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        if key:
            args += ["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", str(key.path),
                     "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no", "-o", "BatchMode=yes"]
        if password:
            args = ["sshpass", "-p", self.password, *args, "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1"]
        return args

    def destination(self):
        return f"{self.user}@127.0.0.1"

    def stop(self):
        for stop in reversed(self.stoppers):
            stop()


def ensure_unix_user():
    """The sshd target logs in a real account; its password is set on every run."""
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}\n", text=True, check=True)


def sshd_algorithms(query, wanted):
    offered = subprocess.run(["ssh", "-Q", query], capture_output=True, text=True).stdout.split()
    return ",".join(name for name in wanted if name in offered)


def start_sshd(target, role):
    ensure_unix_user()
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    # sshd reads authorized keys as the user: a folder of its own that the user can read.
    keys_dir = Path(tempfile.mkdtemp(prefix="berth-matrix-keys-"))
    keys_dir.chmod(0o755)
    target.stoppers.append(lambda: shutil.rmtree(keys_dir, ignore_errors=True))
    authorized = keys_dir / "authorized_keys"
    authorized.write_text("".join(key.public_line + "\n" for key in target.user_keys.values()))
    authorized.chmod(0o644)
    port = free_port()
    config = target.folder / f"sshd-{role}.conf"
    host_key_lines = "".join(f"HostKey {key.path}\n" for key in target.host_keys.values())
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
{host_key_lines}PidFile none
UsePAM no
PermitRootLogin no
AllowUsers {USER}
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {authorized}
StrictModes no
X11Forwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
AllowTcpForwarding yes
MaxStartups 100:30:200
Subsystem sftp internal-sftp
KexAlgorithms {sshd_algorithms('kex', KEX)}
Ciphers {sshd_algorithms('cipher', CIPHERS)}
MACs {sshd_algorithms('mac', MACS)}
HostKeyAlgorithms {sshd_algorithms('key-sig', HOST_KEY_ALGORITHMS)}
LogLevel VERBOSE
""")
    process = Process(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], target.folder / f"sshd-{role}.log")
    target.stoppers.append(process.stop)
    wait_for_port(port, process.proc)
    return Server(process, port)


class Webhook:
    def __init__(self, target):
        users_file = target.folder / "users.json"
        users_file.write_text(json.dumps({"users": [{
            "username": USER, "password": PASSWORD,
            "authorizedKeys": [key.public_line for key in target.user_keys.values()]}]}))
        port = free_port()
        self.process = Process([integration.WEBHOOK, "--listen", f"127.0.0.1:{port}", "--users", str(users_file)],
                               target.folder / "webhook.log")
        target.stoppers.append(self.process.stop)
        wait_for_port(port, self.process.proc)
        self.url = f"http://127.0.0.1:{port}"


def start_berth(target, role):
    if not hasattr(target, "webhook"):
        target.webhook = Webhook(target)
    port = free_port()
    config = {
        "ssh": {"listen": f"127.0.0.1:{port}", "hostkeys": [str(key.path) for key in target.host_keys.values()],
                "stateDirectory": str(target.folder / f"state-{role}")},
        "auth": webhook_auth(target.webhook.url),
        "log": {"level": "debug", "format": "ljson"},
        **docker_config(image=GUEST if role == "sftp" else BUSYBOX),
    }
    path = target.folder / f"berth-{role}.json"
    path.write_text(json.dumps(config))
    process = Process([integration.BERTH, "serve", "--config", str(path)], target.folder / f"berth-{role}.log")
    label = f"berth.server={socket.gethostname()}_127.0.0.1:{port}"

    def stop():
        process.stop()
        leftover = docker("ps", "-a", "-q", "--filter", f"label={label}", check=False).stdout.split()
        if leftover:
            docker("rm", "-f", *leftover, check=False)

    target.stoppers.append(stop)
    target.container_labels = getattr(target, "container_labels", []) + [label]
    wait_for_port(port, process.proc)
    return Server(process, port)


def leftover_containers(target):
    found = []
    for label in getattr(target, "container_labels", []):
        found += docker("ps", "-a", "-q", "--filter", f"label={label}", check=False).stdout.split()
    return found


@pytest.fixture(scope="session")
def target(tmp_path_factory):
    name = os.environ.get("BERTH_CLIENTS_TARGET", "berth")
    if name not in ("berth", "sshd"):
        raise pytest.UsageError(f"BERTH_CLIENTS_TARGET must be berth or sshd, not {name!r}")
    wanted = [kind.strip() for kind in os.environ.get("BERTH_CLIENTS_HOST_KEYS", ",".join(HOST_KEY_KINDS)).split(",")]
    folder = tmp_path_factory.mktemp(f"matrix-{name}")
    host_keys = make_keys(folder / "host", {kind: HOST_KEY_KINDS[kind][0] for kind in wanted})
    user_keys = make_keys(folder / "user", USER_KEY_KINDS)
    result = Target(name, folder, host_keys, user_keys)
    result.start = (lambda role: start_sshd(result, role)) if name == "sshd" else (lambda role: start_berth(result, role))
    try:
        yield result
    finally:
        result.stop()


@pytest.fixture(autouse=True)
def server_log_on_failure(request):
    """Shows what the target logged during a failing test, and checks that Berth removed every
    container of the test's connections once they are gone."""
    if "target" not in request.fixturenames:
        yield
        return
    target = request.getfixturevalue("target")
    marks = {role: server.log_size() for role, server in target.servers.items()}
    yield
    failed = hasattr(request.node, "rep_call") and request.node.rep_call.failed
    if failed:
        for role, server in target.servers.items():
            print(f"--- {target.name} {role} log during the test ---\n{server.process.output()[marks.get(role, 0):][-8000:]}")
    for role, server in target.servers.items():
        assert server.running(), f"the {role} server exited with {server.process.proc.returncode}"
    if target.name == "berth":
        assert wait_until(lambda: not leftover_containers(target), timeout=60), \
            f"containers left behind: {leftover_containers(target)}"
