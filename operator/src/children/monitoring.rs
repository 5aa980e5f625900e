//! Prometheus Operator objects: a ServiceMonitor scraping `/metrics` on the Service's `http`
//! port, and a PrometheusRule with availability, latency and error-rate alerts.
//!
//! Built only when the spec asks for them and the Prometheus Operator CRDs exist (the
//! controller checks discovery; `render` assumes they exist). Alerts use photo-server's metric
//! names: `photo_http_requests_total{route,method,status}` and
//! `photo_http_request_duration_seconds_bucket{route,method}`, scoped by the `namespace` and `service`
//! labels the ServiceMonitor's scrape adds. Typed by [`super::crd_types`]; a test validates them against the prometheus-operator CRD schemas.
//!
//! - The ServiceMonitor scrapes the metrics port through the headless `<site>-metrics`
//!   Service (the Service the Ingress uses does not expose that port).
//! - With a CloudNativePG database, a PodMonitor scrapes its instances' `metrics` port
//!   (CloudNativePG no longer creates one itself).
//! - Every object carries `monitoring.labels`: a default kube-prometheus-stack only selects
//!   ServiceMonitors, PodMonitors and PrometheusRules labelled `release: <its release>`.
//! - With `spec.backup`, two more alerts: a backup of the originals or of the database older
//!   than `spec.backup.maxAge` (see `backup_rules` for the metrics they need).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::crd_types::{
    AlertRule, NamespaceSelector, Object, PROMETHEUS_OPERATOR, PodMetricsEndpoint, PodMonitor,
    PodMonitorSpec, PrometheusRule, PrometheusRuleSpec, RuleGroup, ScrapeEndpoint, ServiceMonitor,
    ServiceMonitorSpec,
};

use super::alert_rule::{alert, severity};
use super::deployment::METRICS_PORT_NAME;
use super::service::METRICS_COMPONENT;
use super::slo_alerts::slo_rules;
use crate::site::{ValidatedBackup, ValidatedSite};
use crate::{labels, names};

/// Metadata of a monitoring object: `monitoring.labels` plus the operator's (which win).
fn meta(site: &ValidatedSite, name: String, component: &str) -> ObjectMeta {
    let mut meta = site.meta(name, component);
    let mut all = site.spec.monitoring.labels.clone();
    all.extend(meta.labels.take().unwrap_or_default());
    meta.labels = Some(all);
    meta
}

/// Labels the ServiceMonitor selects: the metrics Service's.
pub fn metrics_service_selector(site: &ValidatedSite) -> BTreeMap<String, String> {
    let mut sel = labels::selector(site.name);
    sel.insert(labels::COMPONENT.into(), METRICS_COMPONENT.into());
    sel
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        match_expressions: None,
    }
}

fn in_namespace(site: &ValidatedSite) -> NamespaceSelector {
    NamespaceSelector {
        match_names: vec![site.namespace.to_string()],
    }
}

fn map<const N: usize>(entries: [(&str, String); N]) -> BTreeMap<String, String> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

pub fn service_monitor(site: &ValidatedSite) -> ServiceMonitor {
    Object {
        api_version: PROMETHEUS_OPERATOR,
        kind: "ServiceMonitor",
        metadata: meta(site, names::app(site.name), "server"),
        spec: ServiceMonitorSpec {
            selector: selector(metrics_service_selector(site)),
            namespace_selector: in_namespace(site),
            endpoints: vec![ScrapeEndpoint {
                port: METRICS_PORT_NAME.into(),
                path: "/metrics".into(),
                interval: "30s".into(),
                scheme: "http".into(),
            }],
        },
    }
}

/// PodMonitor of the CloudNativePG instances (their exporter listens on port `metrics`).
pub fn database_pod_monitor(site: &ValidatedSite) -> PodMonitor {
    Object {
        api_version: PROMETHEUS_OPERATOR,
        kind: "PodMonitor",
        metadata: meta(site, names::database_pod_monitor(site.name), "database"),
        spec: PodMonitorSpec {
            selector: selector(map([(
                "cnpg.io/cluster",
                names::database_cluster(site.name),
            )])),
            namespace_selector: in_namespace(site),
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port: "metrics".into(),
            }],
        },
    }
}

