#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds, runs the Swift unit tests, the
# agent and integration tests (real OpenSSH/paramiko clients against a running berth, real
# webhooks), and the client matrix (OpenSSH, dropbear, PuTTY, curl, JSch, paramiko, asyncssh,
# libssh, ssh-audit against Berth), and the packaging (the .deb under systemd in a fresh Debian
# container, Berth's image, the Compose file, the Kubernetes manifests).
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s ===\n' "$*"; }
fail() { printf '\n*** test stage failed: %s ***\n' "$1" >&2; exit 1; }

stage "dependencies"
scripts/install-test-deps.sh || fail "installing dependencies"

stage "docker engine and guest images"
DOCKERD_PID=$(scripts/ensure-docker.sh) || fail "starting a Docker engine"
if [ -n "$DOCKERD_PID" ]; then
    trap 'kill "$DOCKERD_PID" 2>/dev/null; wait "$DOCKERD_PID" 2>/dev/null || true' EXIT
fi
images/build-agent.sh || fail "building the agent"
images/build-test-image.sh || fail "building the busybox test image"
images/build-guest-image.sh || fail "building the guest image"

stage "formatting (swift-format, .swift-format)"
scripts/format.sh --check || fail "formatting: run scripts/format.sh"

stage "build"
swift build || fail "swift build"

stage "unit tests (swift test)"
swift test || fail "swift test"

stage "integration tests (pytest)"
export BERTH_BIN="$PWD/.build/debug/berth"
export BERTH_WEBHOOK_BIN="$PWD/.build/debug/berth-example-webhook"
export BERTH_AGENT_BIN="$PWD/.build/debug/berth-agent"
export BERTH_SKIP_IMAGE_BUILD=1
python3 -m pytest -v -p no:cacheprovider tests/agent || fail "agent tests"
python3 -m pytest -v -p no:cacheprovider tests/integration || fail "integration tests"

stage "client matrix (real SSH clients against Berth)"
python3 -m pytest -v -rs -p no:cacheprovider tests/clients || fail "client matrix"

stage "packaging (release build, .deb, Berth's image, manifests)"
SECONDS=0
packaging/build.sh || fail "building the packages"
echo "packaging/build.sh took ${SECONDS}s"
python3 -m pytest -v -p no:cacheprovider tests/packaging || fail "packaging tests"
