"""OpenSSH user certificates made with `ssh-keygen -s`, presented by the real OpenSSH client:
trusted by `auth.publicKey.trustedUserCAKeys` or a `cert-authority` line, and each refusal."""
import subprocess
from pathlib import Path

from conftest import SSH_OPTS, make_key, wait_until


class CA:
    """A CA key that signs the certificate next to each user key (`<key>-cert.pub`, which ssh picks up)."""

    def __init__(self, tmp_path, name="ca", kind="ed25519"):
        self.tmp_path = tmp_path
        self.key, self.pub = make_key(tmp_path, kind, name)
        self.count = 0

    def issue(self, principals="deploy", kind="ed25519", validity="-5m:+1h", options=(), identity="cert-test"):
        self.count += 1
        key, _ = make_key(self.tmp_path, kind, f"{Path(self.key).name}-user{self.count}")
        args = ["ssh-keygen", "-q", "-s", str(self.key), "-I", identity, "-n", principals, "-V", validity, "-z", str(self.count)]
        for option in options:
            args += ["-O", option]
        subprocess.run(args + [str(key) + ".pub"], check=True)
        return key


def cert_ssh(berth, key, command, user="deploy", extra=()):
    return subprocess.run(["ssh", "-p", str(berth.port), *SSH_OPTS, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                           "-o", "PasswordAuthentication=no", "-i", str(key), *extra, f"{user}@127.0.0.1", command],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


def refusals(berth):
    return [line["message"] for line in berth.process.log_lines() if line.get("code") == "AUTH_CERTIFICATE_REFUSED"]


def trusted(start_berth, ca, **extra):
    return start_berth({"auth": {"publicKey": {"trustedUserCAKeys": [ca.pub + " users-ca"]}, **extra}})


def test_valid_certificates_of_each_key_type_sign_in(tmp_path, start_berth):
    ca = CA(tmp_path)
    rsa_ca = CA(tmp_path, "rsaca", "rsa")
    ca_file = tmp_path / "cas.pub"
    ca_file.write_text(f"# the RSA CA\n{rsa_ca.pub}\n")
    berth = start_berth({"auth": {"publicKey": {"trustedUserCAKeys": [ca.pub, str(ca_file)]}}})
    for issuer, kind in [(ca, "ed25519"), (ca, "ecdsa"), (ca, "rsa"), (rsa_ca, "ed25519")]:
        result = cert_ssh(berth, issuer.issue(kind=kind), "whoami")
        assert result.returncode == 0, (issuer.pub, kind, result.stderr)
        assert result.stdout == b"deploy\n"


def test_refused_certificates(tmp_path, start_berth):
    ca = CA(tmp_path)
    berth = trusted(start_berth, ca)
    cases = [
        (ca.issue(validity="20200101:20200201"), "has expired"),
        (ca.issue(validity="+1d:+2d"), "not valid yet"),
        (ca.issue(principals="someone-else"), "not valid for user deploy"),
        (CA(tmp_path, "rogue").issue(), "is not trusted for this user"),
        (ca.issue(options=["source-address=10.0.0.0/8"]), "source-address does not include 127.0.0.1"),
        (ca.issue(options=["critical:unknown-option@example.com=x"]), "unknown critical option"),
        (ca.issue(options=["verify-required"]), "FIDO user verification"),
    ]
    for key, reason in cases:
        result = cert_ssh(berth, key, "whoami")
        assert result.returncode != 0 and result.stdout == b"", reason
        assert wait_until(lambda: any(reason in message for message in refusals(berth))), (reason, refusals(berth))
    # A host certificate is not a user certificate.
    host_key, _ = make_key(tmp_path, "ed25519", "hostcert")
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca.key), "-I", "host", "-h", "-n", "deploy", str(host_key) + ".pub"], check=True)
    assert cert_ssh(berth, host_key, "whoami").returncode != 0
    # The CA key itself is not a login key.
    assert cert_ssh(berth, ca.key, "whoami").returncode != 0


def test_critical_options_and_extensions(tmp_path, start_berth):
    ca = CA(tmp_path)
    berth = trusted(start_berth, ca)
    forced = cert_ssh(berth, ca.issue(options=["force-command=env", "source-address=127.0.0.0/8,::1"]), "whoami")
    assert forced.returncode == 0, forced.stderr
    assert b"SSH_ORIGINAL_COMMAND=whoami\n" in forced.stdout
    # Without permit-pty the pty request fails (ssh -tt then gives up); without -tt the command runs.
    bare_key = ca.issue(options=["clear"])
    assert b"PTY allocation request failed" in cert_ssh(berth, bare_key, "whoami", extra=["-tt"]).stderr
    assert cert_ssh(berth, bare_key, "whoami").stdout == b"deploy\n"
    full = cert_ssh(berth, ca.issue(), "whoami", extra=["-tt"])
    assert b"PTY allocation request failed" not in full.stderr and b"deploy" in full.stdout


