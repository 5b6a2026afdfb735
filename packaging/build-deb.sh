#!/usr/bin/env bash
# Builds packaging/out/berth_<version>_<arch>.deb with dpkg-deb from the release binaries
# (packaging/build-release.sh): /usr/bin/berth, /usr/bin/berth-example-webhook,
# /usr/lib/berth/berth-agent, /etc/berth/config.yaml (conffile), the systemd unit, and a man
# page generated from `berth --help` by help2man. Needs root only to install help2man.
set -euo pipefail
cd "$(dirname "$0")/.."
source packaging/common.sh

[ -x "$OUT/bin/berth" ] || die "no release build in $OUT/bin (run packaging/build-release.sh)"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is missing (a Debian system is needed)"
apt_need help2man help2man

version=$(berth_version)
arch=$(dpkg --print-architecture)
root=$(mktemp -d /tmp/berth-deb.XXXXXX)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$OUT/bin/berth" "$root/usr/bin/berth"
install -D -m 0755 "$OUT/bin/berth-example-webhook" "$root/usr/bin/berth-example-webhook"
install -D -m 0755 "$OUT/bin/berth-agent" "$root/usr/lib/berth/berth-agent"
install -D -m 0644 packaging/config/config.yaml "$root/etc/berth/config.yaml"
# The operator console's pages (docs/console.md, "Files"): the static binary has no resource bundle beside it.
install -d -m 0755 "$root/usr/share/berth/console"
install -m 0644 Sources/BerthConsole/Resources/* "$root/usr/share/berth/console/"
install -D -m 0644 packaging/systemd/berth.service "$root/lib/systemd/system/berth.service"
install -d -m 0755 "$root/usr/share/man/man1" "$root/usr/share/doc/berth"
# Each command's own --help as a sub-section, after the fixed FILES/SIGNALS/SEE ALSO text.
include="$root/berth.1.include"
{
    printf '[COMMANDS]\n'
    for command in serve keygen "config check" "audit decode" healthcheck; do
        printf '.SS "berth %s"\n.nf\n' "$command"
        # shellcheck disable=SC2086
        "$OUT/bin/berth" $command --help | sed -e 's/\\/\\e/g' -e 's/^\./\\\&./'
        printf '.fi\n'
    done
    printf '\n'
    cat packaging/debian/berth.1.include
} > "$include"
help2man --no-info --section 1 --name "SSH server that gives every user a container of their own" \
    --include "$include" --version-string "$version" \
    --output "$root/usr/share/man/man1/berth.1" "$OUT/bin/berth" \
    || die "help2man could not make the man page"
grep -q '^\.SS "berth serve"' "$root/usr/share/man/man1/berth.1" \
    || die "the man page lacks the command list (berth --help changed?)"
rm -f "$include"
gzip -9n "$root/usr/share/man/man1/berth.1"
install -m 0644 README.md "$root/usr/share/doc/berth/README.md"
install -m 0644 docs/configuration.md docs/security.md docs/packaging.md "$root/usr/share/doc/berth/"

install -d -m 0755 "$root/DEBIAN"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"

deb="$OUT/berth_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null || die "dpkg-deb failed"
log "built $deb ($(stat -c %s "$deb") bytes)"
