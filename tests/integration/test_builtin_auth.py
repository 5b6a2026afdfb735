"""Berth's built-in providers: static users with crypt(3) hashes, authorized_keys files (docs/configuration.md, "Built-in users")."""
import json
import subprocess

from conftest import make_key


def sha512_crypt(password):
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True, check=True).stdout.strip()


def test_static_users_with_crypt_hashes_inline_and_from_file(tmp_path, start_berth):
    key, pub = make_key(tmp_path, "ed25519")
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps({"users": [{"username": "bob", "passwordHash": sha512_crypt("bobpw")}]}))
    static = {"users": [{"username": "alice", "passwordHash": sha512_crypt("alicepw"), "authorizedKeys": [pub + " alice@laptop"]}],
              "usersFile": str(users_file)}
    berth = start_berth({"auth": {"password": {"method": "static", "static": static},
                                  "publicKey": {"method": "static", "static": static}}})
    assert berth.ssh("alice", "whoami", password="alicepw").stdout == b"alice\n"
    assert berth.ssh("bob", "whoami", password="bobpw").stdout == b"bob\n"
    assert berth.ssh("alice", "whoami", password="bobpw").returncode != 0
    assert berth.ssh("nobody", "whoami", password="x").returncode != 0
    assert berth.ssh("alice", "whoami", key=key).stdout == b"alice\n"
    assert berth.ssh("bob", "whoami", key=key).returncode != 0


def test_authorized_keys_path_template(tmp_path, start_berth):
    key, pub = make_key(tmp_path, "ecdsa")
    other, _ = make_key(tmp_path, "ed25519", "other")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "carol").write_text(f"# carol's keys\n\nno-pty,command=\"echo hi there\" {pub} carol@desk\n")
    berth = start_berth({"auth": {"publicKey": {"method": "authorizedkeys",
                                                "authorizedKeys": {"pathTemplate": str(keys_dir / "%u")}}}})
    # The line's command= replaces what the client asked for (test_key_options.py has the rest).
    assert berth.ssh("carol", "whoami", key=key).stdout == b"echo hi there\n"  # the echo backend prints the command it runs
    assert berth.ssh("carol", "whoami", key=other).returncode != 0
    assert berth.ssh("dave", "whoami", key=key).returncode != 0
