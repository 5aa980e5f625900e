#!/usr/bin/env bash
# The PrometheusRule the operator renders, checked by Prometheus's own tool: `promtool check
# rules` on the rules as rendered, and `promtool test rules` on tests/alerts/*.test.yaml
# (series in, alerts out, for every alert); and every query of the Grafana dashboard parsed
# by promtool too. Installs Debian's prometheus package for promtool
# when it is missing.
#
#   scripts/check-alerts.sh [PHOTO_OPERATOR_BIN]   (default target/debug/photo-operator)
#   PYTHON: an interpreter with PyYAML (default python3; test-deploy.sh passes its venv's)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-$PWD/target}/debug/photo-operator}
if ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus package (promtool)"
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" render -f tests/alerts/site.yaml >"$work/rendered.yaml"
"${PYTHON:-python3}" - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
rules = [d for d in yaml.safe_load_all(open(f"{work}/rendered.yaml"))
         if d and d.get("kind") == "PrometheusRule"]
if len(rules) != 1:
    sys.exit(f"expected one PrometheusRule in the render of tests/alerts/site.yaml, got {len(rules)}")
spec = rules[0]["spec"]
yaml.safe_dump(spec, open(f"{work}/as-rendered.yaml", "w"))
for group in spec["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(spec, open(f"{work}/rules.yaml", "w"))
alerts = sorted(r["alert"] for g in spec["groups"] for r in g["rules"] if "alert" in r)
import glob
tested = "".join(open(f).read() for f in glob.glob("tests/alerts/*.test.yaml"))
missing = [a for a in alerts if f"alertname: {a}" not in tested]
if missing:
    sys.exit(f"alerts without a promtool test in tests/alerts/*.test.yaml: {', '.join(missing)}")
print(f"alerts rendered: {', '.join(alerts)}")
PY
promtool check rules "$work/as-rendered.yaml"

# Every query of the Grafana dashboard parses as PromQL: each becomes a recording rule that
# promtool checks, with Grafana's variables given values of their kind.
"${PYTHON:-python3}" - "$work" <<'PY'
import json, sys, yaml
work = sys.argv[1]
dash = json.load(open("charts/photo-operator/dashboards/photostack.json"))
values = {"$__rate_interval": "5m", "$operator_namespace": "photo-system",
          "$namespace": "photos", "$site": "photos-metrics"}
rules = []
for panel in dash["panels"]:
    for n, target in enumerate(panel.get("targets", [])):
        expr = target["expr"]
        for var in sorted(values, key=len, reverse=True):
            expr = expr.replace(var, values[var])
        if "$" in expr:
            sys.exit(f"panel {panel.get('title')!r}: a variable the check cannot fill: {expr}")
        rules.append({"record": f"dashboard:panel_{panel['id']}_{n}", "expr": expr})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(f"{work}/dashboard.yaml", "w"))
print(f"dashboard: {len(rules)} queries of {len(dash['panels'])} panels")
PY
promtool check rules "$work/dashboard.yaml"
cp tests/alerts/*.test.yaml "$work/"
promtool test rules "$work"/*.test.yaml
