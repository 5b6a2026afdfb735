#!/usr/bin/env bash
# Formats the Swift sources and tests with swift-format (in the toolchain) and the project's
# settings (.swift-format). `scripts/format.sh --check` changes nothing and fails when a file is
# not formatted; scripts/test.sh runs that check.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--check" ]; then
    swift format lint --strict --configuration .swift-format --recursive Sources Tests Package.swift
else
    swift format format --in-place --configuration .swift-format --recursive Sources Tests Package.swift
fi
