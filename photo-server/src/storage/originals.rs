//! The shared originals store: one directory every replica mounts read-write
//! (EFS/NFS in a cluster), written once per photo and never modified.
//!
//! An upload is spooled to `.incoming/` on the same filesystem, fsynced, then
//! renamed into `ab/<id>.<ext>` and the directory fsynced. Only after that
//! does the caller insert the database row. So a crash leaves at worst a
//! spool file (swept at start) or an original with no row (invisible; the
//! client retries and gets a new id): never a row pointing at a missing or
//! half-written file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::ids;
use crate::render::Format;

const INCOMING: &str = ".incoming";
/// Where `photo-server orphans --quarantine` moves originals without a row.
pub const QUARANTINE: &str = ".quarantine";

/// One original file found on the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOriginal {
    pub id: String,
    pub format: Format,
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: SystemTime,
}

#[derive(Debug, Clone)]
pub struct OriginalStore {
    dir: PathBuf,
}

/// An upload being written to the spool directory. Dropped without
/// `commit`, it removes its file.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    bytes: u64,
    /// The first bytes, enough to recognise the format.
    head: Vec<u8>,
}

impl OriginalStore {
    /// Opens the store, creating it if needed, and removes spool files left
    /// by a crash more than an hour ago (younger ones may belong to another
    /// replica's upload in progress).
    pub fn open(dir: PathBuf) -> io::Result<OriginalStore> {
        fs::create_dir_all(dir.join(INCOMING))?;
        let store = OriginalStore { dir };
        store.sweep_incoming(Duration::from_secs(3600));
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &str, format: Format) -> PathBuf {
        debug_assert!(ids::is_valid(id));
        self.dir
            .join(&id[..2])
            .join(format!("{id}.{}", format.extension()))
    }

