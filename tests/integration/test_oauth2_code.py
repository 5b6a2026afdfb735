"""The OAuth2 authorization-code flow over keyboard-interactive (`oidc.authorizationCodeFlow`,
`provider: generic`) and Berth's redirect page, against the test provider in oidc_provider.py.
The "browser" follows the link Berth shows, lands on Berth's redirect page and reads the code
there, as a person would, then pastes it."""
import html
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import paramiko
import pytest

from conftest import SSH_OPTS, free_port
from oidc_provider import Provider
from test_oidc import failures
from test_oidc import paramiko_login as oidc_paramiko_login


@pytest.fixture
def provider():
    server = Provider()
    yield server
    server.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def browse(link):
    """Open the link, follow the provider's redirect to the redirect page; (status, page)."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(link, timeout=30)
        raise AssertionError("the provider did not redirect")
    except urllib.error.HTTPError as answer:
        assert answer.code == 302, answer.code
        location = answer.headers["Location"]
    try:
        with urllib.request.urlopen(location, timeout=30) as page:
            assert page.headers["Cache-Control"] == "no-store"
            return page.status, page.read().decode()
    except urllib.error.HTTPError as page:
        return page.code, page.read().decode()


def pasted_code(page):
    found = re.search(r'<code id="code">([^<]*)</code>', page)
    return html.unescape(found.group(1)) if found else ""


def code_berth(start_berth, provider, provider_name="oidc", extra_auth=None, webroot=None, **oidc):
    port = free_port()
    redirect = {"listen": f"127.0.0.1:{port}"}
    if webroot:
        redirect["webroot"] = webroot
    uri = f"http://127.0.0.1:{port}/"
    oauth2 = {"clientId": "berth", "clientSecret": "s3cret", "provider": provider_name, "redirect": redirect}
    if provider_name == "oidc":
        oauth2["oidc"] = {"url": provider.url + "/", "authorizationCodeFlow": True, "redirectURI": uri, "usernameField": "preferred_username", **oidc}
    else:
        oauth2["generic"] = {"authorizeEndpointURL": provider.url + "/authorize", "tokenEndpoint": {"url": provider.url + "/token"}, "redirectURI": uri}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}, **(extra_auth or {})}})
    berth.redirect_port = port
    return berth


def paramiko_login(berth, answer=None, user="typed-name"):
    """Signs in; `answer(instruction)` returns what to paste (default: what the page shows).
    Returns ([(instruction, prompts)], output or error)."""
    def paste(instruction, prompts):
        if answer:
            return [answer(instruction)]
        link = re.search(r"Please click the following link to log in: (\S+)", instruction).group(1)
        return [pasted_code(browse(link)[1])]

    shown, output = oidc_paramiko_login(berth, user=user, answer=paste)
    return [(instruction, prompts) for _, instruction, prompts in shown], output


ASKPASS = textwrap.dedent("""\
    #!{python}
    # The user: read the link ssh printed, open it, copy the code from the page.
    import os, re, sys, time
    sys.path.insert(0, {tests!r})
    from test_oauth2_code import browse, pasted_code
    for _ in range(600):
        found = re.search(r"Please click the following link to log in: (\\S+)", open(os.environ["BERTH_SSH_STDERR"]).read())
        if found:
            break
        time.sleep(0.05)
    print(pasted_code(browse(found.group(1))[1]))
    """)


def test_openssh_user_pastes_the_code_from_the_redirect_page(start_berth, provider, tmp_path):
    berth = code_berth(start_berth, provider)
    askpass = tmp_path / "askpass"
    askpass.write_text(ASKPASS.format(python=sys.executable, tests=os.path.dirname(__file__)))
    askpass.chmod(0o755)
    stderr = tmp_path / "stderr"
    options = [option.replace("LogLevel=ERROR", "LogLevel=INFO") for option in SSH_OPTS]
    with open(stderr, "wb") as errors:
        result = subprocess.run(["ssh", "-p", str(berth.port), *options, "-o", "PreferredAuthentications=keyboard-interactive",
                                 "-o", "NumberOfPasswordPrompts=1", "typed-name@127.0.0.1", "whoami"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, timeout=120, start_new_session=True,
                                env=dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0", BERTH_SSH_STDERR=str(stderr)))
    assert result.returncode == 0, stderr.read_text()
    assert result.stdout == b"alice.sso\n"
    # PKCE and the nonce went with the request; the code was spent.
    assert provider.codes == {}


def test_paramiko_sees_one_hidden_question(start_berth, provider):
    berth = code_berth(start_berth, provider)
    shown, output = paramiko_login(berth)
    assert output == b"alice.sso\n", output
    assert len(shown) == 1 and shown[0][1] == [("Please paste the received code: ", False)]


def test_without_a_device_endpoint_the_code_flow_takes_over(start_berth, provider):
    provider.device_flow = False
    berth = code_berth(start_berth, provider, deviceFlow=True)
    _, output = paramiko_login(berth)
    assert output == b"alice.sso\n", output
    assert any(line.get("code") == "AUTH_OAUTH2_DEVICE_FLOW_UNAVAILABLE" for line in berth.process.log_lines())


def test_a_code_from_another_sign_in_is_refused(start_berth, provider):
    berth = code_berth(start_berth, provider)

    def answer(instruction):
        link = re.search(r"link to log in: (\S+)", instruction).group(1)
        code = pasted_code(browse(link)[1])
        return "someone-elses-state|" + code.split("|", 1)[1]

    _, output = paramiko_login(berth, answer=answer)
    assert isinstance(output, paramiko.AuthenticationException), output
    assert any("belongs to another sign-in" in reason for reason in failures(berth)), failures(berth)
    assert any(line.get("code") == "AUTH_OAUTH2_STATE_MISMATCH" for line in berth.process.log_lines())


def test_refusals(start_berth, provider):
    berth = code_berth(start_berth, provider)
    provider.scenario = "wrong_nonce"
    _, output = paramiko_login(berth)
    assert isinstance(output, paramiko.AuthenticationException), output
    provider.scenario = "deny"
    pages = []

    def denied(instruction):
        pages.append(browse(re.search(r"link to log in: (\S+)", instruction).group(1)))
        return "nothing to paste"

    _, output = paramiko_login(berth, answer=denied)
    assert isinstance(output, paramiko.AuthenticationException), output
    assert pages[0][0] == 400 and "access_denied: the user said no" in pages[0][1]
    reasons = failures(berth)
    assert any("nonce is not this sign-in's" in reason for reason in reasons), reasons
    assert any("not the state|code the redirect page shows" in reason for reason in reasons), reasons


def test_generic_provider_keeps_the_typed_name_and_hands_on_the_token(start_berth, provider, faulty_webhook):
    url = f"http://127.0.0.1:{faulty_webhook.server_port}"
    berth = code_berth(start_berth, provider, "generic", {"authz": {"method": "webhook", "webhook": {"url": url}}})
    _, output = paramiko_login(berth, user="carol")
    assert output == b"carol\n", output
    authz = [body for path, body in faulty_webhook.seen if path == "/authz"]
    token = authz[0]["metadata"]["OAUTH2_TOKEN"]
    assert token["sensitive"] is True and token["value"] in provider.tokens


def test_webroot_page_and_its_files(start_berth, provider, tmp_path):
    (tmp_path / "index.html").write_text("<html><body><p>Lab sign-in</p><code id=\"code\">{{ .Code }}</code></body></html>")
    (tmp_path / "lab.css").write_text("body { color: navy }")
    berth = code_berth(start_berth, provider, webroot=str(tmp_path))
    _, output = paramiko_login(berth)
    assert output == b"alice.sso\n", output
    port = berth.redirect_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?state=a%3Cb&code=c", timeout=10) as page:
        body = page.read()
        assert b"Lab sign-in" in body and b'<code id="code">a&lt;b|c</code>' in body
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab.css", timeout=10) as page:
        assert page.read() == b"body { color: navy }" and page.headers["Content-Type"] == "text/css"
    for path in ["/../../etc/passwd", "/%2e%2e/etc/passwd", "/.hidden"]:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert refused.value.code == 404


def test_code_flow_settings_are_checked_at_load(start_berth, provider):
    oauth2 = {"clientId": "berth", "provider": "oidc", "redirect": {"listen": "nowhere", "webroot": "/nonexistent"},
              "qrCodeClients": ["OpenSSH"], "oidc": {"url": provider.url + "/", "authorizationCodeFlow": True}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    output = berth.process.output()
    for key in ["oidc.redirectURI", "redirect.listen", "redirect.webroot", "oauth2.qrCodeClients"]:
        assert key in output, key
    oauth2 = {"clientId": "berth", "provider": "oidc", "redirect": {}, "oidc": {"url": provider.url + "/", "deviceFlow": True}}
    berth = start_berth({"auth": {"keyboardInteractive": {"method": "oauth2", "oauth2": oauth2}}}, expect_start=False)
    assert berth.process.proc.wait(timeout=60) != 0
    assert "oauth2.redirect: only used by the authorization code flow" in berth.process.output()
