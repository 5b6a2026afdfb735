#!/usr/bin/env bash
# Makes sure a Docker engine answers: reuses a running one, otherwise installs docker.io if
# needed and starts dockerd in the background. Prints the PID of a dockerd it started (nothing
# when it reused one) so that the caller can stop exactly that process.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    echo "installing docker.io" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
fi
dockerd >/tmp/berth-dockerd.log 2>&1 &
pid=$!
for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        echo "$pid"
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not come up; see /tmp/berth-dockerd.log" >&2
tail -20 /tmp/berth-dockerd.log >&2
kill "$pid" 2>/dev/null || true
exit 1
