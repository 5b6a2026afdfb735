"""FIDO/U2F keys (sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com) from a software
authenticator written here after PROTOCOL.u2f: it signs SHA256(application) || flags || counter ||
SHA256(message) like a hardware key, and paramiko carries the signature to Berth."""
import base64
import hashlib
import struct

import paramiko
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from paramiko.message import Message

PRESENT, VERIFIED = 0x01, 0x04


class SoftwareSecurityKey(paramiko.PKey):
    def __init__(self, kind, application="ssh:"):
        self.public_blob = None
        self.kind = kind
        self.application = application
        self.flags = PRESENT
        self.counter = 1
        self.sign_application = application
        body = Message()
        if kind == "ed25519":
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.name = "sk-ssh-ed25519@openssh.com"
            body.add_string(self.name)
            body.add_string(self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.name = "sk-ecdsa-sha2-nistp256@openssh.com"
            body.add_string(self.name)
            body.add_string("nistp256")
            body.add_string(self.private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        body.add_string(application)
        self.blob = body.asbytes()

    def get_name(self):
        return self.name

    def asbytes(self):
        return self.blob

    def can_sign(self):
        return True

    def get_bits(self):
        return 256

    @property
    def authorized_key(self):
        return f"{self.name} {base64.b64encode(self.blob).decode()}"

    def sign_ssh_data(self, data, algorithm=None):
        signed = (hashlib.sha256(self.sign_application.encode()).digest() + bytes([self.flags])
                  + struct.pack(">I", self.counter) + hashlib.sha256(data).digest())
        if self.kind == "ed25519":
            signature = self.private.sign(signed)
        else:
            r, s = decode_dss_signature(self.private.sign(signed, ec.ECDSA(hashes.SHA256())))
            inner = Message()
            inner.add_mpint(r)
            inner.add_mpint(s)
            signature = inner.asbytes()
        message = Message()
        message.add_string(self.name)
        message.add_string(signature)
        message.add_byte(bytes([self.flags]))
        message.add_int(self.counter)
        return message


def signs_in(berth, key, user="deploy"):
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    try:
        transport.start_client(timeout=30)
        try:
            transport.auth_publickey(user, key)
        except paramiko.AuthenticationException:
            return False
        channel = transport.open_session()
        channel.exec_command("whoami")
        return channel.makefile().read() == user.encode() + b"\n"
    finally:
        transport.close()


def keys_berth(tmp_path, start_berth, lines, name="berth"):
    directory = tmp_path / f"keys-{name}"
    directory.mkdir()
    (directory / "deploy").write_text("".join(line + "\n" for line in lines))
    return start_berth({"auth": {"publicKey": {"method": "authorizedkeys", "authorizedKeys": {"pathTemplate": str(directory / "%u")}}}}, name=name)


def refusals(berth, code="AUTH_KEYS_LINE_REFUSED"):
    return [line["message"] for line in berth.process.log_lines() if line.get("code") == code]


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_touch_counter_and_signature(tmp_path, start_berth, kind):
    key = SoftwareSecurityKey(kind)
    berth = keys_berth(tmp_path, start_berth, [key.authorized_key])
    assert signs_in(berth, key)
    # Not touched: refused, with the reason.
    key.flags, key.counter = 0, 2
    assert not signs_in(berth, key)
    assert any("not touched" in message for message in refusals(berth))
    # The counter must go up: the same counter again is a clone or a replay.
    key.flags, key.counter = PRESENT, 3
    assert signs_in(berth, key)
    assert not signs_in(berth, key)
    assert any("did not increase" in line["details"]["reason"] for line in berth.process.log_lines() if line.get("code") == "AUTH_FAILED")
    key.counter = 4
    assert signs_in(berth, key)
    # A signature for another application does not verify against the key's own.
    key.counter, key.sign_application = 5, "ssh:other"
    assert not signs_in(berth, key)


def test_no_touch_required_and_verify_required(tmp_path, start_berth):
    relaxed = SoftwareSecurityKey("ed25519")
    strict = SoftwareSecurityKey("ecdsa")
    berth = keys_berth(tmp_path, start_berth, [f"no-touch-required {relaxed.authorized_key}", f"verify-required {strict.authorized_key}"])
    relaxed.flags = 0
    assert signs_in(berth, relaxed)
    strict.flags = PRESENT
    assert not signs_in(berth, strict)
    assert any("verify-required" in message for message in refusals(berth))
    strict.flags, strict.counter = PRESENT | VERIFIED, 2
    assert signs_in(berth, strict)


def test_application_outside_ssh_is_refused(tmp_path, start_berth):
    web = SoftwareSecurityKey("ed25519", application="https://example.com")
    berth = keys_berth(tmp_path, start_berth, [web.authorized_key])
    assert not signs_in(berth, web)
