//! Everything a request handler needs, built once at start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::extract::SessionContext;
use crate::auth::{self, Auth};
use crate::config::Config;
use crate::db::cached::Lookups;
use crate::db::{Db, DbResult, Photo};
use crate::metrics::Metrics;
use crate::render::DecodeLimits;
use crate::render::pool::RenderPool;
use crate::renditions::service::{RenderSettings, RenditionService};
use crate::storage::cache::DiskCache;
use crate::storage::originals::OriginalStore;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub originals: OriginalStore,
    /// Renditions: the cache, the render pool and failed renders.
    pub renditions: RenditionService,
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
        let renditions = RenditionService::new(
            cache,
            renderer,
            originals.clone(),
            RenderSettings {
                limits: DecodeLimits {
                    max_pixels: config.max_pixels,
                    max_bytes: config.decode_max_bytes,
                },
                jpeg_quality: config.jpeg_quality,
            },
            metrics.clone(),
        );
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
            renditions,
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
