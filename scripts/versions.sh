#!/usr/bin/env bash
# Print `KEY=value` for every row of docs/versions.md; `eval "$(scripts/versions.sh)"` loads them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
awk -F'|' '/^\| / && $3 ~ /^ *[A-Z][A-Z0-9_]+ *$/ { gsub(/ /,"",$3); v=$4; gsub(/^ +| +$/,"",v); printf "%s=%s\n", $3, v }' "$here/docs/versions.md"
