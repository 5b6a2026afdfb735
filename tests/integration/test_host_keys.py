"""Host keys: generated once and kept, configured ed25519/ECDSA keys used, RSA refused."""
import os
import stat
import subprocess

import paramiko

from conftest import BERTH, webhook_auth


def server_key(port):
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.start_client(timeout=20)
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()
    finally:
        transport.close()


def test_generated_host_key_is_stored_once_and_reused(tmp_path, start_berth):
    config = {"auth": webhook_auth("http://127.0.0.1:9")}
    first = start_berth(config, name="first")
    name, first_key = server_key(first.port)
    assert name == "ssh-ed25519"
    first.process.stop()
    key_file = tmp_path / "state" / "ssh_host_ed25519_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, check=True, text=True)
    assert public.stdout.split()[1] == first_key
    second = start_berth(config, name="second")
    assert server_key(second.port)[1] == first_key


def test_configured_ed25519_and_ecdsa_host_keys(tmp_path, start_berth):
    for kind, algorithm in (("ed25519", "ssh-ed25519"), ("ecdsa-p256", "ecdsa-sha2-nistp256"), ("ecdsa-p384", "ecdsa-sha2-nistp384")):
        path = tmp_path / f"host_{kind}"
        made = subprocess.run([BERTH, "keygen", "--type", kind, "--output", str(path)], capture_output=True, text=True, check=True)
        berth = start_berth({"ssh": {"hostkeys": [str(path)]}, "auth": webhook_auth("http://127.0.0.1:9")}, name=kind)
        assert server_key(berth.port) == (algorithm, made.stdout.split()[1])
        berth.process.stop()


def test_ssh_keygen_made_keys_are_accepted_inline_and_from_file(tmp_path, start_berth):
    path = tmp_path / "openssh_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "521", "-N", "", "-f", str(path)], check=True)
    berth = start_berth({"ssh": {"hostkeys": [path.read_text()]}, "auth": webhook_auth("http://127.0.0.1:9")})
    assert server_key(berth.port)[0] == "ecdsa-sha2-nistp521"


def test_rsa_host_key_is_a_startup_error(tmp_path, start_berth):
    path = tmp_path / "rsa_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path)], check=True)
    berth = start_berth({"ssh": {"hostkeys": [str(path)]}, "auth": webhook_auth("http://127.0.0.1:9")}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "berth keygen" in berth.process.output()
    assert "ssh.hostkeys[0]" in berth.process.output()
