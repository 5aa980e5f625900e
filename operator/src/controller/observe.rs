//! Stage 2, observe: a site's children as the watch stores show them, parsed once into typed
//! observations ([`Observed`]) that the plan and the status read.
//!
//! The stores keep a pruned projection of each child ([`super::ssa::prune`]: metadata,
//! `data`, `status`, a few `spec` fields), so the full k8s-openapi types would not
//! deserialise from them (their required fields are gone). An [`ObservedChild`] holds what is
//! read: the metadata (k8s-openapi `ObjectMeta`, every field optional), the per-kind state
//! ([`ChildState`]: k8s-openapi status types for the built-in kinds, [`crate::children::crd_types`] for
//! CloudNativePG and the Barman Cloud plugin), and the pruned projection itself, which the
//! diff compares a desired object with at the server-side-apply boundary
//! ([`super::ssa::needs_apply`]).
//!
//! The answer of each apply is parsed the same way ([`ObservedChild::parse`]), so the status
//! sees what the API server just accepted.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::batch::v1::{CronJobStatus, JobStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, PersistentVolumeClaimStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::watches::{NotListed, Stores};
use crate::children::crd_types::{ClusterStatus, HttpRouteStatus, ObjectStoreStatus};
use crate::children::{self, Kind};
use crate::site::ValidatedSite;

/// Why a site's children cannot be observed.
#[derive(thiserror::Error, Debug)]
pub enum ObserveError {
    /// A watch the reconcile reads has not listed: its store would show children as missing.
    #[error(transparent)]
    WatchNotListed(#[from] NotListed),
    /// A child does not parse into its observation type (an API server or a CloudNativePG of
    /// another version).
    #[error("reading the live {kind} {name}: {source}")]
    Parse {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ObserveError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ObserveError::WatchNotListed(_) => "watch_not_listed",
            ObserveError::Parse { .. } => "serialization",
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ObserveError::WatchNotListed(_) => "WatchNotListed",
            ObserveError::Parse { .. } => "InternalError",
        }
    }
}

/// What is read of one live child.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedChild {
    pub meta: ObjectMeta,
    pub state: ChildState,
    /// The object as JSON, as the store keeps it (pruned, [`super::ssa::prune_dynamic`]):
    /// what the diff compares a desired object with.
    pub pruned: Value,
}

/// What the plan and the status read of a child, by kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ChildState {
    /// A kind whose spec and status nobody reads.
    #[default]
    Unread,
    /// The originals claim: its immutable fields and size (plan), its phase (status).
    Claim(Box<ObservedClaim>),
    Deployment(DeploymentStatus),
    Job(JobStatus),
    CronJob(CronJobStatus),
    DatabaseCluster(ClusterStatus),
    ObjectStore(ObjectStoreStatus),
    HttpRoute(HttpRouteStatus),
}

/// What is read of a PersistentVolumeClaim.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedClaim {
    pub spec: PersistentVolumeClaimSpec,
    pub status: PersistentVolumeClaimStatus,
}

/// `object[key]` parsed as `T` (its default when absent or null).
fn field<T: DeserializeOwned + Default>(object: &Value, key: &str) -> serde_json::Result<T> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => T::deserialize(v),
    }
}

