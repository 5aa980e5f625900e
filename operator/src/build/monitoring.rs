//! Prometheus Operator objects: a ServiceMonitor scraping `/metrics` on the Service's `http`
//! port, and a PrometheusRule with availability, latency and error-rate alerts.
//!
//! Built only when the spec asks for them and the Prometheus Operator CRDs exist (the
//! controller checks discovery; `render` assumes they exist). Alerts use photo-server's metric
//! names: `photo_http_requests_total{route,method,status}` and
//! `photo_http_request_duration_seconds_bucket{route,method}`, scoped by the `namespace` and `service`
//! labels the ServiceMonitor's scrape adds. JSON because there are no Rust types for these
//! CRDs; a test validates them against the prometheus-operator CRD schemas.

use serde_json::{Value, json};

use super::Site;
use crate::{labels, names};

pub fn service_monitor(site: &Site) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": site.meta(names::app(site.name), "server"),
        "spec": {
            "selector": { "matchLabels": labels::selector(site.name) },
            "namespaceSelector": { "matchNames": [site.namespace] },
            "endpoints": [{
                "port": super::service::PORT_NAME,
                "path": "/metrics",
                "interval": "30s",
                "scheme": "http",
            }],
        },
    })
}

pub fn prometheus_rule(site: &Site) -> Value {
    let sel = format!(
        "namespace=\"{}\",service=\"{}\"",
        site.namespace,
        names::app(site.name)
    );
    let labels = json!({ "severity": "critical", "photosite": site.name });
    let warning = json!({ "severity": "warning", "photosite": site.name });
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": site.meta(names::app(site.name), "server"),
        "spec": {
            "groups": [{
                "name": format!("photosite.{}.{}", site.namespace, site.name),
                "rules": [
                    {
                        "alert": "PhotoSiteDown",
                        "expr": format!("sum(up{{{sel}}}) == 0 or absent(up{{{sel}}})"),
                        "for": "5m",
                        "labels": labels,
                        "annotations": {
                            "summary": format!("PhotoSite {}/{} has no photo-server pod up", site.namespace, site.name),
                            "description": "No photo-server pod of this site has been scraped successfully for 5 minutes.",
                        },
                    },
                    {
                        "alert": "PhotoSiteDegraded",
                        "expr": format!("sum(up{{{sel}}}) < {}", site.spec.replicas.max(1)),
                        "for": "15m",
                        "labels": warning,
                        "annotations": {
                            "summary": format!("PhotoSite {}/{} runs with fewer pods than desired", site.namespace, site.name),
                            "description": "Fewer photo-server pods are up than spec.replicas for 15 minutes.",
                        },
                    },
                    {
                        "alert": "PhotoSiteHighLatency",
                        "expr": format!("histogram_quantile(0.99, sum by (le) (rate(photo_http_request_duration_seconds_bucket{{{sel}}}[5m]))) > 2"),
                        "for": "10m",
                        "labels": warning,
                        "annotations": {
                            "summary": format!("PhotoSite {}/{} p99 latency above 2s", site.namespace, site.name),
                            "description": "The 99th percentile of request latency has been above 2 seconds for 10 minutes.",
                        },
                    },
                    {
                        "alert": "PhotoSiteHighErrorRate",
                        "expr": format!("sum(rate(photo_http_requests_total{{{sel},status=~\"5..\"}}[5m])) / sum(rate(photo_http_requests_total{{{sel}}}[5m])) > 0.05"),
                        "for": "10m",
                        "labels": labels,
                        "annotations": {
                            "summary": format!("PhotoSite {}/{} serves more than 5% errors", site.namespace, site.name),
                            "description": "More than 5% of requests have failed with a 5xx status for 10 minutes.",
                        },
                    },
                ],
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::fakeflickr;

    #[test]
    fn service_monitor_selects_service() {
        let s = fakeflickr();
        let sm = service_monitor(&Site::new(&s).unwrap());
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "http");
        assert_eq!(
            sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
            "fakeflickr"
        );
    }

    #[test]
    fn alerts_cover_availability_latency_errors() {
        let s = fakeflickr();
        let r = prometheus_rule(&Site::new(&s).unwrap());
        let alerts: Vec<&str> = r["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["alert"].as_str().unwrap())
            .collect();
        assert_eq!(
            alerts,
            vec![
                "PhotoSiteDown",
                "PhotoSiteDegraded",
                "PhotoSiteHighLatency",
                "PhotoSiteHighErrorRate"
            ]
        );
    }
}
