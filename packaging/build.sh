#!/usr/bin/env bash
# Everything an operator installs, from a clean checkout: the release binaries, the Debian
# package and Berth's image (see docs/packaging.md). Root and a Docker engine are needed for
# the image.
set -euo pipefail
cd "$(dirname "$0")/.."
packaging/build-release.sh
packaging/build-deb.sh
packaging/build-image.sh
