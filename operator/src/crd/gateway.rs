//! `spec.gateway`: the site served through the Gateway API (an HTTPRoute).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An HTTPRoute (`gateway.networking.k8s.io/v1`) sending every path of `hostnames` to the
/// site's Service, attached to the Gateways in `parentRefs`. TLS is the Gateway's (its
/// listeners' `certificateRefs`, which cert-manager can issue through its Gateway support).
/// The Gateway's proxies must reach the pods: give their namespace as
/// `networkPolicy.ingressNamespace`, or their addresses as `networkPolicy.ingressCIDRs` when
/// they run outside the cluster. Needs the Gateway API CRDs (the site is `Degraded` with
/// `GatewayAPINotInstalled` until they are served).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The Gateways the route attaches to.
    #[schemars(length(min = 1, max = 32))]
    pub parent_refs: Vec<GatewayParentRef>,
    /// Host names the route serves, e.g. `photos.example.com`; empty: every host name of the
    /// Gateway's listeners.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            )
        )
    )]
    pub hostnames: Vec<String>,
}

/// A Gateway (or one of its listeners) to attach the route to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    /// Name of the Gateway.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Gateway; the PhotoSite's when empty. A Gateway in another namespace
    /// must allow routes from this one (its listeners' `allowedRoutes.namespaces`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// Name of the listener to attach to; every listener that allows the route when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,
}
