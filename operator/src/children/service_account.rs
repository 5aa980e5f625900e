//! ServiceAccount of the photo-server pods. photo-server never talks to the Kubernetes API,
//! so the token is not mounted.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::names;
use crate::site::ValidatedSite;

pub fn build(site: &ValidatedSite) -> ServiceAccount {
    ServiceAccount {
        metadata: site.meta(names::app(site.name), "server"),
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
