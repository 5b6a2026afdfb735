"""A stand-in for GitHub's device flow (`/login/device/code`, `/login/oauth/access_token`, which
answers pending polls with HTTP 200 and an `error` field) and the REST API under `/api`
(`/user`, `/user/memberships/orgs/ORG`). `scenario`: approve, deny, slow_down, no_scope."""
import secrets
import time
import urllib.parse

from json_http import JSONHandler, serve


class GitHub:
    def __init__(self, client_id="Iv1.berth", login="OctoCat", two_factor=True, orgs=("berth-lab",)):
        self.client_id = client_id
        self.login = login
        self.two_factor = two_factor
        self.orgs = set(orgs)
        self.scenario = "approve"
        self.devices = {}
        self.tokens = {}
        self.requests = []
        self.early_polls = 0
        self.slow_downs = 0
        github = self

        class Handler(JSONHandler):
            def do_GET(self):
                github.requests.append(("GET", self.path, dict(self.headers)))
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in github.tokens:
                    return self.reply(401, {"message": "Bad credentials"})
                path = urllib.parse.urlparse(self.path).path
                if path == "/api/user":
                    return self.reply(200, github.user())
                prefix = "/api/user/memberships/orgs/"
                if path.startswith(prefix):
                    if "read:org" not in github.tokens[token]:
                        return self.reply(403, {"message": "requires read:org"})
                    org = urllib.parse.unquote(path[len(prefix):])
                    if org in github.orgs:
                        return self.reply(200, {"state": "active", "role": "member", "organization": {"login": org}})
                    return self.reply(404, {"message": "Not Found"})
                self.reply(404, {"message": "Not Found"})

            def do_POST(self):
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                github.requests.append(("POST", self.path, form))
                if form.get("client_id") != github.client_id:
                    return self.reply(200, {"error": "incorrect_client_credentials"})
                if self.path == "/login/device/code":
                    return self.reply(200, github.device(form))
                if self.path == "/login/oauth/access_token":
                    return self.reply(200, github.token(form))
                self.reply(404, {})

        self.server, self.url = serve(Handler)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def user(self):
        return {"login": self.login, "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "name": "The Octocat", "company": "@github",
                "blog": "https://github.blog", "location": "San Francisco", "email": None, "bio": None, "twitter_username": None,
                "avatar_url": "https://avatars.example/u/583231", "html_url": "https://github.example/octocat",
                "two_factor_authentication": self.two_factor}

    def device(self, form):
        code = secrets.token_hex(20)
        self.devices[code] = {"polls": 0, "interval": 1, "last": None, "scope": form.get("scope", "")}
        return {"device_code": code, "user_code": "F1A8-3C2B", "verification_uri": "https://github.example/login/device",
                "expires_in": 60, "interval": 1}

    def token(self, form):
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
            return {"error": "unsupported_grant_type"}
        device = self.devices.get(form.get("device_code"))
        if device is None:
            return {"error": "bad_verification_code"}
        now = time.monotonic()
        if device["last"] is not None and now - device["last"] < device["interval"]:
            self.early_polls += 1
        device["last"] = now
        device["polls"] += 1
        if self.scenario == "deny":
            return {"error": "access_denied"}
        if self.scenario == "slow_down" and device["polls"] == 1:
            # GitHub adds 5 seconds and says so in `interval`.
            device["interval"] += 5
            self.slow_downs += 1
            return {"error": "slow_down", "interval": device["interval"]}
        if device["polls"] < 2:
            return {"error": "authorization_pending"}
        scopes = [scope for scope in device["scope"].split(" ") if scope]
        if self.scenario == "no_scope":
            scopes = []
        access = "gho_" + secrets.token_hex(16)
        self.tokens[access] = scopes
        return {"access_token": access, "token_type": "bearer", "scope": ",".join(scopes)}
