//! `photo-server backup`: create a backup, copying what is new to the object
//! store.
//!
//! 1. The previous manifest says which originals the store already has
//!    (their checksums are not computed again) and a listing of
//!    `originals/` catches what an interrupted run copied without getting
//!    to write its manifest: an interrupted run resumes where it stopped.
//! 2. Every other original is read once, hashed and copied (four at a
//!    time, streamed in parts, never whole in memory).
//! 3. The embedded SQLite database is copied consistently while the server
//!    runs (`VACUUM INTO` a temporary file), before the originals are
//!    listed: an original is in place before its row is committed, so every
//!    row of the copy has its original in the backup.
//! 4. The manifest of everything is written last: a backup exists once its
//!    manifest does. Its time (`created_at`) is taken when the run starts:
//!    everything uploaded before that time is in the backup, which is what a
//!    point-in-time recovery of PostgreSQL to at most that time relies on.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::{
    BackupArgs, BackupError, CONCURRENCY, DatabaseCopy, Destination, Manifest, ManifestEntry,
    PROGRESS_EVERY, human, sha256_file, timestamp,
};
use crate::config::Config;
use crate::db::Db;
use crate::storage::originals::{OriginalStore, StoredOriginal};

/// What a backup did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Originals in the backup.
    pub originals: usize,
    pub original_bytes: u64,
    /// Copied by this run.
    pub copied: usize,
    pub copied_bytes: u64,
    /// The embedded database's copy, in bytes.
    pub database_bytes: Option<u64>,
    pub manifest: Option<String>,
}

/// Copies one file to `to`, in parts.
async fn upload(
    dest: &Destination,
    from: &std::path::Path,
    to: object_store::path::Path,
) -> Result<(), BackupError> {
    let mut file = tokio::fs::File::open(from).await?;
    let mut writer = BufWriter::with_capacity(dest.store.clone(), to, 8 << 20);
    tokio::io::copy(&mut file, &mut writer).await?;
    writer.shutdown().await?;
    Ok(())
}

