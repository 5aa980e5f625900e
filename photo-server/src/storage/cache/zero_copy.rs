//! Response bodies that are files, so that they can leave by `sendfile(2)`
//! as nginx sends its files, instead of being copied into the socket.
//!
//! hyper writes a body from memory: it has no way to take a file
//! (hyperium/hyper#3026). So a cached rendition is still `Bytes`, readable
//! like any other, but its memory is a read-only mapping of a file, and this
//! module remembers which file each such mapping shows.
//! [`crate::server::sendfile::SendfileStream`], the socket under hyper, looks
//! up each large buffer it is asked to write ([`file_behind`], the one way in
//! from outside the cache): one that is such a mapping goes
//! out with `sendfile` from the file, the kernel handing the file's pages to
//! the socket; anything else is written as usual. Nothing depends on the
//! lookup succeeding: read through the mapping, the bytes are the same.
//!
//! Two kinds of file back these bytes:
//! - the rendition cache's own files ([`map_file`], an `unsafe fn` whose
//!   contract the cache keeps), which are replaced by rename and removed by
//!   unlink, never truncated while mapped (reading a mapping past a file's
//!   new end would be a `SIGBUS`);
//! - sealed memory files ([`in_memory_file`]) for the in-memory layer, which
//!   nobody can shrink or change.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use memmap2::Mmap;

/// Bodies smaller than this are copied: for them, the extra system calls of
/// a mapping and a second write cost more than the copy saves.
pub(crate) const MIN_LEN: usize = 32 * 1024;

/// Mapped ranges by start address: each one's end and its file.
static MAPPINGS: Mutex<BTreeMap<usize, (usize, Arc<File>)>> = Mutex::new(BTreeMap::new());

fn mappings() -> MutexGuard<'static, BTreeMap<usize, (usize, Arc<File>)>> {
    // The map is consistent after every statement: a panic elsewhere while
    // it was held leaves nothing half done.
    MAPPINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Memory files alive now. Each holds a descriptor and a mapping for as long
/// as it is cached, so they get at most a quarter of the descriptor limit
/// (the rest is for connections, the database and the files being served)
/// and a quarter of the kernel's mappings per process (`vm.max_map_count`:
/// large allocations are mappings too, and one refused aborts the process).
static MEMORY_FILES: AtomicUsize = AtomicUsize::new(0);

fn memory_files_allowed() -> usize {
    static ALLOWED: OnceLock<usize> = OnceLock::new();
    *ALLOWED.get_or_init(|| share_of_limits(4))
}

