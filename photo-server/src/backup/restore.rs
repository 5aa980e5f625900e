//! `photo-server restore`: copy back what a backup has and the volume
//! lacks, verifying every checksum.
//!
//! Each original of the latest manifest that is missing on the originals
//! volume (or has another size) is downloaded to the spool directory,
//! hashed on the way, compared with the manifest, and only then renamed
//! into place. A file that does not match is reported and left out, and
//! the command fails at the end; running it again retries only what is
//! still missing. Restores running at once (several pods) or interrupted
//! ones are safe: nothing half-written is ever in place.
//!
//! The embedded database's copy is restored only into a data directory
//! that has no database yet: a restore never overwrites a live database.

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};

use super::{
    BackupArgs, BackupError, CONCURRENCY, Destination, ManifestEntry, PROGRESS_EVERY, hex, human,
};
use crate::config::Config;
use crate::render::Format;
use crate::storage::originals::OriginalStore;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Originals in the backup.
    pub originals: usize,
    /// Already on the volume.
    pub present: usize,
    pub restored: usize,
    pub restored_bytes: u64,
    /// Downloaded but not matching the manifest, or not downloadable.
    pub failed: usize,
    pub database_restored: bool,
}

/// Downloads `from` into a spool file, hashing it; returns the spool and
/// its checksum.
async fn download(
    dest: &Destination,
    store: &OriginalStore,
    from: object_store::path::Path,
) -> Result<(crate::storage::originals::Spool, String), BackupError> {
    let mut spool = store.spool()?;
    let mut hasher = Sha256::new();
    let mut body = dest.store.get(&from).await?.into_stream();
    while let Some(chunk) = body.try_next().await? {
        hasher.update(&chunk);
        spool = tokio::task::spawn_blocking(move || spool.write(&chunk).map(|_| spool))
            .await
            .map_err(std::io::Error::other)??;
    }
    Ok((spool, hex(&hasher.finalize())))
}

async fn restore_one(
    dest: &Destination,
    store: &OriginalStore,
    entry: &ManifestEntry,
) -> Result<u64, String> {
    let format = Format::parse(&entry.format)
        .ok_or_else(|| format!("{}: unknown format {:?}", entry.id, entry.format))?;
    let (spool, sha256) = download(dest, store, dest.original(&entry.id, format))
        .await
        .map_err(|e| format!("{}: {e}", entry.id))?;
    if sha256 != entry.sha256 || spool.bytes() != entry.bytes {
        return Err(format!(
            "{}: checksum {} does not match the manifest's {} (left out)",
            entry.id, sha256, entry.sha256
        ));
    }
    let (id, store) = (entry.id.clone(), store.clone());
    tokio::task::spawn_blocking(move || store.replace(spool, &id, format))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{}: {e}", entry.id))?;
    Ok(entry.bytes)
}

pub async fn run(config: &Config, args: &BackupArgs) -> Result<Summary, BackupError> {
    let started = Instant::now();
    let dest = Destination::open(&args.url)?;
    let manifest = dest
        .latest_manifest()
        .await?
        .ok_or_else(|| BackupError::NoBackup(dest.url().to_string()))?;
    let store = OriginalStore::open(config.originals_dir())?;
    let on_volume: std::collections::HashMap<String, u64> =
        store.list()?.into_iter().map(|f| (f.id, f.bytes)).collect();
    let missing: Vec<&ManifestEntry> = manifest
        .originals
        .iter()
        .filter(|e| on_volume.get(&e.id) != Some(&e.bytes))
        .collect();
    let missing_bytes: u64 = missing.iter().map(|e| e.bytes).sum();
    let database_file = config.data_dir.join("photos.db");
    let restore_database =
        manifest.database.is_some() && config.database_url.is_none() && !database_file.exists();
    println!(
        "restore from {} (backup {}): {} originals, {} missing here ({}){}",
        dest.url(),
        manifest.created_at,
        manifest.originals.len(),
        missing.len(),
        human(missing_bytes),
        if restore_database {
            ", and the embedded database"
        } else {
            ""
        }
    );
    let mut summary = Summary {
        originals: manifest.originals.len(),
        present: manifest.originals.len() - missing.len(),
        ..Summary::default()
    };
    if args.dry_run {
        for e in &missing {
            println!("would restore {}.{}", e.id, e.format);
        }
        println!("dry run: nothing restored");
        return Ok(summary);
    }

    let mut last_report = Instant::now();
    let mut copies = futures_util::stream::iter(
        missing
            .iter()
            .map(|entry| restore_one(&dest, &store, entry)),
    )
    .buffer_unordered(CONCURRENCY);
    while let Some(result) = copies.next().await {
        match result {
            Ok(bytes) => {
                summary.restored += 1;
                summary.restored_bytes += bytes;
            }
            Err(message) => {
                summary.failed += 1;
                eprintln!("not restored: {message}");
            }
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            println!(
                "restored {}/{} originals ({})",
                summary.restored,
                missing.len(),
                human(summary.restored_bytes)
            );
            last_report = Instant::now();
        }
    }
    drop(copies);

    if let (true, Some(copy)) = (restore_database, &manifest.database) {
        restore_database_file(&dest, copy, &database_file).await?;
        summary.database_restored = true;
    }
    println!(
        "restore done in {:.1} s: {} restored ({}), {} already here, {} failed{}",
        started.elapsed().as_secs_f64(),
        summary.restored,
        human(summary.restored_bytes),
        summary.present,
        summary.failed,
        if summary.database_restored {
            "; embedded database restored"
        } else {
            ""
        }
    );
    if summary.failed > 0 {
        return Err(BackupError::Incomplete {
            failed: summary.failed,
        });
    }
    Ok(summary)
}

/// Downloads the database copy next to its place, checks it, renames it in.
async fn restore_database_file(
    dest: &Destination,
    copy: &super::DatabaseCopy,
    target: &std::path::Path,
) -> Result<(), BackupError> {
    let dir = target.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".restore-{}", crate::ids::new_id()));
    let bytes = dest
        .store
        .get(&dest.path(&copy.object))
        .await?
        .bytes()
        .await?;
    let sha256 = hex(&Sha256::digest(&bytes));
    if sha256 != copy.sha256 {
        return Err(BackupError::Manifest {
            name: copy.object.clone(),
            message: format!("checksum {sha256} does not match {}", copy.sha256),
        });
    }
    std::fs::write(&partial, &bytes)?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, target)?;
    Ok(())
}
