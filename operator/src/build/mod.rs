//! Pure builders: a validated PhotoSite (+ what the controller read from the cluster) ->
//! desired children.
//!
//! Nothing here touches the API, so the controller, `photo-operator render`, the tests and the
//! benchmark share one code path, and most tests need no mock server. [`validate`] is the only
//! way to get a [`ValidatedSite`], and the builders take nothing else (Stackable's
//! `ValidatedCluster`): a spec is checked once, and every parsed value (sizes, address
//! blocks) is computed once. One module per child kind; [`desired`] assembles them in apply
//! order.
//!
//! Apply order (see [`Kind::ALL`]): identity and configuration first (ServiceAccount,
//! ConfigMap, Secret), then data (originals claim, the Barman Cloud ObjectStores the database
//! refers to, the database, its ScheduledBackup), then networking and safety (Services, PDB,
//! NetworkPolicies), then the restore Job and the Deployment, so its pods start with
//! everything they mount already present; the backup CronJob, HPA, Ingress and monitoring
//! objects last, because they point at things that must exist.
//!
//! Restore ordering: a site with `spec.restore` gets its restore Job and no Deployment (nor
//! backup CronJob, nor autoscaler with no pods to measure) until
//! [`Inputs::originals_restored`] says the Job has succeeded; the controller reads that from
//! the live Job and keeps it in `status.restore`.

pub mod backup;
pub mod config_map;
pub mod database;
pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod monitoring;
pub mod network_policy;
pub mod object_store;
pub mod pdb;
pub mod pvc;
pub mod quantity;
pub mod secret;
pub mod service;
pub mod service_account;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use kube::core::{ApiResource, GroupVersionKind};
use serde::Serialize;
use serde_json::Value;

use crate::crd::{AccessMode, BackupSpec, DataPolicy, PhotoSite, PhotoSiteSpec, RestoreSpec};
use crate::{Error, labels, names};
use object_store::Store;

/// Every kind of child, in apply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    ObjectStore,
    DatabaseCluster,
    ScheduledBackup,
    Service,
    PodDisruptionBudget,
    NetworkPolicy,
    Job,
    Deployment,
    CronJob,
    HorizontalPodAutoscaler,
    Ingress,
    ServiceMonitor,
    PodMonitor,
    PrometheusRule,
}

impl Kind {
    /// All kinds in apply order.
    pub const ALL: [Kind; 18] = [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
        Kind::ObjectStore,
        Kind::DatabaseCluster,
        Kind::ScheduledBackup,
        Kind::Service,
        Kind::PodDisruptionBudget,
        Kind::NetworkPolicy,
        Kind::Job,
        Kind::Deployment,
        Kind::CronJob,
        Kind::HorizontalPodAutoscaler,
        Kind::Ingress,
        Kind::ServiceMonitor,
        Kind::PodMonitor,
        Kind::PrometheusRule,
    ];

    /// (group, version, kind, plural)
    fn gvkp(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::ServiceAccount => ("", "v1", "ServiceAccount", "serviceaccounts"),
            Kind::ConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            Kind::Secret => ("", "v1", "Secret", "secrets"),
            Kind::PersistentVolumeClaim => {
                ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
            }
            Kind::ObjectStore => ("barmancloud.cnpg.io", "v1", "ObjectStore", "objectstores"),
            Kind::DatabaseCluster => ("postgresql.cnpg.io", "v1", "Cluster", "clusters"),
            Kind::ScheduledBackup => (
                "postgresql.cnpg.io",
                "v1",
                "ScheduledBackup",
                "scheduledbackups",
            ),
            Kind::Service => ("", "v1", "Service", "services"),
            Kind::PodDisruptionBudget => (
                "policy",
                "v1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
            Kind::NetworkPolicy => (
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
            ),
            Kind::Job => ("batch", "v1", "Job", "jobs"),
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments"),
            Kind::CronJob => ("batch", "v1", "CronJob", "cronjobs"),
            Kind::HorizontalPodAutoscaler => (
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
            ),
            Kind::Ingress => ("networking.k8s.io", "v1", "Ingress", "ingresses"),
            Kind::ServiceMonitor => (
                "monitoring.coreos.com",
                "v1",
                "ServiceMonitor",
                "servicemonitors",
            ),
            Kind::PodMonitor => ("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
            Kind::PrometheusRule => (
                "monitoring.coreos.com",
                "v1",
                "PrometheusRule",
                "prometheusrules",
            ),
        }
    }

    /// The API resource, for dynamic (kind-generic) apply, list and delete.
    pub fn api_resource(self) -> ApiResource {
        let (g, v, k, p) = self.gvkp();
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p)
    }

    /// `Kind` as in the object's `kind` field.
    pub fn kind_name(self) -> &'static str {
        self.gvkp().2
    }

    /// Kinds whose CRDs belong to the Prometheus Operator.
    pub fn is_monitoring(self) -> bool {
        matches!(
            self,
            Kind::ServiceMonitor | Kind::PodMonitor | Kind::PrometheusRule
        )
    }

    /// The optional API that serves this kind, if it is not built in.
    pub fn needs(self) -> Option<OptionalApi> {
        match self {
            Kind::DatabaseCluster | Kind::ScheduledBackup => Some(OptionalApi::CloudNativePg),
            Kind::ObjectStore => Some(OptionalApi::BarmanCloud),
            k if k.is_monitoring() => Some(OptionalApi::PrometheusOperator),
            _ => None,
        }
    }
}

/// An API that is not built into Kubernetes and may be missing from a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptionalApi {
    /// `postgresql.cnpg.io/v1` `Cluster` (CloudNativePG).
    CloudNativePg,
    /// `monitoring.coreos.com/v1` `ServiceMonitor`, `PodMonitor`, `PrometheusRule`.
    PrometheusOperator,
    /// `barmancloud.cnpg.io/v1` `ObjectStore` (the Barman Cloud plugin for CloudNativePG).
    BarmanCloud,
}

