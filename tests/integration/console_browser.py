"""Helpers for the operator console's tests: a headless Chromium driven by selenium, and a
plain HTTP client that speaks to the console the way a browser does (cookie, CSRF token)."""
import http.client
import re
import shutil
import subprocess
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import wait_until


def sha512_crypt(password):
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True, check=True).stdout.strip()


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def sign_in(driver, base, username, password):
    driver.get(base + "/signin")
    driver.find_element(By.ID, "username").send_keys(username)
    # From the keyboard: Enter in the password field submits the form.
    driver.find_element(By.ID, "password").send_keys(password + Keys.RETURN)


def signed_in(driver, base, username, password):
    sign_in(driver, base, username, password)
    wait_until(lambda: driver.current_url.endswith("/sessions"), what=f"{username} to be signed in")


def terminal_text(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, ".xterm-rows")
    return rows[0].text if rows else ""


class ConsoleHTTP:
    """Requests outside the browser: for refusals a page would never send."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = urllib.parse.urlencode(form) if form is not None else None
        all_headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        connection.close()
        return response.status, data.decode(errors="replace"), dict(response.getheaders())

    def sign_in(self, username, password):
        status, page, _ = self.request("GET", "/signin")
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        return self.request("POST", "/signin", {"csrf": token, "username": username, "password": password})

    def csrf(self):
        status, page, _ = self.request("GET", "/sessions")
        assert status == 200, status
        return re.search(r'<meta name="csrf" content="([0-9a-f]+)">', page).group(1)


def rows_for(driver, user):
    def find():
        return [row for row in driver.find_elements(By.CSS_SELECTOR, "#sessions tbody tr[data-channel]") if user in row.text]
    return wait_until(find, what=f"a session row for {user}")
