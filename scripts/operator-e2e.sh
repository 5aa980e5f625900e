#!/usr/bin/env bash
# End-to-end tests of photo-operator (operator/tests/e2e.rs) against the Kubernetes cluster
# that KUBECONFIG (or ~/.kube/config) points at: a kind cluster, a real one, or a bare
# kube-apiserver + etcd (no node is needed: no pod ever has to run). The suite installs the
# PhotoSite CRD (and CloudNativePG's Cluster CRD when missing, from PHOTOSTACK_CRDS), starts
# the locally built operator watching a namespace of its own, and deletes that namespace at
# the end. PHOTO_E2E_OPERATOR=installed tests the operator installed in the cluster instead.
#
# Without a cluster it prints one line saying so and exits 0, so scripts/test-all.sh can run
# it everywhere. A KUBECONFIG set explicitly whose API server does not answer is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PHOTOSTACK_CRDS:-}" ] && [ -d ../shared/crds ]; then
  PHOTOSTACK_CRDS=$(cd ../shared/crds && pwd)
  export PHOTOSTACK_CRDS
fi

kubectl=${KUBECTL:-}
if [ -z "$kubectl" ]; then
  if command -v kubectl >/dev/null; then kubectl=kubectl
  elif [ -x target/deploy-tools/bin/kubectl ]; then kubectl=target/deploy-tools/bin/kubectl
  fi
fi

config=${KUBECONFIG:-$HOME/.kube/config}
if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$config" ] && [ -z "${KUBERNETES_SERVICE_HOST:-}" ]; then
  echo "operator e2e: SKIPPED (no cluster: KUBECONFIG unset and no ~/.kube/config; see README 'Operator end-to-end tests')"
  exit 0
fi
if [ -n "$kubectl" ]; then
  if ! "$kubectl" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    if [ -n "${KUBECONFIG:-}" ]; then
      echo "operator e2e: FAILED: KUBECONFIG=$KUBECONFIG is set but its API server does not answer"
      exit 1
    fi
    echo "operator e2e: SKIPPED (the API server of $config does not answer)"
    exit 0
  fi
fi

context=$config
[ -n "$kubectl" ] && context=$("$kubectl" config current-context 2>/dev/null || echo "$config")
echo "operator e2e: running against $context"
cargo test -p photo-operator --locked --test e2e -- --ignored --nocapture --test-threads=1
