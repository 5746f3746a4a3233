#!/usr/bin/env bash
# Vendors the map library (Leaflet, BSD-2-Clause) from npm into
# src/candela_review/static/vendor/leaflet, so the review pages never load anything from a CDN. Run again to update; the result is committed.
set -euo pipefail
VERSION="${1:-1.9.4}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "leaflet@${VERSION}" --silent >/dev/null && tar xzf leaflet-*.tgz)
dest="$here/src/candela_review/static/vendor/leaflet"
rm -rf "$dest"
mkdir -p "$dest/images"
cp "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/LICENSE" "$dest/"
cp "$tmp/package/dist/images/"*.png "$dest/images/"
echo "leaflet ${VERSION} -> $dest"
