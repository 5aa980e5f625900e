//! ConfigMap with photo-server's non-secret configuration, read as environment variables
//! (`envFrom`). Its hash goes into the pod template so a configuration change rolls the pods.
//!
//! Two listeners: the web port ([`PORT`], behind the Service the Ingress uses) and the
//! metrics port ([`METRICS_PORT`], `/metrics`, `/healthz`, `/readyz`), which only the headless
//! metrics Service exposes and only the monitoring namespace may reach. With
//! `PHOTO_METRICS_LISTEN` set, photo-server answers `404` for `/metrics` on the web port, so
//! metrics are never public through the Ingress.
//!
//! `PHOTO_TRUSTED_PROXIES` (peers whose `X-Forwarded-Proto` photo-server believes) is set
//! explicitly rather than left to photo-server's default (loopback only): the private address
//! ranges where ingress controllers run as pods, plus `networkPolicy.ingressCIDRs`. Trusting
//! the private ranges is safe because the NetworkPolicy admits only the ingress controller's
//! namespace and those CIDRs to the web port.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use crate::names;
use crate::site::ValidatedSite;

/// Where the pods keep things (also used by the Deployment builder).
pub const DATA_DIR: &str = "/var/lib/photo";
pub const ORIGINALS_DIR: &str = "/var/lib/photo/originals";
pub const CACHE_DIR: &str = "/var/cache/photo";
/// The web port (`PHOTO_LISTEN`).
pub const PORT: i32 = 8080;
/// The metrics and probes port (`PHOTO_METRICS_LISTEN`).
pub const METRICS_PORT: i32 = 9090;

/// photo-server may fill this share of the cache emptyDir's sizeLimit; the kubelet evicts a
/// pod whose emptyDir exceeds its limit, so the server must stay clearly below it.
pub const CACHE_SHARE_PERCENT: u64 = 90;

/// Loopback and the private ranges (RFC 1918, IPv6 unique local) where cluster pods live.
pub const PRIVATE_RANGES: [&str; 6] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
];

/// `PHOTO_TRUSTED_PROXIES`: the private ranges and the site's ingress CIDRs.
pub fn trusted_proxies(site: &ValidatedSite) -> String {
    let mut list: Vec<&str> = PRIVATE_RANGES.to_vec();
    for cidr in &site.ingress_cidrs {
        if !list.contains(&cidr.as_str()) {
            list.push(cidr);
        }
    }
    list.join(",")
}