/// Which optional APIs the cluster serves (discovery).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apis {
    pub cloudnative_pg: bool,
    pub prometheus: bool,
    pub barman_cloud: bool,
}

impl Apis {
    /// Every optional API present (what `render` assumes).
    pub const ALL: Apis = Apis {
        cloudnative_pg: true,
        prometheus: true,
        barman_cloud: true,
    };

    /// No optional API (before the first discovery).
    pub const NONE: Apis = Apis {
        cloudnative_pg: false,
        prometheus: false,
        barman_cloud: false,
    };

    pub fn has(self, api: OptionalApi) -> bool {
        match api {
            OptionalApi::CloudNativePg => self.cloudnative_pg,
            OptionalApi::PrometheusOperator => self.prometheus,
            OptionalApi::BarmanCloud => self.barman_cloud,
        }
    }
}

/// One desired child: its kind, name and the full object to server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: Kind,
    pub name: String,
    pub object: Value,
}

/// Secret values generated once per site and then read back from the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub session_key: String,
    pub admin_password: String,
}

/// What the controller read from an external database's Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalDatabase {
    /// TCP ports of the hosts in the connection URI (5432 where the URI names none).
    pub ports: Vec<u16>,
    /// Hash of the referenced Secret values (URI and CA), put in the pod template so that a
    /// rotated Secret rolls the pods.
    pub secret_hash: String,
}

/// What the builders need besides the PhotoSite: facts the controller read from the cluster.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// Values of the credentials Secret; `None` leaves the Secret out (render).
    pub credentials: Option<Credentials>,
    /// Which optional APIs (CloudNativePG, Prometheus Operator) are installed.
    pub apis: Apis,
    /// From the external database's Secret; `None` without one, or in `render` (port 5432).
    pub external_database: Option<ExternalDatabase>,
    /// Whether the restore Job of `spec.restore` has succeeded (recorded in
    /// `status.restore`): until then the site has the Job and no Deployment. Ignored without
    /// `spec.restore`; `false` in `render`, which shows a restored site as it starts.
    pub originals_restored: bool,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            credentials: None,
            apis: Apis::ALL,
            external_database: None,
            originals_restored: false,
        }
    }
}

/// Everything one PhotoSite should consist of, in apply order.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub children: Vec<Child>,
    /// Optional APIs the spec needs that the cluster lacks: their children are left out.
    pub missing: Vec<OptionalApi>,
}

impl Desired {
    /// The first child of a kind.
    pub fn get(&self, kind: Kind) -> Option<&Child> {
        self.children.iter().find(|c| c.kind == kind)
    }
    /// The child of a kind and name.
    pub fn get_named(&self, kind: Kind, name: &str) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }
    pub fn contains(&self, kind: Kind, name: &str) -> bool {
        self.get_named(kind, name).is_some()
    }
}

/// A PhotoSite that passed [`validate`], with the values the builders need already parsed.
/// The builders accept nothing else, so none of them can see an unchecked spec.
#[derive(Debug)]
pub struct ValidatedSite<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub spec: &'a PhotoSiteSpec,
    /// Controller owner reference to the PhotoSite; `None` when it has no uid (render).
    pub owner: Option<OwnerReference>,
    /// `storage.cache.sizeLimit` in bytes.
    pub cache_bytes: u64,
    /// `uploads.maxRequestSize` in bytes.
    pub max_request_bytes: u64,
    /// `uploads.maxFileSize` in bytes.
    pub max_file_bytes: u64,
    /// `uploads.userQuota` in bytes (0: none).
    pub user_quota_bytes: u64,
    /// `networkPolicy.ingressCIDRs`, checked to be canonical CIDRs.
    pub ingress_cidrs: Vec<String>,
    /// `spec.backup`, checked.
    pub backup: Option<ValidatedBackup<'a>>,
    /// `spec.restore`, checked.
    pub restore: Option<ValidatedRestore<'a>>,
    /// Only [`validate`] can build one: nothing outside this module can name [`Checked`].
    _checked: Checked,
}

/// `spec.backup`, checked, with its schedule in both cron dialects.
#[derive(Debug)]
pub struct ValidatedBackup<'a> {
    pub spec: &'a BackupSpec,
    pub store: Store<'a>,
    /// The schedule for the CronJob (five fields or a macro).
    pub schedule: String,
    /// The same schedule for CloudNativePG's ScheduledBackup (seconds first).
    pub database_schedule: String,
    /// `maxAge` in seconds.
    pub max_age_seconds: i64,
}

/// `spec.restore`, checked.
#[derive(Debug)]
pub struct ValidatedRestore<'a> {
    pub spec: &'a RestoreSpec,
    pub store: Store<'a>,
    /// Barman server name of the source database: `<siteName>-db`.
    pub server_name: String,
}

/// Proof that [`validate`] made a [`ValidatedSite`] (private to this module).
#[derive(Debug)]
struct Checked;

