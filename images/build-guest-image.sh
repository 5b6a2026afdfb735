#!/usr/bin/env bash
# Builds berth-guest:latest, Berth's default guest image, from Debian packages without any
# registry:
#   1. berth-guest-base:<release>-<packages hash>: `debootstrap --variant=minbase` of bookworm
#      with what a person expects on a Linux box they log in to (bash, coreutils, procps, a full
#      python3, git, curl, rsync, less, nano and vim, the ssh client, xauth (ssh -X), sudo for operators who
#      enable it) and openssh-sftp-server, from the mirror this machine's apt uses, imported with
#      `docker import` (slow: minutes; cached).
#   2. berth-guest:latest (also tagged berth-guest:agent-<agent sha256 prefix>): the base plus the
#      agent at /usr/bin/containerssh-agent (seconds). Skipped when that tag already exists.
# BERTH_GUEST_REBUILD=1 forces both steps.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/common.sh
SECONDS=0

RELEASE=bookworm
PACKAGES=bash,coreutils,procps,ncurses-bin,openssh-sftp-server,python3,git,curl,ca-certificates,rsync,less,nano,vim-tiny,openssh-client,xauth,sudo,bash-completion,man-db,file,xz-utils,unzip
BASE="berth-guest-base:$RELEASE-$(printf '%s' "$RELEASE $PACKAGES" | sha256sum | cut -c1-8)"
IMAGE_CHANGES=(--change 'CMD ["/bin/bash"]'
               --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
               --change 'ENV LANG=C.UTF-8')

require_root
require_docker
ensure_agent
if [ "${BERTH_GUEST_REBUILD:-}" != 1 ] && image_is_current berth-guest; then
    log "berth-guest:latest is up to date (agent $AGENT_SUM)"
    exit 0
fi

if [ "${BERTH_GUEST_REBUILD:-}" = 1 ] || [ -z "$(image_id "$BASE")" ]; then
    debootstrap_image "$BASE" "$RELEASE" "$PACKAGES" "${IMAGE_CHANGES[@]}"
else
    log "reusing $BASE (debootstrap rootfs)"
fi

# Add the agent as a layer: create (never started) a container from the base, copy, commit.
old_latest=$(image_id berth-guest:latest)
log "adding the agent ($AGENT_SUM) as /usr/bin/containerssh-agent"
container=$(docker create "$BASE" /bin/true) || die "docker create from $BASE failed"
trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
docker cp "$AGENT" "$container:/usr/bin/containerssh-agent" >/dev/null || die "docker cp of the agent failed"
docker commit "${IMAGE_CHANGES[@]}" --change "LABEL berth.agent-sha256=$AGENT_SUM" \
    "$container" berth-guest:latest >/dev/null || die "docker commit failed"
docker tag berth-guest:latest "berth-guest:agent-$AGENT_SUM"
prune_old_agent_tags berth-guest
remove_if_untagged "$old_latest"
log "built berth-guest:latest and berth-guest:agent-$AGENT_SUM in ${SECONDS}s"
