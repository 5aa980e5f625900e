//! Stage 4, dereference: read what a PhotoSite references.
//!
//! - its credentials Secret (from the watch store, else a GET): existing values are kept,
//!   missing ones generated, so the session key and admin password are never rotated by
//!   accident;
//! - `storage.originals.existingClaim`: must exist, or the site is Degraded
//!   (`ExistingClaimNotFound`); its phase goes to `status.originals`;
//! - `database.external`: the Secret and its key must exist (`DatabaseSecretNotFound`), and
//!   so must `caSecret` when given. The URI's ports open the NetworkPolicy, and a hash of the
//!   values rolls the pods when the Secret is rotated;
//! - the object store Secrets of `spec.backup` and of `spec.restore` while the restore has not
//!   succeeded (access key, CA): a missing one is reported (Degraded `BackupSecretNotFound`)
//!   without stopping the reconcile, as the site runs without them and their pods start once
//!   the Secret appears. A restored site no longer needs its source's Secret.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::Api;
use sha2::{Digest, Sha256};

use super::context::Context;
use crate::children::network_policy::POSTGRES_PORT;
use crate::children::{Credentials, ExternalDatabase, Kind, secret};
use crate::error::{ApiError, Stage};
use crate::names;
use crate::site::ValidatedSite;
use crate::site::{ACCESS_KEY_ID, ACCESS_SECRET_KEY};

/// Why what a PhotoSite references cannot be read.
#[derive(thiserror::Error, Debug)]
pub enum DereferenceError {
    /// `storage.originals.existingClaim` names a claim that does not exist.
    #[error("existing claim {0:?} for originals not found")]
    MissingClaim(String),
    /// The external database Secret or its key does not exist.
    #[error("external database secret: {0}")]
    MissingDatabaseSecret(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The credentials Secret in the store does not convert (a bug).
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl DereferenceError {
    /// Label for the `photo_operator_reconcile_errors_total` counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DereferenceError::MissingClaim(_) => "missing_claim",
            DereferenceError::MissingDatabaseSecret(_) => "missing_database_secret",
            DereferenceError::Api(e) => e.metric_label(),
            DereferenceError::Serialization(_) => "serialization",
        }
    }

    /// Reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            DereferenceError::MissingClaim(_) => "ExistingClaimNotFound",
            DereferenceError::MissingDatabaseSecret(_) => "DatabaseSecretNotFound",
            DereferenceError::Api(e) => e.reason(),
            DereferenceError::Serialization(_) => "InternalError",
        }
    }

    /// A missing claim or Secret is the author's to fix.
    pub fn is_user_error(&self) -> bool {
        match self {
            DereferenceError::MissingClaim(_) | DereferenceError::MissingDatabaseSecret(_) => true,
            DereferenceError::Api(e) => e.is_user_error(),
            DereferenceError::Serialization(_) => false,
        }
    }
}

/// What the PhotoSite references, as read from the cluster.
#[derive(Clone, Debug)]
pub struct References {
    pub credentials: Credentials,
    /// Ports and hash of the external database's Secret.
    pub external_database: Option<ExternalDatabase>,
    /// Phase of `storage.originals.existingClaim`.
    pub existing_claim_phase: Option<String>,
    /// What is missing from the object store Secrets of `spec.backup` and `spec.restore`.
    pub missing_store_secrets: Vec<String>,
}