/// Alerts on backups older than `spec.backup.maxAge`, from metrics that exist outside
/// photo-server: kube-state-metrics' `kube_cronjob_status_last_successful_time` and
/// `kube_cronjob_created` for the originals CronJob, and the Barman Cloud plugin's
/// `barman_cloud_cloudnative_pg_io_last_available_backup_timestamp`, exported by the
/// CloudNativePG instances (the PodMonitor `<site>-db` scrapes them) for the database. A
/// CronJob that never succeeded counts from its creation; a database never backed up reports
/// 0, hence too old.
fn backup_rules(site: &ValidatedSite, backup: &ValidatedBackup) -> Vec<AlertRule> {
    let labels = severity(site, "critical");
    let age = &backup.spec.max_age;
    let max_age_seconds = backup.max_age_seconds;
    let cronjob = format!(
        "namespace=\"{}\",cronjob=\"{}\"",
        site.namespace,
        names::backup(site.name)
    );
    let last = format!("max(kube_cronjob_status_last_successful_time{{{cronjob}}})");
    let mut rules = vec![alert(
        "PhotoSiteOriginalsBackupTooOld",
        format!(
            "time() - {last} > {max_age_seconds} or (time() - max(kube_cronjob_created{{{cronjob}}}) > {max_age_seconds} unless {last})"
        ),
        "15m",
        &labels,
        format!(
            "PhotoSite {}/{}: no successful originals backup for more than {age}",
            site.namespace, site.name
        ),
        format!(
            "The CronJob {} has not completed a backup of the originals within spec.backup.maxAge. See the BackupHealthy condition (kubectl -n {} get photosite {} -o yaml) and the logs of its last Jobs (kubectl -n {} get jobs -l photostack.io/site={},app.kubernetes.io/component=backup). Needs kube-state-metrics.",
            names::backup(site.name),
            site.namespace,
            site.name,
            site.namespace,
            site.name
        ),
    )];
    if site.cloudnative_pg_database() {
        let pods = format!(
            "namespace=\"{}\",pod=~\"{}-[0-9]+\"",
            site.namespace,
            names::database_cluster(site.name)
        );
        rules.push(alert(
            "PhotoSiteDatabaseBackupTooOld",
            format!(
                "time() - max(barman_cloud_cloudnative_pg_io_last_available_backup_timestamp{{{pods}}}) > {max_age_seconds}"
            ),
            "30m",
            &labels,
            format!("PhotoSite {}/{}: no database base backup for more than {age}", site.namespace, site.name),
            format!(
                "The Barman Cloud plugin reports no successful base backup of {} within spec.backup.maxAge. See the BackupHealthy condition, the Cluster's ContinuousArchiving and LastBackupSucceeded conditions and kubectl -n {} get backups.postgresql.cnpg.io.",
                names::database_cluster(site.name), site.namespace
            ),
        ));
    }
    rules
}

