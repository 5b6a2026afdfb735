"""The operator console (docs/console.md) in real headless Chromium: sign in, see an OpenSSH
session appear, watch it live, end it, replay its recording; the refusals (read-only role, CSRF,
wrong password and rate limit); and the console's listener under malformed input while SSH
keeps serving."""
import http.client
import json
import os
import random
import socket
import subprocess

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import SSH_OPTS, free_port, wait_for_port, wait_until
from console_browser import ConsoleHTTP, chromium, rows_for, sha512_crypt, sign_in, signed_in, terminal_text
from docker_helpers import berth_containers, docker_config

OPERATORS = [{"username": "ada", "passwordHash": sha512_crypt("ada-pw"), "role": "admin"},
             {"username": "rory", "passwordHash": sha512_crypt("rory-pw"), "role": "readonly"}]


def console_config(tmp_path, port, backend=None, audit=True):
    static = {"users": [{"username": "alice", "passwordHash": sha512_crypt("alice-pw")},
                        {"username": "bob", "passwordHash": sha512_crypt("bob-pw")}]}
    config = {"auth": {"password": {"method": "static", "static": static}},
              "console": {"enable": True, "listen": f"127.0.0.1:{port}", "operators": OPERATORS}}
    if audit:
        config["audit"] = {"enable": True, "format": "binary", "storage": "file", "file": {"directory": str(tmp_path / "audit")},
                           "intercept": {"stdin": True, "stdout": True, "stderr": True}}
    config.update(backend or {})
    return config


@pytest.fixture
def console(tmp_path, start_berth):
    def start(**kwargs):
        port = free_port()
        berth = start_berth(console_config(tmp_path, port, **kwargs))
        wait_for_port(port, berth.process.proc)
        return berth, port, f"http://127.0.0.1:{port}"
    return start


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


class Shell:
    """An interactive OpenSSH session (`ssh -tt`) the test types into; its stdout and stderr as one
    stream, as a terminal shows them."""

    def __init__(self, port, user, password):
        args = ["sshpass", "-p", password, "ssh", "-tt", "-p", str(port), *SSH_OPTS, "-o", "PubkeyAuthentication=no",
                "-o", "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.seen = b""

    def type(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def output(self):
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, ValueError):
            chunk = None
        if chunk:
            self.seen += chunk
        return self.seen

    def finished(self):
        """Waits for the client to exit; everything it printed."""
        self.proc.wait(timeout=60)
        os.set_blocking(self.proc.stdout.fileno(), True)
        self.seen += self.proc.stdout.read()
        return self.seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_sign_in_watch_end_and_replay(console, browser, tmp_path):
    berth, port, base = console()
    sign_in(browser, base, "ada", "ada-pw")
    wait_until(lambda: browser.current_url.endswith("/sessions"), what="the sessions page after sign-in")
    session_cookie = browser.get_cookie("berth_console")
    assert session_cookie["httpOnly"] and session_cookie["secure"] and session_cookie["sameSite"] == "Strict"

    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        wait_until(lambda: b"berth echo shell" in shell.output(), what="the echo shell's greeting")
        row = rows_for(browser, "alice")[0]
        assert "127.0.0.1" in row.text and "echo" in row.text and "shell" in row.text
        connection_id = row.get_attribute("data-connection")

        row.find_element(By.CSS_SELECTOR, "a.watch").click()
        wait_until(lambda: "Watching live" in browser.find_element(By.ID, "watch-state").text, what="the watch page to connect")
        # From the start of the session's output, then live.
        wait_until(lambda: "berth echo shell" in terminal_text(browser), what="the session's earlier output in the terminal")
        shell.type("typed-by-alice-42\r")
        wait_until(lambda: "typed-by-alice-42" in terminal_text(browser), what="typed output in the watcher's terminal")
        wait_until(lambda: b"An operator is watching this session" in shell.output(), what="the watching notice on the user's terminal")
        watched = [line for line in berth.process.log_lines() if line.get("code") == "CONSOLE_WATCH_STARTED"]
        assert watched and watched[0]["details"]["operator"] == "ada" and watched[0]["connectionId"] == connection_id

        browser.get(base + "/sessions")
        # Leaving the watch page ends the watch (before the connection ends, so its audit log has it).
        wait_until(lambda: any(line.get("code") == "CONSOLE_WATCH_ENDED" for line in berth.process.log_lines()), what="the watch to end")
        row = rows_for(browser, "alice")[0]
        row.find_element(By.XPATH, ".//button[text()='End connection']").click()
        browser.find_element(By.ID, "end-reason").send_keys("lab is over")
        browser.find_element(By.ID, "end-confirm").click()
        assert b"ended by an operator: lab is over" in shell.finished()
        wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, f'tr[data-connection="{connection_id}"]'),
                   what="the ended connection to leave the list")
        assert any(line.get("code") == "CONSOLE_CONNECTION_ENDED" for line in berth.process.log_lines())
    finally:
        shell.close()

    # The recording: listed by user, replayed, seekable, downloadable.
    browser.get(base + "/recordings?user=alice")
    assert browser.find_element(By.ID, "user").get_attribute("value") == "alice"
    recording = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f'#recordings tr[data-connection="{connection_id}"]'),
                           what="alice's recording in the list")[0]
    assert "alice" in recording.text
    recording.find_element(By.CSS_SELECTOR, "a.replay").click()
    wait_until(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "yes", what="the recording to load")
    seek = browser.find_element(By.ID, "seek")
    duration = float(seek.get_attribute("max"))
    set_seek = "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));"
    browser.execute_script(set_seek, seek, str(duration))
    wait_until(lambda: "typed-by-alice-42" in terminal_text(browser), what="the typed text after seeking to the end")
    browser.execute_script(set_seek, seek, "0")
    wait_until(lambda: "typed-by-alice-42" not in terminal_text(browser), what="the terminal to rewind when seeking to the start")
    browser.find_element(By.ID, "play").click()
    wait_until(lambda: "typed-by-alice-42" in terminal_text(browser), what="playback to reach the typed text")

    client = ConsoleHTTP(port)
    client.sign_in("ada", "ada-pw")
    status, body, headers = client.request("GET", f"/api/recordings/{connection_id}/download")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment")
    assert (tmp_path / "audit" / connection_id).read_bytes().startswith(b"ContainerSSH-Auditlog")
    # The watch is in the watched connection's own audit log (Berth's types 603 and 604).
    from audit_decoder import decode
    messages = decode((tmp_path / "audit" / connection_id).read_bytes())
    watches = [(m["type"], m["payload"]["operator"]) for m in messages if m["type"] in (603, 604)]
    assert watches == [(603, "ada"), (604, "ada")], watches
    assert all(m["channelId"] is not None for m in messages if m["type"] in (603, 604))


