//! The per-pod rendition cache: files under `<width>/<ab>/<id>.jpg` in a local
//! directory (an emptyDir in a cluster), kept under a byte cap by evicting the
//! least recently used, plus a small in-memory layer for the hottest files so a
//! cached hit usually touches neither disk nor database.
//!
//! A rendition enters the memory layer on its first hit from disk, not when it
//! is rendered: renditions asked for once (a crawler walking every size, a
//! burst of new uploads) neither push the hot ones out nor hold memory that
//! renders need. Only when the disk cannot take a rendition is it kept in
//! memory straight away.
//!
//! Files of recent disk hits are kept open (and mapped, if large) for the
//! next hits, as nginx's `open_file_cache` keeps them: see [`OpenFile`].
//!
//! The cache is an optimisation only. A directory that is missing, full or
//! read-only makes every miss a render on the fly; it never fails a request.

pub(crate) mod zero_copy;

use std::fs;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use crate::ids;
use crate::metrics::Metrics;
use crate::render;

/// Names the renderer version that wrote the cache's files.
const VERSION_FILE: &str = "render-version";

/// Cache files read from the disk at once, each on a blocking thread (see
/// [`DiskCache::read_file`]); more wait for a turn.
const DISK_READS: usize = 16;

/// Cache files kept open after a hit: at most this many, and at most an
/// eighth of the descriptor and mapping limits.
const OPEN_FILES: usize = 512;

/// How long a file kept open is served before the kernel is asked again
/// whether it is still all in memory and still in the cache directory.
const OPEN_FILE_RECHECK: Duration = Duration::from_secs(1);

/// A cache file kept open between hits. A hit on it needs no path lookup,
/// `open`, `fstat`, `mmap`, `mincore`, `munmap` or `close`: `mmap`,
/// `mincore` and `munmap` alone were 11% of the server's CPU samples on disk
/// hits (`perf record`).
///
/// Eviction, removal and a newer file for the same rendition close it. A hit
/// that opened a file while it was being evicted can keep it open after
/// that; the recheck finds it unlinked within [`OPEN_FILE_RECHECK`] if it is
/// asked for again, and otherwise it holds its disk space until newer files
/// push it out of the [`OPEN_FILES`].
#[derive(Clone)]
struct OpenFile {
    file: Arc<fs::File>,
    len: usize,
    /// The whole file, mapped, when it is [`zero_copy::MIN_LEN`] bytes or more.
    mapped: Option<Bytes>,
    /// When it was last found linked and, if mapped, all in memory.
    checked: Instant,
}

/// Whether `file` is still a file of the directory (not unlinked by
/// eviction or removal since it was opened).
fn still_linked(file: &fs::File) -> bool {
    file.metadata().is_ok_and(|m| m.nlink() > 0)
}

/// The whole file if every byte of it is in the page cache, `None` if
/// reading it would wait for the disk (or the file system cannot say).
///
/// The bytes go straight into the vector's unused capacity. Zeroing the
/// buffer first, only for the kernel to overwrite it, cost disk hits 8% of
/// their rate (median of 5 rounds, 60 renditions, 64 connections).
fn read_without_waiting(file: &fs::File, len: usize) -> io::Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    let mut data: Vec<u8> = Vec::with_capacity(len);
    while data.len() < len {
        let at = data.len();
        let spare = data.spare_capacity_mut();
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        // SAFETY: `iov` describes `spare`, memory owned by `data` that nothing
        // else refers to; the kernel writes at most `iov_len` bytes into it.
        let read = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                at as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        match usize::try_from(read) {
            // Shorter than its metadata said (replaced meanwhile): what is there.
            Ok(0) => break,
            Ok(n) => {
                // SAFETY: the kernel initialised the `n` bytes after `at`, and
                // `at + n <= capacity` because `n <= spare.len()`.
                unsafe { data.set_len(at + n) };
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
                        return Ok(None);
                    }
                    Some(libc::EINTR) => continue,
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(Some(data))
}

/// One rendition of one photo.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenditionKey {
    pub id: String,
    pub width: u32,
}

impl RenditionKey {
    fn relative_path(&self) -> PathBuf {
        PathBuf::from(self.width.to_string())
            .join(&self.id[..2])
            .join(format!("{}.jpg", self.id))
    }
}

struct Index {
    lru: LruCache<RenditionKey, u64>,
    bytes: u64,
}

pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    writable: AtomicBool,
    /// Hot renditions in memory; `None` when configured to 0 bytes.
    memory: Option<moka::sync::Cache<RenditionKey, Bytes>>,
    /// Turns for reads that need the disk.
    disk_reads: tokio::sync::Semaphore,
    /// Files of recent disk hits, least recently used first out.
    open_files: Mutex<LruCache<RenditionKey, OpenFile>>,
    /// [`OPEN_FILE_RECHECK`], shorter in tests.
    open_recheck: Duration,
    metrics: Metrics,
}

impl DiskCache {
    /// Opens the cache directory and indexes what a previous run left there
    /// (oldest first, so they are evicted first).
    pub fn open(dir: PathBuf, max_bytes: u64, memory_bytes: u64, metrics: Metrics) -> DiskCache {
        let memory = (memory_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .weigher(|_k: &RenditionKey, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                .max_capacity(memory_bytes)
                .build()
        });
        let cache = DiskCache {
            index: Mutex::new(Index {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            writable: AtomicBool::new(true),
            dir,
            max_bytes,
            memory,
            disk_reads: tokio::sync::Semaphore::new(DISK_READS),
            open_files: Mutex::new(LruCache::new(
                NonZeroUsize::new(OPEN_FILES.min(zero_copy::share_of_limits(8)))
                    .unwrap_or(NonZeroUsize::MIN),
            )),
            open_recheck: OPEN_FILE_RECHECK,
            metrics,
        };
        if let Err(e) = cache.load() {
            tracing::warn!(dir = %cache.dir.display(), error = %e, "rendition cache unusable; rendering on the fly");
            cache.writable.store(false, Ordering::Relaxed);
        }
        cache.evict_over_cap();
        cache
    }

    fn load(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        self.empty_if_rendered_by_another_version()?;
        let mut found = Vec::new();
        for width_dir in fs::read_dir(&self.dir)?.flatten() {
            let name = width_dir.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp") {
                let _ = fs::remove_file(width_dir.path());
                continue;
            }
            let Ok(width) = name.parse::<u32>() else {
                continue;
            };
            for shard in fs::read_dir(width_dir.path())?.flatten() {
                for file in fs::read_dir(shard.path())?.flatten() {
                    let file_name = file.file_name();
                    let Some(id) = file_name.to_str().and_then(|n| n.strip_suffix(".jpg")) else {
                        continue;
                    };
                    if !ids::is_valid(id) {
                        continue;
                    }
                    let Ok(meta) = file.metadata() else { continue };
                    let used = meta.modified().ok();
                    let key = RenditionKey {
                        id: id.to_string(),
                        width,
                    };
                    found.push((used, key, meta.len()));
                }
            }
        }
        found.sort_by_key(|(used, _, _)| *used);
        let mut index = self.lock();
        for (_, key, len) in found {
            index.bytes += len;
            index.lru.put(key, len);
        }
        self.metrics.cache_bytes.set(index.bytes as i64);
        Ok(())
    }

    /// Renditions left by a renderer whose output differs (another
    /// [`render::OUTPUT_VERSION`], or a cache from before the version was
    /// recorded) are deleted: served under this version's ETags, they would
    /// be other bytes under the same strong ETag than other pods serve.
    fn empty_if_rendered_by_another_version(&self) -> io::Result<()> {
        let marker = self.dir.join(VERSION_FILE);
        let current = render::OUTPUT_VERSION.to_string();
        if fs::read_to_string(&marker).is_ok_and(|v| v.trim() == current) {
            return Ok(());
        }
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)?.flatten() {
            if entry.file_name().to_string_lossy().parse::<u32>().is_ok() {
                fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(dir = %self.dir.display(), version = current, "renditions of another renderer version removed from the cache");
        }
        fs::write(&marker, current)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index inconsistent
        // in a way that matters (at worst a size is off), so keep going.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_files(&self) -> MutexGuard<'_, LruCache<RenditionKey, OpenFile>> {
        // Entries are replaced whole: a panic cannot leave one half written.
        self.open_files.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, key: &RenditionKey) -> PathBuf {
        self.dir.join(key.relative_path())
    }

    /// The cached rendition, from memory or disk. Counts hits and misses.
    pub async fn get(&self, key: &RenditionKey) -> Option<Bytes> {
        if let Some(bytes) = self.memory.as_ref().and_then(|m| m.get(key)) {
            self.touch(key);
            self.metrics.cache_hits.inc();
            return Some(bytes);
        }
        // Marks it used too, as the read below will.
        let known = self.lock().lru.get(key).is_some();
        if !known {
            self.metrics.cache_misses.inc();
            return None;
        }
        match self.read_file(key).await {
            Ok(bytes) => {
                self.remember(key, &bytes);
                self.metrics.cache_hits.inc();
                Some(bytes)
            }
            Err(_) => {
                // Deleted behind our back (or the volume is gone): forget it.
                self.forget(key);
                self.metrics.cache_misses.inc();
                None
            }
        }
    }

    /// Reads a cached file. A file in the page cache (nearly every hit) is
    /// read right here, on the async thread, in a way that never waits for
    /// the disk: a few microseconds, like nginx's own `open`/`sendfile`. The
    /// file is opened here too, as nginx's workers do: only a directory
    /// lookup that is not cached can wait, briefly. Then it is kept open for
    /// the next hits ([`OpenFile`]).
    ///
    /// - A file of [`zero_copy::MIN_LEN`] bytes or more is not read at all:
    ///   it is mapped, and the socket sends it with `sendfile` (see
    ///   [`zero_copy`]), if `mincore` says all of it is in memory.
    /// - A smaller one is read with `RWF_NOWAIT`, which the kernel refuses
    ///   instead of waiting for the disk.
    ///
    /// Only a file whose bytes need the disk goes to the blocking pool, a
    /// bounded number at a time: a blocking task per hit cost half the hit
    /// rate, and under 64 connections grew the pool to a hundred threads,
    /// each with its own allocator heap (1.6 GB resident).
    async fn read_file(&self, key: &RenditionKey) -> io::Result<Bytes> {
        let (open, recent) = match self.kept_open(key) {
            Some((open, true)) => (open, true),
            Some((open, false)) if still_linked(&open.file) => (open, false),
            _ => (self.open_file(key)?, false),
        };
        let in_memory = match &open.mapped {
            Some(mapped) if recent || zero_copy::resident(mapped) => Some(mapped.clone()),
            Some(_) => None,
            None => read_without_waiting(&open.file, open.len)?.map(Bytes::from),
        };
        match in_memory {
            Some(bytes) => {
                if !recent {
                    let checked = OpenFile {
                        checked: Instant::now(),
                        ..open
                    };
                    self.open_files().put(key.clone(), checked);
                }
                Ok(bytes)
            }
            None => {
                self.close(key);
                self.read_from_disk(open.file).await
            }
        }
    }

    /// The file kept open for `key`, and whether it was checked within
    /// [`OPEN_FILE_RECHECK`].
    fn kept_open(&self, key: &RenditionKey) -> Option<(OpenFile, bool)> {
        let mut files = self.open_files();
        let open = files.get(key)?;
        let recent = open.checked.elapsed() < self.open_recheck;
        Some((open.clone(), recent))
    }

    /// Opens `key`'s file, and maps it if it is large.
    fn open_file(&self, key: &RenditionKey) -> io::Result<OpenFile> {
        let file = Arc::new(fs::File::open(self.path(key))?);
        let len = usize::try_from(file.metadata()?.len()).map_err(io::Error::other)?;
        let mapped = if len >= zero_copy::MIN_LEN {
            // SAFETY: the cache never truncates or writes one of its files in
            // place: `put` writes a temporary file and renames it over the
            // old one, eviction and removal unlink (see `zero_copy::map_file`).
            match unsafe { zero_copy::map_file(file.clone(), len) } {
                Ok(mapped) => Some(mapped),
                // No mapping (the process's map count): read it instead.
                Err(e) => {
                    tracing::debug!(error = %e, "cannot map a cached rendition");
                    None
                }
            }
        } else {
            None
        };
        Ok(OpenFile {
            file,
            len,
            mapped,
            checked: Instant::now(),
        })
    }

    /// No longer keeps `key`'s file open.
    fn close(&self, key: &RenditionKey) {
        self.open_files().pop(key);
    }

    /// Reads a file that needs the disk on the blocking pool, a bounded
    /// number at a time.
    async fn read_from_disk(&self, file: Arc<fs::File>) -> io::Result<Bytes> {
        let _permit = self
            .disk_reads
            .acquire()
            .await
            .map_err(|_| io::Error::other("the cache is shutting down"))?;
        let data = tokio::task::spawn_blocking(move || {
            let mut data = Vec::new();
            io::Read::read_to_end(&mut &*file, &mut data).map(|_| data)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Bytes::from(data))
    }

    /// Whether a rendition is cached, without reading it.
    #[cfg(test)]
    fn contains(&self, key: &RenditionKey) -> bool {
        self.memory.as_ref().is_some_and(|m| m.contains_key(key)) || self.lock().lru.contains(key)
    }

    /// Keeps a rendition in the memory layer, unless it is a large one that
    /// is its mapped cache file:
    /// - a small one as it is;
    /// - a mapped cache file stays out: the file is kept open ([`OpenFile`])
    ///   and sent from the page cache, which was faster than sending a copy
    ///   in a memory file (0.89 of nginx's rate against 0.81, A/B median of
    ///   5 rounds), and its pages are the kernel's to reclaim where a memory
    ///   file's are pinned;
    /// - any other large one (the disk could not take it, or its file could
    ///   not be mapped or had to be read from the disk) goes into a memory
    ///   file, so that it is sent with `sendfile` too.
    fn remember(&self, key: &RenditionKey, bytes: &Bytes) {
        let Some(memory) = &self.memory else { return };
        if bytes.len() < zero_copy::MIN_LEN {
            memory.insert(key.clone(), bytes.clone());
        } else if zero_copy::file_behind(bytes).is_none() {
            let kept = zero_copy::in_memory_file(bytes).unwrap_or_else(|| bytes.clone());
            memory.insert(key.clone(), kept);
        }
    }

    fn unremember(&self, key: &RenditionKey) {
        if let Some(memory) = &self.memory {
            memory.invalidate(key);
        }
    }

    fn touch(&self, key: &RenditionKey) {
        self.lock().lru.get(key);
    }

    fn forget(&self, key: &RenditionKey) {
        self.close(key);
        let mut index = self.lock();
        if let Some(len) = index.lru.pop(key) {
            index.bytes -= len;
            self.metrics.cache_bytes.set(index.bytes as i64);
        }
    }

    /// Stores a rendition: temp file + rename, so a reader never sees half a
    /// file. Blocking; called from the render pool. Failures are logged and
    /// counted, never returned: the caller serves the bytes it has anyway.
    pub fn put(&self, key: &RenditionKey, bytes: &Bytes) {
        if bytes.len() as u64 > self.max_bytes {
            self.remember(key, bytes);
            return;
        }
        match self.write_file(key, bytes) {
            Ok(()) => {
                self.close(key);
                self.writable.store(true, Ordering::Relaxed);
                let mut index = self.lock();
                if let Some(old) = index.lru.put(key.clone(), bytes.len() as u64) {
                    index.bytes -= old;
                }
                index.bytes += bytes.len() as u64;
                self.metrics.cache_bytes.set(index.bytes as i64);
                drop(index);
                self.evict_over_cap();
            }
            Err(e) => {
                self.remember(key, bytes);
                if self.writable.swap(false, Ordering::Relaxed) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write to the rendition cache; keeping renditions in memory only");
                }
                self.metrics.cache_write_errors.inc();
            }
        }
    }

    fn write_file(&self, key: &RenditionKey, bytes: &[u8]) -> io::Result<()> {
        let target = self.path(key);
        let parent = target
            .parent()
            .ok_or_else(|| io::Error::other("cache path has no parent"))?;
        fs::create_dir_all(parent)?;
        let temp = self.dir.join(format!(".tmp-{}", ids::new_id()));
        let result = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            // No fsync: a rendition lost in a crash is simply rendered again.
            fs::rename(&temp, &target)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn evict_over_cap(&self) {
        loop {
            let victim = {
                let mut index = self.lock();
                if index.bytes <= self.max_bytes {
                    return;
                }
                let Some((key, len)) = index.lru.pop_lru() else {
                    return;
                };
                index.bytes -= len;
                self.metrics.cache_bytes.set(index.bytes as i64);
                key
            };
            let _ = fs::remove_file(self.path(&victim));
            self.close(&victim);
            self.unremember(&victim);
            self.metrics.cache_evictions.inc();
        }
    }

    /// Drops every rendition of a deleted photo.
    pub fn remove_photo(&self, id: &str, widths: &[u32]) {
        for &width in widths {
            let key = RenditionKey {
                id: id.to_string(),
                width,
            };
            self.unremember(&key);
            self.forget(&key);
            let _ = fs::remove_file(self.path(&key));
        }
    }

    /// Bytes on disk according to the index.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// False after a write failed, until one succeeds again.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