pub fn prometheus_rule(site: &ValidatedSite) -> PrometheusRule {
    let sel = format!(
        "namespace=\"{}\",service=\"{}\"",
        site.namespace,
        names::metrics_service(site.name)
    );
    let labels = severity(site, "critical");
    let warning = severity(site, "warning");
    let mut rules = vec![
        alert(
            "PhotoSiteDown",
            format!("sum(up{{{sel}}}) == 0 or absent(up{{{sel}}})"),
            "5m",
            &labels,
            format!(
                "PhotoSite {}/{} has no photo-server pod up",
                site.namespace, site.name
            ),
            "No photo-server pod of this site has been scraped successfully for 5 minutes.".into(),
        ),
        alert(
            "PhotoSiteDegraded",
            format!("sum(up{{{sel}}}) < {}", site.spec.replicas.max(1)),
            "15m",
            &warning,
            format!(
                "PhotoSite {}/{} runs with fewer pods than desired",
                site.namespace, site.name
            ),
            "Fewer photo-server pods are up than spec.replicas for 15 minutes.".into(),
        ),
        alert(
            "PhotoSiteHighLatency",
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(photo_http_request_duration_seconds_bucket{{{sel}}}[5m]))) > 2"
            ),
            "10m",
            &warning,
            format!(
                "PhotoSite {}/{} p99 latency above 2s",
                site.namespace, site.name
            ),
            "The 99th percentile of request latency has been above 2 seconds for 10 minutes."
                .into(),
        ),
        alert(
            "PhotoSiteHighErrorRate",
            format!(
                "sum(rate(photo_http_requests_total{{{sel},status=~\"5..\"}}[5m])) / sum(rate(photo_http_requests_total{{{sel}}}[5m])) > 0.05"
            ),
            "10m",
            &labels,
            format!(
                "PhotoSite {}/{} serves more than 5% errors",
                site.namespace, site.name
            ),
            "More than 5% of requests have failed with a 5xx status for 10 minutes.".into(),
        ),
    ];
    rules.extend(slo_rules(site, &sel));
    if let Some(b) = &site.backup {
        rules.extend(backup_rules(site, b));
    }
    Object {
        api_version: PROMETHEUS_OPERATOR,
        kind: "PrometheusRule",
        metadata: meta(site, names::app(site.name), "server"),
        spec: PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("photosite.{}.{}", site.namespace, site.name),
                rules,
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn service_monitor_scrapes_the_metrics_service() {
        let s = fakeflickr();
        let sm = json(&service_monitor(&valid(&s)));
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
        let sel = &sm["spec"]["selector"]["matchLabels"];
        assert_eq!(sel["app.kubernetes.io/instance"], "fakeflickr");
        assert_eq!(sel["app.kubernetes.io/component"], "metrics");
    }

    #[test]
    fn monitoring_labels_reach_every_monitoring_object() {
        let s = with(fakeflickr(), |s| {
            let l = &mut s.spec.monitoring.labels;
            l.insert("release".into(), "kube-prometheus-stack".into());
            // the operator's own labels win
            l.insert(labels::MANAGED_BY.into(), "someone-else".into());
        });
        let site = valid(&s);
        for o in [
            json(&service_monitor(&site)),
            json(&prometheus_rule(&site)),
            json(&database_pod_monitor(&site)),
        ] {
            let l = &o["metadata"]["labels"];
            assert_eq!(l["release"], "kube-prometheus-stack", "{}", o["kind"]);
            assert_eq!(l[labels::MANAGED_BY], labels::MANAGER);
            assert_eq!(l[labels::SITE], "fakeflickr");
        }
    }

    #[test]
    fn pod_monitor_selects_the_database_instances() {
        let s = fakeflickr();
        let pm = json(&database_pod_monitor(&valid(&s)));
        assert_eq!(pm["metadata"]["name"], "fakeflickr-db");
        assert_eq!(
            pm["spec"]["selector"]["matchLabels"]["cnpg.io/cluster"],
            "fakeflickr-db"
        );
        assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    }

    #[test]
    fn alerts_query_the_metrics_service() {
        let s = fakeflickr();
        let r = json(&prometheus_rule(&valid(&s)));
        let expr = r["spec"]["groups"][0]["rules"][0]["expr"].as_str().unwrap();
        assert!(expr.contains("service=\"fakeflickr-metrics\""), "{expr}");
    }

    #[test]
    fn alerts_cover_availability_latency_errors() {
        let s = fakeflickr();
        let r = json(&prometheus_rule(&valid(&s)));
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
                "PhotoSiteHighErrorRate",
                "PhotoSiteAvailabilityBudgetBurn",
                "PhotoSiteAvailabilityBudgetBurn",
                "PhotoSiteImageLatencyBudgetBurn",
                "PhotoSiteImageLatencyBudgetBurn",
                "PhotoSiteRenderLatencyBudgetBurn",
                "PhotoSiteRenderLatencyBudgetBurn",
            ]
        );
    }

    #[test]
    fn backup_alerts_fire_past_max_age() {
        let s = with(fakeflickr(), |s| {
            let mut b = backup_spec();
            b.max_age = "2d".into();
            s.spec.backup = Some(b);
        });
        let r = json(&prometheus_rule(&valid(&s)));
        let rules = r["spec"]["groups"][0]["rules"].as_array().unwrap();
        let by_name = |n: &str| {
            rules
                .iter()
                .find(|r| r["alert"] == n)
                .unwrap_or_else(|| panic!("no {n}"))["expr"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let originals = by_name("PhotoSiteOriginalsBackupTooOld");
        assert!(
            originals.contains("kube_cronjob_status_last_successful_time{namespace=\"photos\",cronjob=\"fakeflickr-backup\"}"),
            "{originals}"
        );
        assert!(originals.contains("> 172800"), "{originals}");
        // a CronJob that never succeeded counts from its creation
        assert!(originals.contains("kube_cronjob_created"), "{originals}");
        let database = by_name("PhotoSiteDatabaseBackupTooOld");
        assert!(
            database.contains("barman_cloud_cloudnative_pg_io_last_available_backup_timestamp{namespace=\"photos\",pod=~\"fakeflickr-db-[0-9]+\"}"),
            "{database}"
        );
        assert!(database.contains("> 172800"), "{database}");
        // an external database has no database alert; no backup, no backup alerts
        let s = with(s, |s| s.spec.database.external = Some(external("rds")));
        let r = json(&prometheus_rule(&valid(&s)));
        let names: Vec<&str> = r["spec"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["alert"].as_str())
            .collect();
        assert!(names.contains(&"PhotoSiteOriginalsBackupTooOld"));
        assert!(!names.contains(&"PhotoSiteDatabaseBackupTooOld"));
        let r = json(&prometheus_rule(&valid(&fakeflickr())));
        // without spec.backup: the four site alerts and the six burn-rate alerts only
        assert_eq!(
            r["spec"]["groups"][0]["rules"].as_array().unwrap().len(),
            10
        );
    }
}
