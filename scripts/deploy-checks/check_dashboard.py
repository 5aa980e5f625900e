#!/usr/bin/env python3
"""Check the Grafana dashboard: valid JSON, up to date with gen_dashboard.py, and every
`photo_*` metric it queries is registered by photo-server or the operator.

Metric names are derived from the prometheus-client registries: `Registry::with_prefix(P)`
plus each `register("name", ...)`, with `_total` for counters and `_bucket/_sum/_count` for
histograms (OpenMetrics naming).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASH = ROOT / "charts/photo-operator/dashboards/photostack.json"
SOURCES = [ROOT / "photo-server/src/metrics.rs", ROOT / "operator/src/metrics.rs"]


def registered():
    names = set()
    for f in SOURCES:
        text = f.read_text()
        prefix = re.search(r'Registry::with_prefix\("([^"]+)"\)', text).group(1)
        for name in re.findall(r'register\(\s*"([a-z0-9_]+)"', text):
            base = f"{prefix}_{name}"
            names |= {base, base + "_total", base + "_bucket", base + "_sum", base + "_count"}
    return names


def check_rules(files, known):
    """Fail on PrometheusRule expressions (from `photo-operator render`) on unknown metrics."""
    import yaml
    standard = {"up"}  # added by Prometheus to every scrape
    # Exported by other components the backup alerts rely on (documented in the README):
    standard |= {
        "kube_cronjob_status_last_successful_time",  # kube-state-metrics
        "kube_cronjob_created",  # kube-state-metrics
        "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",  # Barman Cloud plugin
    }
    bad = []
    for f in files:
        for doc in yaml.safe_load_all(Path(f).read_text()):
            if not doc or doc.get("kind") != "PrometheusRule":
                continue
            for g in doc["spec"]["groups"]:
                for r in g["rules"]:
                    for m in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", r["expr"]):
                        if m not in known and m not in standard:
                            bad.append(f"{f}: rule {r.get('alert') or r.get('record')}: metric {m} is not exported "
                                       f"by photo-server (its metrics are prefixed photo_) nor a known exporter")
    for b in sorted(set(bad)):
        print(f"FAIL {b}")
    print(f"alert rules: every metric they query is exported: {not bad}")
    return not bad


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--rules":
        return 0 if check_rules(sys.argv[2:], registered()) else 1
    ok = True
    text = DASH.read_text()
    dash = json.loads(text)
    fresh = subprocess.run([sys.executable, str(ROOT / "scripts/deploy-checks/gen_dashboard.py"), "-"],
                           check=True, capture_output=True, text=True).stdout
    if fresh != text:
        print(f"FAIL {DASH.relative_to(ROOT)} is stale: run scripts/deploy-checks/gen_dashboard.py")
        ok = False
    known = registered()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v.get("definition", "") for v in dash["templating"]["list"]]
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\bphoto_[a-z0-9_]+", e))
    for m in sorted(used - known):
        print(f"FAIL dashboard queries {m}, which neither photo-server nor the operator registers")
        ok = False
    print(f"dashboard: {len(dash['panels'])} panels, {len(exprs)} queries, {len(used)} photo metrics, "
          f"all registered: {not (used - known)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
