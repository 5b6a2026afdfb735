"""The Debian package (packaging/build-deb.sh) in a fresh Debian container built from the project's
debootstrap base with systemd as PID 1 (packaging/common.sh, SYSTEMD_BASE), the host's engine
socket mounted as a Docker host's would be: dpkg installs it, `systemd-analyze verify` accepts
the unit, systemd starts Berth as the berth user from the installed files, Berth generates its
host keys, a real OpenSSH client logs in (key from /etc/berth/authorized_keys), reload sends
SIGHUP, `dpkg -r` stops and removes it, `dpkg --purge` removes its state.

One change to the default configuration: `agentSocketRoot: ""`. Berth runs in a container here
while the engine runs outside it, so a socket directory Berth makes is not at the same path on
the engine's host (docs/packaging.md); on a real host the default is right."""
import re
import secrets
import subprocess

import pytest

from conftest import LOGIN, ROOT, docker, docker_socket_gid, guest_containers, packaging_setting, ssh, wait_until


class DebianHost:
    def __init__(self, name):
        self.name = name

    def run(self, *command, check=True):
        result = docker("exec", self.name, *command, check=False)
        if check:
            assert result.returncode == 0, f"{command}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def sh(self, script, check=True):
        return self.run("sh", "-c", script, check=check)

    @property
    def address(self):
        return docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", self.name).stdout.strip()

    def journal(self):
        return self.run("journalctl", "-u", "berth", "--no-pager", "-o", "cat", check=False).stdout

    def active(self):
        return self.run("systemctl", "is-active", "berth", check=False).stdout.strip()

    def main_pid(self):
        return self.run("systemctl", "show", "-p", "MainPID", "--value", "berth").stdout.strip()


@pytest.fixture
def debian_host():
    subprocess.run(["bash", "-c", 'source packaging/common.sh && ensure_base "$SYSTEMD_BASE" "$SYSTEMD_PACKAGES" >&2'],
                   cwd=ROOT, check=True)
    base = packaging_setting("SYSTEMD_BASE")
    name = f"berth-pack-deb-{secrets.token_hex(4)}"
    # systemd as PID 1 needs its own cgroup tree, a writable /run and the capabilities and
    # syscalls its sandboxing options use (mount namespaces, read-only binds). Not --privileged:
    # an engine without CAP_SYS_RESOURCE cannot grant every capability.
    run = docker("run", "-d", "--name", name, "--hostname", name, "--cgroupns=private",
                 "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                 "--security-opt", "apparmor=unconfined",
                 "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
                 "-v", "/var/run/docker.sock:/run/docker.sock", base, "/lib/systemd/systemd", check=False)
    assert run.returncode == 0, run.stderr
    host = DebianHost(name)
    try:
        assert wait_until(lambda: host.run("systemctl", "is-system-running", check=False).stdout.strip()
                          in ("running", "degraded"), timeout=120), \
            host.run("systemctl", "--failed", "--no-pager", check=False).stdout
        yield host
    finally:
        docker("rm", "-f", "-v", name, check=False)
        for container in guest_containers(name):
            docker("rm", "-f", container, check=False)


