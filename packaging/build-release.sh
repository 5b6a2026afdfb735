#!/usr/bin/env bash
# Builds the release binaries the package and the image ship into packaging/out/bin:
#   berth and berth-example-webhook: -c release with the Swift runtime linked in
#   (--static-swift-stdlib), so the target needs no toolchain, only the libraries of
#   packaging/common.sh's SERVER_PACKAGES; in their own scratch path (.build-release) so the
#   debug .build stays warm;
#   berth-agent: the fully static agent of images/build-agent.sh (images/out/berth-agent).
set -euo pipefail
cd "$(dirname "$0")/.."
source packaging/common.sh
SECONDS=0

command -v swift >/dev/null 2>&1 || die "swift is not on PATH"
# The static Foundation links libcurl (URLSession) by name: the development package has the link.
if ! ls /usr/lib/*/libcurl.so >/dev/null 2>&1; then
    log "installing libcurl4-openssl-dev (to link Foundation statically)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libcurl4-openssl-dev >/dev/null \
        || die "cannot install libcurl4-openssl-dev"
fi
flags=(-c release --static-swift-stdlib --scratch-path .build-release)
for product in berth berth-example-webhook; do
    log "swift build ${flags[*]} --product $product"
    swift build "${flags[@]}" --product "$product" || die "release build of $product failed"
done
bin=$(swift build "${flags[@]}" --show-bin-path)
images/build-agent.sh

mkdir -p "$OUT/bin"
for product in berth berth-example-webhook; do
    install -m 0755 "$bin/$product" "$OUT/bin/$product.tmp"
    strip "$OUT/bin/$product.tmp" 2>/dev/null || log "strip not available; keeping symbols"
    # The point of the static stdlib: no libswift*.so may be needed at run time.
    if ldd "$OUT/bin/$product.tmp" | grep -q 'libswift\|libFoundation\|libdispatch\|not found'; then
        die "$product still needs Swift runtime libraries: $(ldd "$OUT/bin/$product.tmp" | tr '\n' ' ')"
    fi
    mv -f "$OUT/bin/$product.tmp" "$OUT/bin/$product"
done
install -m 0755 images/out/berth-agent "$OUT/bin/berth-agent"
log "release binaries in $OUT/bin ($(berth_version)) in ${SECONDS}s: $(cd "$OUT/bin" && stat -c '%n %s' berth berth-example-webhook berth-agent | tr '\n' ' ')"
