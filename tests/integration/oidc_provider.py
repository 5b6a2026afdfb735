"""A small OpenID Connect provider for the tests: discovery, a JWKS with a real RSA key, the
device authorization and token endpoints of RFC 8628, the authorization endpoint of the code
flow (PKCE S256 required; it approves at once and redirects), and userinfo. `scenario` decides
what the token endpoint answers: approve, deny, expire, slow_down, bad_signature,
wrong_audience, wrong_nonce; `device_flow = False` leaves the device endpoint out of discovery."""
import base64
import hashlib
import json
import secrets
import time
import urllib.parse

from json_http import JSONHandler, serve

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def number(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class Provider:
    def __init__(self, client_id="berth", client_secret="s3cret", subject="user-123", username="alice.sso"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.subject = subject
        self.username = username
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.scenario = "approve"
        self.devices = {}
        self.tokens = {}
        self.requests = []
        self.early_polls = 0
        self.slow_downs = 0
        self.device_flow = True
        self.codes = {}
        provider = self

        class Handler(JSONHandler):
            def do_GET(self):
                provider.requests.append(("GET", self.path, dict(self.headers)))
                path = urllib.parse.urlparse(self.path).path
                if path == "/.well-known/openid-configuration":
                    return self.reply(200, provider.discovery())
                if path == "/jwks":
                    return self.reply(200, provider.jwks())
                if path == "/authorize":
                    status, location = provider.authorize(dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query)))
                    self.send_response(status)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    if token not in provider.tokens:
                        return self.reply(401, {"error": "invalid_token"})
                    return self.reply(200, {"sub": provider.subject, "preferred_username": provider.username, "email": "alice@example.com"})
                self.reply(404, {})

            def do_POST(self):
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                provider.requests.append(("POST", self.path, form))
                if form.get("client_id") != provider.client_id or form.get("client_secret") != provider.client_secret:
                    return self.reply(401, {"error": "invalid_client"})
                if self.path == "/device":
                    if not provider.device_flow:
                        return self.reply(404, {})
                    return self.reply(200, provider.device(form))
                if self.path == "/token":
                    status, body = provider.token(form)
                    return self.reply(status, body)
                self.reply(404, {})

        self.server, self.url = serve(Handler)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def discovery(self):
        document = {"issuer": self.url, "authorization_endpoint": self.url + "/authorize", "device_authorization_endpoint": self.url + "/device",
                    "token_endpoint": self.url + "/token", "userinfo_endpoint": self.url + "/userinfo", "jwks_uri": self.url + "/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}
        if not self.device_flow:
            del document["device_authorization_endpoint"]
        return document

    def authorize(self, query):
        """The user signs in and consents at once; the browser goes back to redirect_uri."""
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 302, redirect + "?" + urllib.parse.urlencode({"error": "invalid_request", "state": query.get("state", "")})
        if self.scenario == "deny":
            return 302, redirect + "?" + urllib.parse.urlencode({"error": "access_denied", "error_description": "the user said no", "state": query["state"]})
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": query["code_challenge"], "redirect_uri": redirect, "nonce": query.get("nonce"), "scope": query.get("scope", "")}
        return 302, redirect + "?" + urllib.parse.urlencode({"code": code, "state": query["state"]})

    def exchange(self, form):
        grant = self.codes.pop(form.get("code"), None)
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        access = secrets.token_urlsafe(24)
        self.tokens[access] = True
        nonce = "another-request" if self.scenario == "wrong_nonce" else grant["nonce"]
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 300, "scope": grant["scope"], "id_token": self.id_token(nonce=nonce)}

    def jwks(self):
        public = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": number(public.n), "e": number(public.e)}]}

    def device(self, form):
        code = secrets.token_urlsafe(16)
        user_code = "WDJB-MJHT"
        self.devices[code] = {"polls": 0, "interval": 1, "last": None, "scope": form.get("scope", "")}
        return {"device_code": code, "user_code": user_code, "verification_uri": self.url + "/verify",
                "verification_uri_complete": self.url + "/verify?user_code=" + user_code, "expires_in": 60, "interval": 1}

    def id_token(self, audience=None, key=None, nonce=None):
        now = int(time.time())
        header = {"alg": "RS256", "kid": "k1", "typ": "JWT"}
        claims = {"iss": self.url, "aud": audience or self.client_id, "sub": self.subject, "iat": now, "exp": now + 300,
                  "preferred_username": self.username}
        if nonce:
            claims["nonce"] = nonce
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        signature = (key or self.key).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    def token(self, form):
        if form.get("grant_type") == "authorization_code":
            return self.exchange(form)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return 400, {"error": "unsupported_grant_type"}
        device = self.devices.get(form.get("device_code"))
        if device is None:
            return 400, {"error": "invalid_grant"}
        now = time.monotonic()
        if device["last"] is not None and now - device["last"] < device["interval"]:
            self.early_polls += 1
        device["last"] = now
        device["polls"] += 1
        scenario = self.scenario
        if scenario == "deny":
            return 400, {"error": "access_denied"}
        if scenario == "expire":
            return 400, {"error": "expired_token"}
        if scenario == "slow_down" and device["polls"] == 1:
            # RFC 8628 §3.5: from now on the client must wait 5 seconds more.
            device["interval"] += 5
            self.slow_downs += 1
            return 400, {"error": "slow_down"}
        if device["polls"] < 2:
            return 400, {"error": "authorization_pending"}
        access = secrets.token_urlsafe(24)
        self.tokens[access] = True
        audience = "someone-else" if scenario == "wrong_audience" else None
        key = self.other_key if scenario == "bad_signature" else None
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 300, "scope": device["scope"],
                     "id_token": self.id_token(audience=audience, key=key)}
