#!/usr/bin/env bash
# Vendors the SPARQL editor (YASGUI, @triply/yasgui, MIT) from npm into
# src/candela_review/static/vendor/yasgui for the question page, so nothing is loaded from a CDN.
# Run again to update; the result is committed.
set -euo pipefail
VERSION="${1:-4.2.28}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "@triply/yasgui@${VERSION}" --silent >/dev/null && tar xzf triply-yasgui-*.tgz)
dest="$here/src/candela_review/static/vendor/yasgui"
rm -rf "$dest"
mkdir -p "$dest"
cp "$tmp/package/build/yasgui.min.js" "$tmp/package/build/yasgui.min.css" \
   "$tmp/package/build/yasgui.min.js.LICENSE.txt" "$tmp/package/LICENSE.txt" "$dest/"
# the bundle ends with a source-map comment; the map (4 MB) is not vendored
sed -i 's|//# sourceMappingURL=yasgui.min.js.map||' "$dest/yasgui.min.js"
echo "@triply/yasgui ${VERSION} -> $dest"