def test_end_one_session_shows_the_reason(console, browser):
    berth, port, base = console(audit=False)
    signed_in(browser, base, "ada", "ada-pw")
    shell = Shell(berth.port, "bob", "bob-pw")
    try:
        wait_until(lambda: b"berth echo shell" in shell.output(), what="the echo shell's greeting")
        row = rows_for(browser, "bob")[0]
        row.find_element(By.XPATH, ".//button[text()='End session']").send_keys(Keys.RETURN)
        # The dialog puts the focus in the reason field; Enter there confirms.
        browser.switch_to.active_element.send_keys("please take a break" + Keys.RETURN)
        assert b"An operator ended this session: please take a break" in shell.finished()
        assert any(line.get("code") == "CONSOLE_SESSION_ENDED" for line in berth.process.log_lines())
    finally:
        shell.close()


def test_read_only_operator_cannot_end_and_csrf_is_required(console, browser):
    berth, port, base = console(audit=False)
    signed_in(browser, base, "rory", "rory-pw")
    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        row = rows_for(browser, "alice")[0]
        assert row.find_elements(By.CSS_SELECTOR, "a.watch")
        assert not row.find_elements(By.CSS_SELECTOR, "button.end")
        connection_id = row.get_attribute("data-connection")

        reader = ConsoleHTTP(port)
        reader.sign_in("rory", "rory-pw")
        status, _, _ = reader.request("POST", "/api/end", {"csrf": reader.csrf(), "connection": connection_id, "reason": "x"})
        assert status == 403
        assert any(line.get("code") == "CONSOLE_FORBIDDEN" for line in berth.process.log_lines())

        admin = ConsoleHTTP(port)
        assert admin.sign_in("ada", "ada-pw")[0] == 303
        token = admin.csrf()
        assert admin.request("POST", "/api/end", {"connection": connection_id, "reason": "x"})[0] == 403
        assert admin.request("POST", "/api/end", {"csrf": "0" * 64, "connection": connection_id, "reason": "x"})[0] == 403
        # The right token from another origin is refused too.
        assert admin.request("POST", "/api/end", {"csrf": token, "connection": connection_id, "reason": "x"},
                             headers={"Origin": "http://evil.example"})[0] == 403
        assert any(line.get("code") == "CONSOLE_CSRF_REFUSED" for line in berth.process.log_lines())
        assert shell.proc.poll() is None
        # And with the token, the same request works: the refusals above were about the token.
        assert admin.request("POST", "/api/end", {"csrf": token, "connection": connection_id, "reason": "csrf test"})[0] == 200
        shell.proc.wait(timeout=60)
    finally:
        shell.close()