def test_cert_authority_line_with_principals(tmp_path, start_berth):
    ca = CA(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "deploy").write_text(f'cert-authority,principals="ops,release",command="env",environment="VIA=ca-line" {ca.pub}\n')
    berth = start_berth({"auth": {"publicKey": {"method": "authorizedkeys", "authorizedKeys": {"pathTemplate": str(keys / "%u")}}}})
    result = cert_ssh(berth, ca.issue(principals="ops"), "whoami")
    assert result.returncode == 0, result.stderr
    assert b"VIA=ca-line\n" in result.stdout and b"SSH_ORIGINAL_COMMAND=whoami\n" in result.stdout
    # The login name is not enough when the line names principals.
    assert cert_ssh(berth, ca.issue(principals="deploy"), "whoami").returncode != 0
    assert wait_until(lambda: any("principals=" in message for message in refusals(berth)))
    # A force-command that disagrees with the line's command= is refused.
    assert cert_ssh(berth, ca.issue(principals="ops", options=["force-command=whoami"]), "whoami").returncode != 0
    # Another user's file does not trust this CA.
    assert cert_ssh(berth, ca.issue(principals="ops"), "whoami", user="other").returncode != 0


def test_webhooks_see_the_key_id_and_principals(tmp_path, start_berth, faulty_webhook):
    ca = CA(tmp_path)
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = trusted(start_berth, ca, authz={"method": "webhook", "webhook": {"url": url}})
    result = cert_ssh(berth, ca.issue(principals="deploy,admins", identity="alice@corp"), "whoami")
    assert result.returncode == 0, result.stderr
    authz = [body for path, body in faulty_webhook.seen if path == "/authz"]
    assert len(authz) == 1
    metadata = authz[0]["metadata"]
    assert metadata["certificateKeyId"]["value"] == "alice@corp"
    assert metadata["certificatePrincipals"]["value"] == "deploy,admins"
    assert metadata["certificateCA"]["value"].startswith("SHA256:")


def test_host_certificate_with_cert_authority_known_hosts(tmp_path, start_berth):
    host_ca = CA(tmp_path, "hostca")
    host_key, _ = make_key(tmp_path, "ed25519", "hostkey")
    subprocess.run(["ssh-keygen", "-q", "-s", str(host_ca.key), "-I", "berth-host", "-h", "-n", "127.0.0.1", str(host_key) + ".pub"], check=True)
    user_key, user_pub = make_key(tmp_path, "ed25519", "login")
    auth = {"publicKey": {"method": "static", "static": {"users": [{"username": "deploy", "authorizedKeys": [user_pub]}]}}}
    berth = start_berth({"auth": auth, "ssh": {"hostkeys": [str(host_key)], "hostCertificates": [str(host_key) + "-cert.pub"]}})
    plain = start_berth({"auth": auth, "ssh": {"hostkeys": [str(host_key)]}}, name="plain")

    def strict(server, ca_pub):
        known = tmp_path / f"known_hosts_{server.port}_{len(ca_pub)}"
        known.write_text(f"@cert-authority [127.0.0.1]:{server.port} {ca_pub}\n")
        return subprocess.run(["ssh", "-p", str(server.port), "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
                               "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(user_key),
                               "deploy@127.0.0.1", "whoami"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    trusted_login = strict(berth, host_ca.pub)
    assert trusted_login.returncode == 0, trusted_login.stderr
    assert trusted_login.stdout == b"deploy\n"
    # Another CA, or no certificate at all: OpenSSH cannot verify the host.
    assert b"Host key verification failed" in strict(berth, CA(tmp_path, "otherca").pub).stderr
    assert b"Host key verification failed" in strict(plain, host_ca.pub).stderr


def test_host_certificate_must_match_a_host_key(tmp_path, start_berth):
    host_ca = CA(tmp_path, "hostca")
    host_key, _ = make_key(tmp_path, "ed25519", "hostkey")
    other, _ = make_key(tmp_path, "ed25519", "otherkey")
    subprocess.run(["ssh-keygen", "-q", "-s", str(host_ca.key), "-I", "other", "-h", "-n", "127.0.0.1", str(other) + ".pub"], check=True)
    auth = {"publicKey": {"method": "static", "static": {"users": [{"username": "deploy", "authorizedKeys": [host_ca.pub]}]}}}
    berth = start_berth({"auth": auth, "ssh": {"hostkeys": [str(host_key)], "hostCertificates": [str(other) + "-cert.pub"]}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "ssh.hostCertificates[0]" in berth.process.output() and "not one of the host keys" in berth.process.output()
