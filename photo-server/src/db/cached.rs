//! Cached database lookups for the image path, which must keep serving
//! through a database restart or failover.
//!
//! An entry is fresh for `fresh` (`PHOTO_METADATA_TTL`, 5 s): within that
//! a lookup never touches the database. After that it is fetched again; if
//! the database is unreachable then, the entry is used anyway while it is
//! at most [`STALE_LIMIT`] old, so cached image hits keep working during an
//! outage instead of failing five seconds into it. Any other database error
//! is returned as is.

use std::future::Future;
use std::time::{Duration, Instant};

use super::DbResult;

/// How old an entry may be and still be used while the database is down.
pub const STALE_LIMIT: Duration = Duration::from_secs(600);

pub struct Lookups<V> {
    entries: moka::sync::Cache<String, (Instant, V)>,
    fresh: Duration,
}

impl<V: Clone + Send + Sync + 'static> Lookups<V> {
    pub fn new(capacity: u64, fresh: Duration) -> Lookups<V> {
        Lookups {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALE_LIMIT.max(fresh))
                .build(),
            fresh,
        }
    }

    /// The value for `key`: cached while fresh, else `fetch`ed (and cached);
    /// a stale value when `fetch` finds the database unreachable.
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> DbResult<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = DbResult<V>>,
    {
        let cached = self.entries.get(key);
        if let Some((at, value)) = &cached
            && at.elapsed() < self.fresh
        {
            return Ok(value.clone());
        }
        match fetch().await {
            Ok(value) => {
                self.insert(key.to_string(), value.clone());
                Ok(value)
            }
            Err(e) if e.is_unavailable() => match cached {
                Some((_, value)) => {
                    tracing::debug!(key, error = %e, "database unreachable: using a stale entry");
                    Ok(value)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    pub fn insert(&self, key: String, value: V) {
        self.entries.insert(key, (Instant::now(), value));
    }

    pub fn invalidate(&self, key: &str) {
        self.entries.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;

    fn unreachable() -> DbError {
        DbError::Sql(sqlx::Error::PoolTimedOut)
    }

    #[tokio::test]
    async fn fresh_entries_need_no_database_and_stale_ones_cover_an_outage() {
        let lookups = Lookups::new(10, Duration::from_millis(50));
        assert_eq!(lookups.get("a", || async { Ok(1) }).await.unwrap(), 1);
        // Fresh: the fetch is not even called.
        assert_eq!(
            lookups
                .get("a", || async { panic!("fetched a fresh entry") })
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Stale, database down: the old value.
        assert_eq!(
            lookups
                .get("a", || async { Err(unreachable()) })
                .await
                .unwrap(),
            1
        );
        // Stale, database answering: the new value.
        assert_eq!(lookups.get("a", || async { Ok(2) }).await.unwrap(), 2);
        // Never seen, database down: the error.
        assert!(
            lookups
                .get("b", || async { Err(unreachable()) })
                .await
                .is_err()
        );
        // Other errors are not papered over.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let broken = lookups
            .get("a", || async { Err(DbError::BadRow("x".into())) })
            .await;
        assert!(matches!(broken, Err(DbError::BadRow(_))));
    }
}
