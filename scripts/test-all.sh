#!/usr/bin/env bash
# Runs every test of the project. Installs what it needs on a fresh Debian
# machine (PostgreSQL binaries for the database tests, Chromium and
# playwright-core for the browser tests, helm and the schema validators for
# the deployment checks), so this one command is what CI runs and what a
# developer runs. Screenshots of the browser tests land in tests/e2e/output/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's title, and the time the one before it took (the cold-build budget is measured here).
step_started=$SECONDS step_name=
step() {
  [ -z "$step_name" ] || printf '(%s: %d s)\n' "$step_name" $((SECONDS - step_started))
  step_started=$SECONDS step_name=$1
  printf '\n== %s ==\n' "$*"
}

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
# nasm: libjpeg-turbo's SIMD code in photo-server's JPEG decoder (the build works without it,
# slower; install it before the first build, which is when the decoder is compiled).
command -v nasm >/dev/null || { echo "installing nasm (libjpeg-turbo's SIMD code)"; apt_install nasm; }
command -v openssl >/dev/null || { echo "installing openssl (certificates for the database TLS test)"; apt_install openssl; }
# An S3-protocol server for the restore drill (photo-server/tests/backup.rs): moto, in a venv.
tools=${CARGO_TARGET_DIR:-$PWD/target}/test-tools
if [ ! -x "$tools/venv/bin/moto_server" ]; then
  echo "installing moto (an S3 server for the restore drill)"
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv' 2>/dev/null || apt_install python3-venv
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q 'moto[server]==5.1.18'
fi
export PHOTO_TEST_S3_SERVER="$tools/venv/bin/moto_server"
command -v npm >/dev/null || apt_install nodejs npm
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The third-party CRDs (CloudNativePG, cert-manager, Prometheus Operator) the schema checks
# validate against: PHOTOSTACK_CRDS, else ../shared/crds beside the checkout.
if [ -z "${PHOTOSTACK_CRDS:-}" ] && [ -d ../shared/crds ]; then
  PHOTOSTACK_CRDS=$(cd ../shared/crds && pwd)
  export PHOTOSTACK_CRDS
fi
skipped=
if [ -n "${PHOTOSTACK_CRDS:-}" ]; then
  bash scripts/fetch-crds.sh --verify "$PHOTOSTACK_CRDS"
else
  skipped="SKIPPED: schema checks against the CloudNativePG, cert-manager and Prometheus Operator CRDs (no PHOTOSTACK_CRDS, no ../shared/crds): scripts/fetch-crds.sh fetches them"
  echo "$skipped"
fi

# The stand-in Kubernetes API server the operator's end-to-end tier runs against (unless
# KUBECONFIG names a cluster): PHOTOSTACK_KUBE_PEER, else ../shared/tools/kube-peer.
if [ -z "${PHOTOSTACK_KUBE_PEER:-}" ] && [ -d ../shared/tools/kube-peer ]; then
  PHOTOSTACK_KUBE_PEER=$(cd ../shared/tools/kube-peer && pwd)
  export PHOTOSTACK_KUBE_PEER
fi
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "${PHOTOSTACK_KUBE_PEER:-/nonexistent}/rusternetes.gz" ]; then
  skipped_e2e="SKIPPED: the operator's end-to-end tests (no KUBECONFIG, and no stand-in API server in PHOTOSTACK_KUBE_PEER or ../shared/tools/kube-peer)"
  echo "$skipped_e2e"
  skipped="${skipped:+$skipped
}$skipped_e2e"
fi

step "format"
cargo fmt --all -- --check

step "structure (no import cycle between files or folders; no source file over 800 lines)"
python3 scripts/check-cycles.py photo-server operator drill harness
long_files=$(find photo-server/src operator/src drill/src harness/src -name '*.rs' \
  ! -name tests.rs ! -path '*/tests/*' -exec awk 'END { if (NR > 800) print FILENAME ": " NR " lines" }' {} \;)
if [ -n "$long_files" ]; then
  echo "source files over 800 lines (split them by concern; tests go in a sibling tests.rs):"
  echo "$long_files"
  exit 1
fi

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The binaries' build below and the tests' build must be one build (workspace-hack/Cargo.toml).
bash scripts/check-features.sh

step "build (debug binaries: the drills, browser tests and images run them)"
cargo build --workspace --locked --bins

step "tests"
cargo test --workspace --locked

step "drills (short form: replicas, a zone, the database and the volume failing under load)"
# scripts/drill.sh installs HAProxy; the report and timelines land in drill/out/short/.
DRILL_SKIP_BUILD=1 bash scripts/drill.sh short

step "browser tests (headless Chromium)"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/e2e && PHOTO_SERVER_BIN="$target_dir/debug/photo-server" npm test)

step "container images, started in the background (podman: both Dockerfiles built and run, dev profile)"
# Relinks the binaries built above inside the images, and runs the pod the operator renders
# through podman kube play; scripts/images.sh --release is the full release build users get.
# Mostly downloads and waiting, so it runs beside the two steps below (which wait on an API
# server or run Python); its log is printed after them.
images_log=$(mktemp)
bash scripts/images.sh >"$images_log" 2>&1 &
images_pid=$!
trap 'kill "$images_pid" 2>/dev/null || true' EXIT

step "deployment checks (chart, install manifests, samples, Dockerfiles)"
PHOTO_OPERATOR_BIN="$target_dir/debug/photo-operator" bash scripts/test-deploy.sh

step "operator end-to-end tests (the stand-in API server, or KUBECONFIG's cluster)"
# operator/tests/{e2e,scale}.rs are compiled by the test step above; this runs them: the
# functional suite, and 50 PhotoSites on a cluster with CloudNativePG, with their figures.
bash scripts/operator-e2e.sh

step "container images (the background run's log; this step's time is the wait for it)"
images_rc=0
wait "$images_pid" || images_rc=$?
trap - EXIT
cat "$images_log"
rm -f "$images_log"
[ "$images_rc" = 0 ] || { echo "container images: scripts/images.sh failed (exit $images_rc)"; exit 1; }

step "done"
echo "all tests passed in $SECONDS s"
[ -z "$skipped" ] || echo "$skipped"
