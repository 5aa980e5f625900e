#!/usr/bin/env bash
# Fails when a dependency would be built with other features for the tests than for the
# binaries (`cargo test --workspace` against `cargo build --workspace --bins`): every such
# crate, and everything above it, would then be compiled twice. The fix is to ask for the
# printed features in workspace-hack/Cargo.toml (see the comment there).
set -euo pipefail
cd "$(dirname "$0")/.."
features() {
  cargo tree --workspace --locked --prefix none -f '{p} [{f}]' -e "$1" | sed 's/ (\*)$//' | sort -u
}
normal=$(features normal,build)
with_dev=$(features normal,build,dev)
differ=$(comm -23 <(printf '%s\n' "$normal") <(printf '%s\n' "$with_dev"))
if [ -n "$differ" ]; then
  echo "These crates get more features in the tests' build than in the binaries' build:" >&2
  while read -r line; do
    name=${line%% *}
    echo "  binaries: $line" >&2
    printf '%s\n' "$with_dev" | grep "^$name " | sed 's/^/  tests:    /' >&2
  done <<<"$differ"
  echo "Add the tests' features to workspace-hack/Cargo.toml, or both builds compile them." >&2
  exit 1
fi
echo "features: the binaries' and the tests' builds are the same build"