impl ValidatedSite<'_> {
    /// Metadata of a child: name, namespace, labels and the controller owner reference.
    pub fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.into()),
            labels: Some(labels::common(self.name, component)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    /// Metadata of a data child (originals claim, database): owned only under
    /// `dataPolicy: Delete`, so the garbage collector keeps it under `Retain`, and labelled
    /// without the pod selector labels (a claim or a database is not a photo-server pod).
    pub fn data_meta(&self, name: String, component: &str) -> ObjectMeta {
        let mut meta = self.meta(name, component);
        meta.labels = Some(labels::data(self.name, component));
        if self.spec.data_policy == DataPolicy::Retain {
            meta.owner_references = None;
            meta.annotations = Some(BTreeMap::from([(
                "photostack.io/data-policy".to_string(),
                "Retain".to_string(),
            )]));
        }
        meta
    }

    /// Whether the operator creates the originals claim (no `existingClaim`).
    pub fn owns_originals_claim(&self) -> bool {
        self.spec.storage.originals.existing_claim.is_none()
    }

    /// Whether the site has a CloudNativePG database (not `database.external`).
    pub fn cloudnative_pg_database(&self) -> bool {
        self.spec.database.external.is_none()
    }

    /// Whether the restore of `spec.restore` still has to run before the servers start.
    pub fn restore_pending(&self, inputs: &Inputs) -> bool {
        self.restore.is_some() && !inputs.originals_restored
    }
}

/// Every child the builders may create for a site, by kind and name, whatever its spec:
/// what cleanup looks up (by name, in the watch stores) to find children the spec no longer
/// wants. A test checks that [`desired`] never builds a child missing here.
pub fn possible_children(site: &str) -> Vec<(Kind, String)> {
    Kind::ALL
        .into_iter()
        .flat_map(|kind| {
            let names = match kind {
                Kind::ConfigMap => vec![names::config_map(site)],
                Kind::Secret => vec![names::credentials_secret(site)],
                Kind::PersistentVolumeClaim => vec![names::originals_claim(site)],
                Kind::ObjectStore => vec![names::backup(site), names::restore(site)],
                Kind::DatabaseCluster => vec![names::database_cluster(site)],
                Kind::ScheduledBackup | Kind::CronJob => vec![names::backup(site)],
                Kind::Job => vec![names::restore(site)],
                Kind::Service => vec![names::app(site), names::metrics_service(site)],
                Kind::NetworkPolicy => vec![names::app(site), names::jobs_network_policy(site)],
                Kind::PodMonitor => vec![names::database_pod_monitor(site)],
                Kind::ServiceAccount
                | Kind::PodDisruptionBudget
                | Kind::Deployment
                | Kind::HorizontalPodAutoscaler
                | Kind::Ingress
                | Kind::ServiceMonitor
                | Kind::PrometheusRule => vec![names::app(site)],
            };
            names.into_iter().map(move |n| (kind, n))
        })
        .collect()
}

fn child<T: Serialize>(kind: Kind, name: String, object: &T) -> Result<Child, Error> {
    Ok(Child {
        kind,
        name,
        object: serde_json::to_value(object)?,
    })
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSpec(msg.into())
}

fn bytes(field: &str, q: &str) -> Result<u64, Error> {
    quantity::parse_bytes(q).map_err(|e| invalid(format!("{field}: {e}")))
}

/// A CIDR in canonical form (network address, no host bits), as NetworkPolicy `ipBlock`s
/// require.
pub fn canonical_cidr(s: &str) -> Result<String, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (address/prefix)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("{s:?}: {prefix:?} is not a prefix length"))?;
    let network = match addr {
        IpAddr::V4(a) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
        _ => return Err(format!("{s:?}: prefix length {prefix} is too long")),
    };
    let canonical = format!("{network}/{prefix}");
    if canonical != s {
        return Err(format!("{s:?} is not canonical: write {canonical:?}"));
    }
    Ok(canonical)
}