def test_deb_install_start_login_reload_remove_purge(debian_host, deb, guest_image, client_key):
    host = debian_host
    key, public = client_key
    # What installing docker.io makes: a docker group owning the socket.
    host.run("groupadd", "--system", "--gid", str(docker_socket_gid()), "docker")
    # Docker's chain for user rules, where Berth adds its metadata rule (docs/security.md); this
    # container's own network namespace stands in for the engine's host.
    host.run("iptables", "-w", "-N", "DOCKER-USER")
    # The unit's LimitNOFILE=65536 cannot exceed this container's hard limit without
    # CAP_SYS_RESOURCE, which an engine that lacks it (as this test machine's) cannot grant; an
    # operator's drop-in lowers it then, as here.
    nofile = int(host.sh("ulimit -Hn").stdout)
    if nofile < 65536:
        host.sh(f"mkdir -p /etc/systemd/system/berth.service.d && printf '[Service]\\nLimitNOFILE={nofile}\\n'"
                " > /etc/systemd/system/berth.service.d/nofile.conf")
    # Not to /tmp: docker cp writes beneath the tmpfs mounted there.
    docker("cp", str(deb), f"{host.name}:/root/berth.deb")
    install = host.run("dpkg", "-i", "/root/berth.deb")
    assert "berth" in install.stdout

    # Installed files, conffile, account.
    listing = host.run("dpkg", "-L", "berth").stdout.split()
    for path in ("/usr/bin/berth", "/usr/bin/berth-example-webhook", "/usr/lib/berth/berth-agent",
                 "/etc/berth/config.yaml", "/lib/systemd/system/berth.service", "/usr/share/man/man1/berth.1.gz"):
        assert path in listing, path
    assert host.run("cat", "/var/lib/dpkg/info/berth.conffiles").stdout.split() == ["/etc/berth/config.yaml"]
    account = host.run("id", "berth").stdout
    assert "(docker)" in account and "uid=0" not in account
    # The Swift runtime is linked in: the target has no toolchain.
    libraries = host.run("ldd", "/usr/bin/berth").stdout
    assert "libswift" not in libraries and "not found" not in libraries, libraries
    # The man page was generated from --help and lists the commands.
    man = host.sh("zcat /usr/share/man/man1/berth.1.gz").stdout
    assert man.startswith(".\\\"") or ".TH BERTH" in man
    for command in ("serve", "keygen", "healthcheck", "/etc/berth/config.yaml"):
        assert command in man, command

    verify = host.run("systemd-analyze", "verify", "/lib/systemd/system/berth.service", check=False)
    assert verify.returncode == 0, verify.stderr
    assert "berth.service" not in verify.stderr, verify.stderr

    # postinst enabled and started it; first start generated the host keys.
    assert host.run("systemctl", "is-enabled", "berth").stdout.strip() == "enabled"
    assert wait_until(lambda: host.active() == "active", timeout=60), (host.active(), host.journal()[-3000:])
    assert wait_until(lambda: len(host.sh("ls /var/lib/berth/ssh_host_*_key", check=False).stdout.split()) == 3,
                      timeout=60), host.journal()[-3000:]
    keys = host.sh("stat -c '%n %U %a' /var/lib/berth/ssh_host_*_key").stdout.splitlines()
    assert all(line.endswith(" berth 600") for line in keys), keys
    pid = host.main_pid()
    status = host.run("cat", f"/proc/{pid}/status").stdout
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    assert uid == host.run("id", "-u", "berth").stdout.strip() and uid != "0"
    assert "NoNewPrivs:\t1" in status
    limits = host.run("cat", f"/proc/{pid}/limits").stdout
    expected = min(nofile, 65536)
    assert re.search(rf"Max open files\s+{expected}\s+{expected}", limits), limits

    # The only change to the default config (see the module's docstring); applied by a restart.
    host.sh("sed -i 's|^    agentSocketRoot: .*|    agentSocketRoot: \"\"|' /etc/berth/config.yaml")
    assert 'agentSocketRoot: ""' in host.run("cat", "/etc/berth/config.yaml").stdout
    host.run("systemctl", "restart", "berth")
    assert wait_until(lambda: host.active() == "active", timeout=60)
    pid = host.main_pid()
    assert wait_until(lambda: host.run("berth", "healthcheck", "--config", "/etc/berth/config.yaml",
                                       check=False).returncode == 0, timeout=60), host.journal()[-3000:]

    # Nobody is let in until the operator adds keys; then a real OpenSSH client logs in.
    refused = ssh(2222, key, "true", host=host.address)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr
    host.sh(f"echo '{public}' > /etc/berth/authorized_keys/{LOGIN}")
    result = ssh(2222, key, "id -un; echo in-guest", host=host.address)
    assert result.returncode == 0, (result.stderr, host.journal()[-3000:])
    assert result.stdout.split() == [LOGIN, "in-guest"]
    assert wait_until(lambda: guest_containers(host.name) == [], timeout=60)
    # As the berth user, the unit's capabilities were enough for Berth's iptables rules.
    assert "DOCKER_FIREWALL_APPLIED" in host.journal(), host.journal()[-3000:]
    rules = host.run("iptables", "-w", "-S").stdout
    assert re.search(r"-A INPUT -i \S+ -j REJECT", rules), rules
    assert re.search(r"-A DOCKER-USER -d 169.254.0.0/16 -i \S+ -j REJECT", rules), rules

    # Reload is SIGHUP: the same process, which logs that it reopened its log.
    host.run("systemctl", "reload", "berth")
    assert wait_until(lambda: "LOG_REOPENED" in host.journal(), timeout=30), host.journal()[-2000:]
    assert host.active() == "active" and host.main_pid() == pid

    # Remove: service stopped and gone, binaries gone; config and state stay for a reinstall.
    remove = host.run("dpkg", "-r", "berth")
    assert "Removing berth" in remove.stdout
    assert host.run("systemctl", "is-active", "berth", check=False).stdout.strip() in ("inactive", "unknown")
    for path in ("/usr/bin/berth", "/usr/lib/berth/berth-agent", "/lib/systemd/system/berth.service"):
        assert host.run("test", "-e", path, check=False).returncode != 0, path
    assert host.run("dpkg-query", "-W", "-f", "${Status}", "berth").stdout == "deinstall ok config-files"
    assert host.run("test", "-f", "/etc/berth/config.yaml", check=False).returncode == 0
    assert host.run("test", "-f", "/var/lib/berth/ssh_host_ed25519_key", check=False).returncode == 0
    assert host.run("pgrep", "-u", "berth", check=False).returncode == 1

    # Purge: configuration and state are gone.
    host.run("dpkg", "--purge", "berth")
    for path in ("/etc/berth", "/var/lib/berth", "/var/log/berth"):
        assert host.run("test", "-e", path, check=False).returncode != 0, path
    assert host.run("dpkg-query", "-W", "berth", check=False).returncode != 0
