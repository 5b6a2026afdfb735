#!/usr/bin/env bash
# Runs every Berth benchmark in one go and prints a table of figures and ratios against baselines
# measured in the same run; raw numbers go to bench/results/latest.json.
#
#   bench/run.sh [--quick] [--only raw,startup,login,throughput,session,concurrency] [--no-build] [--perf DIR]
#
# Root, Debian: installs what it needs (OpenSSH server, asyncssh, ...), starts a private Docker
# engine, builds the agent (.build-bench-agent) and the busybox test image inside that engine,
# and builds Berth in release mode in its own scratch path (.build-bench), never the default
# .build. Nothing is built, tagged or removed on the machine's shared engine: a test run there
# relies on its berth-busybox:latest carrying its own agent. `--only raw` (Berth's echo backend
# against sshd) needs no engine at all and starts none.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "bench/run.sh must run as root (it starts sshd and installs packages)" >&2; exit 1; }
build=1
args=()
only=
prev=
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --only=*) only=${arg#--only=}; args+=("$arg") ;;
        *) [ "$prev" = --only ] && only=$arg; args+=("$arg") ;;
    esac
    prev=$arg
done
engine=1
[ "$only" = raw ] && engine=0

echo "=== dependencies ===" >&2
scripts/install-test-deps.sh >&2
if [ "$engine" = 1 ] && ! command -v dockerd >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends docker.io >&2
fi

if [ "$build" = 1 ]; then
    echo "=== swift build -c release --scratch-path .build-bench ===" >&2
    swift build -c release --scratch-path .build-bench --product berth >&2
    swift build -c release --scratch-path .build-bench --product berth-example-webhook >&2
    if [ "$engine" = 1 ]; then
        # The agent of this checkout, built where no test run looks (images/out is theirs).
        echo "=== the guest agent (static) in .build-bench-agent ===" >&2
        swift build -c release --product berth-agent --static-swift-stdlib -Xswiftc -static-executable \
            --scratch-path .build-bench-agent >&2
    fi
fi

if [ "$engine" = 0 ]; then
    mkdir -p bench/results
    exec python3 bench/bench.py --berth "$PWD/.build-bench/release/berth" \
        --webhook "$PWD/.build-bench/release/berth-example-webhook" "${args[@]}"
fi

# The benchmarks run on a private Docker engine of their own (same dockerd binary, own data root,
# socket, containerd and bridge). Berth removes every container with its labels when it starts
# (crash hygiene), so sharing the engine with a test run would break both; and 500 containers
# should not land on an engine others use. Baselines use the same private engine.
BENCH_ROOT=/var/lib/berth-bench-docker
BENCH_RUN=/run/berth-bench-docker
BENCH_BRIDGE=berthbench0
export DOCKER_HOST="unix://$BENCH_RUN/docker.sock"
BENCH_DOCKERD_PID=
cleanup() {
    # Only the engine this run started (its pidfile names it): a second run that found the
    # first one's engine answering must not empty it.
    if [ -n "$BENCH_DOCKERD_PID" ] && [ "$(cat "$BENCH_RUN/dockerd.pid" 2>/dev/null)" = "$BENCH_DOCKERD_PID" ] \
        && timeout 10 docker info >/dev/null 2>&1; then
        # Networks Berth made in this engine (berth-users): their bridges live on the host, and
        # the engine forgets them when its network store is dropped below, so each run used to
        # leave one behind until the default address pools were gone ("could not find an
        # available, non-overlapping IPv4 address pool").
        timeout 60 docker ps -aq | xargs -r timeout 60 docker rm -f >/dev/null 2>&1 || true
        timeout 10 docker network ls -q --filter type=custom | xargs -r timeout 30 docker network rm >/dev/null 2>&1 || true
    fi
    if [ -n "$BENCH_DOCKERD_PID" ]; then
        kill "$BENCH_DOCKERD_PID" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$BENCH_DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    fi
    # What an engine that was interrupted mid-run leaves mounted: network namespaces, its data root.
    awk -v r="$BENCH_RUN/netns/" 'index($2, r) == 1 { print $2 }' /proc/mounts | xargs -r -n 1 umount 2>/dev/null || true
    if ! kill -0 "${BENCH_DOCKERD_PID:-0}" 2>/dev/null && grep -q " $BENCH_ROOT " /proc/mounts; then umount "$BENCH_ROOT" 2>/dev/null || true; fi
    [ "${BRIDGE_CREATED:-0}" = 1 ] && ip link del "$BENCH_BRIDGE" 2>/dev/null || true
}
trap cleanup EXIT
if ! ip link show "$BENCH_BRIDGE" >/dev/null 2>&1; then
    ip link add "$BENCH_BRIDGE" type bridge
    ip addr add 172.31.248.1/21 dev "$BENCH_BRIDGE"
    ip link set "$BENCH_BRIDGE" up
    BRIDGE_CREATED=1
fi
mkdir -p "$BENCH_RUN"
# The engine keeps its bridge network's subnet in its network store; drop it so the address pool
# always comes from the bridge above (a /21: 500 sessions mean 500 containers with an address).
rm -f "$BENCH_ROOT/network/files/local-kv.db"
dockerd --data-root "$BENCH_ROOT" --exec-root "$BENCH_RUN" --pidfile "$BENCH_RUN/dockerd.pid" -H "$DOCKER_HOST" \
    --bridge "$BENCH_BRIDGE" --iptables=false --ip-masq=false \
    --containerd-namespace berth-bench --containerd-plugins-namespace berth-bench-plugins >"$BENCH_RUN/dockerd.log" 2>&1 &
BENCH_DOCKERD_PID=$!
for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || { tail -20 "$BENCH_RUN/dockerd.log" >&2; echo "the bench's dockerd did not come up" >&2; exit 1; }
# berth-busybox:latest in the bench's engine, built by the project's own script from a copy of
# images/ whose out/berth-agent is the agent built above (the script tags by the agent's hash and
# skips the import when that image exists already).
IMAGES_TMP=$(mktemp -d /tmp/berth-bench-images.XXXXXX)
mkdir -p "$IMAGES_TMP/images/out"
cp images/common.sh images/build-test-image.sh "$IMAGES_TMP/images/"
install -m 0755 .build-bench-agent/release/berth-agent "$IMAGES_TMP/images/out/berth-agent"
strip "$IMAGES_TMP/images/out/berth-agent" 2>/dev/null || true
"$IMAGES_TMP/images/build-test-image.sh" >&2
rm -rf "$IMAGES_TMP"

# 500 sessions need a few thousand descriptors (client sockets, Berth's SSH and engine streams).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

mkdir -p bench/results
python3 bench/bench.py --docker-host "$DOCKER_HOST" --dockerd-pid "$BENCH_DOCKERD_PID" --berth "$PWD/.build-bench/release/berth" \
    --webhook "$PWD/.build-bench/release/berth-example-webhook" "${args[@]}"
