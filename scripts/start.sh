#!/usr/bin/env bash
# Starts Berth for real: makes sure a Docker engine runs (installing and starting one if
# needed), builds the guest agent and the berth-guest image, builds Berth, starts the example
# webhook server with the demo users and runs `berth serve` with examples/config.yaml in the
# foreground. Ctrl-C stops Berth, the webhook server and a dockerd this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG="${BERTH_CONFIG:-examples/config.yaml}"
USERS="${BERTH_USERS:-examples/users.yaml}"

# Build dependencies: libcrypt (password hashes), zlib (audit log), OpenSSL's libcrypto (the SSH
# engine's Poly1305 and Diffie-Hellman arithmetic); xterm.js for the operator console's terminal
# (docs/console.md, "xterm.js").
if [ ! -e /usr/include/crypt.h ] || [ ! -e /usr/include/zlib.h ] || [ ! -e /usr/include/openssl/evp.h ] || [ ! -e /usr/share/javascript/xterm/xterm.js ] || [ ! -e /usr/share/nodejs/xterm/lib/public/Terminal.js ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libcrypt-dev zlib1g-dev libssl-dev libjs-xterm node-xterm
fi

DOCKERD_PID=$(scripts/ensure-docker.sh)
images/build-agent.sh
images/build-guest-image.sh

echo "building Berth (release)…"
swift build -c release --product berth
swift build -c release --product berth-example-webhook
BIN="$(swift build -c release --show-bin-path)"

"$BIN/berth" config check "$CONFIG" >/dev/null

"$BIN/berth-example-webhook" --listen 127.0.0.1:8080 --users "$USERS" &
WEBHOOK_PID=$!
cleanup() {
    kill "$WEBHOOK_PID" 2>/dev/null || true
    wait "$WEBHOOK_PID" 2>/dev/null || true
    if [ -n "$DOCKERD_PID" ]; then kill "$DOCKERD_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

cat <<INFO

Berth is starting on port 2222 with the example webhook server on 127.0.0.1:8080.
Log in with:   ssh -p 2222 demo@localhost        (password: demo)
Each login gets its own berth-guest container, removed when you log out.
Users are in $USERS; the configuration is $CONFIG. Press Ctrl-C to stop.

INFO
"$BIN/berth" serve --config "$CONFIG"
