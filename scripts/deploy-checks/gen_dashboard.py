#!/usr/bin/env python3
"""Generate charts/photo-operator/dashboards/photostack.json, the Grafana dashboard.

Golden signals of every photo site (traffic, errors, latency percentiles, saturation: CPU,
cache fill, render queue) and the operator's health. Metric names follow the registries in
photo-server/src/metrics.rs (prefix `photo_`) and operator/src/metrics.rs (prefix
`photo_operator_`); check_dashboard.py fails when a name here is not registered there.

Usage: gen_dashboard.py [OUT]   (default: the chart's file; `-` for stdout)
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "charts/photo-operator/dashboards/photostack.json"

SITE = 'namespace=~"$namespace",service=~"$site"'
DS = {"type": "prometheus", "uid": "${datasource}"}

panels = []
_id = 0
_y = 0


def row(title):
    global _id, _y
    _id += 1
    panels.append({"type": "row", "id": _id, "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": _y}, "panels": []})
    _y += 1


def panel(title, targets, unit="short", x=0, w=8, h=8, kind="timeseries", desc="", stack=False):
    global _id
    _id += 1
    p = {
        "type": kind,
        "id": _id,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": _y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
        "targets": [
            {"datasource": DS, "refId": chr(ord("A") + i), "expr": e, "legendFormat": l}
            for i, (e, l) in enumerate(targets)
        ],
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "fillOpacity": 10, "lineWidth": 1,
            "stacking": {"mode": "normal" if stack else "none"},
        }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    panels.append(p)


def next_line(h=8):
    global _y
    _y += h


row("Photo sites: traffic and errors")
panel("Requests per second by route", [
    (f"sum by (service, route) (rate(photo_http_requests_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} {{route}}")], unit="reqps", x=0, stack=True,
    desc="Traffic: HTTP requests served by photo-server, by site and route.")
panel("Error ratio (5xx)", [
    (f'sum by (service) (rate(photo_http_requests_total{{{SITE},status=~"5.."}}[$__rate_interval]))'
     f" / sum by (service) (rate(photo_http_requests_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} 5xx"),
    (f'sum by (service) (rate(photo_http_requests_total{{{SITE},status=~"4.."}}[$__rate_interval]))'
     f" / sum by (service) (rate(photo_http_requests_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} 4xx")], unit="percentunit", x=8,
    desc="Errors: share of responses with a 5xx (server) and 4xx (client) status.")
panel("Pods up", [
    (f"sum by (service) (up{{{SITE}}})", "{{service}} up")], x=16,
    desc="Scraped photo-server pods answering /metrics.")
next_line()
panel("Uploads and logins", [
    (f"sum by (service, outcome) (rate(photo_uploads_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} upload {{outcome}}"),
    (f"sum by (service, outcome) (rate(photo_logins_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} login {{outcome}}")], unit="ops", x=0, w=12)
panel("Upload throughput", [
    (f"sum by (service) (rate(photo_upload_bytes_total{{{SITE}}}[$__rate_interval]))",
     "{{service}}")], unit="Bps", x=12, w=12)
next_line()

row("Photo sites: latency")
for i, q in enumerate(["0.5", "0.9", "0.99"]):
    panel(f"Request latency p{q[2:].ljust(2, '0') if q != '0.5' else '50'}", [
        (f"histogram_quantile({q}, sum by (service, le) "
         f"(rate(photo_http_request_duration_seconds_bucket{{{SITE}}}[$__rate_interval])))",
         "{{service}}")], unit="s", x=8 * i,
        desc=f"Latency: the {q} quantile of HTTP request duration, all routes.")
next_line()
panel("Render latency by size (p50 / p99)", [
    (f"histogram_quantile(0.5, sum by (size, le) "
     f"(rate(photo_render_duration_seconds_bucket{{{SITE}}}[$__rate_interval])))",
     "p50 {{size}}"),
    (f"histogram_quantile(0.99, sum by (size, le) "
     f"(rate(photo_render_duration_seconds_bucket{{{SITE}}}[$__rate_interval])))",
     "p99 {{size}}")], unit="s", x=0, w=12,
    desc="Time to render a rendition that was not cached, by rendition size.")
panel("Image latency by route (p99)", [
    (f"histogram_quantile(0.99, sum by (route, le) "
     f"(rate(photo_http_request_duration_seconds_bucket{{{SITE}}}[$__rate_interval])))",
     "{{route}}")], unit="s", x=12, w=12)
next_line()

row("Photo sites: saturation")
panel("CPU used / requested", [
    ('sum by (pod) (rate(container_cpu_usage_seconds_total{namespace=~"$namespace",'
     'pod=~"($site)-.*",container="photo-server"}[$__rate_interval]))'
     ' / sum by (pod) (kube_pod_container_resource_requests{namespace=~"$namespace",'
     'pod=~"($site)-.*",container="photo-server",resource="cpu"})', "{{pod}}")],
    unit="percentunit", x=0,
    desc="Saturation: CPU of each photo-server pod against its request (the HPA target). "
         "Needs cAdvisor and kube-state-metrics.")
panel("Cache fill", [
    (f"sum by (pod) (photo_cache_bytes{{{SITE}}})", "{{pod}} bytes"),
], unit="bytes", x=8,
    desc="Bytes of renditions in each pod's cache (capped by spec.storage.cache.sizeLimit).")
panel("Cache hit ratio and evictions", [
    (f"sum by (service) (rate(photo_cache_hits_total{{{SITE}}}[$__rate_interval]))"
     f" / (sum by (service) (rate(photo_cache_hits_total{{{SITE}}}[$__rate_interval]))"
     f" + sum by (service) (rate(photo_cache_misses_total{{{SITE}}}[$__rate_interval])))",
     "{{service}} hit ratio"),
    (f"sum by (service) (rate(photo_cache_evictions_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} evictions/s"),
    (f"sum by (service) (rate(photo_cache_write_errors_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} write errors/s")], unit="short", x=16)
next_line()
panel("Render queue", [
    (f"sum by (pod) (photo_renders_queued{{{SITE}}})", "{{pod}} queued"),
    (f"sum by (pod) (photo_renders_in_flight{{{SITE}}})", "{{pod}} in flight")],
    x=0, w=8, desc="Saturation: renders waiting for a render thread (or for memory) and running.")
panel("Render memory", [
    (f"sum by (pod) (photo_render_memory_reserved_bytes{{{SITE}}})", "{{pod}} planned by running renders")],
    unit="bytes", x=8, w=8,
    desc="Memory the running renders planned from their images' headers, out of "
         "PHOTO_RENDER_MEMORY_BYTES (128 MiB by default). Near the budget, large photos take turns.")
panel("Renders rejected (503) or waiting for memory", [
    (f"sum by (service) (rate(photo_renders_rejected_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} rejected, queue full"),
    (f"sum by (service) (rate(photo_render_memory_waits_total{{{SITE}}}[$__rate_interval]))",
     "{{service}} passed over for memory")], unit="ops", x=16, w=8)
next_line()

OP = 'namespace=~"$operator_namespace",service=~".*photo-operator.*"'
row("Operator health")
panel("Leader", [(f"sum(photo_operator_leader{{{OP}}})", "replicas leading")], kind="stat", x=0, w=4,
      desc="Replicas holding the Lease: must be exactly 1.")
panel("Operator pods up", [(f"sum(up{{{OP}}})", "up")], kind="stat", x=4, w=4)
panel("Reconciles by result", [
    (f"sum by (result) (rate(photo_operator_reconciles_total{{{OP}}}[$__rate_interval]))",
     "{{result}}")], unit="ops", x=8, w=8)
panel("Reconcile errors by reason", [
    (f"sum by (reason) (rate(photo_operator_reconcile_errors_total{{{OP}}}[$__rate_interval]))",
     "{{reason}}")], unit="ops", x=16, w=8)
next_line()
panel("Reconcile duration (p50 / p99)", [
    (f"histogram_quantile(0.5, sum by (le) "
     f"(rate(photo_operator_reconcile_duration_seconds_bucket{{{OP}}}[$__rate_interval])))", "p50"),
    (f"histogram_quantile(0.99, sum by (le) "
     f"(rate(photo_operator_reconcile_duration_seconds_bucket{{{OP}}}[$__rate_interval])))", "p99")],
    unit="s", x=0, w=12)
panel("Objects applied / deleted by kind", [
    (f"sum by (kind) (rate(photo_operator_objects_applied_total{{{OP}}}[$__rate_interval]))",
     "applied {{kind}}"),
    (f"sum by (kind) (rate(photo_operator_objects_deleted_total{{{OP}}}[$__rate_interval]))",
     "deleted {{kind}}")], unit="ops", x=12, w=12,
    desc="A converged cluster applies nothing: a steady rate here means two writers fight.")
next_line()


def var(name, label, query, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": name}, "definition": query,
        "refresh": 2, "includeAll": multi, "multi": multi, "sort": 1,
        "current": {}, "options": [],
    }


dashboard = {
    "uid": "photostack-overview",
    "title": "PhotoStack",
    "description": "Photo sites' golden signals and the photo-operator's health.",
    "tags": ["photostack"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "options": [], "refresh": 1},
        var("namespace", "Namespace", "label_values(photo_http_requests_total, namespace)"),
        var("site", "Site", 'label_values(photo_http_requests_total{namespace=~"$namespace"}, service)'),
        var("operator_namespace", "Operator namespace",
            "label_values(photo_operator_reconcile_duration_seconds_count, namespace)"),
    ]},
    "annotations": {"list": []},
    "panels": panels,
}

text = json.dumps(dashboard, indent=2, sort_keys=True) + "\n"
out = sys.argv[1] if len(sys.argv) > 1 else str(OUT)
if out == "-":
    sys.stdout.write(text)
else:
    Path(out).write_text(text)
