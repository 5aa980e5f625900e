#!/usr/bin/env bash
# Peak memory, open descriptors and timings of photo-server under hostile
# clients: the attacks of photo-server/tests/hostile*.rs (slow, stalled and
# trickled requests, connection floods, decompression and scan bombs, huge
# multipart bodies and part headers, render floods and hang-ups, login floods
# and lockouts, slow readers of large originals), each against a separate
# server process, one at a time, with the figures each test measured.
#
#   bash bench/hostile.sh          # uses the test build (as scripts/test-all.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
for suite in photo-server/tests/hostile*.rs; do
  suite=$(basename "$suite" .rs)
  HOSTILE_REPORT=$report cargo test --locked -p photo-server --test "$suite" -- --test-threads=1 >&2
done
printf '| figure | measured |\n|---|---|\n'
cat "$report"
