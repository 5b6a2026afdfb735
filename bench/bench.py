#!/usr/bin/env python3
"""Berth benchmarks (bench/README.md): login latency, throughput, concurrency, idle memory and start-up,
each next to baselines measured in the same run on the same engine. Run through bench/run.sh,
which installs what is needed and builds Berth in release mode; this file only measures.

Every process started here is stopped by its PID; every container started here (directly or by
Berth) is removed at the end."""
import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20
CIPHER = "aes128-gcm@openssh.com"   # the cipher of every row that does not name one
# Raw SSH throughput (no container) runs once per cipher: the AES-GCM path (AES-NI) and the
# ChaCha20-Poly1305 path (OpenSSH's default) cost very differently on both sides.
RAW_CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
SSHD_MAX_STARTUPS = "1000:30:2000"
BENCH_LABEL = "berth-bench=1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_seconds():
    """Busy and idle CPU seconds of the whole machine so far, from /proc/stat: whether a
    parallel run saturated the cores, and what all the processes together spent (user, nice,
    system, irq, softirq; steal, time a VM's host gave to others, is neither)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = fields[:7]
    return {0: (user + nice + system + irq + softirq) / CLK_TCK}, {0: (idle + iowait) / CLK_TCK}


def cpu_seconds(pid):
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pids_named(*names, cmdline_contains=None):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
                if not any(comm.startswith(n) for n in names):
                    continue
                if cmdline_contains and cmdline_contains not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    continue
            except OSError:
                continue
            found.append(int(entry.name))
    return found


DOCKERD_PID = None
SSHD_PID = None


def children_map():
    """pid -> ppid for every process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return parents


def sshd_pids():
    """The bench's sshd listener and its sshd descendants (one privileged monitor and one
    network process per connection); not the commands they run (head, cat, docker)."""
    if not SSHD_PID:
        return []
    parents = children_map()
    found, frontier = [SSHD_PID], [SSHD_PID]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent:
                frontier.append(pid)
                try:
                    if Path(f"/proc/{pid}/comm").read_text().strip().startswith("sshd"):
                        found.append(pid)
                except OSError:
                    pass
    return found


def agent_pids():
    """Guest agents in the bench's containers (comm is cut at 15 characters)."""
    return pids_named("containerssh-ag", "berth-agent")


def engine_pids():
    """The bench engine's containerd and shims (by their namespace/exec root)."""
    return pids_named("containerd", cmdline_contains="berth-bench")


class CPUMeter:
    """CPU seconds used by Berth, dockerd, the containerd shims, the guest agents, sshd's
    processes and (given their PIDs) the clients over a measured span, with the whole machine's
    busy and idle seconds. Processes that start and end inside the span are missed, so
    every transfer measured with it runs over a connection opened before (ControlMaster)."""

    def __init__(self, berth_pid=None, engine=True, clients=()):
        self.groups = {"berth": [berth_pid] if berth_pid else []}
        if clients:
            self.groups["clients"] = list(clients)
        self.engine = engine
        if engine:
            self.groups["dockerd"] = [DOCKERD_PID] if DOCKERD_PID else pids_named("dockerd")
        self.start = self.read()

    def read(self):
        groups = dict(self.groups, sshd=sshd_pids())
        if self.engine:
            groups.update({"containerd+shims": engine_pids(), "agent": agent_pids()})
        result = {k: {p: cpu_seconds(p) for p in v} for k, v in groups.items()}
        result["machine busy"], result["machine idle"] = machine_seconds()
        return result

    def used(self):
        end = self.read()
        result = {}
        for group, values in end.items():
            result[group] = round(sum(v - self.start.get(group, {}).get(p, 0.0) for p, v in values.items()), 2)
        return result


