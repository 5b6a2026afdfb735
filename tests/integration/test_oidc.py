"""OAuth2 / OIDC device flow over keyboard-interactive (auth.keyboardInteractive.method oauth2)
against the test provider in oidc_provider.py, with OpenSSH and paramiko."""
import os
import subprocess

import paramiko
import pytest

from conftest import SSH_OPTS
from oidc_provider import Provider


@pytest.fixture
def provider():
    server = Provider()
    yield server
    server.close()


def oidc_berth(start_berth, provider, **extra):
    oauth2 = {"clientId": "berth", "clientSecret": "s3cret", "provider": "oidc",
              "oidc": {"url": provider.url + "/", "deviceFlow": True, "usernameField": "preferred_username"}}
    return start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}, **extra}})


def openssh(berth, user="typed-name", command="whoami"):
    # OpenSSH shows a keyboard-interactive instruction at log level INFO.
    options = [option.replace("LogLevel=ERROR", "LogLevel=INFO") for option in SSH_OPTS]
    return subprocess.run(["ssh", "-p", str(berth.port), *options, "-o", "PreferredAuthentications=keyboard-interactive",
                           "-o", "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1", command],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120, env=dict(os.environ, SSH_ASKPASS_REQUIRE="never"),
                          start_new_session=True)


def paramiko_login(berth, user="typed-name", answer=None):
    """Signs in over keyboard-interactive; `answer(instruction, prompts)` returns the answers
    (default: none, as the device flow asks no question). Returns (rounds shown, output or error)."""
    transport = paramiko.Transport(("127.0.0.1", berth.port))
    transport.start_client(timeout=30)
    shown = []

    def handler(title, instructions, prompts):
        shown.append((title, instructions, list(prompts)))
        return answer(instructions, prompts) if answer else []

    try:
        transport.auth_interactive(user, handler)
        channel = transport.open_session()
        channel.exec_command("whoami")
        return shown, channel.makefile().read()
    except paramiko.SSHException as error:
        return shown, error
    finally:
        transport.close()


def failures(berth):
    return [line["details"]["reason"] for line in berth.process.log_lines() if line.get("code") == "AUTH_FAILED"]


def test_openssh_device_flow_signs_in_as_the_provider_identity(start_berth, provider, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = oidc_berth(start_berth, provider, authz={"method": "webhook", "webhook": {"url": url}})
    result = openssh(berth)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"alice.sso\n"
    assert b"Please click the following link: " + provider.url.encode() + b"/verify?user_code=WDJB-MJHT" in result.stderr
    assert b"Enter the following code: WDJB-MJHT" in result.stderr
    authz = [body for path, body in faulty_webhook.seen if path == "/authz"]
    assert len(authz) == 1
    assert authz[0]["username"] == "typed-name" and authz[0]["authenticatedUsername"] == "alice.sso"
    assert authz[0]["metadata"]["OIDC_USERINFO_EMAIL"]["value"] == "alice@example.com"
    # The discovery document, the JWKS and userinfo were all used.
    paths = [path for _, path, _ in provider.requests]
    assert "/.well-known/openid-configuration" in paths and "/jwks" in paths and "/userinfo" in paths


def test_paramiko_sees_an_instruction_without_questions(start_berth, provider):
    berth = oidc_berth(start_berth, provider)
    shown, output = paramiko_login(berth)
    assert output == b"alice.sso\n", output
    assert len(shown) == 1 and shown[0][2] == []
    assert "Enter the following code: WDJB-MJHT" in shown[0][1]


@pytest.mark.parametrize("scenario,reason", [
    ("deny", "denied the sign-in"),
    ("expire", "expired before the user signed in"),
    ("bad_signature", "does not verify against the provider's keys"),
    ("wrong_audience", "not for this client"),
])
def test_refusals(start_berth, provider, scenario, reason):
    provider.scenario = scenario
    berth = oidc_berth(start_berth, provider)
    _, output = paramiko_login(berth)
    assert isinstance(output, paramiko.AuthenticationException), output
    assert any(reason in failure for failure in failures(berth)), failures(berth)


def test_slow_down_is_honoured(start_berth, provider):
    provider.scenario = "slow_down"
    berth = oidc_berth(start_berth, provider)
    _, output = paramiko_login(berth)
    assert output == b"alice.sso\n", output
    assert provider.slow_downs == 1 and provider.early_polls == 0


def test_unsupported_oauth2_keys_are_refused(start_berth, provider):
    oauth2 = {"clientId": "berth", "clientSecret": "s3cret", "provider": "oidc", "deviceFlowClients": ["PuTTY"],
              "generic": {"authorizeEndpointURL": "http://x/"}, "oidc": {"url": provider.url + "/", "deviceFlow": False}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    output = berth.process.output()
    for key in ["oauth2.generic", "oauth2.deviceFlowClients", "oidc.deviceFlow"]:
        assert key in output, key
