#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds, runs the Swift unit tests and the
# integration tests (real OpenSSH/paramiko clients against a running berth, real webhooks).
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n=== %s ===\n' "$*"; }
fail() { printf '\n*** test stage failed: %s ***\n' "$1" >&2; exit 1; }

stage "dependencies"
scripts/install-test-deps.sh || fail "installing dependencies"

stage "build"
swift build || fail "swift build"

stage "unit tests (swift test)"
swift test || fail "swift test"

stage "integration tests (pytest)"
export BERTH_BIN="$PWD/.build/debug/berth"
export BERTH_WEBHOOK_BIN="$PWD/.build/debug/berth-example-webhook"
python3 -m pytest -v -p no:cacheprovider tests/integration || fail "integration tests"