class Proc:
    """A child process with its output in a file; stopped by PID."""

    def __init__(self, args, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=raise_nofile)
        self.pid = self.proc.pid

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.image = args.image
        self.work = Path(tempfile.mkdtemp(prefix="berth-bench."))
        self.procs = []
        self.results = {"meta": {}, "rows": []}
        self.baseline_container = None
        self.berth = None
        self.berth_port = None
        self.sshd_port = None
        self.engine = True
        # Whether this Berth has the agent data plane (issue 18): it reads execution.agentSocketRoot.
        binary = Path(args.berth).read_bytes()
        self.agent_link = b"agentSocketRoot" in binary
        # Berth's own engine has OpenSSH's MaxStartups (default 10:30:100); the bench opens 20
        # connections at once, so both servers get the same generous limit.
        self.max_startups = b"maxStartups" in binary
        # Berth's default perSourceMaxStartups (10) would turn away half of those 20 from one address.
        self.per_source_startups = b"perSourceMaxStartups" in binary

    # ---------------------------------------------------------------- set-up and tear-down

    def keygen(self, name):
        path = self.work / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        return path, Path(str(path) + ".pub").read_text().strip()

    def setup(self, engine=True):
        """`engine`: whether any section needs the Docker engine (the raw SSH rows do not)."""
        log(f"work directory {self.work}")
        self.engine = engine
        if engine:
            # Left over from an interrupted run on the bench's own engine.
            leftovers = docker("ps", "-aq", "--filter", f"label={BENCH_LABEL}").stdout.split() + self.berth_containers()
            if leftovers:
                log(f"removing {len(leftovers)} containers left over from an earlier run")
                docker("rm", "-f", *leftovers, check=False)
        self.key, self.pub = self.keygen("id_bench")
        # Webhook (the project's example server), key auth for the user "bench".
        users = self.work / "users.yaml"
        users.write_text(json.dumps({"users": [{"username": "bench", "authorizedKeys": [self.pub]}]}))
        port = free_port()
        hook = Proc([self.args.webhook, "--listen", f"127.0.0.1:{port}", "--users", str(users)], self.work / "webhook.log")
        self.procs.append(hook)
        wait_for_port(port, hook.proc)
        self.webhook_url = f"http://127.0.0.1:{port}"
        self.setup_sshd()

    def setup_sshd(self):
        """OpenSSH sshd on loopback with its own host key and config; three client keys select
        what a login runs (authorized_keys command=, which is ForceCommand per key): a fresh
        `docker run --rm -i`, a `docker exec -i` into a running container, or the plain host."""
        d = self.work / "sshd"
        d.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_ed25519")], check=True)
        if self.engine:
            self.baseline_container = docker("run", "-d", "--rm", "--label", BENCH_LABEL, self.image, "sleep", "1000000").stdout.strip()
        dockerbin = subprocess.run(["sh", "-c", "command -v docker"], capture_output=True, text=True).stdout.strip()
        run_sh = d / "force-run.sh"
        env = f"DOCKER_HOST={self.args.docker_host}; export DOCKER_HOST\n"
        run_sh.write_text(f'#!/bin/sh\n{env}exec {dockerbin} run --rm -i --label {BENCH_LABEL} {self.image} sh -c "$SSH_ORIGINAL_COMMAND"\n')
        exec_sh = d / "force-exec.sh"
        exec_sh.write_text(f'#!/bin/sh\n{env}exec {dockerbin} exec -i {self.baseline_container} sh -c "$SSH_ORIGINAL_COMMAND"\n')
        for script in (run_sh, exec_sh):
            script.chmod(0o755)
        self.sshd_keys = {}
        lines = []
        for mode, command in (("run", run_sh), ("exec", exec_sh), ("plain", None)):
            key, pub = self.keygen(f"id_sshd_{mode}")
            self.sshd_keys[mode] = key
            lines.append((f'command="{command}",no-pty ' if command else "") + pub)
        (d / "authorized_keys").write_text("\n".join(lines) + "\n")
        (d / "authorized_keys").chmod(0o600)
        self.sshd_port = free_port()
        config = d / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.sshd_port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_ed25519'}",
            f"PidFile {d / 'sshd.pid'}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
            "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", f"Ciphers {','.join(sorted(set([CIPHER, *RAW_CIPHERS])))}", f"MaxStartups {SSHD_MAX_STARTUPS}", "MaxSessions 100",
            "PrintMotd no", "UseDNS no", "Subsystem sftp internal-sftp",
            # sshd runs every command through root's login shell; Debian's bash then sources
            # ~/.bashrc (it does so when started by sshd, unless SHLVL says it is nested), and a
            # developer's .bashrc (pyenv, cargo) costs ~300 ms here: it inflated every OpenSSH
            # baseline until this line.
            "SetEnv SHLVL=1", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)
        self.sshd = Proc(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], self.work / "sshd.log")
        self.procs.append(self.sshd)
        wait_for_port(self.sshd_port, self.sshd.proc)
        global SSHD_PID
        SSHD_PID = self.sshd.pid

    def berth_config(self, pool=0, log_level="info", backend="docker"):
        config = self.berth_config_for(pool, log_level, backend)
        if self.max_startups:
            config["ssh"]["maxStartups"] = SSHD_MAX_STARTUPS
        if self.per_source_startups:
            config["ssh"]["perSourceMaxStartups"] = 0
        return config

    def berth_config_for(self, pool, log_level, backend):
        execution = {"container": {"image": self.image, "labels": {"berth-bench": "1"}}, "imagePullPolicy": "Never", "shellCommand": ["/bin/sh"],
                     "mode": "connection"}
        if pool:
            execution["pool"] = {"size": pool, "maxAge": "30m"}
        if self.agent_link:
            # The agent data plane (issue 18): link sockets in the bench's own directory, not the
            # default /run/berth/agent-links that a test run on this machine may use.
            execution["agentSocketRoot"] = str(self.work / "agent-links")
        hook = {"url": self.webhook_url, "timeout": "10s", "authTimeout": "60s"}
        return {
            "ssh": {"listen": f"127.0.0.1:{free_port()}", "stateDirectory": str(self.work / "berth-state"),
                    "maxConnections": 2000, "maxConnectionsPerIP": 0},
            "auth": {"publicKey": {"method": "webhook", "webhook": hook}},
            "backend": backend,
            "docker": {"connection": {"host": self.args.docker_host}, "execution": execution},
            "log": {"level": log_level, "format": "ljson"},
        } if backend == "docker" else {
            "ssh": {"listen": f"127.0.0.1:{free_port()}", "stateDirectory": str(self.work / "berth-state"),
                    "maxConnections": 2000, "maxConnectionsPerIP": 0},
            "auth": {"publicKey": {"method": "webhook", "webhook": hook}},
            "backend": backend,
            "log": {"level": log_level, "format": "ljson"},
        }

    def start_berth(self, name, pool=0, backend="docker", log_level="info"):
        config = self.berth_config(pool=pool, backend=backend, log_level=log_level)
        path = self.work / f"{name}.json"
        path.write_text(json.dumps(config))
        port = int(config["ssh"]["listen"].rsplit(":", 1)[1])
        started = time.perf_counter()
        env = dict(os.environ, BERTH_ENABLE_TEST_BACKEND="1") if backend == "echo" else None
        proc = Proc([self.args.berth, "serve", "--config", str(path)], self.work / f"{name}.log", env=env)
        self.procs.append(proc)
        wait_for_port(port, proc.proc, timeout=120)
        ready = time.perf_counter() - started
        if pool:
            self.wait_pool(pool)
        return proc, port, ready

    def stop_berth(self, proc):
        proc.stop()
        self.procs.remove(proc)
        if self.engine:
            self.wait_no_berth_containers()

    @staticmethod
    def link_kinds(proc):
        """The agent link kinds Berth logged (AGENT_LINK_UP link=socket|exec, pipes=direct|link), e.g.
        "socket/direct pipes";
        "-" before the agent data plane (sessions were docker execs)."""
        import re
        kinds = set()
        for line in Path(proc.log_path).read_text(errors="replace").splitlines():
            if "AGENT_LINK_UP" in line:
                match = re.search(r'"link"\s*:\s*"(\w+)"', line) or re.search(r"\blink=(\w+)", line)
                pipes = re.search(r'"pipes"\s*:\s*"(\w+)"', line) or re.search(r"\bpipes=(\w+)", line)
                kind = match.group(1) if match else "?"
                kinds.add(f"{kind}/{pipes.group(1)} pipes" if pipes else kind)
        return "+".join(sorted(kinds)) if kinds else "-"

    def berth_containers(self, running_only=False):
        args = ["ps", "-q", "--filter", "label=berth.connection-id"]
        if not running_only:
            args.insert(1, "-a")
        return docker(*args).stdout.split()

    def wait_no_berth_containers(self, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline and self.berth_containers():
            time.sleep(0.1)

    def wait_pool(self, size, timeout=120):
        """Until exactly `size` started pool containers exist and nothing else of Berth's."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.berth_containers(running_only=True)) == size == len(self.berth_containers()):
                time.sleep(0.2)
                return
            time.sleep(0.05)
        raise RuntimeError("the warm pool did not refill")

    def cleanup(self):
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as error:  # keep cleaning up
                log(f"stopping {proc.pid}: {error}")
        self.procs.clear()
        if not self.engine:
            return
        leftovers = docker("ps", "-aq", "--filter", f"label={BENCH_LABEL}", check=False).stdout.split()
        # Containers Berth started (connection-id label) only if no Berth of ours is left to do it.
        leftovers += self.berth_containers()
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)

    # ---------------------------------------------------------------- helpers

    def ssh_args(self, port, user, key, extra=(), cipher=CIPHER):
        return ["ssh", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=60", "-c", cipher, *extra, f"{user}@127.0.0.1"]

    def open_masters(self, all_args, timeout=600):
        """One ControlMaster connection per argument list, all logged in before returning (a
        first command through each then starts Berth's container): transfers then time the data
        path, not the login, and the server's per-connection processes live for the whole
        measured span."""
        masters = []
        for args in all_args:
            sock = self.work / f"cm-{time.monotonic_ns()}"
            popen = subprocess.Popen([*args[:-1], "-M", "-S", str(sock), "-N", args[-1]],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            masters.append((popen, sock))
        deadline = time.time() + timeout
        for popen, sock in masters:
            while subprocess.run(["ssh", "-S", str(sock), "-O", "check", "x"], capture_output=True).returncode != 0:
                if popen.poll() is not None:
                    raise RuntimeError(f"control master exited with {popen.returncode}")
                if time.time() > deadline:
                    raise RuntimeError("control masters did not come up")
                time.sleep(0.05)
        return masters

    @staticmethod
    def close_masters(masters):
        for popen, _ in masters:
            popen.terminate()
        for popen, _ in masters:
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()

    @staticmethod
    def mux_args(sock):
        return ["ssh", "-S", str(sock), "-o", "ControlMaster=no", "x"]

    def berth_ssh(self, port):
        return self.ssh_args(port, "bench", self.key)

    def sshd_ssh(self, mode):
        return self.ssh_args(self.sshd_port, "root", self.sshd_keys[mode])

    @staticmethod
    def timed(args, stdin=subprocess.DEVNULL):
        started = time.perf_counter()
        result = subprocess.run(args, stdin=stdin, capture_output=True, timeout=600)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"{args} failed ({result.returncode}): {result.stderr.decode(errors='replace')[-500:]}")
        return elapsed

    def row(self, section, name, unit, values, baseline=None, target=None, lower_is_better=True, note="", extra=None,
            absolute_target=False, link=None):
        """One table row. `baseline` is the name of a row whose median is the ratio's denominator;
        `target` a ratio (or absolute value when no baseline, or with `absolute_target`) that the
        median must meet. `link` is the agent link kind(s) Berth logged for the row's sessions."""
        s = summary(values)
        row = {"section": section, "name": name, "unit": unit, **s, "values": values, "baseline": baseline,
               "target": target, "lower_is_better": lower_is_better, "note": note, "absolute_target": absolute_target}
        if link is not None:
            row["link"] = link
        if extra:
            row["extra"] = extra
        if baseline:
            base = next(r for r in self.results["rows"] if r["name"] == baseline)
            row["ratio"] = (s["median"] / base["median"]) if s["median"] is not None and base["median"] else None
        value = row.get("ratio") if baseline and not absolute_target else s["median"]
        if target is not None and value is not None:
            row["pass"] = value <= target if lower_is_better else value >= target
        self.results["rows"].append(row)
        log(f"{section}: {name}: median {s['median']} {unit}" + (f" (ratio {row.get('ratio'):.2f})" if row.get("ratio") else ""))
        return row

    # ---------------------------------------------------------------- 1. login latency

    def bench_login(self):
        reps = 5 if self.quick else 15
        log(f"login latency, {reps} runs each")
        plain_docker, sshd_run, berth_plain, berth_pool = [], [], [], []
        # Warm-ups: page cache, image layers, the ssh client binary.
        docker("run", "--rm", self.image, "true")
        self.timed([*self.sshd_ssh("run"), "true"])
        for _ in range(reps):
            plain_docker.append(self.timed(["docker", "run", "--rm", "--label", BENCH_LABEL, self.image, "true"]))
        for _ in range(reps):
            sshd_run.append(self.timed([*self.sshd_ssh("run"), "true"]))
        self.row("login", "docker run --rm IMAGE true", "s", plain_docker, note="engine only, no SSH")
        self.row("login", "OpenSSH sshd + docker run -i (ForceCommand)", "s", sshd_run, baseline="docker run --rm IMAGE true")

        proc, port, _ = self.start_berth("berth-login")
        self.timed([*self.berth_ssh(port), "true"])
        self.wait_no_berth_containers()
        for _ in range(reps):
            berth_plain.append(self.timed([*self.berth_ssh(port), "true"]))
            self.wait_no_berth_containers()
        self.stop_berth(proc)
        self.row("login", "Berth (connection mode)", "s", berth_plain, baseline="OpenSSH sshd + docker run -i (ForceCommand)",
                 target=0.6, note="target ≤ 0.6× OpenSSH+docker")
        self.results["rows"][-1]["ratio_vs_docker_run"] = summary(berth_plain)["median"] / summary(plain_docker)["median"]

        pool = 2
        proc, port, _ = self.start_berth("berth-pool", pool=pool)
        for _ in range(reps):
            berth_pool.append(self.timed([*self.berth_ssh(port), "true"]))
            self.wait_pool(pool)
        self.stop_berth(proc)
        self.row("login", f"Berth with warm pool (size {pool})", "s", berth_pool, baseline="docker run --rm IMAGE true",
                 target=0.5, note="target ≤ 0.5× docker run; pool refilled between logins")

    # ---------------------------------------------------------------- 2. throughput

    def transfer(self, args, direction, size, out_cmd=None, in_cmd=None, in_expected="done"):
        """Seconds for `size` bytes out of (`… | wc -c`) or into (`head | ssh …`) a remote command.
        `args` ends with the destination (a ControlMaster's mux arguments, usually)."""
        out_cmd = out_cmd or out_program(size)
        in_cmd = in_cmd or "cat > /dev/null; echo done"
        if direction == "out":
            command = " ".join(map(sh_quote, args)) + f" {sh_quote(out_cmd)} | wc -c"
            expected = str(size)
        else:
            command = f"head -c {size} /dev/zero | " + " ".join(map(sh_quote, args)) + f" {sh_quote(in_cmd)}"
            expected = in_expected
        started = time.perf_counter()
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=1200)
        elapsed = time.perf_counter() - started
        if result.returncode != 0 or result.stdout.strip() != expected:
            raise RuntimeError(f"transfer {direction} failed ({result.returncode}): {result.stdout[-200:]} {result.stderr[-500:]}")
        return elapsed

    def bench_throughput(self):
        size = 128 * MiB if self.quick else GiB
        reps = 1 if self.quick else 3
        label = f"{size // MiB} MiB"
        log(f"throughput, {label} each way, {reps} runs each")
        # Debug level for AGENT_LINK_UP (the link kind); nothing is logged per packet.
        proc, port, _ = self.start_berth("berth-throughput", log_level="debug")
        cases = [
            ("plain OpenSSH (no container)", self.sshd_ssh("plain"), None),
            ("OpenSSH sshd + docker exec -i (ForceCommand)", self.sshd_ssh("exec"), None),
            ("Berth (connection mode)", self.berth_ssh(port), proc.pid),
        ]
        # Connections (and Berth's container and agent link) are opened before the clock starts.
        masters = self.open_masters([args for _, args, _ in cases])
        for (_, _, berth_pid), (_, sock) in zip(cases, masters):
            self.timed([*self.mux_args(sock), "true"])
        link = self.link_kinds(proc)
        log(f"Berth's agent link: {link}")
        gib = size / GiB
        for direction in ("out", "in"):
            # The engine alone: docker exec in the baseline container, no SSH at all.
            engine_cmd = ["docker", "exec", self.baseline_container, "sh", "-c", sh_quote(out_program(size))]
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                if direction == "out":
                    r = subprocess.run(["bash", "-o", "pipefail", "-c", " ".join(engine_cmd) + " | wc -c"], capture_output=True, text=True)
                    ok = r.stdout.strip() == str(size)
                else:
                    r = subprocess.run(["bash", "-o", "pipefail", "-c",
                                        f"head -c {size} /dev/zero | docker exec -i {self.baseline_container} sh -c 'cat > /dev/null'"])
                    ok = r.returncode == 0
                times.append(time.perf_counter() - started)
                assert ok, r
            section = f"throughput {direction}"
            self.row(section, f"docker exec alone ({direction})", "MiB/s", [size / MiB / t for t in times],
                     lower_is_better=False, note=f"{label}, engine only, no SSH")
            rates = {name: [] for name, _, _ in cases}
            cpu = {name: [] for name, _, _ in cases}
            # Repetitions interleave the cases, so a burst of load elsewhere on the machine
            # spreads over all of them instead of sinking one.
            for rep in range(reps):
                for (name, _, berth_pid), (_, sock) in zip(cases, masters):
                    perf = self.start_perf(berth_pid, direction) if berth_pid and rep == 0 else []
                    meter = CPUMeter(berth_pid)
                    seconds = self.transfer(self.mux_args(sock), direction, size)
                    used = meter.used()
                    self.stop_perf(perf)
                    rates[name].append(size / MiB / seconds)
                    used["wall"] = round(seconds, 2)
                    cpu[name].append(used)
            plain, via_exec, berth = (f"{name} ({direction})" for name, _, _ in cases)
            self.row(section, plain, "MiB/s", rates[cases[0][0]], lower_is_better=False, note=f"{label}, ceiling",
                     extra={"cpu_seconds": cpu[cases[0][0]]})
            self.row(section, via_exec, "MiB/s", rates[cases[1][0]], baseline=plain, lower_is_better=False,
                     extra={"cpu_seconds": cpu[cases[1][0]]})
            berth_cpu = cpu[cases[2][0]]
            self.row(section, berth, "MiB/s", rates[cases[2][0]], baseline=plain, target=0.8, lower_is_better=False, link=link,
                     note="target ≥ 0.8× plain OpenSSH; cpu: " + ", ".join(f"{k} {v}s" for k, v in berth_cpu[-1].items()),
                     extra={"cpu_seconds": berth_cpu})
            base = next(r for r in self.results["rows"] if r["name"] == via_exec)
            self.results["rows"][-1]["ratio_vs_openssh_docker"] = summary(rates[cases[2][0]])["median"] / base["median"]
            # CPU per GiB: sshd's processes for plain OpenSSH; Berth + dockerd + containerd and
            # shims for Berth (the guest agent is the container's, shown in the note).
            self.row(section, f"plain OpenSSH: sshd CPU per GiB ({direction})", "CPU s/GiB",
                     [c["sshd"] / gib for c in cpu[cases[0][0]]])
            engine = [(c["berth"] + c.get("dockerd", 0) + c.get("containerd+shims", 0)) / gib for c in berth_cpu]
            self.row(section, f"Berth + engine CPU per GiB ({direction})", "CPU s/GiB", engine,
                     baseline=f"plain OpenSSH: sshd CPU per GiB ({direction})", link=link,
                     note="cpu per GiB: " + ", ".join(f"{k} {statistics.median(c[k] for c in berth_cpu) / gib:.2f}s"
                                                  for k in ("berth", "dockerd", "containerd+shims", "agent") if k in berth_cpu[0]))
        self.close_masters(masters)
        self.wait_no_berth_containers()
        self.berth_throughput_proc = proc
        self.berth_throughput_port = port
        self.berth_link = link

    # ---------------------------------------------------------------- raw SSH, no container

    def bench_raw(self):
        """Berth's SSH engine alone (test backend `echo`: `source N` writes N zero bytes, `sink`
        counts stdin) against OpenSSH sshd running `dd if=/dev/zero bs=4096` / `cat > /dev/null`, per
        cipher, both over a connection opened before the clock. CPU: the Berth process vs sshd's
        processes (not the commands sshd runs, nor either client)."""
        size = 256 * MiB if self.quick else GiB
        reps = 1 if self.quick else 3
        gib = size / GiB
        log(f"raw SSH throughput, no container, {size // MiB} MiB each way, {reps} runs each, ciphers {RAW_CIPHERS}")
        proc, port, _ = self.start_berth("berth-raw", backend="echo")
        for cipher in RAW_CIPHERS:
            short = cipher.split("@")[0]
            cases = [("OpenSSH sshd", self.ssh_args(self.sshd_port, "root", self.sshd_keys["plain"], cipher=cipher), None),
                     ("Berth, echo backend", self.ssh_args(port, "bench", self.key, cipher=cipher), proc.pid)]
            masters = self.open_masters([args for _, args, _ in cases])
            for _, sock in masters:
                self.timed([*self.mux_args(sock), "true"])
            for direction in ("out", "in"):
                rates = {name: [] for name, _, _ in cases}
                cpu = {name: [] for name, _, _ in cases}
                for rep in range(reps):
                    for (name, _, berth_pid), (_, sock) in zip(cases, masters):
                        if berth_pid:
                            commands = {"out_cmd": f"source {size}", "in_cmd": "sink", "in_expected": str(size)}
                        else:
                            commands = {}
                        perf = self.start_perf(berth_pid, f"raw-{short}-{direction}", engine=False) if rep == 0 else []
                        meter = CPUMeter(berth_pid, engine=False)
                        seconds = self.transfer(self.mux_args(sock), direction, size, **commands)
                        used = meter.used()
                        self.stop_perf(perf)
                        rates[name].append(size / MiB / seconds)
                        cpu[name].append(used["berth"] if berth_pid else used["sshd"])
                section = f"raw SSH {direction}, {short}"
                sshd_row, berth_row = f"OpenSSH sshd, {short} ({direction})", f"Berth, echo backend, {short} ({direction})"
                self.row(section, sshd_row, "MiB/s", rates["OpenSSH sshd"], lower_is_better=False,
                         note=f"{size // MiB} MiB, no container")
                self.row(section, berth_row, "MiB/s", rates["Berth, echo backend"], baseline=sshd_row, target=0.9,
                         lower_is_better=False, note="target ≥ 0.9× OpenSSH")
                self.row(section, f"sshd CPU per GiB, {short} ({direction})", "CPU s/GiB", [c / gib for c in cpu["OpenSSH sshd"]])
                self.row(section, f"Berth CPU per GiB, {short} ({direction})", "CPU s/GiB", [c / gib for c in cpu["Berth, echo backend"]],
                         baseline=f"sshd CPU per GiB, {short} ({direction})", target=1.0,
                         note="target ≤ sshd's")
            self.close_masters(masters)
        self.stop_berth(proc)
        self.bench_raw_idle()

    def bench_raw_idle(self):
        """Berth's memory per idle connection without a container: interactive shells of the
        echo backend (pty + shell, like the concurrency rows), RSS growth per connection."""
        import asyncssh
        n = 100 if self.quick else 500
        log(f"{n} idle connections, echo backend")
        proc, port, _ = self.start_berth("berth-raw-idle", backend="echo")
        self.timed([*self.berth_ssh(port), "true"])
        time.sleep(1)
        base_rss = rss_kib(proc.pid)
        key = asyncssh.read_private_key(str(self.key))
        outcome = {}

        async def open_one(sem, held, errors):
            async with sem:
                try:
                    conn = await asyncio.wait_for(asyncssh.connect(
                        "127.0.0.1", port, username="bench", client_keys=[key], known_hosts=None,
                        encryption_algs=[CIPHER], keepalive_interval=0), 120)
                    process = await asyncio.wait_for(conn.create_process(term_type="xterm", term_size=(80, 24)), 120)
                    await asyncio.wait_for(process.stdout.read(1), 120)
                    held.append((conn, process))
                except Exception as error:
                    errors.append(repr(error))

        async def run():
            held, errors = [], []
            # Below Berth's default maxStartups (10 unauthenticated), which drops connections at random.
            sem = asyncio.Semaphore(8)
            await asyncio.gather(*(open_one(sem, held, errors) for _ in range(n)))
            await asyncio.sleep(3)
            outcome.update(rss=rss_kib(proc.pid), open=len(held), errors=errors)
            for conn, _ in held:
                conn.close()
            await asyncio.gather(*(conn.wait_closed() for conn, _ in held), return_exceptions=True)

        asyncio.run(run())
        self.stop_berth(proc)
        per_conn = (outcome["rss"] - base_rss) / max(outcome["open"], 1)
        self.row("raw SSH idle", f"{n} idle shells, no container: Berth RSS per connection", "KiB", [per_conn], target=64,
                 note=f"{outcome['open']}/{n} open, {len(outcome['errors'])} errors; base RSS {base_rss} KiB",
                 extra={"rss_kib": outcome["rss"], "base_rss_kib": base_rss, "error_samples": outcome["errors"][:5]})

    # ---------------------------------------------------------------- session start

    def bench_session_start(self):
        """Time from a session request to its program's exit on a connection that already ran
        one (asyncssh `run("true")`, in one Python process: no client start-up in the figure)."""
        import asyncssh
        reps = 10 if self.quick else 30
        log(f"session start (second exec on one connection), {reps} each")
        proc, port, _ = self.start_berth("berth-session", log_level="debug")
        cases = [
            ("plain OpenSSH: second exec on one connection", self.sshd_port, "root", self.sshd_keys["plain"]),
            ("OpenSSH + docker exec: second exec on one connection", self.sshd_port, "root", self.sshd_keys["exec"]),
            ("Berth (connection mode): second exec on one connection", port, "bench", self.key),
        ]

        errors = {}

        async def measure(name, port, user, keyfile):
            key = asyncssh.read_private_key(str(keyfile))
            times = []
            try:
                async with asyncssh.connect("127.0.0.1", port, username=user, client_keys=[key], known_hosts=None,
                                            encryption_algs=[CIPHER]) as conn:
                    await conn.run("true", check=True)   # the first: Berth starts the container and links here
                    for _ in range(reps):
                        started = time.perf_counter()
                        await conn.run("true", check=True)
                        times.append(time.perf_counter() - started)
            except Exception as error:
                errors[name] = f"after {len(times)} of {reps}: {error!r}"
                log(f"{name}: {errors[name]}")
            return times

        results = {name: asyncio.run(measure(name, p, u, k)) for name, p, u, k in cases}
        link = self.link_kinds(proc)
        self.stop_berth(proc)
        plain = cases[0][0]
        def note(name, text):
            return f"{text}; errors: {errors[name]}" if name in errors else text

        self.row("session start", plain, "s", results[plain], note=note(plain, "fork + exec of `true` by sshd"))
        self.row("session start", cases[1][0], "s", results[cases[1][0]], baseline=plain,
                 note=note(cases[1][0], "what a docker exec costs"))
        self.row("session start", cases[2][0], "s", results[cases[2][0]], baseline=plain, target=0.010, absolute_target=True,
                 link=link, note=note(cases[2][0], "target ≤ 10 ms median"))
        if results[cases[2][0]] and results[cases[1][0]]:
            self.results["rows"][-1]["ratio_vs_openssh_docker"] = (summary(results[cases[2][0]])["median"]
                                                                   / summary(results[cases[1][0]])["median"])

    def start_perf(self, berth_pid, direction, engine=True):
        """With --perf DIR: samples Berth and the engine's dockerd during Berth's first transfer;
        without the engine (the raw rows, the 20 streams) Berth and its guest agents; without
        Berth, sshd's processes."""
        if not self.args.perf:
            return []
        out = Path(self.args.perf)
        out.mkdir(parents=True, exist_ok=True)
        started = []
        targets = [("berth", berth_pid)] if berth_pid else [("sshd", ",".join(map(str, sshd_pids())))]
        if engine:
            targets.append(("dockerd", DOCKERD_PID))
        elif berth_pid and agent_pids():
            targets.append(("agents", ",".join(map(str, agent_pids()))))
        for name, pid in targets:
            if pid:
                started.append(subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", str(pid),
                                                 "-o", str(out / f"{name}-{direction}.data")],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        return started

    @staticmethod
    def stop_perf(started):
        for proc in started:
            proc.send_signal(signal.SIGINT)
        for proc in started:
            proc.wait(timeout=120)

    def bench_streams(self):
        """20 sessions streaming at once: aggregate throughput (Berth and OpenSSH+docker exec)."""
        n = 20
        size = 16 * MiB if self.quick else 128 * MiB
        proc, port = self.berth_throughput_proc, self.berth_throughput_port
        log(f"{n} concurrent streams of {size // MiB} MiB")

        def run_parallel(make_args, berth_pid=None, profile=False):
            """Opens n connections first (ControlMaster, one TCP connection each) and runs a first
            command through each, so Berth's containers are up before the clock starts; then
            streams through all at once."""
            masters = self.open_masters([make_args(i) for i in range(n)])
            # A first command through every connection before the clock starts, as the single
            # stream does: a login answered does not mean Berth's container is up, and until
            # 2026-12-05 up to 20 container starts fell inside this measurement.
            warmups = [subprocess.Popen([*self.mux_args(sock), "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE) for _, sock in masters]
            try:
                deadline = time.monotonic() + 600
                for warmup in warmups:
                    _, err = warmup.communicate(timeout=max(1, deadline - time.monotonic()))
                    if warmup.returncode != 0:
                        raise RuntimeError(f"first command on a connection failed: {err[-300:]!r}")
            except BaseException:
                for warmup in warmups:
                    if warmup.poll() is None:
                        warmup.kill()
                        warmup.wait()
                self.close_masters(masters)
                raise
            commands = [" ".join(map(sh_quote, self.mux_args(sock))) + f" {sh_quote(out_program(size))} | wc -c"
                        for _, sock in masters]
            perf = self.start_perf(berth_pid, "streams", engine=False) if berth_pid and profile else []
            meter = CPUMeter(berth_pid, clients=[popen.pid for popen, _ in masters])
            started = time.perf_counter()
            children = [subprocess.Popen(["bash", "-o", "pipefail", "-c", c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                        for c in commands]
            errors = 0
            for child in children:
                out, err = child.communicate(timeout=1800)
                if child.returncode != 0 or out.strip() != str(size):
                    errors += 1
                    log(f"stream failed: {err[-300:]}")
            rate = n * size / MiB / (time.perf_counter() - started)
            cpu = meter.used()
            self.stop_perf(perf)
            self.close_masters(masters)
            return rate, errors, cpu

        reps = 1 if self.quick else 2
        plain, docker_exec, berth = [], [], []
        plain_cpu, berth_cpus, plain_cpus = [], [], []
        errs = {"plain": 0, "exec": 0, "berth": 0}
        for rep in range(reps):
            rate, e, cpu = run_parallel(lambda i: self.sshd_ssh("plain")); plain.append(rate); errs["plain"] += e
            plain_cpu.append(cpu["sshd"]); plain_cpus.append(cpu)
            rate, e, _ = run_parallel(lambda i: self.sshd_ssh("exec")); docker_exec.append(rate); errs["exec"] += e
            rate, e, berth_cpu = run_parallel(lambda i: self.berth_ssh(port), proc.pid, profile=rep == 0); berth.append(rate); errs["berth"] += e
            berth_cpus.append(berth_cpu)
            self.wait_no_berth_containers()
        link = self.link_kinds(proc)
        gib = n * size / GiB
        section = f"{n} streams"
        self.row(section, f"plain OpenSSH, {n} streams out", "MiB/s", plain, lower_is_better=False,
                 note=f"aggregate, {n}×{size // MiB} MiB, errors {errs['plain']}; cpu: " +
                 ", ".join(f"{k} {v}s" for k, v in plain_cpus[-1].items() if k in ("clients", "sshd", "machine busy", "machine idle")))
        self.row(section, f"OpenSSH + docker exec, {n} streams out", "MiB/s", docker_exec, baseline=f"plain OpenSSH, {n} streams out",
                 lower_is_better=False, note=f"errors {errs['exec']}")
        self.row(section, f"Berth, {n} streams out", "MiB/s", berth, baseline=f"plain OpenSSH, {n} streams out", lower_is_better=False,
                 target=0.8, link=link, note=f"target ≥ 0.8× plain OpenSSH; errors {errs['berth']}; cpu: " +
                 ", ".join(f"{k} {v}s" for k, v in berth_cpu.items()), extra={"errors": errs["berth"], "cpu_seconds": berth_cpus})
        self.results["rows"][-1]["ratio_vs_openssh_docker"] = summary(berth)["median"] / summary(docker_exec)["median"]
        self.row(section, f"plain OpenSSH: sshd CPU per GiB, {n} streams", "CPU s/GiB", [c / gib for c in plain_cpu])
        self.row(section, f"Berth + engine CPU per GiB, {n} streams", "CPU s/GiB",
                 [(c["berth"] + c.get("dockerd", 0) + c.get("containerd+shims", 0)) / gib for c in berth_cpus],
                 baseline=f"plain OpenSSH: sshd CPU per GiB, {n} streams", link=link,
                 note="cpu per GiB: " + ", ".join(f"{k} {statistics.median(c[k] for c in berth_cpus) / gib:.2f}s"
                                              for k in ("berth", "dockerd", "containerd+shims", "agent")))
        self.stop_berth(proc)

    # ---------------------------------------------------------------- 3. concurrency

    def bench_concurrency(self):
        import asyncssh
        levels = [10, 50] if self.quick else [50, 200, 500]
        log(f"concurrent idle sessions: {levels}")
        proc, port, _ = self.start_berth("berth-concurrency")
        self.timed([*self.berth_ssh(port), "true"])
        self.wait_no_berth_containers()
        time.sleep(1)
        base_rss = rss_kib(proc.pid)
        key = asyncssh.read_private_key(str(self.key))
        results = []

        async def open_one(sem, held, errors):
            async with sem:
                try:
                    conn = await asyncio.wait_for(asyncssh.connect(
                        "127.0.0.1", port, username="bench", client_keys=[key], known_hosts=None,
                        encryption_algs=[CIPHER], keepalive_interval=0), 120)
                    process = await asyncio.wait_for(conn.create_process(term_type="xterm", term_size=(80, 24)), 120)
                    # The shell is up once its prompt arrives.
                    await asyncio.wait_for(process.stdout.read(1), 120)
                    held.append((conn, process))
                except Exception as error:
                    errors.append(repr(error))

        async def run():
            held, errors = [], []
            sem = asyncio.Semaphore(8)
            for level in levels:
                started = time.perf_counter()
                await asyncio.gather(*(open_one(sem, held, errors) for _ in range(level - len(held) - len(errors))))
                open_seconds = time.perf_counter() - started
                await asyncio.sleep(3)
                rss = rss_kib(proc.pid)
                cpu0 = cpu_seconds(proc.pid)
                idle = 10 if not self.quick else 5
                await asyncio.sleep(idle)
                idle_cpu = (cpu_seconds(proc.pid) - cpu0) / idle * 100
                # Are the sessions alive? One round trip on each.
                alive = 0
                for conn, process in held:
                    try:
                        process.stdin.write("echo ok\n")
                        alive += 1
                    except Exception:
                        pass
                containers = len(self.berth_containers(running_only=True))
                per_conn = (rss - base_rss) / max(len(held), 1)
                results.append({"level": level, "open": len(held), "errors": len(errors), "alive": alive,
                                "containers": containers, "rss_kib": rss, "base_rss_kib": base_rss,
                                "per_connection_kib": per_conn, "idle_cpu_percent": idle_cpu,
                                "open_seconds": open_seconds, "error_samples": errors[:5]})
                log(f"{level}: {len(held)} open, {len(errors)} errors, RSS {rss} KiB (+{per_conn:.0f} KiB/conn), "
                    f"idle CPU {idle_cpu:.1f}%, opened in {open_seconds:.1f}s, {containers} containers")
            for conn, _ in held:
                conn.close()
            await asyncio.gather(*(conn.wait_closed() for conn, _ in held), return_exceptions=True)

        asyncio.run(run())
        self.wait_no_berth_containers()
        after_rss = rss_kib(proc.pid)
        self.stop_berth(proc)
        for r in results:
            n = r["level"]
            self.row("concurrency", f"{n} idle sessions: Berth RSS per connection", "KiB", [r["per_connection_kib"]], target=64,
                     note=f"{r['open']}/{n} open, {r['errors']} errors, {r['containers']} containers, opened in {r['open_seconds']:.0f}s",
                     extra=r)
            self.row("concurrency", f"{n} idle sessions: errors", "count", [r["errors"] + (n - r["open"] - r["errors"])], target=0)
            self.row("concurrency", f"{n} idle sessions: Berth CPU while idle", "%", [r["idle_cpu_percent"]])
        self.results["meta"]["rss_after_all_closed_kib"] = after_rss

    # ---------------------------------------------------------------- 4. idle memory, start-up

    def bench_startup(self):
        reps = 3 if self.quick else 7
        log(f"start-up and idle memory, {reps} runs")
        ready, rss, rss_after_login = [], [], []
        for i in range(reps):
            proc, port, seconds = self.start_berth(f"berth-start-{i}")
            ready.append(seconds)
            time.sleep(1)
            rss.append(rss_kib(proc.pid))
            if i == 0:
                self.timed([*self.berth_ssh(port), "true"])
                self.wait_no_berth_containers()
                time.sleep(1)
                rss_after_login.append(rss_kib(proc.pid))
            self.stop_berth(proc)
        sshd_rss = rss_kib(self.sshd.pid)
        self.row("idle", "Berth start → accepting connections", "s", ready)
        self.row("idle", "sshd idle RSS (listener)", "KiB", [sshd_rss], note="baseline for scale")
        self.row("idle", "Berth idle RSS", "KiB", rss, baseline="sshd idle RSS (listener)")
        self.row("idle", "Berth RSS after one login", "KiB", rss_after_login, baseline="sshd idle RSS (listener)")


def out_program(size):
    """The program every "out" case runs, on the host (GNU dd) and in the container (busybox dd)
    alike: 4 KiB reads and writes, like GNU `head -c`, and next to no CPU of its own. Busybox
    `head -c` (the image's) spends ~4 user CPU s per GiB where GNU head spends 0.05, so with it
    the container cases measured busybox, not the data path (bench/README.md, 2026-12-05)."""
    assert size % 4096 == 0
    return f"dd if=/dev/zero bs=4096 count={size // 4096} 2>/dev/null"


def sh_quote(word):
    return "'" + word.replace("'", "'\\''") + "'"


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "MiB/s":
        return f"{value:.0f}"
    if unit in ("KiB", "count"):
        return f"{value:.0f}"
    if unit == "CPU s/GiB":
        return f"{value:.2f}"
    return f"{value:.1f}"


def print_table(results):
    rows = results["rows"]
    header = ("Benchmark", "unit", "min", "median", "max", "ratio", "target", "link", "")
    lines = []
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            lines.append(("", "", "", "", "", "", "", "", ""))
            lines.append((f"[{section}]", "", "", "", "", "", "", "", ""))
        unit = r["unit"]
        shown_unit = "ms" if unit == "s" and (r["median"] or 0) < 10 else unit
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        target = ""
        if r.get("target") is not None:
            sign = "≤" if r["lower_is_better"] else "≥"
            if r.get("baseline") and not r.get("absolute_target"):
                target = f"{sign}{r['target']}×"
            else:
                target = f"{sign}{fmt(r['target'], unit).replace(' ms', '') if shown_unit == 'ms' else r['target']}"
        verdict = {True: "ok", False: "MISSED"}.get(r.get("pass"), "")
        strip = (lambda v: fmt(v, unit).replace(" ms", "")) if shown_unit == "ms" else (lambda v: fmt(v, unit))
        lines.append((r["name"], shown_unit, strip(r["min"]), strip(r["median"]), strip(r["max"]), ratio, target,
                      r.get("link", ""), verdict))
    widths = [max(len(str(line[i])) for line in lines + [header]) for i in range(len(header))]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    for line in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
    print("\n".join(out))
    print("\nratio = median / median of the row's baseline (same run): the row above it in each section; "
          "for the Berth rows see also ratio_vs_* in the JSON.")
    for r in rows:
        if r.get("note") and ("cpu" in r["note"] or "error" in r["note"] or "open" in r["note"]):
            print(f"  {r['name']}: {r['note']}")
    for r in rows:
        for key in ("ratio_vs_docker_run", "ratio_vs_openssh_docker"):
            if r.get(key) is not None:
                print(f"  {r['name']}: {key} = {r[key]:.2f}×")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--berth", required=True)
    parser.add_argument("--webhook", required=True)
    parser.add_argument("--image", default="berth-busybox:latest")
    parser.add_argument("--docker-host", default=os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"),
                        help="the engine for Berth and the baselines (bench/run.sh starts a private one)")
    parser.add_argument("--perf", help="record perf profiles of Berth and dockerd during Berth's transfers into this directory")
    parser.add_argument("--dockerd-pid", type=int, help="that engine's dockerd, for CPU figures")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes and counts")
    parser.add_argument("--only", default="raw,startup,login,throughput,session,concurrency",
                        help="comma-separated subset of raw,startup,login,throughput (with the 20 streams),"
                             "session (session start),concurrency")
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "latest.json"))
    args = parser.parse_args()
    raise_nofile()
    global DOCKERD_PID
    DOCKERD_PID = args.dockerd_pid
    os.environ["DOCKER_HOST"] = args.docker_host
    bench = Bench(args)
    only = set(args.only.split(","))
    started = time.time()
    try:
        bench.setup(engine=bool(only - {"raw"}))
        bench.results["meta"] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "cpus": os.cpu_count(),
            "engine": docker("version", "--format", "{{.Server.Version}}").stdout.strip(), "image": args.image,
            "cipher": CIPHER, "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "berth": args.berth, "raw_ciphers": RAW_CIPHERS, "agent_link_config": bench.agent_link,
        } if bench.engine else {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "cpus": os.cpu_count(),
            "raw_ciphers": RAW_CIPHERS, "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "berth": args.berth,
        }
        if "raw" in only:
            bench.bench_raw()
        if "startup" in only:
            bench.bench_startup()
        if "login" in only:
            bench.bench_login()
        if "throughput" in only:
            bench.bench_throughput()
            bench.bench_streams()
        if "session" in only:
            bench.bench_session_start()
        if "concurrency" in only:
            bench.bench_concurrency()
    finally:
        bench.cleanup()
        bench.results["meta"]["seconds"] = round(time.time() - started)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(bench.results, indent=2))
        log(f"raw numbers in {output}; logs in {bench.work}")
    print_table(bench.results)
    return 0  # a missed target is a finding, not a failure of the run


if __name__ == "__main__":
    sys.exit(main())