/// Check a PhotoSite beyond what the CRD schema enforces (the operator must not trust that
/// the CRD installed in the cluster is the current one) and parse what the builders need.
pub fn validate(site: &PhotoSite) -> Result<ValidatedSite<'_>, Error> {
    let name = site
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| invalid("PhotoSite has no name"))?;
    let namespace = site
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| invalid("PhotoSite has no namespace"))?;
    if !names::is_dns_label(name) || name.len() > names::MAX_SITE_NAME {
        return Err(invalid(format!(
            "name {name:?} must be a DNS label of at most {} characters",
            names::MAX_SITE_NAME
        )));
    }
    let spec = &site.spec;
    if spec.image.trim().is_empty() {
        return Err(invalid("spec.image must not be empty"));
    }
    if spec.replicas < 0 {
        return Err(invalid("spec.replicas must not be negative"));
    }
    let a = &spec.autoscaling;
    if a.min_replicas < 1 || a.min_replicas > a.max_replicas {
        return Err(invalid(
            "autoscaling.minReplicas must be between 1 and autoscaling.maxReplicas",
        ));
    }
    if spec.renditions.is_empty() {
        return Err(invalid("spec.renditions must not be empty"));
    }
    let cache_bytes = bytes("storage.cache.sizeLimit", &spec.storage.cache.size_limit.0)?;
    bytes("storage.originals.size", &spec.storage.originals.size.0)?;
    bytes("database.storage.size", &spec.database.storage.size.0)?;
    let max_request_bytes = bytes("uploads.maxRequestSize", &spec.uploads.max_request_size.0)?;
    let max_file_bytes = bytes("uploads.maxFileSize", &spec.uploads.max_file_size.0)?;
    let user_quota_bytes = bytes("uploads.userQuota", &spec.uploads.user_quota.0)?;
    if max_request_bytes == 0 || max_file_bytes == 0 || max_file_bytes > max_request_bytes {
        return Err(invalid(
            "uploads.maxFileSize must be positive and at most uploads.maxRequestSize",
        ));
    }
    let originals = &spec.storage.originals;
    let many = spec.replicas > 1 || (a.enabled && a.max_replicas > 1);
    if originals.access_mode == AccessMode::ReadWriteOncePod
        && originals.existing_claim.is_none()
        && many
    {
        return Err(invalid(
            "storage.originals.accessMode ReadWriteOncePod allows one pod only: replicas and autoscaling.maxReplicas must be at most 1",
        ));
    }
    if let Some(ing) = &spec.ingress
        && ing.tls.is_some()
        && ing.host.as_deref().unwrap_or("").is_empty()
    {
        return Err(invalid("ingress.tls needs ingress.host"));
    }
    if spec.monitoring.alerts && !spec.monitoring.service_monitor {
        return Err(invalid("monitoring.alerts needs monitoring.serviceMonitor"));
    }
    for (k, v) in &spec.monitoring.labels {
        if !labels::is_label_key(k) || !labels::is_label_value(v) {
            return Err(invalid(format!(
                "monitoring.labels: {k:?}: {v:?} is not a valid label"
            )));
        }
    }
    let ingress_cidrs = spec
        .network_policy
        .ingress_cidrs
        .iter()
        .map(|c| canonical_cidr(c).map_err(|e| invalid(format!("networkPolicy.ingressCIDRs: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let backup = spec
        .backup
        .as_ref()
        .map(|b| validate_backup(spec, b))
        .transpose()?;
    let restore = spec
        .restore
        .as_ref()
        .map(|r| validate_restore(name, r))
        .transpose()?;
    if let (Some(b), Some(r)) = (&backup, &restore)
        && b.store.url == r.store.url
        && b.store.endpoint == r.store.endpoint
    {
        return Err(invalid(
            "spec.backup.objectStore must not be where spec.restore.objectStore reads from: give the restored site a path of its own",
        ));
    }
    Ok(ValidatedSite {
        name,
        namespace,
        spec,
        // None for a PhotoSite that has no uid yet (render of a file): no owner reference then.
        owner: site.controller_owner_ref(&()),
        cache_bytes,
        max_request_bytes,
        max_file_bytes,
        user_quota_bytes,
        ingress_cidrs,
        backup,
        restore,
        _checked: Checked,
    })
}

/// A duration of minutes, hours or days (`26h`) in seconds.
fn duration_seconds(s: &str) -> Option<i64> {
    let unit = match s.chars().last()? {
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    let n: i64 = s[..s.len() - 1].parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(unit)
}

fn validate_backup<'a>(
    spec: &PhotoSiteSpec,
    b: &'a BackupSpec,
) -> Result<ValidatedBackup<'a>, Error> {
    let (schedule, database_schedule) = backup::schedules(&b.schedule).map_err(invalid)?;
    let r = &b.retention;
    let retention_ok = r.len() >= 2
        && r.ends_with(['d', 'w', 'm'])
        && r[..r.len() - 1].parse::<u32>().is_ok_and(|n| n > 0);
    if !retention_ok {
        return Err(invalid(format!(
            "backup.retention {r:?} must be a number of days, weeks or months (30d, 8w, 6m)"
        )));
    }
    let max_age_seconds = duration_seconds(&b.max_age).ok_or_else(|| {
        invalid(format!(
            "backup.maxAge {:?} must be a number of minutes, hours or days (26h, 8d)",
            b.max_age
        ))
    })?;
    let originals = &spec.storage.originals;
    if originals.access_mode == AccessMode::ReadWriteOncePod && originals.existing_claim.is_none() {
        return Err(invalid(
            "spec.backup needs an originals claim the backup Job can mount next to the server: ReadWriteOncePod lets only one pod mount it",
        ));
    }
    Ok(ValidatedBackup {
        spec: b,
        store: object_store::store("backup.objectStore", &b.object_store)?,
        schedule,
        database_schedule,
        max_age_seconds,
    })
}

fn validate_restore<'a>(site: &str, r: &'a RestoreSpec) -> Result<ValidatedRestore<'a>, Error> {
    let source = r.site_name.as_deref().unwrap_or(site);
    if !names::is_dns_label(source) || source.len() > names::MAX_SITE_NAME {
        return Err(invalid(format!(
            "restore.siteName {source:?} must be a PhotoSite name (a DNS label of at most {} characters)",
            names::MAX_SITE_NAME
        )));
    }
    if let Some(t) = &r.target_time
        && t.parse::<k8s_openapi::jiff::Timestamp>().is_err()
    {
        return Err(invalid(format!(
            "restore.targetTime {t:?} is not an RFC 3339 time such as 2026-03-01T12:00:00Z"
        )));
    }
    Ok(ValidatedRestore {
        spec: r,
        store: object_store::store("restore.objectStore", &r.object_store)?,
        server_name: names::database_cluster(source),
    })
}

