//! The database handle: the connection pool, the engine behind it, the
//! schema migrations, and how far the connection has come (for readiness).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use super::error::{DbError, DbResult};

/// Which SQL engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// How far the connection has come, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbStatus {
    /// Not reached yet (or the last attempt failed with this message).
    Connecting(Option<String>),
    /// Migrated and the admin account in place.
    Ready,
}

/// The database. Opening it connects nothing: [`Db::migrate`] does, and
/// until it has succeeded every query answers [`DbError::NotReady`], so a
/// server can start, listen and report not-ready while the database is
/// still coming up (in a cluster, exiting instead would mean
/// CrashLoopBackOff and minutes of delay after the database is back).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    migrated: Arc<AtomicBool>,
    status: Arc<watch::Sender<DbStatus>>,
    /// Since when readiness checks have found the database unreachable.
    outage_since: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// The schema migrations, embedded in the binary: `(version, description, SQL)`, as sqlx
/// would read them from `migrations/<version>_<description>.sql` (same checksums, so a
/// database migrated by an earlier build is recognised). Embedded by hand rather than with
/// `sqlx::migrate!`, whose proc-macro compiles both database drivers a second time.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "init", include_str!("../../migrations/0001_init.sql"))];

#[derive(Debug)]
struct EmbeddedMigrations;

impl<'s> sqlx::migrate::MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<
        's,
        Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
    > {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                sqlx::migrate::Migration::new(
                    version,
                    description.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

impl Db {
    /// Sets up the pool for `url` (default: `photos.db` under `data_dir`).
    pub fn open(url: Option<&str>, data_dir: &Path) -> DbResult<Db> {
        install_default_drivers();
        let (url, backend) = match url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_string(), Backend::Postgres)
            }
            Some(url) => (url.to_string(), Backend::Sqlite),
            None => {
                std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let file = data_dir.join("photos.db");
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Backend::Sqlite,
                )
            }
        };
        let max = match backend {
            Backend::Postgres => 16,
            // SQLite serialises writers anyway; a few readers in WAL mode suffice.
            Backend::Sqlite => 4,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            // A request waits at most this long for a connection before it
            // answers 503: short, so an outage is reported, not hung on.
            .acquire_timeout(Duration::from_secs(3))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy(&url)?;
        Ok(Db {
            pool,
            migrated: Arc::new(AtomicBool::new(false)),
            status: Arc::new(watch::Sender::new(DbStatus::Connecting(None))),
            outage_since: Arc::default(),
        })
    }

    /// Connects and brings the schema up to date. On PostgreSQL sqlx holds an
    /// advisory lock while migrating, so many pods starting at once are safe:
    /// one migrates, the others wait and then find nothing to do.
    pub async fn migrate(&self) -> DbResult<()> {
        let migrator = sqlx::migrate::Migrator::new(EmbeddedMigrations).await?;
        migrator.run(&self.pool).await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    pub fn status(&self) -> DbStatus {
        self.status.borrow().clone()
    }

    pub fn set_status(&self, status: DbStatus) {
        self.status.send_replace(status);
    }

    /// Waits until the status is [`DbStatus::Ready`].
    pub async fn ready(&self) {
        let mut status = self.status.subscribe();
        let _ = status.wait_for(|s| *s == DbStatus::Ready).await;
    }

    /// The pool, once the schema is in place.
    pub fn pool(&self) -> DbResult<&AnyPool> {
        if self.migrated.load(Ordering::Acquire) {
            Ok(&self.pool)
        } else {
            Err(DbError::NotReady)
        }
    }

    /// A consistent copy of the (SQLite) database at `target`, taken while
    /// it is in use (`VACUUM INTO`).
    pub async fn copy_sqlite_to(&self, target: &Path) -> DbResult<()> {
        sqlx::query("VACUUM INTO $1")
            .bind(target.display().to_string())
            .execute(self.pool()?)
            .await?;
        Ok(())
    }

    /// Records a readiness check's result; returns how long the database
    /// has been unreachable (zero when it just answered).
    pub fn record_check(&self, reachable: bool) -> Duration {
        let mut since = self
            .outage_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reachable {
            *since = None;
            return Duration::ZERO;
        }
        since.get_or_insert_with(Instant::now).elapsed()
    }

    /// A cheap round trip for readiness.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(self.pool()?).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod migration_tests {
    use super::MIGRATIONS;

    #[test]
    fn every_migration_file_is_embedded_with_its_version_and_description() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{files:?}");
        for (file, &(version, description, sql)) in files.iter().zip(MIGRATIONS) {
            let stem = file.strip_suffix(".sql").unwrap();
            let (v, d) = stem.split_once('_').unwrap();
            assert_eq!(v.parse::<i64>().unwrap(), version, "{file}");
            assert_eq!(d.replace('_', " "), description, "{file}");
            assert_eq!(
                std::fs::read_to_string(dir.join(file)).unwrap(),
                sql,
                "{file}"
            );
        }
    }
}
