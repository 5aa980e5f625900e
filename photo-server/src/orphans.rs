//! `photo-server orphans`: originals on the store without a database row,
//! and rows whose original is missing.
//!
//! An upload renames its original into place before it inserts the row; a
//! process that dies in between leaves an original nobody can see. This
//! command lists them and, with `--quarantine`, moves them to
//! `<originals>/.quarantine/<time>/` on the same volume. It never deletes,
//! and it is careful not to move a photo that is fine:
//!
//! - an original younger than `--min-age` (1 h) is never an orphan: another
//!   replica may be about to insert its row;
//! - it refuses to quarantine when the database looks empty or wrong (no
//!   rows at all while there are originals, or more than half of the
//!   originals without a row): that is a `DATABASE_URL` pointing at the
//!   wrong database, not a crash.
//!
//! Rows whose original is missing are listed too (they are served as `404`
//! and are worth a look: a restore, a volume mixed up), never changed.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::db::Db;
use crate::render::Format;
use crate::storage::originals::{OriginalStore, StoredOriginal};

#[derive(Debug, Clone, clap::Args)]
pub struct OrphansArgs {
    /// Move the orphans to `<originals>/.quarantine/<time>/` (never deletes).
    #[arg(long)]
    pub quarantine: bool,
    /// Originals younger than this are left alone (an upload may be committing).
    #[arg(long, default_value = "1h", value_parser = crate::config::parse_duration)]
    pub min_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum OrphansError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("cannot read the originals store: {0}")]
    Store(#[from] std::io::Error),
    #[error(
        "refusing to quarantine: {orphans} of {originals} originals have no row, which looks like the wrong (or an empty) database, not a crash; check DATABASE_URL"
    )]
    WrongDatabase { orphans: usize, originals: usize },
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub originals: usize,
    pub rows: usize,
    /// Old enough and without a row.
    pub orphans: Vec<StoredOriginal>,
    /// Without a row but younger than `--min-age`: left alone.
    pub young: usize,
    /// Rows whose original file is missing.
    pub missing: Vec<(String, Format)>,
}

/// Compares the store with the database.
pub async fn scan(db: &Db, store: &OriginalStore, min_age: Duration) -> Result<Scan, OrphansError> {
    let rows: HashMap<String, Format> = db.photo_files().await?.into_iter().collect();
    let files = store.list()?;
    let now = SystemTime::now();
    let mut scan = Scan {
        originals: files.len(),
        rows: rows.len(),
        ..Scan::default()
    };
    for file in &files {
        if rows.get(&file.id) == Some(&file.format) {
            continue;
        }
        let age = now.duration_since(file.modified).unwrap_or_default();
        if age < min_age {
            scan.young += 1;
        } else {
            scan.orphans.push(file.clone());
        }
    }
    let on_disk: HashMap<&str, Format> = files.iter().map(|f| (f.id.as_str(), f.format)).collect();
    let mut missing: Vec<(String, Format)> = rows
        .iter()
        .filter(|(id, format)| on_disk.get(id.as_str()) != Some(*format))
        .map(|(id, format)| (id.clone(), *format))
        .collect();
    missing.sort_by(|a, b| a.0.cmp(&b.0));
    scan.missing = missing;
    Ok(scan)
}

/// Whether the scan may be acted on: a sane database has rows for (nearly)
/// all originals.
pub fn check_sane(scan: &Scan) -> Result<(), OrphansError> {
    let suspicious =
        !scan.orphans.is_empty() && (scan.rows == 0 || scan.orphans.len() * 2 > scan.originals);
    if suspicious {
        return Err(OrphansError::WrongDatabase {
            orphans: scan.orphans.len(),
            originals: scan.originals,
        });
    }
    Ok(())
}

/// Runs the command: prints the report, quarantines when asked.
pub async fn run(db: &Db, store: &OriginalStore, args: &OrphansArgs) -> Result<(), OrphansError> {
    let scan = scan(db, store, args.min_age).await?;
    println!(
        "{} originals on the store, {} rows in the database",
        scan.originals, scan.rows
    );
    for o in &scan.orphans {
        println!("orphan  {}  {} bytes", o.path.display(), o.bytes);
    }
    for (id, format) in &scan.missing {
        println!(
            "missing {}  (row without its original)",
            store.path(id, *format).display()
        );
    }
    if scan.young > 0 {
        println!(
            "{} original(s) without a row are younger than {:?} and were left alone",
            scan.young, args.min_age
        );
    }
    println!(
        "{} orphan(s), {} row(s) without an original",
        scan.orphans.len(),
        scan.missing.len()
    );
    if !args.quarantine || scan.orphans.is_empty() {
        if !scan.orphans.is_empty() {
            println!("run again with --quarantine to move the orphans aside");
        }
        return Ok(());
    }
    check_sane(&scan)?;
    let batch = crate::db::now_ms().to_string();
    for o in &scan.orphans {
        let to = store.quarantine(o, &batch)?;
        println!("moved   {} -> {}", o.path.display(), to.display());
    }
    println!("{} orphan(s) quarantined", scan.orphans.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(n: usize) -> StoredOriginal {
        StoredOriginal {
            id: format!("{n:020}"),
            format: Format::Jpeg,
            path: format!("/x/{n}").into(),
            bytes: 1,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_database_that_knows_none_or_few_of_the_originals_is_not_trusted() {
        let scan = |originals, rows, orphans: usize| Scan {
            originals,
            rows,
            orphans: (0..orphans).map(original).collect(),
            ..Scan::default()
        };
        assert!(check_sane(&scan(100, 99, 1)).is_ok());
        assert!(check_sane(&scan(100, 100, 0)).is_ok());
        assert!(check_sane(&scan(3, 0, 3)).is_err(), "empty database");
        assert!(
            check_sane(&scan(10, 4, 6)).is_err(),
            "most originals unknown"
        );
        assert!(check_sane(&scan(10, 5, 5)).is_ok());
    }
}
