//! ConfigMap with photo-server's non-secret configuration, read as environment variables
//! (`envFrom`). Its hash goes into the pod template so a configuration change rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

use super::{Site, quantity};
use crate::{Error, names};

/// Where the pods keep things (also used by the Deployment builder).
pub const DATA_DIR: &str = "/var/lib/photo";
pub const ORIGINALS_DIR: &str = "/var/lib/photo/originals";
pub const CACHE_DIR: &str = "/var/cache/photo";
pub const PORT: i32 = 8080;

/// photo-server may fill this share of the cache emptyDir's sizeLimit; the kubelet evicts a
/// pod whose emptyDir exceeds its limit, so the server must stay clearly below it.
pub const CACHE_SHARE_PERCENT: u64 = 90;

pub fn build(site: &Site) -> Result<ConfigMap, Error> {
    let spec = site.spec;
    let cache_bytes = quantity::parse_bytes(&spec.storage.cache.size_limit.0)
        .map_err(|e| Error::InvalidSpec(format!("storage.cache.sizeLimit: {e}")))?;
    let renditions = spec
        .renditions
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let data = BTreeMap::from([
        ("PHOTO_LISTEN".to_string(), format!("0.0.0.0:{PORT}")),
        ("PHOTO_DATA_DIR".to_string(), DATA_DIR.to_string()),
        ("PHOTO_ORIGINALS_DIR".to_string(), ORIGINALS_DIR.to_string()),
        ("PHOTO_CACHE_DIR".to_string(), CACHE_DIR.to_string()),
        (
            "PHOTO_CACHE_MAX_BYTES".to_string(),
            (cache_bytes / 100 * CACHE_SHARE_PERCENT).to_string(),
        ),
        ("PHOTO_RENDITIONS".to_string(), renditions),
        ("PHOTO_ADMIN_USER".to_string(), spec.admin_user.clone()),
        ("PHOTO_LOG_FORMAT".to_string(), "json".to_string()),
    ]);
    Ok(ConfigMap {
        metadata: site.meta(names::config_map(site.name), "server"),
        data: Some(data),
        ..ConfigMap::default()
    })
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
    use crate::build::test_support::*;

    #[test]
    fn environment() {
        let s = fakeflickr();
        let cm = build(&Site::new(&s).unwrap()).unwrap();
        let d = cm.data.unwrap();
        assert_eq!(d["PHOTO_LISTEN"], "0.0.0.0:8080");
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
    fn hash_changes_with_config() {
        let a = demo();
        let b = with(demo(), |s| s.spec.renditions = vec![320]);
        let ha = hash(&build(&Site::new(&a).unwrap()).unwrap());
        let hb = hash(&build(&Site::new(&b).unwrap()).unwrap());
        assert_ne!(ha, hb);
        assert_eq!(ha, hash(&build(&Site::new(&a).unwrap()).unwrap()));
    }
}
