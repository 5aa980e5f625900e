//! Backups of a photo site to object storage: `photo-server backup` and
//! `photo-server restore`.
//!
//! Originals are write-once, so a backup is an incremental copy of the
//! files not yet in the store, plus a manifest listing every original with
//! its size and SHA-256; a restore copies back whatever is missing or
//! differs, verifying every checksum. With the embedded SQLite database a
//! consistent online copy (`VACUUM INTO`) goes into the same backup; with
//! PostgreSQL the database is backed up by CloudNativePG (or the provider of
//! an external database) and only the originals are copied here.
//!
//! Layout under `PHOTO_BACKUP_URL` (`s3://bucket/path`, `gs://`, `az://`,
//! `file:///dir`), through the `object_store` crate:
//!
//! ```text
//! originals/<ab>/<id>.<ext>        one object per original, never rewritten
//! database/<time>.sqlite3          the embedded database, one per backup
//! manifests/<time>.json            what a backup contains; the latest wins
//! ```
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, and the `GOOGLE_*` / `AZURE_*` equivalents), or from
//! files: `AWS_SECRET_ACCESS_KEY_FILE=/path` reads the value from a mounted
//! Secret. Never from the command line. Where the SDK itself wants a path, the
//! path is passed on as it is ([`PATH_SETTINGS`]): the token files of IAM
//! roles for service accounts (IRSA) and of EKS Pod Identity, which the
//! platform rotates under the running process.

pub mod create;
pub mod restore;

use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::render::Format;

/// Originals copied at once.
const CONCURRENCY: usize = 4;
/// Progress is printed at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where backups go: `s3://bucket/path`, `gs://bucket/path`, `az://container/path`
    /// or `file:///dir`. Credentials come from the environment, never from here.
    #[arg(long, env = "PHOTO_BACKUP_URL")]
    pub url: String,
    /// Say what would be copied, and copy nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("PHOTO_BACKUP_URL {0:?} is not a URL like s3://bucket/path or file:///dir")]
    BadUrl(String),
    #[error("the object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("manifest {name}: {message}")]
    Manifest { name: String, message: String },
    #[error("there is no backup under {0} (no manifests/)")]
    NoBackup(String),
    #[error("{failed} file(s) could not be restored; run again to retry them")]
    Incomplete { failed: usize },
}

/// What one backup contains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// UTC, `YYYYMMDDTHHMMSSZ`; also the manifest's name.
    pub created_at: String,
    pub originals: Vec<ManifestEntry>,
    /// The embedded database's copy, if this backup has one.
    pub database: Option<DatabaseCopy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: String,
    pub format: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseCopy {
    pub object: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The backup destination: a store and the path prefix in it.
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    url: String,
}

