"""Keyboard-interactive sign-ins in the audit log (ContainerSSH's types 108–111): the OAuth2
device flow and the TOTP second factor, read back with the independent decoder."""
import paramiko
import pytest

from audit_decoder import decode
from oidc_provider import Provider
from test_oidc import paramiko_login as oidc_login
from test_second_factor import SECRET, login, totp
from test_builtin_auth import sha512_crypt
from waiting import wait_until


def audit(directory, passwords=False):
    return {"enable": True, "format": "binary", "storage": "file", "file": {"directory": str(directory)},
            "intercept": {"passwords": passwords}}


def finished_logs(directory, count):
    """The audit files of `count` closed connections that tried to sign in (each ends with a
    disconnect record; the start-up probe's connection has no authentication records)."""
    def ready():
        logs = [decode(path.read_bytes()) for path in sorted(directory.iterdir()) if path.stat().st_size >= 40]
        done = [log for log in logs if log and log[-1]["type"] == 1 and any(100 <= m["type"] <= 111 for m in log)]
        return done if len(done) == count else None
    return wait_until(ready, timeout=60, what=f"{count} finished audit logs in {directory}")


def of_type(log, *types):
    return [message for message in log if message["type"] in types]


@pytest.fixture
def provider():
    server = Provider()
    yield server
    server.close()


def test_device_flow_challenge_and_refusal_are_recorded(start_berth, provider, tmp_path):
    directory = tmp_path / "audit"
    directory.mkdir()
    oauth2 = {"clientId": "berth", "clientSecret": "s3cret", "provider": "oidc",
              "oidc": {"url": provider.url + "/", "deviceFlow": True, "usernameField": "preferred_username"}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}, "audit": audit(directory)})
    _, output = oidc_login(berth)
    assert output == b"alice.sso\n", output
    provider.scenario = "deny"
    _, output = oidc_login(berth)
    assert isinstance(output, paramiko.AuthenticationException), output
    logs = finished_logs(directory, 2)
    approved, denied = sorted(logs, key=lambda log: log[0]["timestamp"])
    challenge = of_type(approved, 108)
    assert len(challenge) == 1 and challenge[0]["payload"]["username"] == "typed-name"
    assert "Enter the following code: WDJB-MJHT" in challenge[0]["payload"]["instruction"]
    assert challenge[0]["payload"]["questions"] == []
    assert of_type(approved, 109)[0]["payload"]["answers"] == []
    assert of_type(approved, 110, 111) == [] and of_type(approved, 199)[0]["payload"]["username"] == "alice.sso"
    assert [m["payload"] for m in of_type(denied, 110)] == [{"username": "typed-name"}]
    assert of_type(denied, 199) == []


def test_provider_down_is_a_backend_error(start_berth, provider, tmp_path):
    directory = tmp_path / "audit"
    directory.mkdir()
    oauth2 = {"clientId": "berth", "clientSecret": "s3cret", "provider": "oidc", "oidc": {"url": provider.url + "/", "deviceFlow": True}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}, "audit": audit(directory)})
    provider.close()
    _, output = oidc_login(berth)
    assert isinstance(output, paramiko.AuthenticationException), output
    [log] = finished_logs(directory, 1)
    [error] = of_type(log, 111)
    assert error["payload"]["username"] == "typed-name" and error["payload"]["reason"]


@pytest.mark.parametrize("passwords", [False, True])
def test_second_factor_is_recorded_and_the_code_only_with_passwords(start_berth, tmp_path, passwords):
    directory = tmp_path / "audit"
    directory.mkdir()
    static = {"users": [{"username": "alice", "passwordHash": sha512_crypt("pw"), "totpSecret": SECRET}]}
    berth = start_berth({"auth": {"password": {"method": "static", "static": static}, "secondFactor": {"method": "totp"}},
                         "audit": audit(directory, passwords)})
    code = totp()
    _, _, transport = login(berth, "alice", "pw", code)
    assert isinstance(transport, paramiko.Transport), transport
    transport.close()
    _, _, refused = login(berth, "alice", "pw", "000000" if code != "000000" else "111111")
    assert isinstance(refused, paramiko.AuthenticationException), refused
    accepted, failed = sorted(finished_logs(directory, 2), key=lambda log: log[0]["timestamp"])
    for log in (accepted, failed):
        assert of_type(log, 108)[0]["payload"]["questions"] == [{"question": "Verification code: ", "echo": False}]
    answer = of_type(accepted, 109)[0]["payload"]["answers"][0]
    assert answer == {"question": "Verification code: ", "answer": code if passwords else ""}
    assert of_type(accepted, 110) == [] and of_type(failed, 110) == [{**of_type(failed, 110)[0], "payload": {"username": "alice"}}]
