//! Every name the operator derives from a PhotoSite, in one place.
//!
//! CloudNativePG's lesson: a name formatted inline in two places drifts. Builders, the
//! controller, cleanup and tests all call these functions. The CRD limits PhotoSite names to
//! [`MAX_SITE_NAME`] characters (a DNS-1035 label), so every derived name stays a valid
//! DNS label of at most 63 characters, including the names CloudNativePG derives from the
//! database cluster (`<cluster>-rw`, `<cluster>-app`, `<cluster>-1`, ...).

/// Longest PhotoSite name the CRD accepts. The longest suffix we add is `-credentials` (12) and
/// CloudNativePG adds up to ~10 more to the cluster name, so 40 keeps every name under 63.
pub const MAX_SITE_NAME: usize = 40;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "photo-operator";

/// Deployment, Service, ServiceAccount, HPA, PDB, NetworkPolicy, Ingress, ServiceMonitor and
/// PrometheusRule share the site's name: one per site, and `kubectl get all` reads naturally.
pub fn app(site: &str) -> String {
    site.to_string()
}

/// ConfigMap with the server configuration.
pub fn config_map(site: &str) -> String {
    format!("{site}-config")
}

/// Secret with the session key and admin password, generated once.
pub fn credentials_secret(site: &str) -> String {
    format!("{site}-credentials")
}

/// PersistentVolumeClaim for originals created by the operator (when no existing claim).
pub fn originals_claim(site: &str) -> String {
    format!("{site}-originals")
}

/// CloudNativePG `Cluster`.
pub fn database_cluster(site: &str) -> String {
    format!("{site}-db")
}

/// The application Secret CloudNativePG creates for the cluster (`<cluster>-app`).
pub fn database_app_secret(site: &str) -> String {
    format!("{}-app", database_cluster(site))
}

/// The read-write Service CloudNativePG creates for the primary (`<cluster>-rw`).
pub fn database_rw_service(site: &str) -> String {
    format!("{}-rw", database_cluster(site))
}

/// The CA Secret CloudNativePG creates for the cluster's server certificates
/// (`<cluster>-ca`, keys `ca.crt` and `ca.key`; only `ca.crt` is ever mounted).
pub fn database_ca_secret(site: &str) -> String {
    format!("{}-ca", database_cluster(site))
}

/// PodMonitor scraping the CloudNativePG instances.
pub fn database_pod_monitor(site: &str) -> String {
    database_cluster(site)
}

/// Headless Service exposing only the metrics port, for the ServiceMonitor (the Service the
/// Ingress uses does not expose it).
pub fn metrics_service(site: &str) -> String {
    format!("{site}-metrics")
}

/// The backup children: the originals CronJob, the Barman Cloud ObjectStore the database
/// archives to, and the database's ScheduledBackup (three kinds, one name).
pub fn backup(site: &str) -> String {
    format!("{site}-backup")
}

/// The restore children: the Job restoring the originals and the Barman Cloud ObjectStore
/// the database recovers from.
pub fn restore(site: &str) -> String {
    format!("{site}-restore")
}

/// NetworkPolicy of the backup and restore pods.
pub fn jobs_network_policy(site: &str) -> String {
    format!("{site}-jobs")
}

/// The database and its owner inside the CloudNativePG cluster.
pub const DATABASE_NAME: &str = "photos";
/// Owner role of [`DATABASE_NAME`].
pub const DATABASE_OWNER: &str = "photos";

/// TLS Secret of the Ingress when the spec names none.
pub fn tls_secret(site: &str) -> String {
    format!("{site}-tls")
}

/// Whether `name` is a DNS-1035 label (what Services require): lower-case alphanumerics and
/// `-`, starting with a letter, ending alphanumeric, at most 63 characters.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_site_name_gives_valid_names() {
        let site = format!("a{}", "b".repeat(MAX_SITE_NAME - 1));
        for n in [
            app(&site),
            config_map(&site),
            credentials_secret(&site),
            originals_claim(&site),
            database_cluster(&site),
            database_app_secret(&site),
            database_rw_service(&site),
            database_ca_secret(&site),
            database_pod_monitor(&site),
            metrics_service(&site),
            tls_secret(&site),
            backup(&site),
            restore(&site),
            jobs_network_policy(&site),
            // CloudNativePG's own derived names
            format!("{}-10", database_cluster(&site)),
            format!("{}-replication", database_cluster(&site)),
        ] {
            assert!(is_dns_label(&n), "{n} is not a DNS label");
        }
        // the CronJob controller appends 11 characters to a CronJob's name for its Jobs
        assert!(backup(&site).len() <= 52);
    }

    #[test]
    fn dns_label_rules() {
        assert!(is_dns_label("demo"));
        assert!(!is_dns_label("1demo"));
        assert!(!is_dns_label("demo-"));
        assert!(!is_dns_label("De"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
