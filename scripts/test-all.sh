#!/usr/bin/env bash
# Runs every test of the project. Installs what it needs on a fresh Debian
# machine (PostgreSQL binaries for the database tests, Chromium and
# playwright-core for the browser tests, helm and the schema validators for
# the deployment checks), so this one command is what CI runs and what a
# developer runs. Screenshots of the browser tests land in tests/e2e/output/.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

step "prerequisites"
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing PostgreSQL (the tests start their own throwaway server)"
  apt_install postgresql
fi
[ -x /usr/bin/chromium ] || { echo "installing Chromium for the browser tests"; apt_install chromium; }
command -v openssl >/dev/null || { echo "installing openssl (certificates for the database TLS test)"; apt_install openssl; }
command -v npm >/dev/null || apt_install nodejs npm
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo build --workspace --locked --bins
cargo test --workspace --locked

step "browser tests (headless Chromium)"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/e2e && PHOTO_SERVER_BIN="$target_dir/debug/photo-server" npm test)

step "deployment checks (chart, install manifests, samples, Dockerfiles)"
# The third-party CRDs live in shared/ beside the repository.
if [ -z "${PHOTOSTACK_CRDS:-}" ] && [ -d ../shared/crds ]; then
  export PHOTOSTACK_CRDS=$(cd ../shared/crds && pwd)
fi
PHOTO_OPERATOR_BIN="$target_dir/debug/photo-operator" bash scripts/test-deploy.sh

step "operator end-to-end tests (a Kubernetes cluster from KUBECONFIG; skipped without one)"
# operator/tests/e2e.rs is compiled by the test step above; this runs it when a cluster answers.
bash scripts/operator-e2e.sh