impl ObservedChild {
    /// Parse a live child of `kind` (a store's copy or an apply's answer). The match is
    /// exhaustive: a new [`Kind`] does not compile until it says what is read of it.
    pub fn parse(kind: Kind, object: &DynamicObject) -> Result<ObservedChild, ObserveError> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let error = |source| ObserveError::Parse {
            kind: kind.kind_name(),
            name: name.clone(),
            source,
        };
        let pruned = serde_json::to_value(object).map_err(error)?;
        let data = &object.data;
        let state = match kind {
            Kind::PersistentVolumeClaim => ChildState::Claim(Box::new(ObservedClaim {
                spec: field(data, "spec").map_err(error)?,
                status: field(data, "status").map_err(error)?,
            })),
            Kind::Deployment => ChildState::Deployment(field(data, "status").map_err(error)?),
            Kind::Job => ChildState::Job(field(data, "status").map_err(error)?),
            Kind::CronJob => ChildState::CronJob(field(data, "status").map_err(error)?),
            Kind::DatabaseCluster => {
                ChildState::DatabaseCluster(field(data, "status").map_err(error)?)
            }
            Kind::ObjectStore => ChildState::ObjectStore(field(data, "status").map_err(error)?),
            Kind::HttpRoute => ChildState::HttpRoute(field(data, "status").map_err(error)?),
            Kind::ServiceAccount
            | Kind::ConfigMap
            | Kind::Secret
            | Kind::ScheduledBackup
            | Kind::Service
            | Kind::PodDisruptionBudget
            | Kind::NetworkPolicy
            | Kind::HorizontalPodAutoscaler
            | Kind::Ingress
            | Kind::ServiceMonitor
            | Kind::PodMonitor
            | Kind::PrometheusRule => ChildState::Unread,
        };
        Ok(ObservedChild {
            meta: object.metadata.clone(),
            state,
            pruned,
        })
    }

    /// Parse a child given as JSON (tests, the benchmark).
    pub fn from_json(kind: Kind, object: Value) -> Result<ObservedChild, ObserveError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let object: DynamicObject =
            serde_json::from_value(object).map_err(|source| ObserveError::Parse {
                kind: kind.kind_name(),
                name,
                source,
            })?;
        ObservedChild::parse(kind, &object)
    }

    /// The Deployment's status, if this is one.
    pub fn deployment(&self) -> Option<&DeploymentStatus> {
        match &self.state {
            ChildState::Deployment(s) => Some(s),
            _ => None,
        }
    }

    /// The Job's status, if this is one.
    pub fn job(&self) -> Option<&JobStatus> {
        match &self.state {
            ChildState::Job(s) => Some(s),
            _ => None,
        }
    }

    /// The CronJob's status, if this is one.
    pub fn cron_job(&self) -> Option<&CronJobStatus> {
        match &self.state {
            ChildState::CronJob(s) => Some(s),
            _ => None,
        }
    }

    /// The CloudNativePG Cluster's status, if this is one.
    pub fn cluster(&self) -> Option<&ClusterStatus> {
        match &self.state {
            ChildState::DatabaseCluster(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTPRoute's status, if this is one.
    pub fn http_route(&self) -> Option<&HttpRouteStatus> {
        match &self.state {
            ChildState::HttpRoute(s) => Some(s),
            _ => None,
        }
    }

    /// The ObjectStore's status, if this is one.
    pub fn object_store(&self) -> Option<&ObjectStoreStatus> {
        match &self.state {
            ChildState::ObjectStore(s) => Some(s),
            _ => None,
        }
    }

    /// The claim's spec and status, if this is one.
    pub fn claim(&self) -> Option<(&PersistentVolumeClaimSpec, &PersistentVolumeClaimStatus)> {
        match &self.state {
            ChildState::Claim(claim) => Some((&claim.spec, &claim.status)),
            _ => None,
        }
    }

    /// The value of one of its labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.meta.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// A site's children as the watch stores show them, by kind and name: every child the
/// operator may create for the site ([`children::possible_children`]) that exists.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub site: String,
    pub children: HashMap<(Kind, String), ObservedChild>,
}

impl Observed {
    pub fn from_stores(stores: &Stores, site: &ValidatedSite) -> Result<Observed, ObserveError> {
        let mut children = HashMap::new();
        for (kind, name) in children::possible_children(site.name) {
            if let Some(live) = stores.get(kind, site.namespace, &name) {
                children.insert((kind, name), ObservedChild::parse(kind, &live)?);
            }
        }
        Ok(Observed {
            site: site.name.to_string(),
            children,
        })
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<&ObservedChild> {
        self.children.get(&(kind, name.to_string()))
    }
}
