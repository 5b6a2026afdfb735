#!/usr/bin/env bash
# Tests the guest agent (tests/agent, pytest): every case against the host debug build and
# inside berth-busybox (the static release build at /usr/bin/containerssh-agent), plus PID-1
# behaviour of wait-signal in a container. Builds what it needs first; extra arguments go to
# pytest (e.g. -k wait_signal). Container cases are skipped when no Docker engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/common.sh

command -v python3 >/dev/null 2>&1 && python3 -m pytest --version >/dev/null 2>&1 \
    || die "pytest is needed (scripts/install-test-deps.sh installs it)"
log "swift build --product berth-agent (host debug build)"
swift build --product berth-agent >/dev/null || die "debug build of berth-agent failed"
BERTH_AGENT_BIN="$(swift build --show-bin-path)/berth-agent"
export BERTH_AGENT_BIN
if docker info >/dev/null 2>&1; then
    images/build-agent.sh
    images/build-test-image.sh
    export BERTH_SKIP_IMAGE_BUILD=1
else
    log "no Docker engine answers: the container cases will be skipped (scripts/ensure-docker.sh starts one)"
fi
log "pytest tests/agent"
python3 -m pytest -v -p no:cacheprovider tests/agent "$@"
