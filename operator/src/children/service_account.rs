//! ServiceAccount of the photo-server pods (and of the backup and restore Jobs), with
//! `spec.serviceAccount.annotations` (an IAM role for the backups). photo-server never talks
//! to the Kubernetes API, so the token is not mounted; IRSA and EKS Pod Identity project
//! their own tokens.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::names;
use crate::site::ValidatedSite;

pub fn build(site: &ValidatedSite) -> ServiceAccount {
    let mut metadata = site.meta(names::app(site.name), "server");
    if let Some(sa) = site
        .spec
        .service_account
        .as_ref()
        .filter(|s| !s.annotations.is_empty())
    {
        metadata.annotations = Some(sa.annotations.clone());
    }
    ServiceAccount {
        metadata,
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn no_token() {
        let s = demo();
        let sa = build(&valid(&s));
        assert_eq!(sa.metadata.name.as_deref(), Some("demo"));
        assert_eq!(sa.automount_service_account_token, Some(false));
    }
}
