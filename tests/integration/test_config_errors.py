"""Bad configuration files are refused with the key path named (docs/configuration.md)."""
import json
import subprocess

import pytest

from conftest import BERTH

GOOD_AUTH = {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}}

CASES = [
    ({"auth": GOOD_AUTH, "ssh": {"listn": "0.0.0.0:22"}}, "ssh.listn: unknown key"),
    ({"auth": GOOD_AUTH, "ssh": {"clientAliveCountMax": "x"}}, "ssh.clientAliveCountMax: expected an integer"),
    ({"auth": GOOD_AUTH, "ssh": {"loginGraceTime": "soon"}}, "ssh.loginGraceTime: \"soon\" is not a duration"),
    ({"auth": GOOD_AUTH, "log": {"format": "xml"}}, "log.format: \"xml\" is not one of"),
    ({"auth": {"password": {"method": "webhook", "webhok": {}}}}, "auth.password.webhok: unknown key"),
    ({"auth": {"password": {"method": "webhook"}}}, "auth.password.webhook.url: required"),
    ({"auth": GOOD_AUTH, "ssh": {"serverVersion": "OpenSSH"}}, "ssh.serverVersion"),
    ({"auth": GOOD_AUTH, "backend": "podman"}, "backend: \"podman\" is not one of docker, kubernetes, sshproxy"),
    ({}, "no authentication method configured"),
    ({"auth": {"password": {"method": "webhook", "webhook": {"url": "https://h", "curves": "x25519:brainpool"}}}},
     "auth.password.webhook.curves: \"brainpool\" is not a supported curve"),
    ({"auth": {"password": {"method": "webhook", "webhook": {"url": "https://h", "cipher": ["TLS_RSA_WITH_RC4_128_SHA"]}}}},
     "auth.password.webhook.cipher: \"TLS_RSA_WITH_RC4_128_SHA\" is not a supported cipher suite"),
    ({"auth": {"password": {"method": "webhook", "webhook": {"url": "https://h", "tlsVersion": "1.2", "cipher": "TLS_AES_128_GCM_SHA256"}}}},
     "auth.password.webhook.cipher: lists no TLS 1.2 suite"),
    ({"auth": {**GOOD_AUTH, "protection": {"allow": ["10.0.0.0/33"]}}}, "auth.protection.allow[0]: \"10.0.0.0/33\" is not an IP address or CIDR block"),
    ({"auth": {**GOOD_AUTH, "protection": {"treshold": 5}}}, "auth.protection.treshold: unknown key"),
    ({"auth": GOOD_AUTH, "ssh": {"perSourceNetBlockSize": "40"}}, "ssh.perSourceNetBlockSize: \"40\" is not"),
    ({"auth": GOOD_AUTH, "ssh": {"descriptorReserve": -1}}, "ssh.descriptorReserve: must be at least 0"),
    ({"auth": GOOD_AUTH, "backend": "kubernetes", "kubernetes": {"connection": {"host": "http://127.0.0.1:9"}}},
     "kubernetes.pod.metadata.namespace: required"),
    ({"auth": GOOD_AUTH, "kubernetes": {"pod": {"persistentShared": True}}},
     "kubernetes.pod.persistentShared: only applies in persistent mode"),
    ({"auth": GOOD_AUTH, "docker": {"execution": {"mode": "session", "pool": {"size": 2}}}},
     "docker.execution.pool.size: the pool works in connection mode only"),
    ({"auth": GOOD_AUTH, "docker": {"execution": {"pool": {"size": -1}}}}, "docker.execution.pool.size: must be at least 0"),
    ({"auth": GOOD_AUTH, "docker": {"execution": {"pool": {"maxAge": "0s"}}}}, "docker.execution.pool.maxAge"),
    ({"auth": GOOD_AUTH, "docker": {"execution": {"pool": {"sise": 1}}}}, "docker.execution.pool.sise: unknown key"),
    ({"auth": GOOD_AUTH, "audit": {"enable": True, "format": "binary", "storage": "s3", "s3": {"bucket": "b"}}},
     "audit.s3.accessKey: required with storage s3"),
    ({"auth": GOOD_AUTH, "audit": {"format": "mp4"}}, "audit.format: \"mp4\" is not one of"),
    ({"auth": GOOD_AUTH, "audit": {"intercept": {"keys": True}}}, "audit.intercept.keys: unknown key"),
    ({"auth": GOOD_AUTH, "audit": {"enable": True, "format": "binary", "storage": "none"}}, "audit.format: format binary and storage none"),
    ({"auth": GOOD_AUTH, "audit": {"s3": {"uploadPartSize": 1000}}}, "audit.s3.uploadPartSize: must be at least 5242880"),
    ({"auth": GOOD_AUTH, "audit": {"enable": True, "format": "binary", "storage": "s3",
                                   "s3": {"bucket": "b", "accessKey": "a", "secretKey": "s", "endpoint": "s3.example.com"}}},
     "audit.s3.endpoint: must start with http:// or https://"),
]


