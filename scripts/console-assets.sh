#!/usr/bin/env bash
# The Wave Console's browser libraries, from the npm registry into the Python package.
#
# Versions and sha512 integrity hashes are pinned in web/console/package-lock.json; `npm ci`
# installs exactly those (and fails on a hash mismatch). The files the console serves are copied
# into src/waveidp/console/static/vendor/ (git-ignored, included in the wheel), with each
# package's licence. Nothing is fetched at run time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
web="$root/web/console"
dest="$root/src/waveidp/console/static/vendor"
command -v npm >/dev/null || { echo "console-assets: npm is needed (apt-get install npm)" >&2; exit 2; }
(cd "$web" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
nm="$web/node_modules"
tmp="$dest.tmp"
rm -rf "$tmp" && mkdir -p "$tmp"
cp "$nm/htmx.org/dist/htmx.min.js" "$tmp/htmx.min.js"
cp "$nm/htmx.org/LICENSE" "$tmp/htmx.LICENSE"
cp "$nm/uplot/dist/uPlot.iife.min.js" "$tmp/uPlot.iife.min.js"
cp "$nm/uplot/dist/uPlot.min.css" "$tmp/uPlot.min.css"
cp "$nm/uplot/LICENSE" "$tmp/uPlot.LICENSE"
cp "$nm/eventsource-parser/dist/index.js" "$tmp/eventsource-parser.js"
sed 's#"\./index\.js"#"./eventsource-parser.js"#' "$nm/eventsource-parser/dist/stream.js" > "$tmp/eventsource-parser-stream.js"
cp "$nm/eventsource-parser/LICENSE" "$tmp/eventsource-parser.LICENSE"
node -e '
const lock = require(process.argv[1]);
const out = {};
for (const [k, v] of Object.entries(lock.packages)) if (k) out[k.replace("node_modules/", "")] = {version: v.version, integrity: v.integrity};
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
' "$web/package-lock.json" > "$tmp/versions.json"
rm -rf "$dest" && mv "$tmp" "$dest"
echo "console assets: $(ls "$dest" | wc -l) files in ${dest#$root/}"
