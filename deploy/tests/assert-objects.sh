#!/usr/bin/env bash
# Checks that a Helm render (helm template, or helm upgrade --dry-run --debug output) contains
# each KIND/NAME as a real object: a YAML document with `kind: KIND` and `metadata.name: NAME`
# (not merely the name somewhere, such as an envFrom reference).
#
# Usage: deploy/tests/assert-objects.sh RENDER_FILE KIND/NAME...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 RENDER_FILE KIND/NAME..." >&2; exit 2; }
file=$1; shift
[ -s "$file" ] || { echo "assert-objects: $file is missing or empty" >&2; exit 1; }
missing=0
for object in "$@"; do
  kind=${object%%/*}
  name=${object#*/}
  if awk -v kind="$kind" -v name="$name" '
      /^---/ { k = 0; meta = 0; n = 0 }
      $0 == "kind: " kind { k = 1 }
      /^metadata:/ { meta = 1; next }
      /^[^ #]/ { meta = 0 }
      meta && $0 == "  name: " name { n = 1 }
      k && n { found = 1 }
      END { exit found ? 0 : 1 }' "$file"; then
    echo "ok   $kind $name"
  else
    echo "MISSING $kind $name in $file" >&2
    missing=1
  fi
done
exit "$missing"