/// Settings whose value is a file the object store reads itself (a token the
/// platform rotates): passed on as paths, never read once at start.
pub const PATH_SETTINGS: [&str; 2] = [
    // IRSA: the webhook sets it with AWS_ROLE_ARN
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    // EKS Pod Identity: with AWS_CONTAINER_CREDENTIALS_FULL_URI
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// Cloud settings from the environment: `AWS_*`, `GOOGLE_*`, `AZURE_*`,
/// and for each `NAME_FILE` the content of that file as `NAME` (but the
/// [`PATH_SETTINGS`], passed on as they are).
fn cloud_options() -> Result<Vec<(String, String)>, BackupError> {
    cloud_options_from(std::env::vars())
}

fn cloud_options_from(
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, BackupError> {
    let mut options = Vec::new();
    for (key, value) in vars {
        if !["AWS_", "GOOGLE_", "AZURE_"]
            .iter()
            .any(|p| key.starts_with(p))
        {
            continue;
        }
        if PATH_SETTINGS.contains(&key.as_str()) {
            options.push((key, value));
            continue;
        }
        match key.strip_suffix("_FILE") {
            Some(name) => {
                let text = std::fs::read_to_string(&value).map_err(|source| BackupError::File {
                    path: value.clone(),
                    source,
                })?;
                options.push((name.to_string(), text.trim_end_matches(['\r', '\n']).into()));
            }
            None => options.push((key, value)),
        }
    }
    Ok(options)
}

impl Destination {
    pub fn open(url: &str) -> Result<Destination, BackupError> {
        let parsed = url::Url::parse(url).map_err(|_| BackupError::BadUrl(url.into()))?;
        if parsed.scheme() == "file" {
            // The local store needs its directory to exist.
            std::fs::create_dir_all(parsed.path())?;
        }
        // HTTPS to the object store goes through rustls, built with ring only: make it the
        // process's provider (a no-op when it already is).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (store, prefix) = object_store::parse_url_opts(&parsed, cloud_options()?)?;
        Ok(Destination {
            store: Arc::from(store),
            prefix,
            url: url.to_string(),
        })
    }

    pub(super) fn path(&self, relative: &str) -> StorePath {
        let mut path = self.prefix.clone();
        for part in relative.split('/') {
            path = path.join(part);
        }
        path
    }

    /// Where an original goes.
    pub fn original(&self, id: &str, format: Format) -> StorePath {
        self.path(&format!(
            "originals/{}/{id}.{}",
            &id[..2],
            format.extension()
        ))
    }

    /// The objects under `relative`, with their sizes, keyed by their path
    /// relative to the prefix.
    pub async fn list(
        &self,
        relative: &str,
    ) -> Result<std::collections::HashMap<String, u64>, BackupError> {
        let base = self.path(relative);
        let prefix = format!("{}/", self.prefix.as_ref().trim_end_matches('/'));
        let objects: Vec<_> = self.store.list(Some(&base)).try_collect().await?;
        Ok(objects
            .into_iter()
            .map(|o| {
                let key = o.location.as_ref();
                let key = if self.prefix.as_ref().is_empty() {
                    key.to_string()
                } else {
                    key.strip_prefix(&prefix).unwrap_or(key).to_string()
                };
                (key, o.size)
            })
            .collect())
    }

    /// The newest manifest, if any.
    pub async fn latest_manifest(&self) -> Result<Option<Manifest>, BackupError> {
        let manifests = self.list("manifests").await?;
        let Some(name) = manifests.keys().filter(|k| k.ends_with(".json")).max() else {
            return Ok(None);
        };
        let bytes = self.store.get(&self.path(name)).await?.bytes().await?;
        let manifest = serde_json::from_slice(&bytes).map_err(|e| BackupError::Manifest {
            name: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Some(manifest))
    }

    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<String, BackupError> {
        let name = format!("manifests/{}.json", manifest.created_at);
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Manifest {
            name: name.clone(),
            message: e.to_string(),
        })?;
        self.store
            .put(&self.path(&name), PutPayload::from(json))
            .await?;
        Ok(name)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Hex SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDDTHHMMSSZ` for now (UTC), sortable as text.
pub fn timestamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

/// Human bytes for the reports.
pub fn human(bytes: u64) -> String {
    crate::units::bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        cloud_options_from(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("options")
    }

    #[test]
    fn a_secret_file_is_read_and_a_token_file_is_passed_as_a_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").expect("written");
        let token = dir.path().join("token");
        let secret_path = secret.display().to_string();
        let token_path = token.display().to_string();
        let got = options(&[
            ("AWS_SECRET_ACCESS_KEY_FILE", &secret_path),
            (
                "AWS_ROLE_ARN",
                "arn:aws:iam::111122223333:role/photos-backup",
            ),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
            ("HOME", "/root"),
        ]);
        assert!(got.contains(&("AWS_SECRET_ACCESS_KEY".into(), "s3cr3t".into())));
        // the token file does not even exist yet: the SDK reads it when it needs it
        assert!(got.contains(&("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token_path.clone())));
        assert!(
            got.iter()
                .any(|(k, _)| k == "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        );
        assert!(
            got.iter()
                .all(|(k, _)| k != "AWS_WEB_IDENTITY_TOKEN" && k != "HOME")
        );
        assert_eq!(got.len(), 4);
    }
}
