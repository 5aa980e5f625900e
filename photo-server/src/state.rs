//! Everything a request handler needs, built once at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::auth::extract::SessionContext;
use crate::auth::{self, Auth};
use crate::config::Config;
use crate::db::cached::Lookups;
use crate::db::{Db, DbResult, Photo};
use crate::metrics::Metrics;
use crate::render::RenderError;
use crate::render::pool::RenderPool;
use crate::storage::cache::{DiskCache, RenditionKey};
use crate::storage::originals::OriginalStore;

/// Why a render job failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    /// The photo cannot be rendered: the same original fails the same way.
    #[error(transparent)]
    Render(RenderError),
    #[error("the original of this photo is missing from the originals store")]
    MissingOriginal,
    /// Not the photo's fault: the next request tries again.
    #[error("cannot read the original: {0}")]
    Io(String),
}

impl From<RenderError> for JobError {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::Read(e) => JobError::Io(e),
            e => JobError::Render(e),
        }
    }
}

/// How long a failed render is remembered: requests for it meanwhile get the
/// same answer without decoding the original again.
pub const RENDER_FAILURE_MEMORY: Duration = Duration::from_secs(600);

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub originals: OriginalStore,
    pub cache: DiskCache,
    pub renderer: RenderPool<RenditionKey, JobError>,
    /// Renders that failed (a photo that cannot be rendered at that size),
    /// kept for [`RENDER_FAILURE_MEMORY`] so that requesting them in a loop
    /// cannot keep the render pool busy.
    pub render_failures: moka::sync::Cache<RenditionKey, JobError>,
    pub metrics: Metrics,
    pub auth: Auth,
    /// `Cache-Control` of public renditions (`PHOTO_PUBLIC_MAX_AGE`).
    pub public_cache_control: axum::http::HeaderValue,
    /// Photo metadata by id (`None`: no such photo), fresh for
    /// `PHOTO_METADATA_TTL` so cached hits do not touch the database, and
    /// used stale while the database is unreachable.
    photos: Lookups<Option<Arc<Photo>>>,
    shutting_down: AtomicBool,
}

pub type SharedState = Arc<AppState>;

/// Why the stores or pools cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("cannot open the originals directory {path}: {source}")]
    Originals {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot load the session key: {0}")]
    SessionKey(std::io::Error),
    #[error("cannot start the render pool: {0}")]
    RenderPool(std::io::Error),
}

impl AppState {
    /// Opens the stores and pools. The database is only set up here;
    /// `bootstrap::connect_database` reaches it.
    pub fn open(config: Config) -> Result<SharedState, OpenError> {
        let metrics = Metrics::new();
        let db = Db::open(config.database_url.as_deref(), &config.data_dir)?;
        let originals_dir = config.originals_dir();
        let originals =
            OriginalStore::open(originals_dir.clone()).map_err(|source| OpenError::Originals {
                path: originals_dir.display().to_string(),
                source,
            })?;
        let cache = DiskCache::open(
            config.cache_dir(),
            config.cache_max_bytes,
            config.memory_cache_bytes,
            metrics.clone(),
        );
        let renderer = RenderPool::new(
            config.render_threads,
            config.render_queue,
            config.render_memory_bytes,
            metrics.clone(),
        )
        .map_err(OpenError::RenderPool)?;
        let key = auth::load_key(
            config.session_key.as_deref(),
            config.session_key_file.as_deref(),
            &config.data_dir,
        )
        .map_err(OpenError::SessionKey)?;
        let auth = Auth::new(
            key,
            config.session_ttl,
            config.metadata_ttl,
            config.trusted_proxies.clone(),
            config.password_checks,
        );
        let photos = Lookups::new(100_000, config.metadata_ttl);
        let render_failures = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(RENDER_FAILURE_MEMORY)
            .build();
        // Digits and ASCII only: always a valid header value.
        let public_cache_control = axum::http::HeaderValue::from_str(&format!(
            "public, max-age={}",
            config.public_max_age.as_secs()
        ))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("public, max-age=60"));
        Ok(Arc::new(AppState {
            public_cache_control,
            config,
            db,
            originals,
            cache,
            renderer,
            render_failures,
            metrics,
            auth,
            photos,
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// A photo's metadata through the cache (see `db::cached`).
    pub async fn photo_cached(&self, id: &str) -> DbResult<Option<Arc<Photo>>> {
        self.photos
            .get(id, || async { Ok(self.db.photo(id).await?.map(Arc::new)) })
            .await
    }

    /// Drops this replica's cached metadata after an edit or delete.
    pub fn forget_photo(&self, id: &str) {
        self.photos.invalidate(id);
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

impl SessionContext for AppState {
    fn auth(&self) -> &Auth {
        &self.auth
    }

    fn db(&self) -> &Db {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_error_is_not_taken_for_a_photo_that_cannot_be_rendered() {
        // Only `JobError::Render` is remembered as a failed render.
        assert_eq!(
            JobError::from(RenderError::Read("EIO".into())),
            JobError::Io("EIO".into())
        );
        let corrupt = RenderError::Corrupt("truncated".into());
        assert_eq!(JobError::from(corrupt.clone()), JobError::Render(corrupt));
    }
}
