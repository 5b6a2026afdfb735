#!/usr/bin/env bash
# Builds berth-busybox:latest, a small image with busybox and the agent, by `docker import` (no
# registry needed). Skipped when an image built from the same agent already exists.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x images/out/berth-agent ] || images/build-agent.sh
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static
}
agent_sum=$(sha256sum images/out/berth-agent | cut -c1-12)
if docker image inspect "berth-busybox:agent-$agent_sum" >/dev/null 2>&1; then
    echo "berth-busybox is up to date (agent $agent_sum)"
    exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$root/tmp"
cp "$(command -v busybox || echo /bin/busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 images/out/berth-agent "$root/usr/bin/containerssh-agent"
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin:/usr/bin' - berth-busybox:latest >/dev/null
docker tag berth-busybox:latest "berth-busybox:agent-$agent_sum"
echo "built berth-busybox:latest (agent $agent_sum)"
