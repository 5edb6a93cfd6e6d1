#!/usr/bin/env bash
# Fetch the prebuilt OHIF viewer (npm package @ohif/app, pinned version and integrity hash) into
# var/ohif/dist, trimmed of what bonescan does not use. Served at /viewer/ by the MONAI Label
# server (apps/bonescan/lib/viewer.py) with our app-config.js, mode and extension
# (apps/bonescan/ohif/). Nothing of OHIF goes into git.
#
#   bash scripts/fetch_ohif.sh            # quiet, does nothing when the pinned version is there
#
# Needs npm (Debian: apt-get install npm) and the npm registry, only the first time.
set -euo pipefail

VERSION=3.13.2
# npm view @ohif/app@3.13.2 dist.integrity
INTEGRITY='sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=='

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${OHIF_DIR:-$ROOT/var/ohif}"
STAMP="$TARGET/dist/.bonescan-ohif-version"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION $INTEGRITY" ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "fetch_ohif.sh: npm is missing (apt-get install npm)" >&2; exit 1; }

echo "Fetching OHIF viewer @ohif/app@$VERSION into $TARGET"
mkdir -p "$TARGET"
work="$(mktemp -d "$TARGET/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack "@ohif/app@$VERSION" --silent --no-fund --no-audit >/dev/null)
tarball="$work/ohif-app-$VERSION.tgz"
[ -f "$tarball" ] || { echo "fetch_ohif.sh: npm pack did not produce $tarball" >&2; exit 1; }

algo="${INTEGRITY%%-*}"
expected="${INTEGRITY#*-}"
actual="$(openssl dgst -"$algo" -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$expected" ]; then
    echo "fetch_ohif.sh: integrity check failed for @ohif/app@$VERSION" >&2
    echo "  expected $INTEGRITY" >&2
    echo "  got      $algo-$actual" >&2
    exit 1
fi

mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked" package/dist package/LICENSE
dist="$work/unpacked/package/dist"
# Unused by bonescan: AI runtime for segment-anything (136 MB), slide microscopy, Google Cloud
# data source, service worker, demo deploy files.
rm -rf "$dist/ort" "$dist/dicom-microscopy-viewer" "$dist/google.js" "$dist/_headers" "$dist/_redirects" \
    "$dist/serve.json" "$dist/silent-refresh.html" "$dist/oidc-client.min.js"
cp "$work/unpacked/package/LICENSE" "$dist/LICENSE.ohif"
echo "$VERSION $INTEGRITY" > "$dist/.bonescan-ohif-version"

rm -rf "$TARGET/dist.old"
[ -d "$TARGET/dist" ] && mv "$TARGET/dist" "$TARGET/dist.old"
mv "$dist" "$TARGET/dist"
rm -rf "$TARGET/dist.old"
echo "OHIF $VERSION ready in $TARGET/dist ($(du -sh "$TARGET/dist" | cut -f1))"
