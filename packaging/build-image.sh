#!/usr/bin/env bash
# Builds berth:latest (also tagged berth:<version>), Berth's own OCI image, without a registry:
#   1. berth-server-base:<release>-<hash>: debootstrap minbase + libssl3 and CA certificates
#      (cached; minutes the first time);
#   2. berth:latest: image/Dockerfile on that base with the release binaries
#      (packaging/build-release.sh), the image's config, user 10001, a HEALTHCHECK running
#      `berth healthcheck`. The classic builder is enough (no BuildKit, nothing pulled).
set -euo pipefail
cd "$(dirname "$0")/.."
source packaging/common.sh
SECONDS=0

require_root
require_docker
[ -x "$OUT/bin/berth" ] || die "no release build in $OUT/bin (run packaging/build-release.sh)"
ensure_base "$SERVER_BASE" "$SERVER_PACKAGES"

version=$(berth_version)
context=$(mktemp -d /tmp/berth-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$OUT/bin/berth" "$OUT/bin/berth-example-webhook" "$OUT/bin/berth-agent" "$context/"
cp packaging/image/Dockerfile packaging/image/config.yaml "$context/"
cp -r Sources/BerthConsole/Resources "$context/console"

old=$(image_id berth:latest)
log "docker build → berth:latest, berth:$version (on $SERVER_BASE)"
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$SERVER_BASE" --label "berth.version=$version" \
    -t berth:latest -t "berth:$version" "$context" >/dev/null 2>"$context/build.log" \
    || { cat "$context/build.log" >&2; die "docker build failed"; }
remove_if_untagged "$old"
log "built berth:latest ($version) in ${SECONDS}s"
