"""OpenSSH's ssh and ssh-keyscan against the target, one row per algorithm: each kex, cipher,
MAC, host key algorithm and user key type logs in, runs a command and gets its output and exit
status back."""
import subprocess

import pytest

from conftest import CIPHERS, HOST_KEY_ALGORITHMS, KEX, MACS, local_ssh_supports

COMMAND = "echo matrix-$((6*7)); exit 3"
EXPECTED = b"matrix-42\n"


def ssh_version():
    return subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()


def require_local(query, name):
    if not local_ssh_supports(query, name):
        pytest.skip(f"the local {ssh_version()} does not implement {name} (ssh -Q {query})")


def login(target, *options, key=None, password=False, known_hosts=None, command=COMMAND, timeout=120):
    if key is None and not password:
        key = target.user_keys["ed25519"]
    args = target.ssh_args(*options, key=key, password=password, known_hosts=known_hosts)
    return subprocess.run([*args, target.destination(), command], capture_output=True, timeout=timeout)


def assert_ran(result):
    assert (result.returncode, result.stdout) == (3, EXPECTED), result.stderr.decode(errors="replace")


@pytest.mark.parametrize("kex", KEX)
def test_kex(target, kex):
    require_local("kex", kex)
    assert_ran(login(target, "-o", f"KexAlgorithms={kex}"))


@pytest.mark.parametrize("cipher", CIPHERS)
def test_cipher(target, cipher):
    require_local("cipher", cipher)
    assert_ran(login(target, "-o", f"Ciphers={cipher}"))


@pytest.mark.parametrize("mac", MACS)
def test_mac_with_aes128_ctr(target, mac):
    # An AEAD cipher ignores the MAC; only a CTR cipher makes the MAC the one negotiated.
    require_local("mac", mac)
    assert_ran(login(target, "-o", "Ciphers=aes128-ctr", "-o", f"MACs={mac}"))


@pytest.mark.parametrize("algorithm", HOST_KEY_ALGORITHMS)
def test_host_key_algorithm(target, tmp_path, algorithm):
    """known_hosts holds only the key of the configured file for this algorithm, so the login
    proves the server signed with that very key and algorithm."""
    require_local("key-sig", algorithm)
    known_hosts = target.known_hosts(tmp_path / "known_hosts", [algorithm])
    assert_ran(login(target, "-o", f"HostKeyAlgorithms={algorithm}", known_hosts=known_hosts))


@pytest.mark.parametrize("kind,signature", [
    ("ed25519", "ssh-ed25519"), ("ecdsa-p256", "ecdsa-sha2-nistp256"), ("ecdsa-p384", "ecdsa-sha2-nistp384"),
    ("ecdsa-p521", "ecdsa-sha2-nistp521"), ("rsa", "rsa-sha2-256"), ("rsa", "rsa-sha2-512")])
def test_user_key(target, kind, signature):
    # OpenSSH signs an RSA key with rsa-sha2-* only when the server lists it in server-sig-algs.
    assert_ran(login(target, "-o", f"PubkeyAcceptedAlgorithms={signature}", key=target.user_keys[kind]))


def test_password(target):
    assert_ran(login(target, password=True))


def test_ssh_keyscan_returns_each_configured_host_key(target):
    kinds = {"rsa": "rsa", "ecdsa-p256": "ecdsa", "ed25519": "ed25519"}
    wanted = [kind for kind in kinds if kind in target.host_keys]
    result = subprocess.run(["ssh-keyscan", "-T", "30", "-p", str(target.port), "-t", ",".join(kinds[k] for k in wanted),
                             "127.0.0.1"], capture_output=True, text=True, timeout=120)
    scanned = sorted(" ".join(line.split()[1:3]) for line in result.stdout.splitlines() if line and not line.startswith("#"))
    # ssh-keyscan asks for "ecdsa" with the three curves in preference order: P-256 comes back.
    assert scanned == sorted(target.host_keys[kind].public_line for kind in wanted), result.stderr
    assert len(wanted) == 3, f"configured host keys: {sorted(target.host_keys)}"