    /// Starts spooling an upload.
    pub fn spool(&self) -> io::Result<Spool> {
        let path = self
            .dir
            .join(INCOMING)
            .join(format!("{}.part", ids::new_id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Spool {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            bytes: 0,
            head: Vec::new(),
        })
    }

    /// Makes a spooled upload the original of `id`: fsync, rename, fsync the
    /// directory. When this returns the file survives a crash.
    pub fn commit(&self, spool: Spool, id: &str, format: Format) -> io::Result<PathBuf> {
        self.put(spool, id, format, false)
    }

    /// Like [`OriginalStore::commit`], but replaces a file already there (a
    /// restore putting back a damaged or truncated original).
    pub fn replace(&self, spool: Spool, id: &str, format: Format) -> io::Result<PathBuf> {
        self.put(spool, id, format, true)
    }

    fn put(
        &self,
        mut spool: Spool,
        id: &str,
        format: Format,
        replace: bool,
    ) -> io::Result<PathBuf> {
        let file = spool
            .file
            .take()
            .ok_or_else(|| io::Error::other("spool already committed"))?;
        file.sync_all()?;
        drop(file);
        let target = self.path(id, format);
        let parent = target
            .parent()
            .ok_or_else(|| io::Error::other("original path has no parent"))?;
        fs::create_dir_all(parent)?;
        if !replace && target.exists() {
            // Ids are random and 103 bits long; this is a bug, not bad luck.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("original {} already exists", target.display()),
            ));
        }
        fs::rename(&spool.path, &target)?;
        spool.path = PathBuf::new();
        File::open(parent)?.sync_all()?;
        Ok(target)
    }

    /// Opens an original for reading as it is decoded.
    pub fn open_file(&self, id: &str, format: Format) -> io::Result<fs::File> {
        fs::File::open(self.path(id, format))
    }

    /// Removes an original (after its row is gone). Missing is fine.
    pub fn remove(&self, id: &str, format: Format) -> io::Result<()> {
        match fs::remove_file(self.path(id, format)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every original on the store (`<ab>/<id>.<ext>`; spool and quarantine
    /// directories and anything else left out).
    pub fn list(&self) -> io::Result<Vec<StoredOriginal>> {
        let mut found = Vec::new();
        for shard in fs::read_dir(&self.dir)? {
            let shard = shard?;
            let name = shard.file_name();
            let Some(prefix) = name.to_str().filter(|n| n.len() == 2) else {
                continue;
            };
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(shard.path())? {
                let file = file?;
                let name = file.file_name();
                let Some((id, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
                    continue;
                };
                let format = [Format::Jpeg, Format::Png, Format::Webp]
                    .into_iter()
                    .find(|f| f.extension() == ext);
                let (Some(format), true) = (format, ids::is_valid(id) && id.starts_with(prefix))
                else {
                    continue;
                };
                let meta = file.metadata()?;
                found.push(StoredOriginal {
                    id: id.to_string(),
                    format,
                    path: file.path(),
                    bytes: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Moves an original into `.quarantine/<batch>/` on the same volume
    /// (a rename: nothing is copied or deleted). Returns where it went.
    pub fn quarantine(&self, original: &StoredOriginal, batch: &str) -> io::Result<PathBuf> {
        let dir = self.dir.join(QUARANTINE).join(batch);
        fs::create_dir_all(&dir)?;
        let target = dir.join(format!("{}.{}", original.id, original.format.extension()));
        fs::rename(&original.path, &target)?;
        File::open(&dir)?.sync_all()?;
        if let Some(parent) = original.path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(target)
    }

    /// Whether the store can be listed, for readiness.
    pub fn usable(&self) -> bool {
        fs::metadata(self.dir.join(INCOMING)).is_ok_and(|m| m.is_dir())
    }

    fn sweep_incoming(&self, older_than: Duration) {
        let Ok(entries) = fs::read_dir(self.dir.join(INCOMING)) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > older_than);
            if stale {
                tracing::info!(path = %entry.path().display(), "removing an upload spool left by a crash");
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl Spool {
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("spool already committed"))?;
        file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        if self.head.len() < 64 {
            let take = (64 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Keeps only the first `len` bytes (an image's end found before the
    /// file's), and hashes again what is kept.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        use std::io::Read;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("spool already committed"))?;
        file.set_len(len)?;
        let mut hasher = Sha256::new();
        let mut reader = File::open(&self.path)?.take(len);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.hasher = hasher;
        self.bytes = len;
        Ok(())
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hex SHA-256 of everything written so far.
    pub fn sha256(&self) -> String {
        let digest = self.hasher.clone().finalize();
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Whether an I/O error means the volume cannot take more data (full, over
/// quota, or read-only), which is the operator's to fix, not a bug.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::QuotaExceeded
            | io::ErrorKind::ReadOnlyFilesystem
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncating_a_spool_rehashes_what_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = OriginalStore::open(dir.path().to_path_buf()).unwrap();
        let mut spool = store.spool().unwrap();
        spool.write(b"hello world, and then some junk").unwrap();
        spool.truncate(11).unwrap();
        assert_eq!(spool.bytes(), 11);
        assert_eq!(
            spool.sha256(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let id = ids::new_id();
        let target = store.commit(spool, &id, Format::Jpeg).unwrap();
        assert_eq!(fs::read(target).unwrap(), b"hello world");
    }

    #[test]
    fn commit_moves_the_spool_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = OriginalStore::open(dir.path().join("orig")).unwrap();
        let mut spool = store.spool().unwrap();
        spool.write(b"hello ").unwrap();
        spool.write(b"world").unwrap();
        assert_eq!(spool.bytes(), 11);
        assert_eq!(
            spool.sha256(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let spool_path = spool.path().to_path_buf();
        let id = ids::new_id();
        let target = store.commit(spool, &id, Format::Jpeg).unwrap();
        assert!(!spool_path.exists());
        assert_eq!(fs::read(&target).unwrap(), b"hello world");
        let mut stored = Vec::new();
        io::Read::read_to_end(
            &mut store.open_file(&id, Format::Jpeg).unwrap(),
            &mut stored,
        )
        .unwrap();
        assert_eq!(stored, b"hello world");
        store.remove(&id, Format::Jpeg).unwrap();
        store.remove(&id, Format::Jpeg).unwrap();
        assert!(!target.exists());
    }

    #[test]
    fn an_abandoned_spool_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = OriginalStore::open(dir.path().to_path_buf()).unwrap();
        let mut spool = store.spool().unwrap();
        spool.write(b"partial").unwrap();
        let path = spool.path().to_path_buf();
        assert!(path.exists());
        drop(spool);
        assert!(!path.exists());
    }

    #[test]
    fn stale_spools_are_swept_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = OriginalStore::open(dir.path().to_path_buf()).unwrap();
        let spool = store.spool().unwrap();
        let path = spool.path().to_path_buf();
        // Simulate a crash: the process dies without running Drop.
        std::mem::forget(spool);
        store.sweep_incoming(Duration::from_secs(3600));
        assert!(
            path.exists(),
            "a fresh spool may be another replica's upload"
        );
        store.sweep_incoming(Duration::ZERO);
        assert!(!path.exists());
    }
}