/// The TCP ports of the hosts in a Postgres connection URI
/// (`postgres://user:pw@host1:5433,host2/db?...`), [`POSTGRES_PORT`] for a host without one.
pub fn uri_ports(uri: &str) -> Vec<u16> {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let hosts = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
    let mut ports = Vec::new();
    for host in hosts.split(',') {
        let port = match host.rsplit_once(']') {
            // [v6]:port
            Some((_, tail)) => tail.strip_prefix(':'),
            None => host.rsplit_once(':').map(|(_, p)| p),
        };
        let port = port.and_then(|p| p.parse().ok()).unwrap_or(POSTGRES_PORT);
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

fn secret_value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data.as_ref()?.get(key).map(|b| b.0.clone())
}

pub async fn dereference(
    site: &ValidatedSite<'_>,
    ctx: &Context,
    restore_pending: bool,
) -> Result<References, DereferenceError> {
    let ns = site.namespace;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let get_secret = |name: String| {
        let secrets = secrets.clone();
        async move {
            secrets.get_opt(&name).await.map_err(ApiError::api(
                Stage::Dereference,
                format!("Secret {ns}/{name}"),
            ))
        }
    };

    let secret_name = names::credentials_secret(site.name);
    let existing: Option<Secret> = match ctx.stores.get(Kind::Secret, ns, &secret_name) {
        Some(live) => serde_json::from_value(serde_json::to_value(&*live)?).ok(),
        None => get_secret(secret_name).await?,
    };
    let credentials = secret::from_existing(existing.as_ref());

    let mut existing_claim_phase = None;
    if let Some(claim) = &site.spec.storage.originals.existing_claim {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        let found = pvcs.get_opt(claim).await.map_err(ApiError::api(
            Stage::Dereference,
            format!("PersistentVolumeClaim {ns}/{claim}"),
        ))?;
        let Some(found) = found else {
            return Err(DereferenceError::MissingClaim(claim.clone()));
        };
        existing_claim_phase = found.status.and_then(|s| s.phase);
    }

    let mut external_database = None;
    if let Some(ext) = &site.spec.database.external {
        let missing = DereferenceError::MissingDatabaseSecret;
        let uri = get_secret(ext.secret_name.clone())
            .await?
            .ok_or_else(|| missing(format!("Secret {:?} not found", ext.secret_name)))?;
        let uri = secret_value(&uri, &ext.key).ok_or_else(|| {
            missing(format!(
                "Secret {:?} has no key {:?}",
                ext.secret_name, ext.key
            ))
        })?;
        let mut hash = Sha256::new();
        hash.update(&uri);
        if let Some(ca) = &ext.ca_secret {
            let cert = get_secret(ca.name.clone())
                .await?
                .ok_or_else(|| missing(format!("CA Secret {:?} not found", ca.name)))?;
            let cert = secret_value(&cert, &ca.key).ok_or_else(|| {
                missing(format!("CA Secret {:?} has no key {:?}", ca.name, ca.key))
            })?;
            hash.update([0]);
            hash.update(&cert);
        }
        external_database = Some(ExternalDatabase {
            ports: uri_ports(&String::from_utf8_lossy(&uri)),
            secret_hash: hex::encode(hash.finalize())[..16].to_string(),
        });
    }

    let mut missing_store_secrets = Vec::new();
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for (field, store) in [
        ("backup", site.backup.as_ref().map(|b| &b.store)),
        (
            "restore",
            site.restore
                .as_ref()
                .filter(|_| restore_pending)
                .map(|r| &r.store),
        ),
    ] {
        let Some(store) = store else { continue };
        let s = store.spec;
        // without a Secret the store is reached with an IAM role: nothing to read
        if let Some(secret) = &s.credentials_secret {
            for key in [ACCESS_KEY_ID, ACCESS_SECRET_KEY] {
                wanted.push((
                    format!("{field}.objectStore.credentialsSecret"),
                    secret.clone(),
                    key.to_string(),
                ));
            }
        }
        if let Some(ca) = &s.ca_secret {
            wanted.push((
                format!("{field}.objectStore.caSecret"),
                ca.name.clone(),
                ca.key.clone(),
            ));
        }
    }
    let mut read: Vec<(String, Option<Secret>)> = Vec::new();
    for (field, name, key) in wanted {
        let found = match read.iter().find(|(n, _)| *n == name) {
            Some((_, found)) => found.clone(),
            None => {
                let found = get_secret(name.clone()).await?;
                read.push((name.clone(), found.clone()));
                found
            }
        };
        let message = match found {
            None => format!("{field}: Secret {name:?} not found"),
            Some(secret) if secret_value(&secret, &key).is_none() => {
                format!("{field}: Secret {name:?} has no key {key:?}")
            }
            Some(_) => continue,
        };
        if !missing_store_secrets.contains(&message) {
            missing_store_secrets.push(message);
        }
    }

    Ok(References {
        credentials,
        external_database,
        existing_claim_phase,
        missing_store_secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_connection_uris() {
        assert_eq!(
            uri_ports("postgres://u:p@db.example.com/photos"),
            vec![5432]
        );
        assert_eq!(
            uri_ports("postgresql://u:p@db.example.com:6432/photos?sslmode=require"),
            vec![6432]
        );
        assert_eq!(
            uri_ports("postgres://u:p@a:5433,b:5434,c/photos"),
            vec![5433, 5434, 5432]
        );
        assert_eq!(uri_ports("postgres://u:p@[fd00::1]:5439/x"), vec![5439]);
        assert_eq!(uri_ports("postgres://[fd00::1]/x"), vec![5432]);
        // a password with an '@' or ':' in it (percent-encoding forgotten)
        assert_eq!(uri_ports("postgres://u:p@ss:w@host:7000/x"), vec![7000]);
    }
}
