"""Console sign-in through OpenID Connect (docs/console.md, "Sign-in through OIDC") in real
headless Chromium against the test provider (oidc_provider.py: discovery, JWKS, /authorize with
PKCE S256, the code grant). The console is reached as http://localhost:PORT and the provider as
http://127.0.0.1:PORT, so the provider's redirect back is cross-site, as in production."""
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from conftest import free_port, wait_for_port, wait_until
from console_browser import ConsoleHTTP, chromium, sha512_crypt
from oidc_provider import Provider
from test_console import console_config

OPERATORS = [{"username": "ada", "passwordHash": sha512_crypt("ada-pw"), "role": "admin"},
             {"username": "alice.sso", "role": "admin"},
             {"username": "rory.sso", "role": "readonly"}]


@pytest.fixture
def provider():
    server = Provider()
    yield server
    server.close()


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def oidc_console(tmp_path, start_berth, provider):
    port = free_port()
    base = f"http://localhost:{port}"
    config = console_config(tmp_path, port, audit=False)
    config["console"]["operators"] = OPERATORS
    config["console"]["oidc"] = {"url": provider.url, "clientId": provider.client_id, "clientSecret": provider.client_secret,
                                 "redirectURI": base + "/oidc/callback", "usernameField": "preferred_username", "providerName": "Test IdP"}
    berth = start_berth(config)
    wait_for_port(port, berth.process.proc)
    return berth, port, base


def logged(berth, code):
    return [line for line in berth.process.log_lines() if line.get("code") == code]


def click_oidc(browser, base):
    browser.get(base + "/signin")
    button = browser.find_element(By.ID, "signin-oidc")
    assert button.text == "Sign in with Test IdP"
    button.click()


def test_oidc_operator_signs_in_with_the_mapped_role(oidc_console, provider, browser):
    berth, port, base = oidc_console
    provider.username = "alice.sso"
    click_oidc(browser, base)
    wait_until(lambda: browser.current_url == base + "/sessions", what="the sessions page after the OIDC sign-in")
    assert browser.find_element(By.ID, "operator").text == "alice.sso"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-role") == "admin"
    cookie = browser.get_cookie("berth_console")
    assert cookie and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    # The code went to the token endpoint with the PKCE verifier and the console's callback.
    grants = [form for method, path, form in provider.requests if method == "POST" and path == "/token"]
    assert len(grants) == 1 and grants[0]["grant_type"] == "authorization_code" and grants[0]["code_verifier"]
    assert grants[0]["redirect_uri"] == base + "/oidc/callback"
    assert any(line["details"].get("operator") == "alice.sso" and line["details"].get("role") == "admin" for line in logged(berth, "CONSOLE_SIGNIN"))

    # A read-only identity lands read-only: no end buttons, and the server refuses an end.
    browser.delete_all_cookies()
    provider.username = "rory.sso"
    click_oidc(browser, base)
    wait_until(lambda: browser.current_url == base + "/sessions", what="rory's sessions page")
    assert browser.find_element(By.ID, "operator").text == "rory.sso"
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-role") == "readonly"


def test_unmapped_identity_and_provider_refusal_are_refused(oidc_console, provider, browser):
    berth, port, base = oidc_console
    provider.username = "mallory.sso"
    click_oidc(browser, base)
    error = wait_until(lambda: browser.find_elements(By.ID, "signin-error"), what="the refusal")[0]
    assert "mallory.sso is not a console operator" in error.text
    assert browser.get_cookie("berth_console") is None
    assert any(line["details"].get("operator") == "mallory.sso" for line in logged(berth, "CONSOLE_OIDC_NOT_OPERATOR"))

    # A password operator's name from the provider does not sign in as that operator.
    provider.username = "ada"
    click_oidc(browser, base)
    wait_until(lambda: "ada is not a console operator" in browser.page_source, what="the refusal of ada through OIDC")
    assert browser.get_cookie("berth_console") is None

    # The ID token's nonce belongs to another request: refused after verification.
    provider.username = "alice.sso"
    provider.scenario = "wrong_nonce"
    click_oidc(browser, base)
    wait_until(lambda: "could not be verified" in browser.page_source, what="the nonce refusal")
    assert browser.get_cookie("berth_console") is None
    assert any("nonce" in line.get("message", "") for line in logged(berth, "CONSOLE_OIDC_REFUSED"))

    # The user says no at the provider.
    provider.scenario = "deny"
    click_oidc(browser, base)
    wait_until(lambda: "refused the sign-in (access_denied)" in browser.page_source, what="the denial")
    assert browser.get_cookie("berth_console") is None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def authorize(location):
    """What the browser would do at the provider: follow the link, read where it sends back."""
    try:
        urllib.request.build_opener(NoRedirect).open(location, timeout=30)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 302
        return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(redirect.headers["Location"]).query))
    raise AssertionError("the provider did not redirect")


def test_tampered_state_or_missing_cookie_is_refused_before_the_code_is_used(oidc_console, provider):
    berth, port, base = oidc_console
    provider.username = "alice.sso"
    client = ConsoleHTTP(port)
    status, _, headers = client.request("GET", "/oidc/start")
    assert status == 303 and "berth_console_oidc" in client.cookies
    answer = authorize(headers["Location"])
    query = urllib.parse.parse_qs(urllib.parse.urlparse(headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0] and query["state"][0] == answer["state"]

    started = client.cookies["berth_console_oidc"]
    tampered = answer["state"][:-2] + ("AA" if not answer["state"].endswith("AA") else "BB")
    status, page, _ = client.request("GET", "/oidc/callback?" + urllib.parse.urlencode({"code": answer["code"], "state": tampered}))
    assert status == 403 and "not started here" in page
    assert logged(berth, "CONSOLE_OIDC_STATE_MISMATCH")
    # Refused before the exchange: the provider never saw the code come back.
    assert not [r for r in provider.requests if r[0] == "POST" and r[1] == "/token"]
    assert answer["code"] in provider.codes
    # The sign-in is used up: the right state afterwards is refused too.
    client.cookies["berth_console_oidc"] = started
    status, _, _ = client.request("GET", "/oidc/callback?" + urllib.parse.urlencode(answer))
    assert status == 403 and "berth_console" not in client.cookies

    # The right state from a browser that did not start the sign-in (no cookie): refused.
    starter = ConsoleHTTP(port)
    _, _, headers = starter.request("GET", "/oidc/start")
    answer = authorize(headers["Location"])
    stranger = ConsoleHTTP(port)
    status, _, _ = stranger.request("GET", "/oidc/callback?" + urllib.parse.urlencode(answer))
    assert status == 403 and "berth_console" not in stranger.cookies
    # And the browser that started it still signs in with it.
    status, page, _ = starter.request("GET", "/oidc/callback?" + urllib.parse.urlencode(answer))
    assert status == 200 and "berth_console" in starter.cookies
    assert starter.request("GET", "/api/sessions")[0] == 200
