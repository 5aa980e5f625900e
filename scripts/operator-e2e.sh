#!/usr/bin/env bash
# End-to-end tests of photo-operator against a live Kubernetes API server:
# operator/tests/e2e.rs (the functional suite) and operator/tests/scale.rs (many PhotoSites at
# once: settle time, applies per child, quiet afterwards, operator memory).
#
#   scripts/operator-e2e.sh          short form (the test command): the functional suite, and
#                                    50 PhotoSites with CloudNativePG's CRDs (no Barman Cloud
#                                    plugin), watched 10 s for writes after settling
#   scripts/operator-e2e.sh --long   the benchmark: 50 PhotoSites in each of three CRD
#                                    combinations, watched 30 s, and 200 PhotoSites
#
# Where it runs:
# - KUBECONFIG set: that cluster (kind, EKS, ...). The functional suite runs; the scale
#   scenario only with PHOTO_E2E_SCALE=1 (it creates PHOTO_E2E_SCALE_SITES sites, default 50,
#   in a namespace of its own, with whatever CRDs the cluster has). PHOTO_E2E_OPERATOR=installed
#   tests the operator installed in the cluster instead of a local one.
# - otherwise: the stand-in API server of ../shared/tools/kube-peer (or PHOTOSTACK_KUBE_PEER),
#   a fresh one for each run, started and stopped here (no pod ever runs there; its known
#   differences are skipped by name, see the test's output). Without it this prints one
#   SKIPPED line and exits 0; CI (.ci/run) refuses to run without it.
set -euo pipefail
cd "$(dirname "$0")/.."

long=
case "${1:-}" in
  --long) long=1 ;;
  "") ;;
  *) echo "usage: $0 [--long]" >&2; exit 2 ;;
esac

if [ -z "${PHOTOSTACK_CRDS:-}" ] && [ -d ../shared/crds ]; then
  PHOTOSTACK_CRDS=$(cd ../shared/crds && pwd)
  export PHOTOSTACK_CRDS
fi

cargo_test() { # TEST-TARGET: run one ignored suite of operator/tests
  # --workspace: the features of the test command's build, so nothing is compiled again
  cargo test --workspace --locked --test "$1" -- --ignored --nocapture --test-threads=1
}

if [ -n "${KUBECONFIG:-}" ]; then
  kubectl=${KUBECTL:-}
  if [ -z "$kubectl" ]; then
    if command -v kubectl >/dev/null; then kubectl=kubectl
    elif [ -x target/deploy-tools/bin/kubectl ]; then kubectl=target/deploy-tools/bin/kubectl
    fi
  fi
  if [ -n "$kubectl" ] && ! "$kubectl" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    echo "operator e2e: FAILED: KUBECONFIG=$KUBECONFIG is set but its API server does not answer"
    exit 1
  fi
  echo "operator e2e: running against the cluster of KUBECONFIG=$KUBECONFIG"
  cargo_test e2e
  if [ "${PHOTO_E2E_SCALE:-}" = 1 ]; then
    cargo_test scale
  else
    echo "operator e2e: scale scenario not run on a real cluster (PHOTO_E2E_SCALE=1 runs it)"
  fi
  exit 0
fi

peer=${PHOTOSTACK_KUBE_PEER:-../shared/tools/kube-peer}
if [ ! -f "$peer/rusternetes.gz" ]; then
  echo "operator e2e: SKIPPED (no cluster: KUBECONFIG unset, and no stand-in API server at $peer; set PHOTOSTACK_KUBE_PEER or KUBECONFIG)"
  exit 0
fi
if [ -z "${PHOTOSTACK_CRDS:-}" ]; then
  echo "operator e2e: the stand-in runs need the third-party CRDs: set PHOTOSTACK_CRDS (scripts/fetch-crds.sh)" >&2
  exit 1