pub fn build(site: &ValidatedSite) -> ConfigMap {
    let spec = site.spec;
    let renditions = spec
        .renditions
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let data = BTreeMap::from([
        // IPv6 and IPv4 at once: pods of IPv6-only and dual-stack clusters are probed and
        // reached over IPv6 (photo-server falls back to IPv4 on a host without it)
        ("PHOTO_LISTEN".to_string(), format!("[::]:{PORT}")),
        (
            "PHOTO_METRICS_LISTEN".to_string(),
            format!("[::]:{METRICS_PORT}"),
        ),
        ("PHOTO_DATA_DIR".to_string(), DATA_DIR.to_string()),
        ("PHOTO_ORIGINALS_DIR".to_string(), ORIGINALS_DIR.to_string()),
        ("PHOTO_CACHE_DIR".to_string(), CACHE_DIR.to_string()),
        (
            "PHOTO_CACHE_MAX_BYTES".to_string(),
            (site.cache_bytes / 100 * CACHE_SHARE_PERCENT).to_string(),
        ),
        (
            "PHOTO_MAX_REQUEST_BYTES".to_string(),
            site.max_request_bytes.to_string(),
        ),
        (
            "PHOTO_MAX_UPLOAD_BYTES".to_string(),
            site.max_file_bytes.to_string(),
        ),
        (
            "PHOTO_USER_QUOTA_BYTES".to_string(),
            site.user_quota_bytes.to_string(),
        ),
        ("PHOTO_TRUSTED_PROXIES".to_string(), trusted_proxies(site)),
        ("PHOTO_RENDITIONS".to_string(), renditions),
        ("PHOTO_ADMIN_USER".to_string(), spec.admin_user.clone()),
        ("PHOTO_LOG_FORMAT".to_string(), "json".to_string()),
    ]);
    ConfigMap {
        metadata: site.meta(names::config_map(site.name), "server"),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Hash of the ConfigMap's data (hex SHA-256, first 16 characters).
pub fn hash(cm: &ConfigMap) -> String {
    let mut h = Sha256::new();
    for (k, v) in cm.data.iter().flatten() {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    #[test]
    fn environment() {
        let s = fakeflickr();
        let d = build(&valid(&s)).data.unwrap();
        assert_eq!(d["PHOTO_LISTEN"], "[::]:8080");
        assert_eq!(d["PHOTO_RENDITIONS"], "240,640,1440,2048");
        // 90% of 4Gi
        assert_eq!(
            d["PHOTO_CACHE_MAX_BYTES"],
            ((4u64 << 30) / 100 * 90).to_string()
        );
        assert_eq!(d["PHOTO_LOG_FORMAT"], "json");
        assert_eq!(d["PHOTO_ORIGINALS_DIR"], ORIGINALS_DIR);
    }

    #[test]
    fn metrics_listen_on_their_own_port() {
        let s = demo();
        let d = build(&valid(&s)).data.unwrap();
        assert_eq!(d["PHOTO_METRICS_LISTEN"], "[::]:9090");
        assert_ne!(METRICS_PORT, PORT);
    }

    #[test]
    fn request_limits_are_configured_explicitly() {
        let d = build(&valid(&demo())).data.unwrap();
        // photo-server's defaults, stated so that the Ingress limit can follow them
        assert_eq!(d["PHOTO_MAX_REQUEST_BYTES"], (200u64 << 20).to_string());
        assert_eq!(d["PHOTO_MAX_UPLOAD_BYTES"], (50u64 << 20).to_string());
        assert_eq!(d["PHOTO_USER_QUOTA_BYTES"], (10u64 << 30).to_string());
        let s = with(demo(), |s| {
            s.spec.uploads.max_request_size.0 = "1Gi".into();
            s.spec.uploads.max_file_size.0 = "300M".into();
            s.spec.uploads.user_quota.0 = "0".into();
        });
        let d = build(&valid(&s)).data.unwrap();
        assert_eq!(d["PHOTO_MAX_REQUEST_BYTES"], (1u64 << 30).to_string());
        assert_eq!(d["PHOTO_MAX_UPLOAD_BYTES"], "300000000");
        assert_eq!(d["PHOTO_USER_QUOTA_BYTES"], "0");
    }

    #[test]
    fn trusted_proxies_are_the_private_ranges_and_ingress_cidrs() {
        let d = build(&valid(&demo())).data.unwrap();
        assert_eq!(d["PHOTO_TRUSTED_PROXIES"], PRIVATE_RANGES.join(","));
        let s = with(demo(), |s| {
            s.spec.network_policy.ingress_cidrs = vec!["100.64.0.0/10".into(), "10.0.0.0/8".into()]
        });
        let d = build(&valid(&s)).data.unwrap();
        let list: Vec<&str> = d["PHOTO_TRUSTED_PROXIES"].split(',').collect();
        assert!(list.contains(&"100.64.0.0/10"));
        assert_eq!(list.iter().filter(|c| **c == "10.0.0.0/8").count(), 1);
    }

    #[test]
    fn hash_changes_with_config() {
        let a = demo();
        let b = with(demo(), |s| s.spec.renditions = vec![320]);
        let ha = hash(&build(&valid(&a)));
        let hb = hash(&build(&valid(&b)));
        assert_ne!(ha, hb);
        assert_eq!(ha, hash(&build(&valid(&a))));
    }
}
