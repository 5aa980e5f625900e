#!/usr/bin/env bash
# Peak memory, open descriptors and timings of photo-server under hostile
# clients: the attacks of photo-server/tests/hostile.rs (slow and stalled
# requests, connection floods, decompression bombs, huge multipart bodies,
# login floods, slow readers of large originals), each against a separate
# server process, one at a time, with the figures each test measured.
#
#   bash bench/hostile.sh          # uses the test build (as scripts/test-all.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp)
trap 'rm -f "$report"' EXIT
HOSTILE_REPORT=$report cargo test --locked -p photo-server --test hostile -- --test-threads=1 >&2
printf '| figure | measured |\n|---|---|\n'
cat "$report"