fi
peer=$(cd "$peer" && pwd)
state=${CARGO_TARGET_DIR:-$PWD/target}/kube-peer
pid=
stop_peer() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi; }
trap stop_peer EXIT

start_peer() { # NAME: a fresh stand-in with its state under $state/NAME
  # As the kit's start.sh starts it, plus --disable-proxy: its kube-proxy, wherever iptables
  # exists (podman brings it), adds NAT rules that masquerade every locally originated
  # connection, loopback included, and leaves them behind when it exits; every later test on
  # the machine then sees its clients come from the host's address instead of 127.0.0.1.
  local dir=$state/$1 port
  stop_peer
  rm -rf "$dir"
  mkdir -p "$dir"
  gzip -dc "$peer/rusternetes.gz" > "$dir/rusternetes"
  chmod +x "$dir/rusternetes"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$dir" && exec ./rusternetes --bind-address "127.0.0.1:$port" --data-dir "$dir/cluster.db" \
     --volume-dir "$dir/volumes" --skip-auth --disable-proxy --log-level error) >"$dir/api.log" 2>&1 &
  pid=$!
  cat > "$dir/kubeconfig" <<K
apiVersion: v1
kind: Config
clusters: [{name: peer, cluster: {server: "http://127.0.0.1:$port"}}]
contexts: [{name: peer, context: {cluster: peer, user: peer}}]
current-context: peer
users: [{name: peer, user: {token: unused}}]
K
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "the stand-in API server exited: $(tail -3 "$dir/api.log")" >&2; exit 1; }
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 ||
    { echo "the stand-in API server did not answer in 60 s: $(tail -3 "$dir/api.log")" >&2; exit 1; }
  export KUBECONFIG=$dir/kubeconfig PHOTO_E2E_API_SERVER=kube-peer
}

echo "operator e2e: functional suite against the stand-in API server ($peer)"
start_peer functional
cargo_test e2e

report=$state/scale-report.jsonl
rm -f "$report"
export PHOTO_E2E_SCALE_REPORT=$report
# The short form: the usual cluster (CloudNativePG without its Barman Cloud plugin, the case
# that once never settled); the long form: no optional CRDs, that one, and every optional CRD.
quiet=10 sizes=50 combinations=("cnpg-v1.30.0")
if [ -n "$long" ]; then
  quiet=30 sizes="50 200"
  combinations=("" "cnpg-v1.30.0" "cnpg-v1.30.0 prometheus-operator-v0.93.0 barman-cloud-plugin-v0.14.0")
fi
for sites in $sizes; do
  for crds in "${combinations[@]}"; do
    # 200 sites: every optional API (the most children)
    [ "$sites" = 200 ] && [ "${crds##* }" != barman-cloud-plugin-v0.14.0 ] && continue
    start_peer "scale-$sites"
    PHOTO_E2E_INSTALL_CRDS=$crds PHOTO_E2E_SCALE_SITES=$sites PHOTO_E2E_SCALE_QUIET=$quiet \
      cargo_test scale
  done
done
stop_peer

echo
echo "operator scale figures (stand-in API server; a benchmark, not a pass/fail)"
python3 - "$report" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
yn = lambda b: "yes" if b else "no"
print(f"{'sites':>5} {'CNPG':>4} {'Prom':>4} {'Barman':>6} {'children':>8} {'settled s':>9} "
      f"{'applies/child':>13} {'quiet applies':>13} {'status writes':>13} {'RSS MiB':>7}")
for r in rows:
    print(f"{r['sites']:>5} {yn(r['cloudnative_pg']):>4} {yn(r['prometheus']):>4} "
          f"{yn(r['barman_cloud']):>6} {r['children']:>8} {r['settled_seconds']:>9.1f} "
          f"{r['applies_per_child']:>13.2f} {str(r['quiet_applies']) + ' in ' + str(r['quiet_seconds']) + ' s':>13} "
          f"{r['status_writes']:>13} {r['peak_rss_kib'] / 1024:>7.0f}")
PY