/// Build every desired child of a validated PhotoSite, in apply order.
pub fn desired(site: &ValidatedSite, inputs: &Inputs) -> Result<Desired, Error> {
    let spec = site.spec;
    let mut children = Vec::with_capacity(Kind::ALL.len() + 1);
    let mut missing = Vec::new();

    children.push(child(
        Kind::ServiceAccount,
        names::app(site.name),
        &service_account::build(site),
    )?);
    let cm = config_map::build(site);
    let config_hash = config_map::hash(&cm);
    children.push(child(Kind::ConfigMap, names::config_map(site.name), &cm)?);
    if let Some(creds) = &inputs.credentials {
        children.push(child(
            Kind::Secret,
            names::credentials_secret(site.name),
            &secret::build(site, creds),
        )?);
    }
    if site.owns_originals_claim() {
        children.push(child(
            Kind::PersistentVolumeClaim,
            names::originals_claim(site.name),
            &pvc::build(site),
        )?);
    }
    // The database's backups and restore need the Barman Cloud plugin: without it a backed-up
    // cluster runs unarchived, and a restored one is held back (it would start empty).
    let wants_plugin =
        site.cloudnative_pg_database() && (site.backup.is_some() || site.restore.is_some());
    let plugin = wants_plugin && inputs.apis.barman_cloud;
    if site.cloudnative_pg_database() {
        if !inputs.apis.cloudnative_pg {
            missing.push(OptionalApi::CloudNativePg);
        }
        if wants_plugin && !inputs.apis.barman_cloud {
            missing.push(OptionalApi::BarmanCloud);
        }
    }
    let cloudnative_pg = site.cloudnative_pg_database() && inputs.apis.cloudnative_pg;
    if plugin {
        if let Some(b) = &site.backup {
            children.push(Child {
                kind: Kind::ObjectStore,
                name: names::backup(site.name),
                object: object_store::object_store(
                    site,
                    names::backup(site.name),
                    &b.store,
                    Some(&b.spec.retention),
                ),
            });
        }
        if let Some(r) = &site.restore {
            children.push(Child {
                kind: Kind::ObjectStore,
                name: names::restore(site.name),
                object: object_store::object_store(site, names::restore(site.name), &r.store, None),
            });
        }
    }
    if cloudnative_pg && (site.restore.is_none() || plugin) {
        children.push(Child {
            kind: Kind::DatabaseCluster,
            name: names::database_cluster(site.name),
            object: database::build(site, plugin),
        });
        if let (true, Some(b)) = (plugin, &site.backup) {
            children.push(Child {
                kind: Kind::ScheduledBackup,
                name: names::backup(site.name),
                object: object_store::scheduled_backup(site, &b.database_schedule),
            });
        }
    }
    children.push(child(
        Kind::Service,
        names::app(site.name),
        &service::build(site),
    )?);
    children.push(child(
        Kind::Service,
        names::metrics_service(site.name),
        &service::metrics(site),
    )?);
    children.push(child(
        Kind::PodDisruptionBudget,
        names::app(site.name),
        &pdb::build(site),
    )?);
    children.push(child(
        Kind::NetworkPolicy,
        names::app(site.name),
        &network_policy::build(site, inputs.external_database.as_ref()),
    )?);
    if let Some(np) = network_policy::jobs(site, inputs.external_database.as_ref()) {
        children.push(child(
            Kind::NetworkPolicy,
            names::jobs_network_policy(site.name),
            &np,
        )?);
    }
    let restoring = site.restore_pending(inputs);
    if let (true, Some(r)) = (restoring, &site.restore) {
        children.push(child(
            Kind::Job,
            names::restore(site.name),
            &backup::restore_job(site, &r.store),
        )?);
    }
    if !restoring {
        children.push(child(
            Kind::Deployment,
            names::app(site.name),
            &deployment::build(site, &config_hash, inputs),
        )?);
        if let Some(b) = &site.backup {
            children.push(child(
                Kind::CronJob,
                names::backup(site.name),
                &backup::cron_job(site, &b.schedule, &b.store),
            )?);
        }
    }
    if spec.autoscaling.enabled && !restoring {
        children.push(child(
            Kind::HorizontalPodAutoscaler,
            names::app(site.name),
            &hpa::build(site),
        )?);
    }
    if let Some(ing) = ingress::build(site) {
        children.push(child(Kind::Ingress, names::app(site.name), &ing)?);
    }
    let m = &spec.monitoring;
    if m.service_monitor || m.alerts {
        if inputs.apis.prometheus {
            if m.service_monitor {
                children.push(Child {
                    kind: Kind::ServiceMonitor,
                    name: names::app(site.name),
                    object: monitoring::service_monitor(site),
                });
                if spec.database.external.is_none() && inputs.apis.cloudnative_pg {
                    children.push(Child {
                        kind: Kind::PodMonitor,
                        name: names::database_pod_monitor(site.name),
                        object: monitoring::database_pod_monitor(site),
                    });
                }
            }
            if m.alerts {
                children.push(Child {
                    kind: Kind::PrometheusRule,
                    name: names::app(site.name),
                    object: monitoring::prometheus_rule(site),
                });
            }
        } else {
            missing.push(OptionalApi::PrometheusOperator);
        }
    }
    Ok(Desired { children, missing })
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Apis, Credentials, Desired, Inputs, ValidatedSite, desired, validate};
    use crate::crd::PhotoSite;

    /// Build inputs with credentials already generated and every optional API present.
    pub fn inputs() -> Inputs {
        Inputs {
            credentials: Some(Credentials {
                session_key: "k".into(),
                admin_password: "p".into(),
            }),
            apis: Apis::ALL,
            external_database: None,
            originals_restored: false,
        }
    }

    /// Backups to `s3://backups/prod/<site>` with the Secret `backup-s3`.
    pub fn backup_spec() -> crate::crd::BackupSpec {
        serde_yaml::from_str(
            "objectStore: {bucket: backups, path: prod/site, credentialsSecret: backup-s3}",
        )
        .expect("backup spec")
    }

    /// A restore from `s3://backups/prod/old` with the Secret `restore-s3`.
    pub fn restore_spec() -> crate::crd::RestoreSpec {
        serde_yaml::from_str(
            "objectStore: {bucket: backups, path: prod/old, credentialsSecret: restore-s3}",
        )
        .expect("restore spec")
    }

    /// The validated view of a test PhotoSite (panics if it is invalid).
    pub fn valid(s: &PhotoSite) -> ValidatedSite<'_> {
        validate(s).expect("valid PhotoSite")
    }

    /// Every child of a test PhotoSite.
    pub fn build_all(s: &PhotoSite, inputs: &Inputs) -> Desired {
        desired(&valid(s), inputs).expect("desired children")
    }

    pub const DEMO: &str = "apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: demo, namespace: photos, uid: 11111111-2222-3333-4444-555555555555, generation: 1}
spec:
  image: ghcr.io/photostack/photo-server:0.1.0
";

    pub const FAKEFLICKR: &str = "apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {name: fakeflickr, namespace: photos, uid: 66666666-2222-3333-4444-555555555555, generation: 1}
