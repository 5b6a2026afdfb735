"""Host keys: generated once and kept (ed25519, ECDSA, RSA), configured keys of every type and format used."""
import os
import stat
import subprocess

import paramiko

from conftest import BERTH, webhook_auth


def server_key(port, algorithm=None):
    transport = paramiko.Transport(("127.0.0.1", port))
    if algorithm:
        transport.get_security_options().key_types = (algorithm,)
    try:
        transport.start_client(timeout=20)
        key = transport.get_remote_server_key()
        return key.get_name(), key.get_base64()
    finally:
        transport.close()


def test_generated_host_key_is_stored_once_and_reused(tmp_path, start_berth):
    config = {"auth": webhook_auth("http://127.0.0.1:9")}
    first = start_berth(config, name="first")
    # As `ssh-keygen -A` does for OpenSSH: one key of each kind, so every client finds one it knows.
    kinds = {"ssh_host_ed25519_key": "ssh-ed25519", "ssh_host_ecdsa_key": "ecdsa-sha2-nistp256", "ssh_host_rsa_key": "rsa-sha2-512"}
    first_keys = {file: server_key(first.port, algorithm) for file, algorithm in kinds.items()}
    assert first_keys["ssh_host_rsa_key"][0] == "ssh-rsa"
    first.process.stop()
    for file, (_, key) in first_keys.items():
        key_file = tmp_path / "state" / file
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        public = subprocess.run(["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, check=True, text=True)
        assert public.stdout.split()[1] == key
    second = start_berth(config, name="second")
    for file, algorithm in kinds.items():
        assert server_key(second.port, algorithm)[1] == first_keys[file][1]


def test_configured_host_keys_of_every_kind_made_by_berth_keygen(tmp_path, start_berth):
    for kind, algorithm in (("ed25519", "ssh-ed25519"), ("ecdsa-p256", "ecdsa-sha2-nistp256"), ("ecdsa-p384", "ecdsa-sha2-nistp384"),
                            ("ecdsa-p521", "ecdsa-sha2-nistp521"), ("rsa", "ssh-rsa")):
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


def test_containerssh_rsa_host_keys_keep_their_fingerprint(tmp_path, start_berth):
    """ContainerSSH's docs make host keys with `openssl genrsa` (PKCS#1 PEM); ssh-keygen's RSA keys
    are OpenSSH format. Both load, and clients see exactly that key with SHA-2 signatures."""
    pkcs1 = tmp_path / "rsa_pkcs1.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(pkcs1), "2048"], check=True, capture_output=True)
    openssh = tmp_path / "rsa_openssh"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "3072", "-N", "", "-f", str(openssh)], check=True)
    for path in (pkcs1, openssh):
        expected = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, check=True, text=True).stdout.split()[1]
        berth = start_berth({"ssh": {"hostkeys": [str(path)]}, "auth": webhook_auth("http://127.0.0.1:9")}, name=path.name)
        for algorithm in ("rsa-sha2-512", "rsa-sha2-256"):
            assert server_key(berth.port, algorithm) == ("ssh-rsa", expected)
        berth.process.stop()


def test_unusable_host_keys_are_startup_errors_naming_the_entry(tmp_path, start_berth):
    encrypted = tmp_path / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(encrypted)], check=True)
    berth = start_berth({"ssh": {"hostkeys": [str(encrypted)]}, "auth": webhook_auth("http://127.0.0.1:9")}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "ssh.hostkeys[0]" in berth.process.output()
    assert "encrypted" in berth.process.output()
