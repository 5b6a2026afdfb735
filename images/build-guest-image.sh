#!/usr/bin/env bash
# Builds berth-guest:latest, Berth's default guest image, from Debian packages with debootstrap
# and `docker import` (no registry needed): bash, coreutils, procps, ncurses-bin (tput),
# openssh-sftp-server, python3-minimal and the agent at /usr/bin/containerssh-agent.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x images/out/berth-agent ] || images/build-agent.sh
agent_sum=$(sha256sum images/out/berth-agent | cut -c1-12)
if docker image inspect "berth-guest:agent-$agent_sum" >/dev/null 2>&1; then
    echo "berth-guest is up to date (agent $agent_sum)"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror (a few minutes)…"
debootstrap --variant=minbase --include=bash,coreutils,procps,ncurses-bin,openssh-sftp-server,python3-minimal \
    bookworm "$root" "$mirror" >/tmp/berth-debootstrap.log 2>&1 || { tail -20 /tmp/berth-debootstrap.log; exit 1; }
install -m 0755 images/out/berth-agent "$root/usr/bin/containerssh-agent"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" --exclude=./proc --exclude=./sys --exclude=./dev -c . |
    docker import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' - berth-guest:latest >/dev/null
docker tag berth-guest:latest "berth-guest:agent-$agent_sum"
echo "built berth-guest:latest (agent $agent_sum)"
