#!/usr/bin/env bash
# Builds the statically linked guest agent into images/out/berth-agent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p images/out
swift build -c release --product berth-agent -Xswiftc -static-executable --scratch-path .build-agent
install -m 0755 .build-agent/release/berth-agent images/out/berth-agent
strip images/out/berth-agent 2>/dev/null || true
echo "agent: images/out/berth-agent ($(du -h images/out/berth-agent | cut -f1))"
