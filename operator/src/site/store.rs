//! A checked object store destination (`spec.backup.objectStore`, `spec.restore.objectStore`),
//! with the values every builder needs (the site's `s3://bucket/path` URL, the endpoint's port).

use super::error::{ValidateError, invalid as invalid_spec};
use crate::crd::ObjectStoreSpec;

/// Keys of the credentials Secret (CloudNativePG's convention).
pub const ACCESS_KEY_ID: &str = "ACCESS_KEY_ID";
pub const ACCESS_SECRET_KEY: &str = "ACCESS_SECRET_KEY";
/// Folder of the database's backups under a site's URL.
pub const DATABASE_FOLDER: &str = "postgres";

/// A checked object store destination.
#[derive(Clone, Debug)]
pub struct Store<'a> {
    pub spec: &'a ObjectStoreSpec,
    /// `s3://bucket/path` (`PHOTO_BACKUP_URL`), without a trailing `/`.
    pub url: String,
    /// The endpoint without a trailing `/`, if not AWS S3.
    pub endpoint: Option<String>,
    /// TCP port the backup and restore pods connect to: the endpoint's, else 443 (80 for
    /// `http://`).
    pub port: u16,
    /// Whether the endpoint speaks plain HTTP (`AWS_ALLOW_HTTP`).
    pub http: bool,
}

impl Store<'_> {
    /// Where the database's base backups and WAL go (Barman Cloud `destinationPath`).
    pub fn database_path(&self) -> String {
        format!("{}/{DATABASE_FOLDER}", self.url)
    }
}

/// Check an object store destination (beyond the CRD's patterns: the operator must not trust
/// that the installed CRD is the current one). `field` names it in errors.
pub fn store<'a>(field: &str, spec: &'a ObjectStoreSpec) -> Result<Store<'a>, ValidateError> {
    let invalid = |msg: String| invalid_spec(format!("{field}: {msg}"));
    let b = &spec.bucket;
    let bucket_ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !bucket_ok {
        return Err(invalid(format!("bucket {b:?} is not an S3 bucket name")));
    }
    let path_ok = spec.path.is_empty()
        || spec.path.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        });
    if !path_ok {
        return Err(invalid(format!(
            "path {:?} must be segments of letters, digits, '.', '_' and '-' separated by '/'",
            spec.path
        )));
    }
    let url = if spec.path.is_empty() {
        format!("s3://{b}")
    } else {
        format!("s3://{b}/{}", spec.path)
    };
    let (endpoint, port, http) = match &spec.endpoint_url {
        None => (None, 443, false),
        Some(e) => {
            let e = e.trim_end_matches('/');
            let (http, rest) = if let Some(rest) = e.strip_prefix("https://") {
                (false, rest)
            } else if let Some(rest) = e.strip_prefix("http://") {
                (true, rest)
            } else {
                return Err(invalid(format!(
                    "endpointURL {e:?} must start with https:// or http://"
                )));
            };
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (
                    host,
                    port.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| invalid(format!("endpointURL {e:?} has a bad port")))?,
                ),
                None => (rest, if http { 80 } else { 443 }),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
            if !host_ok {
                return Err(invalid(format!(
                    "endpointURL {e:?} must be scheme://host[:port]"
                )));
            }
            (Some(e.to_string()), port, http)
        }
    };
    if spec.credentials_secret.as_deref() == Some("") {
        return Err(invalid(
            "credentialsSecret must not be empty (leave it out to use an IAM role)".into(),
        ));
    }
    Ok(Store {
        spec,
        url,
        endpoint,
        port,
        http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(bucket: &str, path: &str, endpoint: Option<&str>) -> ObjectStoreSpec {
        ObjectStoreSpec {
            bucket: bucket.into(),
            path: path.into(),
            endpoint_url: endpoint.map(String::from),
            region: None,
            credentials_secret: Some("creds".into()),
            ca_secret: None,
        }
    }

    #[test]
    fn urls_and_ports() {
        let s = spec("backups", "prod/photos", None);
        let st = store("backup.objectStore", &s).unwrap();
        assert_eq!(st.url, "s3://backups/prod/photos");
        assert_eq!(st.database_path(), "s3://backups/prod/photos/postgres");
        assert_eq!((st.port, st.http, st.endpoint), (443, false, None));
        let s = spec("backups", "", Some("http://minio.minio.svc:9000/"));
        let st = store("backup.objectStore", &s).unwrap();
        assert_eq!(st.url, "s3://backups");
        assert_eq!(st.endpoint.as_deref(), Some("http://minio.minio.svc:9000"));
        assert_eq!((st.port, st.http), (9000, true));
        let s = spec("b.example", "x", Some("https://s3.example.com"));
        assert_eq!(store("f", &s).unwrap().port, 443);
        let s = spec("b.example", "x", Some("http://s3.example.com"));
        assert_eq!(store("f", &s).unwrap().port, 80);
    }

    #[test]
    fn bad_destinations_are_refused_with_the_field() {
        for (bucket, path, endpoint) in [
            ("Backups", "", None),
            ("ab", "", None),
            ("-backups", "", None),
            ("backups", "/prod", None),
            ("backups", "prod/", None),
            ("backups", "a//b", None),
            ("backups", "a b", None),
            ("backups", "", Some("ftp://x")),
            ("backups", "", Some("https://x:99999")),
            ("backups", "", Some("https://x/path")),
            ("backups", "", Some("https://")),
        ] {
            let s = spec(bucket, path, endpoint);
            let err = store("restore.objectStore", &s).unwrap_err().to_string();
            assert!(err.contains("restore.objectStore"), "{err}");
        }
    }
}
