//! Step 1: read what a PhotoSite references.
//!
//! - its credentials Secret (from the watch store, else a GET): existing values are kept,
//!   missing ones generated, so the session key and admin password are never rotated by
//!   accident;
//! - `storage.originals.existingClaim`: must exist, or the site is Degraded
//!   (`ExistingClaimNotFound`);
//! - `database.external`: the Secret and its key must exist (`DatabaseSecretNotFound`).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::ResourceExt;
use kube::api::Api;

use super::Context;
use crate::build::{Credentials, Kind, secret};
use crate::crd::PhotoSite;
use crate::{Error, names};

/// What the PhotoSite references, as read from the cluster.
#[derive(Clone, Debug)]
pub struct References {
    pub credentials: Credentials,
    /// Whether the credentials Secret already existed with both keys.
    pub credentials_complete: bool,
}

pub async fn dereference(site: &PhotoSite, ctx: &Context) -> Result<References, Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);

    let secret_name = names::credentials_secret(&name);
    let existing: Option<Secret> = match ctx.stores.get(Kind::Secret, &ns, &secret_name) {
        Some(live) => serde_json::from_value(serde_json::to_value(&*live)?).ok(),
        None => secrets.get_opt(&secret_name).await?,
    };
    let credentials = secret::from_existing(existing.as_ref());
    let credentials_complete = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .is_some_and(|d| {
            d.contains_key(secret::SESSION_KEY) && d.contains_key(secret::ADMIN_PASSWORD)
        });

    if let Some(claim) = &site.spec.storage.originals.existing_claim {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        if pvcs.get_opt(claim).await?.is_none() {
            return Err(Error::MissingClaim(claim.clone()));
        }
    }

    if let Some(ext) = &site.spec.database.external {
        match secrets.get_opt(&ext.secret_name).await? {
            None => {
                return Err(Error::MissingDatabaseSecret(format!(
                    "Secret {:?} not found",
                    ext.secret_name
                )));
            }
            Some(s) if !s.data.as_ref().is_some_and(|d| d.contains_key(&ext.key)) => {
                return Err(Error::MissingDatabaseSecret(format!(
                    "Secret {:?} has no key {:?}",
                    ext.secret_name, ext.key
                )));
            }
            Some(_) => {}
        }
    }

    Ok(References {
        credentials,
        credentials_complete,
    })
}
