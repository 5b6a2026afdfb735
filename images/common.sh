# Shared helpers for the image scripts (sourced, not run).
# shellcheck shell=bash

log() { printf '[%s] %s\n' "$(basename "$0")" "$*"; }
die() { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, apt-get and docker import need it)"
}

require_docker() {
    command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed (scripts/ensure-docker.sh installs and starts an engine)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers (start one with scripts/ensure-docker.sh)"
}

# Installs Debian packages when one of the given commands is missing: apt_need COMMAND PACKAGE.
apt_need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (for $1)"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null || die "cannot install $2"
    command -v "$1" >/dev/null 2>&1 || die "$2 installed but $1 is still missing"
}

# The static agent (images/out/berth-agent), built if missing.
AGENT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/out/berth-agent"
ensure_agent() {
    [ -x "$AGENT" ] || "$(dirname "${BASH_SOURCE[0]}")/build-agent.sh" || die "building the agent failed"
    AGENT_SUM=$(sha256sum "$AGENT" | cut -c1-12)
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# True when REPO:agent-SUM exists (an image built from this agent); makes REPO:latest point at it.
image_is_current() {
    local repo=$1 id latest
    id=$(image_id "$repo:agent-$AGENT_SUM")
    [ -n "$id" ] || return 1
    latest=$(image_id "$repo:latest")
    if [ "$latest" != "$id" ]; then
        log "retagging $repo:agent-$AGENT_SUM as $repo:latest"
        docker tag "$repo:agent-$AGENT_SUM" "$repo:latest"
    fi
    return 0
}

# Removes REPO:agent-* tags of other agents (images still used by a container stay).
prune_old_agent_tags() {
    local repo=$1 tag
    for tag in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$repo" | grep ":agent-" | grep -v ":agent-$AGENT_SUM\$" || true); do
        docker rmi "$tag" >/dev/null 2>&1 && log "removed the outdated $tag" || true
    done
}

# Removes a temporary rootfs safely: unmounts whatever a failed debootstrap left mounted inside
# it (proc, sys, devices bound from the host), deepest first, and never crosses into another
# filesystem while deleting.
remove_rootfs() {
    local root=$1 mountpoint
    [ -n "$root" ] && [ -d "$root" ] || return 0
    root=$(realpath "$root")
    [ "$root" != / ] || die "refusing to remove /"
    while read -r mountpoint; do
        umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || log "warning: cannot unmount $mountpoint"
    done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r)
    rm -rf --one-file-system "$root"
}

# Removes the image ID if a rebuild left it without tags (and no container uses it).
remove_if_untagged() {
    local id=$1
    [ -n "$id" ] || return 0
    if [ "$(docker image inspect --format '{{len .RepoTags}}' "$id" 2>/dev/null || echo 1)" = 0 ]; then
        docker rmi "$id" >/dev/null 2>&1 && log "removed the replaced image $(echo "${id#sha256:}" | cut -c1-12)" || true
    fi
}

# The first enabled Debian archive (not the security one) in apt's sources.
debian_mirror() {
    local files=() f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    grep -hE '^[[:space:]]*(deb[[:space:]]|URIs:)' "${files[@]}" |
        grep -oE '(https?|file)://[^[:space:]]+' | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true
}

# debootstrap_image TAG RELEASE PACKAGES [--change …]: a `debootstrap --variant=minbase` rootfs
# of RELEASE with PACKAGES (comma-separated) from the mirror this machine's apt uses, imported
# as TAG with `docker import` (minutes), so no registry is needed. A replaced image is removed.
debootstrap_image() {
    local tag=$1 release=$2 packages=$3
    shift 3
    apt_need debootstrap debootstrap
    local mirror root logfile=/tmp/berth-debootstrap.$$.log
    mirror=$(debian_mirror)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$(mktemp -d /tmp/berth-rootfs.XXXXXX)
    trap 'remove_rootfs "$root"' EXIT
    log "debootstrap --variant=minbase --include=$packages $release $root $mirror (takes minutes; log: $logfile)"
    if ! debootstrap --variant=minbase --include="$packages" "$release" "$root" "$mirror" >"$logfile" 2>&1; then
        tail -n 20 "$logfile" >&2
        die "debootstrap failed (full log: $logfile)"
    fi
    rm -f "$logfile"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/bootstrap.log
    local old
    old=$(image_id "$tag")
    log "docker import → $tag"
    # The engine supplies /dev, /proc and /sys; keep the directories, drop debootstrap's contents.
    tar -C "$root" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import "$@" --change "LABEL berth.packages=$packages" - "$tag" >/dev/null \
        || die "docker import of $tag failed"
    remove_rootfs "$root"
    trap - EXIT
    remove_if_untagged "$old"
}