spec:
  image: ghcr.io/photostack/photo-server:0.1.0
  replicas: 3
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 70}
  renditions: [240, 640, 1440, 2048]
  storage:
    originals: {size: 100Gi, storageClassName: efs-sc}
    cache: {sizeLimit: 4Gi}
  database:
    instances: 3
    storage: {size: 20Gi}
  ingress:
    host: photos.example.com
    className: nginx
    tls: {issuerRef: {kind: ClusterIssuer, name: letsencrypt}}
  monitoring: {serviceMonitor: true, alerts: true}
  dataPolicy: Retain
";

    pub fn site(yaml: &str) -> PhotoSite {
        serde_yaml::from_str(yaml).expect("valid PhotoSite")
    }

    pub fn demo() -> PhotoSite {
        site(DEMO)
    }

    pub fn fakeflickr() -> PhotoSite {
        site(FAKEFLICKR)
    }

    pub fn with<F: FnOnce(&mut PhotoSite)>(mut s: PhotoSite, f: F) -> PhotoSite {
        f(&mut s);
        s
    }

    /// An external database from the Secret `name`, key `uri`.
    pub fn external(name: &str) -> crate::crd::ExternalDatabaseSpec {
        crate::crd::ExternalDatabaseSpec {
            secret_name: name.into(),
            key: "uri".into(),
            ssl_mode: None,
            ca_secret: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::crd::AccessMode;

    #[test]
    fn demo_children_in_apply_order() {
        let d = build_all(&demo(), &inputs());
        let kinds: Vec<(Kind, &str)> = d
            .children
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::ServiceAccount, "demo"),
                (Kind::ConfigMap, "demo-config"),
                (Kind::Secret, "demo-credentials"),
                (Kind::PersistentVolumeClaim, "demo-originals"),
                (Kind::DatabaseCluster, "demo-db"),
                (Kind::Service, "demo"),
                (Kind::Service, "demo-metrics"),
                (Kind::PodDisruptionBudget, "demo"),
                (Kind::NetworkPolicy, "demo"),
                (Kind::Deployment, "demo"),
            ]
        );
        assert!(d.missing.is_empty());
    }

    #[test]
    fn fakeflickr_has_every_child() {
        let d = build_all(&fakeflickr(), &inputs());
        // two Services (web, metrics) and one of every kind but the backup and restore ones
        let backup_kinds = [
            Kind::ObjectStore,
            Kind::ScheduledBackup,
            Kind::Job,
            Kind::CronJob,
        ];
        assert_eq!(d.children.len(), Kind::ALL.len() + 1 - backup_kinds.len());
        let mut kinds = d.children.iter().map(|c| c.kind).collect::<Vec<_>>();
        kinds.dedup();
        let expected: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| !backup_kinds.contains(k))
            .collect();
        assert_eq!(kinds, expected);
        assert!(d.contains(Kind::PodMonitor, "fakeflickr-db"));
    }

    #[test]
    fn backups_add_their_children_in_apply_order() {
        let s = with(fakeflickr(), |s| s.spec.backup = Some(backup_spec()));
        let d = build_all(&s, &inputs());
        let names: Vec<(Kind, &str)> = d
            .children
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        let at = |k: Kind, n: &str| {
            names
                .iter()
                .position(|x| *x == (k, n))
                .unwrap_or_else(|| panic!("no {k:?} {n}"))
        };
        // the Cluster names its ObjectStore, the ScheduledBackup its Cluster
        assert!(
            at(Kind::ObjectStore, "fakeflickr-backup") < at(Kind::DatabaseCluster, "fakeflickr-db")
        );
        assert!(
            at(Kind::DatabaseCluster, "fakeflickr-db")
                < at(Kind::ScheduledBackup, "fakeflickr-backup")
        );
        assert!(
            at(Kind::NetworkPolicy, "fakeflickr-jobs") < at(Kind::CronJob, "fakeflickr-backup")
        );
        assert!(at(Kind::Deployment, "fakeflickr") < at(Kind::CronJob, "fakeflickr-backup"));
        assert!(d.get(Kind::Job).is_none());
        // every kind now, but the restore Job
        let mut kinds = d.children.iter().map(|c| c.kind).collect::<Vec<_>>();
        kinds.dedup();
        let expected: Vec<Kind> = Kind::ALL.into_iter().filter(|k| *k != Kind::Job).collect();
        assert_eq!(kinds, expected);
        assert!(d.missing.is_empty());
    }

    #[test]
    fn without_the_plugin_backups_keep_the_originals_and_the_database_runs() {
        let s = with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let mut i = inputs();
        i.apis.barman_cloud = false;
        let d = build_all(&s, &i);
        assert_eq!(d.missing, vec![OptionalApi::BarmanCloud]);
        assert!(d.get(Kind::ObjectStore).is_none());
        assert!(d.get(Kind::ScheduledBackup).is_none());
        assert!(d.get(Kind::CronJob).is_some());
        let cluster = &d.get(Kind::DatabaseCluster).unwrap().object;
        assert!(cluster["spec"].get("plugins").is_none());
        // an external database needs no plugin: only the originals are backed up here
        let s = with(s, |s| s.spec.database.external = Some(external("rds")));
        let d = build_all(&s, &i);
        assert!(d.missing.is_empty());
        assert!(d.get(Kind::CronJob).is_some());
    }

    #[test]
    fn restore_runs_before_the_servers_start() {
        let s = with(demo(), |s| {
            s.spec.restore = Some(restore_spec());
            s.spec.backup = Some(backup_spec());
        });
        let mut i = inputs();
        let before = build_all(&s, &i);
        assert!(before.contains(Kind::Job, "demo-restore"));
        assert!(before.contains(Kind::ObjectStore, "demo-restore"));
        assert!(before.contains(Kind::DatabaseCluster, "demo-db"));
        // no server, and no backup of a half-restored volume, until the Job has succeeded
        assert!(before.get(Kind::Deployment).is_none());
        assert!(before.get(Kind::CronJob).is_none());
        let autoscaled = with(s.clone(), |s| s.spec.autoscaling.enabled = true);
        assert!(
            build_all(&autoscaled, &i)
                .get(Kind::HorizontalPodAutoscaler)
                .is_none()
        );
        i.originals_restored = true;
        let after = build_all(&s, &i);
        assert!(after.get(Kind::Job).is_none());
        assert!(after.contains(Kind::Deployment, "demo"));
        assert!(after.contains(Kind::CronJob, "demo-backup"));
        assert!(
            build_all(&autoscaled, &i)
                .get(Kind::HorizontalPodAutoscaler)
                .is_some()
        );
        // the database restore stays in the Cluster's bootstrap: it only acts at creation
        assert_eq!(
            before.get(Kind::DatabaseCluster).unwrap().object,
            after.get(Kind::DatabaseCluster).unwrap().object
        );
    }

    #[test]
    fn a_restored_database_is_never_created_empty() {
        // without the plugin the Cluster would bootstrap with initdb: hold it back
        let s = with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let mut i = inputs();
        i.apis.barman_cloud = false;
        let d = build_all(&s, &i);
        assert!(d.get(Kind::DatabaseCluster).is_none());
        assert_eq!(d.missing, vec![OptionalApi::BarmanCloud]);
        // the originals are restored all the same
        assert!(d.contains(Kind::Job, "demo-restore"));
    }

    #[test]
    fn monitoring_skipped_without_prometheus_crds() {
        let mut i = inputs();
        i.apis.prometheus = false;
        let d = build_all(&fakeflickr(), &i);
        assert!(d.children.iter().all(|c| !c.kind.is_monitoring()));
        assert_eq!(d.missing, vec![OptionalApi::PrometheusOperator]);
        // a site that asks for no monitoring misses nothing
        assert!(build_all(&demo(), &i).missing.is_empty());
    }

    #[test]
    fn without_cloudnative_pg_only_the_database_is_left_out() {
        let mut i = inputs();
        i.apis.cloudnative_pg = false;
        let d = build_all(&fakeflickr(), &i);
        assert_eq!(d.missing, vec![OptionalApi::CloudNativePg]);
        assert!(d.get(Kind::DatabaseCluster).is_none());
        assert!(d.get(Kind::PodMonitor).is_none());
        for k in [
            Kind::Deployment,
            Kind::Service,
            Kind::Ingress,
            Kind::PersistentVolumeClaim,
            Kind::ServiceMonitor,
        ] {
            assert!(d.get(k).is_some(), "{k:?} must still be built");
        }
        // an external database needs no CloudNativePG
        let s = with(demo(), |s| s.spec.database.external = Some(external("rds")));
        assert!(build_all(&s, &i).missing.is_empty());
    }

    /// fakeflickr with backups, and a site restored from them.
    fn backup_sites() -> [PhotoSite; 2] {
        [
            with(fakeflickr(), |s| s.spec.backup = Some(backup_spec())),
            with(demo(), |s| {
                s.spec.restore = Some(restore_spec());
                s.spec.backup = Some(backup_spec());
            }),
        ]
    }

    #[test]
    fn every_child_has_labels_owner_and_valid_name() {
        let [backed_up, restored] = backup_sites();
        for s in [demo(), fakeflickr(), backed_up, restored] {
            let d = build_all(&s, &inputs());
            for c in &d.children {
                let m = &c.object["metadata"];
                assert_eq!(m["name"], c.name.as_str());
                assert_eq!(m["namespace"], "photos");
                assert!(crate::names::is_dns_label(&c.name));
                assert_eq!(
                    m["labels"][labels::SITE],
                    s.metadata.name.as_deref().unwrap()
                );
                assert_eq!(m["labels"][labels::MANAGED_BY], labels::MANAGER);
                assert_eq!(c.object["kind"], c.kind.kind_name());
                let data = matches!(
                    c.kind,
                    Kind::PersistentVolumeClaim | Kind::DatabaseCluster | Kind::ObjectStore
                );
                let owners = m["ownerReferences"].as_array();
                if data {
                    assert!(
                        owners.is_none(),
                        "{:?} must not be owned under Retain",
                        c.kind
                    );
                    // a claim or a database is not a photo-server pod: no selector labels
                    for key in labels::selector("x").keys() {
                        assert!(m["labels"].get(key).is_none(), "{:?} has {key}", c.kind);
                    }
                } else {
                    let o = &owners.expect("owner references")[0];
                    assert_eq!(o["kind"], "PhotoSite");
                    assert_eq!(o["controller"], true);
                    assert_eq!(o["uid"], s.metadata.uid.as_deref().unwrap());
                }
            }
        }
    }

    #[test]
    fn data_is_owned_under_delete() {
        let s = with(demo(), |s| s.spec.data_policy = DataPolicy::Delete);
        let d = build_all(&s, &inputs());
        for k in [Kind::PersistentVolumeClaim, Kind::DatabaseCluster] {
            let o = &d.get(k).unwrap().object["metadata"]["ownerReferences"][0];
            assert_eq!(o["name"], "demo");
        }
    }

    #[test]
    fn external_database_and_existing_claim_skip_children() {
        let s = with(demo(), |s| {
            s.spec.storage.originals.existing_claim = Some("mine".into());
            s.spec.database.external = Some(external("rds"));
        });
        let d = build_all(&s, &inputs());
        assert!(d.get(Kind::PersistentVolumeClaim).is_none());
        assert!(d.get(Kind::DatabaseCluster).is_none());
    }

    #[test]
    fn validation_rejects_bad_specs() {
        let bad = [
            with(demo(), |s| s.spec.autoscaling.min_replicas = 20),
            with(demo(), |s| s.spec.image = " ".into()),
            with(demo(), |s| {
                s.spec.storage.cache.size_limit.0 = "lots".into()
            }),
            with(demo(), |s| s.spec.monitoring.alerts = true),
            with(demo(), |s| s.metadata.name = Some("x".repeat(41))),
            with(fakeflickr(), |s| {
                if let Some(i) = s.spec.ingress.as_mut() {
                    i.host = None
                }
            }),
            // ReadWriteOncePod mounts on one pod only
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod
            }),
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.replicas = 1;
                s.spec.autoscaling.enabled = true;
            }),
            with(demo(), |s| s.spec.uploads.max_file_size.0 = "300Mi".into()),
            with(demo(), |s| s.spec.uploads.max_request_size.0 = "0".into()),
            with(demo(), |s| {
                s.spec.network_policy.ingress_cidrs = vec!["10.0.0.1/16".into()]
            }),
            with(demo(), |s| {
                s.spec.network_policy.ingress_cidrs = vec!["10.0.0.0/33".into()]
            }),
            with(demo(), |s| {
                s.spec
                    .monitoring
                    .labels
                    .insert("release".into(), "not a label".into());
            }),
        ];
        for s in bad {
            assert!(
                matches!(validate(&s), Err(Error::InvalidSpec(_))),
                "{:?}",
                s.spec
            );
        }
        assert!(validate(&demo()).is_ok());
        assert!(validate(&fakeflickr()).is_ok());
        // one pod on a ReadWriteOncePod claim is fine, and so is an existing claim
        for ok in [
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.replicas = 1;
            }),
            with(demo(), |s| {
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
                s.spec.storage.originals.existing_claim = Some("mine".into());
            }),
        ] {
            assert!(validate(&ok).is_ok(), "{:?}", ok.spec);
        }
    }

    #[test]
    fn backup_and_restore_are_checked_beyond_the_schema() {
        let backed_up = || with(demo(), |s| s.spec.backup = Some(backup_spec()));
        let restored = || with(demo(), |s| s.spec.restore = Some(restore_spec()));
        let bad = [
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "every day".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().schedule = "0 0 3 * * *".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().retention = "30".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().retention = "0d".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().max_age = "1y".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().object_store.bucket = "My_Bucket".into()
            }),
            with(backed_up(), |s| {
                s.spec.backup.as_mut().unwrap().object_store.endpoint_url =
                    Some("minio:9000".into())
            }),
            // one pod at most mounts a ReadWriteOncePod claim: the backup could never run
            with(backed_up(), |s| {
                s.spec.replicas = 1;
                s.spec.storage.originals.access_mode = AccessMode::ReadWriteOncePod;
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("yesterday".into())
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().target_time = Some("2026-02-30T00:00:00Z".into())
            }),
            with(restored(), |s| {
                s.spec.restore.as_mut().unwrap().site_name = Some("Photos".into())
            }),
            // a restored site backing up over the backup it came from
            with(restored(), |s| {
                let mut b = backup_spec();
                b.object_store = s.spec.restore.as_ref().unwrap().object_store.clone();
                s.spec.backup = Some(b);
            }),
        ];
        for s in bad {
            let err = validate(&s).map(|_| ()).unwrap_err();
            assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
        }
        let ok = with(restored(), |s| {
            s.spec.backup = Some(backup_spec());
            s.spec.restore.as_mut().unwrap().target_time = Some("2026-03-01T12:00:00+01:00".into());
        });
        let v = validate(&ok).unwrap();
        let b = v.backup.as_ref().unwrap();
        assert_eq!(b.schedule, "0 3 * * *");
        assert_eq!(b.database_schedule, "0 0 3 * * *");
        assert_eq!(b.max_age_seconds, 26 * 3600);
        assert_eq!(b.store.url, "s3://backups/prod/site");
        assert_eq!(v.restore.as_ref().unwrap().server_name, "demo-db");
    }

    #[test]
    fn every_built_child_is_a_possible_child() {
        let [backed_up, restored] = backup_sites();
        let mut restoring = inputs();
        restoring.originals_restored = false;
        let mut done = inputs();
        done.originals_restored = true;
        for (s, i) in [
            (demo(), inputs()),
            (fakeflickr(), inputs()),
            (backed_up, inputs()),
            (restored.clone(), restoring),
            (restored, done),
        ] {
            let possible = possible_children(s.metadata.name.as_deref().unwrap());
            for c in build_all(&s, &i).children {
                assert!(
                    possible.contains(&(c.kind, c.name.clone())),
                    "{:?} {} is not in possible_children: cleanup would never find it",
                    c.kind,
                    c.name
                );
            }
        }
    }

    #[test]
    fn cidrs_must_be_canonical() {
        assert_eq!(canonical_cidr("10.0.0.0/16").as_deref(), Ok("10.0.0.0/16"));
        assert_eq!(canonical_cidr("fd00::/8").as_deref(), Ok("fd00::/8"));
        assert_eq!(canonical_cidr("0.0.0.0/0").as_deref(), Ok("0.0.0.0/0"));
        assert!(
            canonical_cidr("10.0.0.1/16")
                .unwrap_err()
                .contains("10.0.0.0/16")
        );
        assert!(canonical_cidr("fd00:0::/8").is_err());
        assert!(canonical_cidr("10.0.0.0").is_err());
        assert!(canonical_cidr("::/129").is_err());
        assert!(canonical_cidr("example.com/8").is_err());
    }
}
