"""`auth.keyboardInteractive.oauth2` with `provider: github`: GitHub's device flow and REST API
(the stand-in in github_provider.py), with OpenSSH and paramiko."""
import pytest

from github_provider import GitHub
from test_oidc import failures, openssh, paramiko_login


@pytest.fixture
def github():
    server = GitHub()
    yield server
    server.close()


def github_berth(start_berth, github, extra_auth=None, **settings):
    oauth2 = {"clientId": github.client_id, "provider": "github",
              "github": {"url": github.url, "apiurl": github.url + "/api", **settings}}
    return start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}, **(extra_auth or {})}})


def test_openssh_signs_in_as_the_github_login(start_berth, github, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = github_berth(start_berth, github, {"authz": {"method": "webhook", "webhook": {"url": url}}},
                         requireOrgMembership="berth-lab", require2FA=True)
    # enforceUsername (the default) compares without case, as GitHub does.
    result = openssh(berth, user="octocat")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"OctoCat\n"
    assert b"Please click the following link: https://github.example/login/device" in result.stderr
    assert b"Enter the following code: F1A8-3C2B" in result.stderr
    authz = [body for path, body in faulty_webhook.seen if path == "/authz"]
    assert len(authz) == 1 and authz[0]["authenticatedUsername"] == "OctoCat"
    metadata = authz[0]["metadata"]
    assert metadata["GITHUB_LOGIN"] == {"value": "OctoCat", "sensitive": True}
    assert metadata["GITHUB_ID"]["value"] == "583231" and metadata["GITHUB_PROFILE_URL"]["value"] == "https://github.example/octocat"
    assert metadata["GITHUB_TOKEN"]["sensitive"] is True and metadata["GITHUB_TOKEN"]["value"] in github.tokens
    # The scopes the checks need were asked for, and the membership was looked up with the token.
    asked = [form for method, path, form in github.requests if path == "/login/device/code"]
    assert asked[0]["scope"].split(" ") == ["read:org", "read:user"]
    assert any(path == "/api/user/memberships/orgs/berth-lab" for _, path, _ in github.requests)


def test_slow_down_is_honoured_and_pending_polls_wait(start_berth, github):
    github.scenario = "slow_down"
    berth = github_berth(start_berth, github, enforceUsername=False)
    shown, output = paramiko_login(berth, user="someone")
    assert output == b"OctoCat\n", output
    assert len(shown) == 1 and shown[0][2] == []
    assert github.slow_downs == 1 and github.early_polls == 0


@pytest.mark.parametrize("change,settings,user,reason", [
    ("deny", {}, "octocat", "denied the sign-in"),
    (None, {}, "mallory", "is not the GitHub login OctoCat (enforceUsername)"),
    ("no_2fa", {"require2FA": True}, "octocat", "does not use two-factor authentication"),
    ("outsider", {"requireOrgMembership": "berth-lab"}, "octocat", "is not an active member of berth-lab"),
    ("no_scope", {"requireOrgMembership": "berth-lab"}, "octocat", "did not grant the scopes read:org"),
    ("no_scope", {"extraScopes": ["repo"], "enforceScopes": True}, "octocat", "did not grant the scopes repo"),
])
def test_refusals(start_berth, github, change, settings, user, reason):
    if change == "no_2fa":
        github.two_factor = False
    elif change == "outsider":
        github.orgs = set()
    elif change:
        github.scenario = change
    berth = github_berth(start_berth, github, **settings)
    _, output = paramiko_login(berth, user=user)
    assert output.__class__.__name__ == "AuthenticationException", output
    assert any(reason in failure for failure in failures(berth)), failures(berth)


def test_unreachable_github_is_unavailable_not_a_crash(start_berth, github):
    berth = github_berth(start_berth, github)
    github.close()
    _, output = paramiko_login(berth, user="octocat")
    assert output.__class__.__name__ == "AuthenticationException", output
    assert any(line.get("code") == "AUTH_OAUTH2_PROVIDER_ERROR" for line in berth.process.log_lines())


def test_github_keys_are_checked_at_load(start_berth, github):
    oauth2 = {"clientId": "x", "provider": "github", "oidc": {"url": "http://x/"},
              "github": {"apiurl": "not a url", "deviceFlow": True, "colour": "blue"}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    output = berth.process.output()
    for key in ["oauth2.oidc", "github.apiurl", "github.deviceFlow", "github.colour"]:
        assert key in output, key
    oauth2 = {"clientId": "x", "provider": "gitlab", "generic": {}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "oauth2.provider: \"gitlab\" is not one of oidc, github, generic" in berth.process.output()
    assert "oauth2.generic: only read with provider: generic" in berth.process.output()
