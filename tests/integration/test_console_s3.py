"""The console's recordings page with `audit.storage: s3` (docs/console.md, "Recordings") against
moto's S3 server: a session recorded to S3 is listed (ListObjectsV2 across continuation tokens),
replayed in Chromium and downloaded; after a restart its user is read from the object itself."""
import json

import pytest
from selenium.webdriver.common.by import By

from conftest import free_port, wait_for_port, wait_until
from console_browser import ConsoleHTTP, chromium, signed_in, terminal_text
from test_audit import Moto, s3_audit
from test_console import console_config


@pytest.fixture
def moto(tmp_path):
    with open(tmp_path / "moto.log", "wb") as log:
        server = Moto(free_port(), log)
        yield server
        server.stop()


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def s3_console(start_berth, tmp_path, moto, name):
    port = free_port()
    config = console_config(tmp_path, port, audit=False)
    config["audit"] = {"enable": True, **s3_audit(tmp_path, moto)}
    config["audit"]["intercept"] = {"stdin": True, "stdout": True, "stderr": True}
    berth = start_berth(config, name=name)
    wait_for_port(port, berth.process.proc)
    return berth, port


def listed(client, user):
    status, body, _ = client.request("GET", f"/api/recordings?user={user}")
    assert status == 200, body
    return json.loads(body)["recordings"]


def alices_logs(moto):
    s3 = moto.client()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="audit"):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].startswith("0000-not-a-recording")]
    return [k for k in keys if s3.head_object(Bucket="audit", Key=k)["Metadata"].get("username") == "alice"]


def test_s3_recording_is_listed_replayed_and_downloaded(tmp_path, start_berth, moto, browser):
    moto.start()
    s3 = moto.client()
    # More keys than one ListObjectsV2 page (1000), sorting before every connection ID that
    # does not start with 0000: the recording is only found by following the continuation token.
    for n in range(1001):
        s3.put_object(Bucket="audit", Key=f"0000-not-a-recording-{n:04}", Body=b"x")
    berth, port = s3_console(start_berth, tmp_path, moto, "berth")
    assert berth.ssh("alice", "recorded-in-s3-77", password="alice-pw").stdout == b"recorded-in-s3-77\n"
    key = wait_until(lambda: alices_logs(moto), what="the log's upload to S3")[0]

    client = ConsoleHTTP(port)
    client.sign_in("ada", "ada-pw")
    entry = wait_until(lambda: [r for r in listed(client, "alice") if r["name"] == key], what="the S3 recording in the list")[0]
    assert entry["kind"] == "binary" and entry["remoteAddress"].startswith("127.0.0.1") and entry["size"] > 0
    assert not [r for r in listed(client, "") if "not-a-recording" in r["name"]]
    status, body, headers = client.request("GET", f"/api/recordings/{key}/download")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment")
    assert body.startswith("ContainerSSH-Auditlog")
    assert client.request("GET", f"/api/recordings/{'0' * 32}/cast")[0] == 404

    base = f"http://127.0.0.1:{port}"
    signed_in(browser, base, "ada", "ada-pw")
    browser.get(base + "/recordings?user=alice")
    row = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f'#recordings tr[data-connection="{key}"]'),
                     what="the S3 recording on the recordings page")[0]
    assert "alice" in row.text
    row.find_element(By.CSS_SELECTOR, "a.replay").click()
    wait_until(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "yes", what="the recording to load from S3")
    browser.find_element(By.ID, "play").click()
    wait_until(lambda: "recorded-in-s3-77" in terminal_text(browser), what="the replay of the S3 recording")
    assert any(line.get("code") == "CONSOLE_REPLAY" for line in berth.process.log_lines())

    # A new process knows no users: alice is read from the object's first bytes in S3.
    berth.process.stop()
    again, port = s3_console(start_berth, tmp_path, moto, "berth-again")
    client = ConsoleHTTP(port)
    client.sign_in("rory", "rory-pw")
    assert [r["name"] for r in listed(client, "alice")] == [key]


def test_s3_outage_is_a_clear_error_and_the_console_keeps_serving(tmp_path, start_berth, moto):
    # moto is not started: S3 cannot be reached.
    berth, port = s3_console(start_berth, tmp_path, moto, "berth")
    client = ConsoleHTTP(port)
    client.sign_in("ada", "ada-pw")
    status, _, _ = client.request("GET", "/api/recordings")
    assert status == 502
    assert any(line.get("code") == "CONSOLE_RECORDINGS_UNAVAILABLE" for line in berth.process.log_lines())
    assert client.request("GET", "/api/sessions")[0] == 200