def test_wrong_password_is_refused_and_rate_limited(console, browser):
    berth, port, base = console(audit=False)
    sign_in(browser, base, "ada", "not-the-password")
    error = wait_until(lambda: browser.find_elements(By.ID, "signin-error"), what="the sign-in error")[0]
    assert "Wrong user name or password" in error.text
    assert browser.get_cookie("berth_console") is None
    client = ConsoleHTTP(port)
    statuses = [client.sign_in("ada", f"guess-{n}")[0] for n in range(4)]
    assert statuses == [401] * 4
    # Five failures from this address (one in the browser): even the right password is refused now.
    status, page, _ = client.sign_in("ada", "ada-pw")
    assert status == 429 and "Too many failed sign-ins" in page
    assert any(line.get("code") == "CONSOLE_SIGNIN_RATE_LIMITED" for line in berth.process.log_lines())
    assert ConsoleHTTP(port).request("GET", "/api/sessions")[0] == 401


def malformed_requests(rng):
    yield b"\x00\xff garbage\r\n\r\n"
    yield b"GET / HTTP/9.9\r\n\r\n"
    yield b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    yield b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 200_000 + b"\r\n\r\n"
    yield b"POST /signin HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\nabc"
    yield b"POST /api/end HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    yield b"GET /ws/sessions HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    yield b"GET /ws/watch?connection=%ZZ&channel=-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\nSec-WebSocket-Version: 13\r\n\r\n"
    yield b"GET /static/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"
    yield b"GET /api/recordings/..%2F..%2Fetc%2Fpasswd/download HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(40):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))


def websocket_upgrade(port, cookie):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(("GET /ws/sessions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: berth_console=%s\r\n\r\n"
                  % (port, cookie)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def malformed_frames(rng):
    yield b"\x81\x05hello"  # unmasked client frame
    yield b"\x8f\x80\x00\x00\x00\x00"  # reserved opcode
    yield b"\x81\xff" + (2**63 - 1).to_bytes(8, "big") + b"\x00\x00\x00\x00"  # absurd length
    yield b"\x01\x80\x00\x00\x00\x00\x89\x80\x00\x00\x00\x00\x02\x80\x00\x00\x00\x00"  # bad continuation
    yield b"\x88\x82\x00\x00\x00\x00\x03"  # close with a cut-short code
    yield b"\xc1\x80\x00\x00\x00\x00"  # RSV bit without an extension
    for _ in range(20):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))


def test_console_survives_malformed_http_and_websocket_frames_while_ssh_serves(console):
    berth, port, base = console(audit=False)
    rng = random.Random(22)
    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        wait_until(lambda: b"berth echo shell" in shell.output(), what="the echo shell's greeting")
        for n, payload in enumerate(malformed_requests(rng)):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                try:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)
                    sock.recv(65536)
                except OSError:
                    pass
            if n % 10 == 0:
                shell.type(f"still-here-{n}\r")
                wait_until(lambda: f"still-here-{n}".encode() in shell.output(), what=f"the SSH session to echo after request {n}")
        client = ConsoleHTTP(port)
        client.sign_in("ada", "ada-pw")
        for n, frame in enumerate(malformed_frames(rng)):
            sock = websocket_upgrade(port, client.cookies["berth_console"])
            try:
                sock.sendall(frame)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            except OSError:
                pass
            finally:
                sock.close()
        shell.type("after-the-frames\r")
        wait_until(lambda: b"after-the-frames" in shell.output(), what="the SSH session to echo after the frames")
        assert berth.ssh("bob", "whoami", password="bob-pw").stdout == b"bob\n"
        assert client.request("GET", "/api/sessions")[0] == 200
        assert berth.process.proc.poll() is None
    finally:
        shell.close()


def test_ending_a_docker_connection_removes_its_container(console, browser):
    berth, port, base = console(backend=docker_config(), audit=False)
    signed_in(browser, base, "ada", "ada-pw")
    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        row = rows_for(browser, "alice")[0]
        connection_id = row.get_attribute("data-connection")
        assert "docker / " in row.text
        wait_until(lambda: berth_containers(**{"connection-id": connection_id}), what="alice's container")
        shell.type("echo marker-$((6*7))\r")
        row.find_element(By.CSS_SELECTOR, "a.watch").click()
        wait_until(lambda: "marker-42" in terminal_text(browser), what="the container shell's output in the watcher")
        browser.get(base + "/sessions")
        rows_for(browser, "alice")[0].find_element(By.XPATH, ".//button[text()='End connection']").click()
        browser.find_element(By.ID, "end-reason").send_keys("maintenance")
        browser.find_element(By.ID, "end-confirm").click()
        assert b"ended by an operator: maintenance" in shell.finished()
        wait_until(lambda: not berth_containers(**{"connection-id": connection_id}), what="the container to be removed")
    finally:
        shell.close()



