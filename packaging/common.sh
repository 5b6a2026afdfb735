# Shared settings of the packaging scripts (sourced, not run). Builds on images/common.sh.
# shellcheck shell=bash
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/images/common.sh"

PACKAGING="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$PACKAGING/out"
RELEASE=bookworm
# What the release berth needs at run time besides libc (the Swift runtime is linked in):
# libcrypto (libssl3), libcurl4 (Foundation's URLSession, used by `berth healthcheck`),
# libstdc++6 (BoringSSL in swift-crypto), libcrypt1 and zlib1g (in every Debian), CA
# certificates for HTTPS webhooks and registries. The .deb's Depends say the same.
SERVER_PACKAGES=libssl3,libcurl4,ca-certificates
SERVER_BASE="berth-server-base:$RELEASE-$(printf '%s' "$RELEASE $SERVER_PACKAGES" | sha256sum | cut -c1-8)"
# A fresh Debian with systemd to install the .deb into (tests/packaging): the server's run-time
# libraries so that dpkg needs no network, systemd as PID 1, iptables for Berth's firewall rules,
# man-db (systemd-analyze verify opens the unit's Documentation=man:berth(1)).
SYSTEMD_PACKAGES=$SERVER_PACKAGES,systemd,systemd-sysv,dbus,iptables,procps,man-db
SYSTEMD_BASE="berth-systemd-base:$RELEASE-$(printf '%s' "$RELEASE $SYSTEMD_PACKAGES" | sha256sum | cut -c1-8)"

# ensure_base TAG PACKAGES: the debootstrap image, built once and then reused.
ensure_base() {
    if [ -n "$(image_id "$1")" ]; then
        log "reusing $1 (debootstrap rootfs)"
    else
        debootstrap_image "$1" "$RELEASE" "$2" --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8'
    fi
}

# The version of the release build (berth version prints it).
berth_version() { "$OUT/bin/berth" version | awk '{print $NF}'; }