/// `1/divisor` of the smaller of the descriptor limit and the kernel's
/// mappings per process: what a kind of file kept open and mapped may use.
pub(super) fn share_of_limits(divisor: u64) -> usize {
    let (descriptors, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    let mappings = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(65_530);
    usize::try_from(descriptors.min(mappings) / divisor.max(1)).unwrap_or(usize::MAX)
}

/// The owner of a mapping inside `Bytes`: unregistered, then unmapped, when
/// the last `Bytes` of it is dropped.
struct Mapping {
    map: Mmap,
    /// Counted in [`MEMORY_FILES`].
    memory_file: bool,
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Before `map` is unmapped (fields drop after this), so no lookup can
        // find an address that is about to be reused.
        mappings().remove(&(self.map.as_ptr() as usize));
        if self.memory_file {
            MEMORY_FILES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The whole of `file`, `len` bytes long, as `Bytes` over a read-only
/// mapping of it. Nothing is read: pages come in only if something reads
/// them through the mapping (sending with `sendfile` does not).
///
/// # Safety
///
/// `file` must hold at least `len` bytes, and must not be truncated or
/// written in place while the returned bytes, or any slice of them, live:
/// reading a mapping past a file's new end is a `SIGBUS`, and bytes written
/// in place would change under their readers. The cache keeps this by
/// writing each file whole under a temporary name, renaming it into place,
/// and removing it by unlink, never opening one of its files for writing.
pub(super) unsafe fn map_file(file: Arc<File>, len: usize) -> io::Result<Bytes> {
    // SAFETY: the caller's contract is `map`'s.
    unsafe { map(file, len, false) }
}

/// A mapping of a file made for a test elsewhere in the crate
/// (`server::sendfile`), which breaks the contract on purpose.
///
/// # Safety
///
/// As [`map_file`]'s.
#[cfg(test)]
pub(crate) unsafe fn map_file_for_tests(file: Arc<File>, len: usize) -> io::Result<Bytes> {
    // SAFETY: the caller's contract is `map_file`'s.
    unsafe { map_file(file, len) }
}

/// # Safety
///
/// As [`map_file`]'s: `file` holds `len` bytes and is neither truncated nor
/// written in place while the mapping lives.
unsafe fn map(file: Arc<File>, len: usize, memory_file: bool) -> io::Result<Bytes> {
    // SAFETY: the mapping is read-only, and the caller guarantees the file
    // is not truncated or written in place while it lives, which is what
    // makes reading it sound.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(&*file)? };
    let start = map.as_ptr() as usize;
    mappings().insert(start, (start + map.len(), file));
    if memory_file {
        MEMORY_FILES.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Bytes::from_owner(Mapping { map, memory_file }))
}

/// `bytes` copied into a sealed memory file (`memfd`) and mapped: memory the
/// kernel can send from with `sendfile`, and that nothing can change or
/// shrink. Bytes that are themselves a mapped file are copied by the kernel,
/// file to file, so their mapping is never read here. `None` if the kernel
/// refuses (no `memfd`, out of descriptors) or memory files have their share
/// of descriptors already: the caller keeps the bytes it has.
pub(crate) fn in_memory_file(bytes: &[u8]) -> Option<Bytes> {
    let created = memory_file(bytes);
    if let Err(e) = &created {
        tracing::debug!(error = %e, "cannot keep a rendition in a memory file; keeping it on the heap");
    }
    created.ok()
}

fn memory_file(bytes: &[u8]) -> io::Result<Bytes> {
    if bytes.is_empty() {
        return Err(io::Error::other("nothing to keep"));
    }
    if MEMORY_FILES.load(Ordering::Relaxed) >= memory_files_allowed() {
        return Err(io::Error::other(
            "memory files have their share of descriptors",
        ));
    }
    // SAFETY: a static, NUL-terminated name and valid flags; the result is
    // checked before it is used as a descriptor.
    let fd = unsafe {
        libc::memfd_create(
            c"rendition".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    match file_behind(bytes) {
        Some((source, offset)) => copy_file(&source, offset, bytes.len(), &file)?,
        None => file.write_all(bytes)?,
    }
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: `fcntl` on a descriptor `file` owns, with a valid command.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `file` holds `bytes.len()` bytes and is sealed against
    // shrinking, growing and writing.
    unsafe { map(Arc::new(file), bytes.len(), true) }
}

/// `len` bytes of `source` from `offset` appended to `target`, copied by the
/// kernel (`sendfile` between files).
fn copy_file(source: &File, offset: u64, len: usize, target: &File) -> io::Result<()> {
    let mut from = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open for the call; `from` is a valid
        // offset for the kernel to advance.
        let copied =
            unsafe { libc::sendfile(target.as_raw_fd(), source.as_raw_fd(), &mut from, left) };
        match usize::try_from(copied) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => left -= n,
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// The file behind `data`, and where in it `data` starts, if `data` lies
/// within a mapping made here that is still alive. Only bodies of at least
/// [`MIN_LEN`] bytes are looked up.
pub(crate) fn file_behind(data: &[u8]) -> Option<(Arc<File>, u64)> {
    if data.len() < MIN_LEN {
        return None;
    }
    let at = data.as_ptr() as usize;
    let map = mappings();
    let (&start, (end, file)) = map.range(..=at).next_back()?;
    (at + data.len() <= *end).then(|| (file.clone(), (at - start) as u64))
}

/// Whether every page of mapped `bytes` is in memory now (in the page cache),
/// so that sending them will not wait for the disk. `false` when the kernel
/// cannot say (`mincore` reports the page cache only for files this process
/// may write, which the cache's own files are).
pub(super) fn resident(bytes: &Bytes) -> bool {
    // SAFETY: `sysconf` has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = bytes.as_ptr() as usize;
    // `mincore` wants a page-aligned start; mappings start on a page.
    if !start.is_multiple_of(page) || bytes.is_empty() {
        return false;
    }
    let pages = bytes.len().div_ceil(page);
    let mut flags = vec![0u8; pages];
    // SAFETY: `[start, start + len)` lies within one live mapping (held by
    // `bytes`), and `flags` has room for one byte per page of it.
    let done =
        unsafe { libc::mincore(start as *mut libc::c_void, bytes.len(), flags.as_mut_ptr()) };
    done == 0 && flags.iter().all(|f| f & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_file(contents: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jpg");
        std::fs::write(&path, contents).unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_mapped_file_reads_as_its_contents_and_names_its_file_until_dropped() {
        let contents = pattern(100_000);
        let (_dir, file) = temp_file(&contents);
        // SAFETY (test): the temporary file is never written again.
        let bytes = unsafe { map_file(Arc::new(file), contents.len()) }.unwrap();
        assert_eq!(&bytes[..], &contents[..]);

        let (file, offset) = file_behind(&bytes).expect("a mapping is found");
        assert_eq!(offset, 0);
        let mut read = Vec::new();
        (&*file).read_to_end(&mut read).unwrap();
        assert_eq!(read, contents, "the file behind is the one mapped");
        drop(file);

        // A slice of it, as a range request or a sub-buffer would be.
        let tail = bytes.slice(40_000..);
        let (_, offset) = file_behind(&tail).unwrap();
        assert_eq!(offset, 40_000);
        // Too small to be worth sending from the file.
        assert!(file_behind(&bytes[..MIN_LEN - 1]).is_none());

        let registered = Arc::downgrade(&file_behind(&bytes).unwrap().0);
        drop(bytes);
        assert!(
            file_behind(&tail).is_some(),
            "a slice keeps the mapping alive"
        );
        drop(tail);
        assert!(
            registered.upgrade().is_none(),
            "unregistered (and the file closed) when the last slice is dropped"
        );
    }

    #[test]
    fn ordinary_memory_names_no_file() {
        let heap = Bytes::from(pattern(MIN_LEN * 2));
        assert!(file_behind(&heap).is_none());
    }

    #[test]
    fn a_range_that_runs_past_a_mapping_is_not_taken_for_it() {
        let contents = pattern(MIN_LEN * 2);
        let (_dir, file) = temp_file(&contents);
        // SAFETY (test): the temporary file is never written again.
        let bytes = unsafe { map_file(Arc::new(file), contents.len()) }.unwrap();
        // SAFETY (test): only the pointer and a length are formed, never read;
        // `file_behind` compares addresses.
        let beyond =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr().add(MIN_LEN), MIN_LEN + 1) };
        assert!(file_behind(beyond).is_none());
    }

    #[test]
    fn a_memory_file_holds_a_copy_nobody_can_change() {
        let contents = pattern(MIN_LEN + 5);
        let bytes = in_memory_file(&contents).expect("memfd");
        assert_eq!(&bytes[..], &contents[..]);
        let (file, _) = file_behind(&bytes).unwrap();
        // SAFETY: `fcntl` with F_GET_SEALS on a live descriptor.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        for seal in [libc::F_SEAL_SHRINK, libc::F_SEAL_GROW, libc::F_SEAL_WRITE] {
            assert_ne!(seals & seal, 0, "seal {seal:#x} missing");
        }
        assert!(
            (&*file).write(b"x").is_err(),
            "a sealed file takes no writes"
        );
        assert!(file.set_len(1).is_err(), "a sealed file cannot shrink");
        assert!(in_memory_file(b"").is_none());
    }

    #[test]
    fn a_mapped_file_kept_in_memory_is_copied_from_its_file() {
        let contents = pattern(150_000);
        let (_dir, file) = temp_file(&contents);
        // SAFETY (test): the temporary file is never written again.
        let mapped = unsafe { map_file(Arc::new(file), contents.len()) }.unwrap();
        let kept = in_memory_file(&mapped.slice(10_000..)).expect("memfd");
        assert_eq!(&kept[..], &contents[10_000..]);
        let (source, _) = file_behind(&mapped).unwrap();
        let (copy, _) = file_behind(&kept).unwrap();
        assert_ne!(source.as_raw_fd(), copy.as_raw_fd(), "a file of its own");
    }

    #[test]
    fn a_file_just_written_is_resident() {
        let contents = pattern(200_000);
        let (_dir, file) = temp_file(&contents);
        // SAFETY (test): the temporary file is never written again.
        let bytes = unsafe { map_file(Arc::new(file), contents.len()) }.unwrap();
        assert!(resident(&bytes));
        // Not page aligned: cannot say.
        assert!(!resident(&bytes.slice(1..)));
    }
}
