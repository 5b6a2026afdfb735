"""Webhook TLS options (docs/configuration.md, "Webhook blocks"): `cacert`, `tlsVersion`,
`curves` and `cipher` decide which HTTPS webhooks Berth can talk to, tested against a real TLS
server whose suites and curves are pinned."""
import ssl
import threading
from http.server import ThreadingHTTPServer

import pytest

from conftest import FaultyWebhook, webhook_auth
from kube_helpers import make_tls


@pytest.fixture
def tls_webhook(tmp_path):
    """Starts HTTPS webhooks (the FaultyWebhook rules: password `pw`) limited to TLS 1.2 with the
    given OpenSSL cipher string and curve."""
    paths = make_tls(tmp_path / "tls")
    servers = []

    def start(ciphers="ECDHE-RSA-AES256-GCM-SHA384", curve="secp384r1"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
        context.set_ecdh_curve(curve)
        context.load_cert_chain(paths.server_cert, paths.server_key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), FaultyWebhook)
        server.daemon_threads = True
        server.seen = []
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_port}"

    start.ca = paths.ca_cert
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def tls_auth(url, ca, **options):
    return webhook_auth(url, cacert=ca, tlsVersion="1.2", authTimeout="2s", **options)


def unavailable(berth, user):
    return [line for line in berth.process.log_lines()
            if line.get("code") == "AUTH_WEBHOOK_UNAVAILABLE" and line.get("username") == user]


def test_cacert_trusts_the_webhook_and_a_missing_one_does_not(start_berth, tls_webhook):
    url = tls_webhook()
    trusted = start_berth({"auth": tls_auth(url, tls_webhook.ca)}, name="trusted")
    result = trusted.ssh("alice", "whoami", password="pw")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"alice\n"
    untrusted = start_berth({"auth": webhook_auth(url, tlsVersion="1.2", authTimeout="2s")}, name="untrusted")
    assert untrusted.ssh("bob", "whoami", password="pw").returncode != 0
    assert unavailable(untrusted, "bob")


@pytest.mark.parametrize("option, value, works", [
    # The server takes only ECDHE-RSA-AES256-GCM-SHA384 over secp384r1.
    ("cipher", ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], False),
    ("cipher", "ECDHE-RSA-AES256-GCM-SHA384", True),
    ("cipher", ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"], True),
    ("curves", ["x25519"], False),
    ("curves", "x25519:secp384r1", True),
    ("curves", ["P-256", "secp521r1"], False),
])
def test_cipher_and_curves_limit_what_berth_offers(start_berth, tls_webhook, option, value, works):
    url = tls_webhook(ciphers="ECDHE-RSA-AES256-GCM-SHA384", curve="secp384r1")
    berth = start_berth({"auth": tls_auth(url, tls_webhook.ca, **{option: value})})
    result = berth.ssh("carol", "whoami", password="pw")
    assert (result.returncode == 0) == works, result.stderr
    assert bool(unavailable(berth, "carol")) != works