pub async fn run(config: &Config, args: &BackupArgs) -> Result<Summary, BackupError> {
    let started = Instant::now();
    let created_at = timestamp();
    let dest = Destination::open(&args.url)?;
    let database = match (args.dry_run, embedded_database(config)) {
        (false, Some(db)) => Some(snapshot_database(&db, config).await?),
        _ => None,
    };
    let store = OriginalStore::open(config.originals_dir())?;
    let previous = dest.latest_manifest().await?;
    let known: HashMap<String, ManifestEntry> = previous
        .iter()
        .flat_map(|m| m.originals.iter())
        .map(|e| (e.id.clone(), e.clone()))
        .collect();
    let in_store = dest.list("originals").await?;
    let files = store.list()?;
    let to_copy: Vec<&StoredOriginal> = files
        .iter()
        .filter(|f| {
            let key = format!("originals/{}/{}.{}", &f.id[..2], f.id, f.format.extension());
            in_store.get(&key) != Some(&f.bytes)
        })
        .collect();
    let copy_bytes: u64 = to_copy.iter().map(|f| f.bytes).sum();
    println!(
        "backup to {}: {} originals on the volume, {} to copy ({})",
        dest.url(),
        files.len(),
        to_copy.len(),
        human(copy_bytes)
    );
    let mut summary = Summary {
        originals: files.len(),
        original_bytes: files.iter().map(|f| f.bytes).sum(),
        ..Summary::default()
    };
    if args.dry_run {
        for f in &to_copy {
            println!("would copy {}", f.path.display());
        }
        println!("dry run: nothing copied");
        return Ok(summary);
    }

    // Copy what is missing, hashing each file as it goes.
    let mut hashed: HashMap<String, String> = HashMap::new();
    let mut last_report = Instant::now();
    let mut copies = futures_util::stream::iter(to_copy.iter().map(|f| {
        let dest = &dest;
        async move {
            let path = f.path.clone();
            let sha256 = tokio::task::spawn_blocking(move || sha256_file(&path))
                .await
                .map_err(std::io::Error::other)??;
            upload(dest, &f.path, dest.original(&f.id, f.format)).await?;
            Ok::<_, BackupError>((f.id.clone(), f.bytes, sha256))
        }
    }))
    .buffer_unordered(CONCURRENCY);
    while let Some((id, bytes, sha256)) = copies.try_next().await? {
        summary.copied += 1;
        summary.copied_bytes += bytes;
        hashed.insert(id, sha256);
        if last_report.elapsed() >= PROGRESS_EVERY {
            println!(
                "copied {}/{} originals ({} of {})",
                summary.copied,
                to_copy.len(),
                human(summary.copied_bytes),
                human(copy_bytes)
            );
            last_report = Instant::now();
        }
    }
    drop(copies);

    // Every original in the manifest, with its checksum: reused from the
    // last manifest when the file is the same size, else computed now.
    let mut originals = Vec::with_capacity(files.len());
    for f in &files {
        let sha256 = match (hashed.remove(&f.id), known.get(&f.id)) {
            (Some(sha), _) => sha,
            (None, Some(e)) if e.bytes == f.bytes => e.sha256.clone(),
            _ => {
                let path = f.path.clone();
                tokio::task::spawn_blocking(move || sha256_file(&path))
                    .await
                    .map_err(std::io::Error::other)??
            }
        };
        originals.push(ManifestEntry {
            id: f.id.clone(),
            format: f.format.as_str().to_string(),
            bytes: f.bytes,
            sha256,
        });
    }

    let database = match database {
        Some(snapshot) => Some(upload_database(&dest, snapshot, &created_at).await?),
        None => None,
    };
    summary.database_bytes = database.as_ref().map(|d| d.bytes);
    let manifest = Manifest {
        version: 1,
        created_at,
        originals,
        database,
    };
    summary.manifest = Some(dest.put_manifest(&manifest).await?);
    println!(
        "backup done in {:.1} s: {} originals ({}), {} copied now ({}){}; manifest {}",
        started.elapsed().as_secs_f64(),
        summary.originals,
        human(summary.original_bytes),
        summary.copied,
        human(summary.copied_bytes),
        match summary.database_bytes {
            Some(b) => format!(", database copy {}", human(b)),
            None =>
                ", database not included (PostgreSQL: backed up by CloudNativePG or its provider)"
                    .into(),
        },
        summary.manifest.as_deref().unwrap_or("")
    );
    Ok(summary)
}

/// The embedded SQLite database, when that is what the server uses.
fn embedded_database(config: &Config) -> Option<Db> {
    let is_postgres = config
        .database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    if is_postgres {
        return None;
    }
    Db::open(config.database_url.as_deref(), &config.data_dir).ok()
}

/// A consistent copy of the live SQLite database, in a temporary directory
/// beside it.
struct DatabaseSnapshot {
    dir: TempDir,
    file: std::path::PathBuf,
}

async fn snapshot_database(db: &Db, config: &Config) -> Result<DatabaseSnapshot, BackupError> {
    db.migrate().await?;
    let dir = tempfile_in(&config.data_dir)?;
    let file = dir.path().join("copy.sqlite3");
    db.copy_sqlite_to(&file).await?;
    db.close().await;
    Ok(DatabaseSnapshot { dir, file })
}

/// Uploads the snapshot; the temporary directory goes with it.
async fn upload_database(
    dest: &Destination,
    snapshot: DatabaseSnapshot,
    created_at: &str,
) -> Result<DatabaseCopy, BackupError> {
    let bytes = std::fs::metadata(&snapshot.file)?.len();
    let hashed = snapshot.file.clone();
    let sha256 = tokio::task::spawn_blocking(move || sha256_file(&hashed))
        .await
        .map_err(std::io::Error::other)??;
    let object = format!("database/{created_at}.sqlite3");
    upload(dest, &snapshot.file, dest.path(&object)).await?;
    drop(snapshot.dir);
    Ok(DatabaseCopy {
        object,
        bytes,
        sha256,
    })
}

/// A temporary directory on the same volume as the data directory.
fn tempfile_in(dir: &std::path::Path) -> std::io::Result<TempDir> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".backup-{}", crate::ids::new_id()));
    std::fs::create_dir(&path)?;
    Ok(TempDir(path))
}

/// Removes its directory when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
