"""ssh-audit (PyPI) against the target: strict kex offered, every configured host key seen, and no
finding beyond the ones accepted below, each with the reason it is accepted."""
import json
import shutil
import subprocess

import pytest

from conftest import local_ssh_supports

PQ = "does not provide protection against post-quantum attacks"
NSA = "using elliptic curves that are suspected as being backdoored by the U.S. National Security Agency"
# (section, algorithm, level, note) -> why it is accepted
ACCEPTED = {
    **{("kex", name, "warn", PQ): "classical kex offered next to the post-quantum one for clients without ML-KEM"
       for name in ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
                    "ecdh-sha2-nistp521", "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
                    "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256"]},
    **{("kex", f"ecdh-sha2-nistp{bits}", "fail", NSA): "JSch 0.1.x knows no curve25519: NIST ECDH is its only "
       "non-SHA-1 kex; OpenSSH's sshd offers it by default" for bits in (256, 384, 521)},
    **{("key", f"ecdsa-sha2-nistp{bits}", "fail", NSA): "configured on purpose by the matrix: JSch 0.1.x and "
       "libssh2 1.10 prefer ECDSA host keys; ssh-keygen -A makes one" for bits in (256, 384, 521)},
    **{("key", f"ecdsa-sha2-nistp{bits}", "warn", "using weak random number generator could reveal the key"):
       "ssh-audit's generic ECDSA nonce caveat; the signer is a vetted library, not hand-written" for bits in (256, 384, 521)},
    ("kex", "diffie-hellman-group14-sha256", "warn", "2048-bit modulus only provides 112-bits of symmetric strength"):
        "RFC 9142 MUST-implement group; older clients (PuTTY < 0.75 builds, libssh2 1.8) have nothing stronger",
    **{("mac", name, "warn", "using encrypt-and-MAC mode"): "dropbear, libssh2 1.10 and JSch 0.1.x have no -etm MAC"
       for name in ["hmac-sha2-256", "hmac-sha2-512"]},
}


@pytest.fixture(scope="module")
def audit(target):
    if not shutil.which("ssh-audit"):
        pytest.fail("ssh-audit is not installed: run scripts/install-test-deps.sh", pytrace=False)
    # The exit status counts findings; the JSON report is what is checked.
    result = subprocess.run(["ssh-audit", "-j", "-t", "30", "-p", str(target.port), "127.0.0.1"], capture_output=True,
                            text=True, timeout=300)
    try:
        return json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"ssh-audit gave no report (exit {result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")


def test_ssh_audit_offers_strict_kex(audit):
    assert "kex-strict-s-v00@openssh.com" in [entry["algorithm"] for entry in audit["kex"]]


def test_ssh_audit_findings_are_only_the_accepted_ones(audit):
    findings = []
    for section in ("kex", "key", "enc", "mac"):
        for entry in audit[section]:
            for level in ("fail", "warn"):
                for note in entry.get("notes", {}).get(level, []):
                    findings.append((section, entry["algorithm"], level, note))
    assert [finding for finding in findings if finding not in ACCEPTED] == []
    assert audit["cves"] == []


def test_ssh_audit_sees_every_configured_host_key(audit, target):
    seen = {entry["hash"] for entry in audit["fingerprints"] if entry["hash_alg"] == "SHA256"}
    assert {key.sha256.removeprefix("SHA256:") for key in target.host_keys.values()} <= seen


def test_ssh_audit_post_quantum_kex_offered(audit, target):
    if target.name == "sshd" and not local_ssh_supports("kex", "mlkem768x25519-sha256"):
        pytest.skip("the reference sshd is an OpenSSH without mlkem768x25519-sha256")
    assert "mlkem768x25519-sha256" in [entry["algorithm"] for entry in audit["kex"]]
