//! Cached database lookups for the image path, which must keep serving
//! through a database restart or failover.
//!
//! An entry is fresh for `fresh` (`PHOTO_METADATA_TTL`, 5 s): within that
//! a lookup never touches the database. After that it is fetched again; if
//! the database is unreachable then, the entry is used anyway while it is
//! at most [`STALE_LIMIT`] old, so cached image hits keep working during an
//! outage instead of failing five seconds into it. Any other database error
//! is returned as is.
//!
//! A stale entry does not wait for an unreachable database either: its fetch
//! gets [`STALE_FETCH_WAIT`], and once the database has been found
//! unreachable, stale entries are served without asking it for
//! [`RECHECK_AFTER`] (a pool waiting out its acquire timeout would otherwise
//! hold every cached hit for seconds).

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::DbResult;

/// How old an entry may be and still be used while the database is down.
pub const STALE_LIMIT: Duration = Duration::from_secs(600);
/// How long a lookup that has a stale entry waits for the database.
pub const STALE_FETCH_WAIT: Duration = Duration::from_millis(300);
/// After the database was found unreachable, how long stale entries are
/// served without asking it.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

pub struct Lookups<V> {
    entries: moka::sync::Cache<String, (Instant, V)>,
    fresh: Duration,
    /// When a fetch last found the database unreachable.
    unreachable_at: std::sync::Mutex<Option<Instant>>,
}

impl<V: Clone + Send + Sync + 'static> Lookups<V> {
    pub fn new(capacity: u64, fresh: Duration) -> Lookups<V> {
        Lookups {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALE_LIMIT.max(fresh))
                .build(),
            fresh,
            unreachable_at: std::sync::Mutex::new(None),
        }
    }

    fn recently_unreachable(&self) -> bool {
        self.unreachable_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < RECHECK_AFTER)
    }

    fn set_unreachable(&self, unreachable: bool) {
        *self
            .unreachable_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = unreachable.then(Instant::now);
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
        let Some((_, stale)) = cached else {
            let value = fetch().await?;
            self.insert(key.to_string(), value.clone());
            return Ok(value);
        };
        if self.recently_unreachable() {
            return Ok(stale);
        }
        match tokio::time::timeout(STALE_FETCH_WAIT, fetch()).await {
            Ok(Ok(value)) => {
                self.set_unreachable(false);
                self.insert(key.to_string(), value.clone());
                Ok(value)
            }
            Ok(Err(e)) if e.is_unavailable() => {
                tracing::debug!(key, error = %e, "database unreachable: using a stale entry");
                self.set_unreachable(true);
                Ok(stale)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                tracing::debug!(key, "database slow to answer: using a stale entry");
                self.set_unreachable(true);
                Ok(stale)
            }
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
        // Just found unreachable: the stale value, without asking again.
        assert_eq!(
            lookups
                .get("a", || async { panic!("asked an unreachable database") })
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(RECHECK_AFTER).await;
        // Stale, database answering again: the new value.
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

    #[tokio::test]
    async fn a_stale_entry_does_not_wait_for_a_hanging_database() {
        let lookups = Lookups::new(10, Duration::from_millis(10));
        lookups.insert("a".into(), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let value = lookups
            .get("a", || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(2)
            })
            .await;
        assert_eq!(value.unwrap(), 1);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
