#!/usr/bin/env bash
# Builds the statically linked guest agent (product berth-agent) into images/out/berth-agent.
# A separate scratch path keeps these release/static flags from invalidating the main .build.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/common.sh

command -v swift >/dev/null 2>&1 || die "swift is not on PATH"
log "swift build -c release --product berth-agent --static-swift-stdlib -Xswiftc -static-executable --scratch-path .build-agent"
swift build -c release --product berth-agent --static-swift-stdlib -Xswiftc -static-executable --scratch-path .build-agent \
    || die "swift build of berth-agent failed"
mkdir -p images/out
tmp=images/out/.berth-agent.$$
install -m 0755 .build-agent/release/berth-agent "$tmp"
strip "$tmp" 2>/dev/null || log "strip not available; keeping symbols"
# Must run in any image, including ones without a libc: refuse anything dynamically linked.
if ldd "$tmp" >/dev/null 2>&1; then
    rm -f "$tmp"
    die "the agent came out dynamically linked: $(ldd .build-agent/release/berth-agent | tr '\n' ' ')"
fi
mv -f "$tmp" images/out/berth-agent
log "images/out/berth-agent: $(stat -c %s images/out/berth-agent) bytes, static, sha256 $(sha256sum images/out/berth-agent | cut -c1-12)"