@pytest.mark.parametrize("config,message", CASES)
def test_config_check_and_serve_name_the_bad_key(tmp_path, config, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    for args in (["config", "check", str(path)], ["serve", "--config", str(path)]):
        result = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)


def test_yaml_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("ssh:\n  listen: [unclosed\n")
    result = subprocess.run([BERTH, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode != 0 and "invalid YAML" in result.stderr
    missing = subprocess.run([BERTH, "config", "check", str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert missing.returncode != 0 and "nope.yaml" in missing.stderr


def test_config_check_prints_effective_config_with_defaults(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("auth:\n  url: http://127.0.0.1:8080\nssh:\n  clientAliveInterval: 90s\n")
    result = subprocess.run([BERTH, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "CONFIG_AUTH_URL_DEPRECATED" in result.stderr
    assert 'clientAliveInterval: "1m30s"' in result.stdout
    assert 'maxAuthTries: 6' in result.stdout
    assert 'method: "webhook"' in result.stdout
    again = tmp_path / "effective.yaml"
    again.write_text(result.stdout)
    reread = subprocess.run([BERTH, "config", "check", str(again)], capture_output=True, text=True)
    assert reread.returncode == 0, reread.stderr
    assert reread.stdout == result.stdout
    legacy = subprocess.run([BERTH, "--config", str(path), "--dump-config"], capture_output=True, text=True)
    assert legacy.returncode == 0 and legacy.stdout == result.stdout


def test_help_lists_the_commands():
    result = subprocess.run([BERTH, "--help"], capture_output=True, text=True)
    for command in ("serve", "keygen", "config", "version"):
        assert command in result.stdout
    assert subprocess.run([BERTH, "version"], capture_output=True, text=True).stdout.startswith("berth ")


def test_config_check_redacts_secrets(tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({
        "auth": {"password": {"method": "webhook", "webhook": {
            "url": "https://hook:HOOKPASS-SECRET@auth.example/a", "cert": "/etc/berth/client.crt",
            "key": "-----BEGIN PRIVATE KEY-----\nWEBHOOKKEY-SECRET\n-----END PRIVATE KEY-----\n"}}},
        "sshproxy": {"server": "upstream.example", "username": "bob", "password": "PROXYPASS-SECRET",
                     "allowedHostKeyFingerprints": ["SHA256:abc"]},
        "docker": {"execution": {"auth": {"username": "bob", "password": "REGISTRY-SECRET"}}},
        "audit": {"s3": {"accessKey": "AKIDSHOWN", "secretKey": "S3-SECRET"}},
    }))
    for fmt in ("yaml", "json"):
        result = subprocess.run([BERTH, "config", "check", "--format", fmt, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "SECRET" not in result.stdout
        assert result.stdout.count("<redacted>") == 5
        assert "/etc/berth/client.crt" in result.stdout and "AKIDSHOWN" in result.stdout


def test_a_setting_without_effect_is_named_not_ignored(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auth": GOOD_AUTH, "kubernetes": {"timeouts": {"signal": "5s"}}}))
    result = subprocess.run([BERTH, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "CONFIG_SETTING_UNUSED: kubernetes.timeouts.signal has no effect" in result.stderr
    path.write_text(json.dumps({"auth": GOOD_AUTH, "kubernetes": {"timeouts": {"window": "5s"}}}))
    result = subprocess.run([BERTH, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "CONFIG_SETTING_UNUSED" not in result.stderr, result.stderr
