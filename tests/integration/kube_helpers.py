"""Starts the test Kubernetes API server (kube_apiserver.py) for tests.

    server = start_kube_apiserver(tmp_path, token="secret")          # http://127.0.0.1:PORT
    server = start_kube_apiserver(tmp_path, token="secret", tls=True)  # https, CA + client cert
    ...  server.url, server.token, server.instance, server.tls (paths) ...
    server.stop()                      # SIGTERM by PID: the server removes its containers
    assert kube_containers(server.instance) == [] and kube_volumes(server.instance) == []

Pods become Docker containers labelled berth-test.kube-apiserver=<instance>."""
import json
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from conftest import Process, free_port, wait_for_port

KUBE_APISERVER = str(Path(__file__).resolve().parent / "kube_apiserver.py")
INSTANCE_LABEL = "berth-test.kube-apiserver"


def kube_containers(instance, all_states=True):
    """IDs of the Docker containers that the server with this instance id created (and left)."""
    args = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label={INSTANCE_LABEL}={instance}"]
    if all_states:
        args.insert(2, "-a")
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def kube_volumes(instance):
    """Names of the Docker volumes behind the claims of the server with this instance id."""
    args = ["docker", "volume", "ls", "-q", "--filter", f"label={INSTANCE_LABEL}={instance}"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


def kube_api(server, method, path, body=None, token=None):
    """One JSON call to the test API server; None for 404."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{server.url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def make_tls(directory, server_names="IP:127.0.0.1,DNS:localhost"):
    """A CA, a server certificate for `server_names` (subjectAltName syntax) and a client
    certificate (CN berth, O system:masters), all signed by the CA. Returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = SimpleNamespace(**{name: str(directory / f"{name}.pem") for name in
                               ("ca_cert", "ca_key", "server_cert", "server_key", "client_cert", "client_key")})

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=berth-test-ca",
            "-keyout", paths.ca_key, "-out", paths.ca_cert,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for kind, subject, extensions in (
            ("server", "/CN=kube-apiserver", f"subjectAltName={server_names}\nextendedKeyUsage=serverAuth\n"),
            ("client", "/O=system:masters/CN=berth", "extendedKeyUsage=clientAuth\n")):
        key, cert = getattr(paths, f"{kind}_key"), getattr(paths, f"{kind}_cert")
        csr, ext = directory / f"{kind}.csr", directory / f"{kind}.ext"
        ext.write_text(extensions)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", paths.ca_cert, "-CAkey", paths.ca_key, "-CAcreateserial",
                "-days", "2", "-extfile", str(ext), "-out", cert)
    return paths


class KubeAPIServer:
    def __init__(self, process, url, token, instance, tls):
        self.process = process
        self.url = url
        self.token = token
        self.instance = instance
        self.tls = tls  # None, or paths: ca_cert, server_cert/key, client_cert/key

    @property
    def pid(self):
        return self.process.proc.pid

    def stop(self):
        """SIGTERM by PID and wait; returns the exit code (0 when it cleaned up normally)."""
        return self.process.stop()

    def output(self):
        return self.process.output()

    def kubeconfig(self, path, client_cert=False):
        """Writes a kubeconfig (JSON is valid YAML) for this server and returns its path."""
        user = {}
        if self.token:
            user["token"] = self.token
        if client_cert:
            user.update({"client-certificate": self.tls.client_cert, "client-key": self.tls.client_key})
        cluster = {"server": self.url}
        if self.tls:
            cluster["certificate-authority"] = self.tls.ca_cert
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
                  "clusters": [{"name": "test", "cluster": cluster}],
                  "users": [{"name": "test", "user": user}],
                  "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}
        Path(path).write_text(json.dumps(config))
        return str(path)

    def client_configuration(self, token=True, client_cert=False):
        """A kubernetes.client.Configuration for the official Python client."""
        from kubernetes import client
        configuration = client.Configuration()
        configuration.host = self.url
        if token and self.token:
            configuration.api_key = {"authorization": "Bearer " + self.token}
        if self.tls:
            configuration.ssl_ca_cert = self.tls.ca_cert
            if client_cert:
                configuration.cert_file = self.tls.client_cert
                configuration.key_file = self.tls.client_key
        return configuration


def start_kube_apiserver(tmp_path, token=None, tls=None, name="kube-apiserver", protocols=None, engine=True, hold_patches=0,
                         pod_ip=True):
    """Starts kube_apiserver.py on a free port, logging to tmp_path/<name>.log. token: require
    this bearer token. tls: True to serve HTTPS with generated certificates and accept the
    generated client certificate as authentication too; a subjectAltName string instead of True
    gives the server certificate those names. engine=False: no Docker; pods are
    created and kept but never get their image. hold_patches: the first N pod patches wait for
    each other (kube_apiserver.py --hold-patches). pod_ip=False: pods never show an IP
    (--no-pod-ip)."""
    tmp_path = Path(tmp_path)
    port = free_port()
    instance = f"test-{secrets.token_hex(6)}"
    args = [sys.executable, KUBE_APISERVER, "--listen", f"127.0.0.1:{port}", "--instance", instance]
    if token:
        args += ["--token", token]
    if protocols:
        args += ["--protocols", ",".join(protocols)]
    if not engine:
        args += ["--docker-socket", "none"]
    if hold_patches:
        args += ["--hold-patches", str(hold_patches)]
    if not pod_ip:
        args += ["--no-pod-ip"]
    paths = None
    if tls:
        paths = make_tls(tmp_path / f"{name}-tls", **({"server_names": tls} if isinstance(tls, str) else {}))
        args += ["--tls-cert", paths.server_cert, "--tls-key", paths.server_key, "--client-ca", paths.ca_cert]
    process = Process(args, tmp_path / f"{name}.log")
    try:
        wait_for_port(port, process.proc)
    except RuntimeError:
        process.stop()
        raise RuntimeError(f"kube_apiserver did not start:\n{process.output()[-3000:]}")
    scheme = "https" if tls else "http"
    return KubeAPIServer(process, f"{scheme}://127.0.0.1:{port}", token, instance, paths)
