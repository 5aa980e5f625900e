//! Getting a rendition's bytes: the cache (`storage::cache`), else a render
//! of the original on the bounded render pool (`render::pool`), one per
//! rendition at a time however many ask (single-flight); a render that fails
//! because of the photo is remembered for [`RENDER_FAILURE_MEMORY`], and one
//! that works is written to the cache. The image handler (`http::images`)
//! asks this and only maps the answer to a response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::{Metrics, SizeLabels};
use crate::render::pool::{Plan, PoolError, RenderPool, Requester};
use crate::render::{self, DecodeLimits, Format, RenderError};
use crate::storage::cache::{DiskCache, RenditionKey};
use crate::storage::originals::OriginalStore;

/// How long a failed render is remembered: requests for it meanwhile get the
/// same answer without decoding the original again.
pub const RENDER_FAILURE_MEMORY: Duration = Duration::from_secs(600);

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

/// Why a rendition cannot be had (mapped to a response in `error.rs`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RenditionError {
    /// The render pool is full, or the render was cancelled.
    #[error("the render pool is busy")]
    Busy,
    #[error("render panicked")]
    Panicked,
    #[error("the original of this photo is missing from the originals store")]
    MissingOriginal,
    /// The photo cannot be rendered at this size (remembered for a while).
    #[error("this photo cannot be rendered at this size: {0}")]
    CannotRender(JobError),
    /// Not the photo's fault (reading the original failed).
    #[error("{0}")]
    Failed(JobError),
}

/// How renders decode and encode (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct RenderSettings {
    pub limits: DecodeLimits,
    pub jpeg_quality: u8,
}

/// The cache, the render pool and the memory of failed renders, as one.
pub struct RenditionService {
    cache: Arc<DiskCache>,
    pool: RenderPool<RenditionKey, JobError>,
    /// Renders that failed (a photo that cannot be rendered at that size),
    /// kept for [`RENDER_FAILURE_MEMORY`] so that requesting them in a loop
    /// cannot keep the render pool busy.
    failures: moka::sync::Cache<RenditionKey, JobError>,
    originals: OriginalStore,
    settings: RenderSettings,
    metrics: Metrics,
}

impl RenditionService {
    pub fn new(
        cache: DiskCache,
        pool: RenderPool<RenditionKey, JobError>,
        originals: OriginalStore,
        settings: RenderSettings,
        metrics: Metrics,
    ) -> RenditionService {
        let failures = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(RENDER_FAILURE_MEMORY)
            .build();
        RenditionService {
            cache: Arc::new(cache),
            pool,
            failures,
            originals,
            settings,
            metrics,
        }
    }

    /// The rendition if the cache has it (memory, then local disk).
    pub async fn cached(&self, key: &RenditionKey) -> Option<Bytes> {
        self.cache.get(key).await
    }

    /// Renders a rendition that was not in the cache, on behalf of
    /// `requester` (whose share of the pool it takes), and caches it.
    pub async fn render(
        &self,
        key: RenditionKey,
        format: Format,
        requester: Requester,
    ) -> Result<Bytes, RenditionError> {
        if let Some(failure) = self.failures.get(&key) {
            return Err(RenditionError::CannotRender(failure));
        }
        let job = Job {
            cache: self.cache.clone(),
            originals: self.originals.clone(),
            settings: self.settings,
            metrics: self.metrics.clone(),
            key: key.clone(),
            format,
        };
        let result = self
            .pool
            .run(key.clone(), requester, move || job.plan())
            .await;
        match result {
            Ok(bytes) => Ok(bytes),
            // Only a render nobody waits for is cancelled; answered in case.
            Err(PoolError::Overloaded | PoolError::Cancelled) => Err(RenditionError::Busy),
            Err(PoolError::Panicked) => Err(RenditionError::Panicked),
            Err(PoolError::Job(JobError::MissingOriginal)) => {
                tracing::error!(id = %key.id, "original missing from the originals store");
                Err(RenditionError::MissingOriginal)
            }
            Err(PoolError::Job(e @ JobError::Render(_))) => {
                // The same original will fail the same way: remember it rather
                // than decode it again on every request.
                tracing::warn!(id = %key.id, width = key.width, error = %e, "photo cannot be rendered");
                self.metrics.renders_failed.inc();
                self.failures.insert(key, e.clone());
                Err(RenditionError::CannotRender(e))
            }
            Err(PoolError::Job(e)) => Err(RenditionError::Failed(e)),
        }
    }

    /// The render pool, which the checks of uploads share with renders.
    pub fn pool(&self) -> &RenderPool<RenditionKey, JobError> {
        &self.pool
    }

    /// Drops every cached rendition of a deleted photo.
    pub fn remove_photo(&self, id: &str, widths: &[u32]) {
        self.cache.remove_photo(id, widths);
    }

    /// The cache, to report on (`/readyz`, tests); renditions are read and
    /// written through [`RenditionService::cached`] and
    /// [`RenditionService::render`].
    pub fn cache(&self) -> &DiskCache {
        &self.cache
    }
}

/// What a render needs, moved to the blocking thread that plans it.
struct Job {
    cache: Arc<DiskCache>,
    originals: OriginalStore,
    settings: RenderSettings,
    metrics: Metrics,
    key: RenditionKey,
    format: Format,
}

impl Job {
    /// Plans a render on a blocking thread, from the original's headers (what
    /// it takes in memory); the planned work renders on the render pool and
    /// caches the rendition.
    fn plan(self) -> Result<Plan<Bytes, JobError>, JobError> {
        let original = match self.originals.open_file(&self.key.id, self.format) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JobError::MissingOriginal);
            }
            Err(e) => return Err(JobError::Io(e.to_string())),
        };
        let rendition = render::Resize::plan(
            render::open_file(original)?,
            self.key.width,
            self.settings.jpeg_quality,
            self.settings.limits,
        )?;
        Ok(Plan::new(rendition.memory(), move || {
            let start = Instant::now();
            let jpeg = rendition.run()?;
            self.metrics
                .render_duration
                .get_or_create(&SizeLabels {
                    size: self.key.width.to_string(),
                })
                .observe(start.elapsed().as_secs_f64());
            let bytes = Bytes::from(jpeg);
            self.cache.put(&self.key, &bytes);
            Ok(bytes)
        }))
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
