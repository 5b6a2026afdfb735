#!/usr/bin/env bash
# Builds berth-busybox:latest, a small test image (busybox-static with its applet links, /bin/sh,
# root in /etc/passwd, /tmp, and the agent at /usr/bin/containerssh-agent) by `docker import`, so
# no registry is needed. Skipped when berth-busybox:agent-<agent sha256 prefix> already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
source images/common.sh
SECONDS=0

require_root
require_docker
ensure_agent
if image_is_current berth-busybox; then
    log "berth-busybox:latest is up to date (agent $AGENT_SUM)"
    exit 0
fi
if ! dpkg -s busybox-static >/dev/null 2>&1; then
    log "installing busybox-static"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null \
        || die "cannot install busybox-static"
fi
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox is missing although busybox-static is installed"
if ldd "$busybox" >/dev/null 2>&1; then die "$busybox is dynamically linked"; fi

root=$(mktemp -d /tmp/berth-busybox-root.XXXXXX)
trap 'remove_rootfs "$root"' EXIT
log "assembling the rootfs in $root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"
# Like `busybox --install -s`, but with relative links at each applet's usual place (bin/sh,
# usr/bin/env, ...): --install would point them at this temporary directory's absolute path.
while read -r applet; do
    case "$applet" in */*) ;; *) applet="bin/$applet" ;; esac
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sfn "$(realpath --relative-to="$root/$(dirname "$applet")" "$root/bin/busybox")" "$root/$applet"
done < <("$root/bin/busybox" --list-full)
[ -e "$root/bin/sh" ] || die "busybox has no sh applet"
install -m 0755 "$AGENT" "$root/usr/bin/containerssh-agent"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"

old_latest=$(image_id berth-busybox:latest)
log "docker import → berth-busybox:latest"
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL berth.agent-sha256=$AGENT_SUM" - berth-busybox:latest >/dev/null || die "docker import failed"
docker tag berth-busybox:latest "berth-busybox:agent-$AGENT_SUM"
prune_old_agent_tags berth-busybox
remove_if_untagged "$old_latest"
log "built berth-busybox:latest and berth-busybox:agent-$AGENT_SUM in ${SECONDS}s"
