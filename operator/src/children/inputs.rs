//! What the builders need besides the validated site ([`Inputs`]): facts the controller read
//! from the cluster (or `render`'s defaults).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::kind::Apis;

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
    /// When the restore Job of `spec.restore` succeeded ([`crate::controller::restore`]):
    /// until then the site has the Job and no Deployment; afterwards the originals claim
    /// carries the time ([`crate::children::pvc::RESTORED_ANNOTATION`]). Ignored without
    /// `spec.restore`; `None` in `render`, which shows a restored site as it starts.
    pub originals_restored: Option<Time>,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            credentials: None,
            apis: Apis::ALL,
            external_database: None,
            originals_restored: None,
        }
    }
}