@pytest.fixture
def console_with(tmp_path, start_berth):
    """A console with extra `console` keys; returns (berth, port)."""
    def start(**console_keys):
        port = free_port()
        config = console_config(tmp_path, port, audit=False)
        config["console"].update(console_keys)
        berth = start_berth(config)
        wait_for_port(port, berth.process.proc)
        return berth, port
    return start


def test_without_xterm_the_watch_page_says_so_and_shows_plain_text(console_with, browser, tmp_path):
    empty = tmp_path / "no-xterm"
    empty.mkdir()
    berth, port = console_with(xtermDirectory=str(empty), showWatching=False)
    assert any(line.get("code") == "CONSOLE_XTERM_MISSING" for line in berth.process.log_lines())
    signed_in(browser, f"http://127.0.0.1:{port}", "ada", "ada-pw")
    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        rows_for(browser, "alice")[0].find_element(By.CSS_SELECTOR, "a.watch").click()
        assert browser.find_element(By.ID, "xterm-missing").is_displayed()
        shell.type("plain-view-7\r")
        wait_until(lambda: "plain-view-7" in browser.find_element(By.ID, "plain").text, what="typed output in the plain view")
        wait_until(lambda: b"plain-view-7" in shell.output(), what="the echo on the user's side")
        # showWatching: false: the notice would have come before the echo of what was typed after the watch began.
        assert b"An operator is watching" not in shell.output()
    finally:
        shell.close()


def test_tls_listener_with_minimum_version(console_with, tmp_path):
    import ssl
    cert, key = tmp_path / "console.crt", tmp_path / "console.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    berth, port = console_with(cert=str(cert), key=str(key), tlsVersion="1.3")
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    connection.request("GET", "/signin")
    response = connection.getresponse()
    assert response.status == 200 and "Secure" in response.getheader("Set-Cookie")
    connection.close()
    old = ssl.create_default_context(cafile=str(cert))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            old.wrap_socket(sock, server_hostname="127.0.0.1")
    # Plain HTTP on the TLS port gets no page.
    plain = ConsoleHTTP(port)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain.request("GET", "/signin")


def test_asciinema_recordings_are_listed_per_session_and_replayed(tmp_path, start_berth, browser):
    port = free_port()
    config = console_config(tmp_path, port, audit=False)
    config["audit"] = {"enable": True, "format": "asciinema", "storage": "file", "file": {"directory": str(tmp_path / "casts")},
                       "intercept": {"stdout": True}}
    berth = start_berth(config)
    wait_for_port(port, berth.process.proc)
    assert berth.ssh("bob", "cast-me-please", password="bob-pw").stdout == b"cast-me-please\n"
    client = ConsoleHTTP(port)
    client.sign_in("rory", "rory-pw")
    listing = wait_until(lambda: [r for r in json.loads(client.request("GET", "/api/recordings?user=bob")[1])["recordings"]
                                  if r["kind"] == "asciicast"], what="bob's cast in the list")
    assert listing[0]["channel"] == 0 and listing[0]["name"].endswith("-0.cast")
    status, cast, _ = client.request("GET", f"/api/recordings/{listing[0]['name']}/cast")
    assert status == 200 and "cast-me-please" in cast
    assert client.request("GET", "/api/recordings/..%2Fetc%2Fpasswd/cast")[0] == 404
    signed_in(browser, f"http://127.0.0.1:{port}", "rory", "rory-pw")
    browser.get(f"http://127.0.0.1:{port}/replay?name={listing[0]['name']}")
    wait_until(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "yes", what="the cast to load")
    browser.find_element(By.ID, "play").click()
    wait_until(lambda: "cast-me-please" in terminal_text(browser), what="the cast to play")
    # The search form: no match, then bob's.
    browser.get(f"http://127.0.0.1:{port}/recordings")
    browser.find_element(By.ID, "user").send_keys("nobody" + Keys.RETURN)
    wait_until(lambda: browser.find_element(By.ID, "list-state").text == "0 recording(s)", what="an empty search result")
    user = browser.find_element(By.ID, "user")
    user.clear()
    user.send_keys("bob" + Keys.RETURN)
    wait_until(lambda: browser.find_element(By.ID, "list-state").text == "1 recording(s)", what="bob's recording in the search result")
    assert "user=bob" in browser.current_url


def test_berth_stops_cleanly_with_console_websockets_open(console):
    berth, port, base = console(audit=False)
    client = ConsoleHTTP(port)
    client.sign_in("ada", "ada-pw")
    sockets = [websocket_upgrade(port, client.cookies["berth_console"]) for _ in range(3)]
    shell = Shell(berth.port, "alice", "alice-pw")
    try:
        wait_until(lambda: b"berth echo shell" in shell.output(), what="the echo shell's greeting")
        assert berth.process.stop() == 0
        assert any(line.get("code") == "BERTH_STOPPED" for line in berth.process.log_lines())
    finally:
        shell.close()
        for sock in sockets:
            sock.close()
