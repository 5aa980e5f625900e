use super::*;

fn key(n: u32) -> RenditionKey {
    RenditionKey {
        id: format!("{:0>20}", n),
        width: 240,
    }
}

fn disk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() != VERSION_FILE {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn eviction_keeps_the_cache_under_its_cap_and_drops_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 3000, 0, Metrics::new());
    let kb = Bytes::from(vec![7u8; 1000]);
    cache.put(&key(1), &kb);
    cache.put(&key(2), &kb);
    cache.put(&key(3), &kb);
    assert!(cache.get(&key(1)).await.is_some(), "1 is now recently used");
    cache.put(&key(4), &kb);
    assert!(cache.bytes() <= 3000);
    assert!(!cache.contains(&key(2)), "2 was least recently used");
    assert!(cache.contains(&key(1)) && cache.contains(&key(3)) && cache.contains(&key(4)));
    let on_disk: u64 = disk_files(dir.path())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(on_disk <= 3000, "{on_disk} bytes on disk");
    assert_eq!(cache.metrics.cache_evictions.get(), 1);
}

#[tokio::test]
async fn a_restart_finds_the_previous_files_and_respects_a_smaller_cap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
        for n in 0..5 {
            cache.put(&key(n), &Bytes::from(vec![1u8; 1000]));
        }
    }
    let cache = DiskCache::open(dir.path().to_path_buf(), 2500, 0, Metrics::new());
    assert_eq!(cache.bytes(), 2000);
    assert_eq!(disk_files(dir.path()).len(), 2);
    assert!(cache.get(&key(4)).await.is_some());
}

#[tokio::test]
async fn an_unusable_directory_degrades_to_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let cache = DiskCache::open(file.join("cache"), 10_000, 0, Metrics::new());
    assert!(!cache.writable());
    cache.put(&key(1), &Bytes::from_static(b"jpeg"));
    assert_eq!(cache.metrics.cache_write_errors.get(), 1);
    assert!(cache.get(&key(2)).await.is_none());
}

#[tokio::test]
async fn a_disk_hit_returns_every_byte_of_a_file_of_many_pages() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10 << 20, 0, Metrics::new());
    let jpeg: Bytes = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    cache.put(&key(1), &jpeg);
    cache.put(&key(2), &Bytes::new());
    assert_eq!(cache.get(&key(1)).await, Some(jpeg));
    assert_eq!(cache.get(&key(2)).await, Some(Bytes::new()));
    assert_eq!(cache.metrics.cache_hits.get(), 2);
}

#[test]
fn a_read_from_the_page_cache_fills_its_buffer_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Pages and a tail, so the read needs more than one copy by the kernel.
    for len in [0usize, 1, 4096, 4097, 1_000_003] {
        let path = dir.path().join(format!("{len}.jpg"));
        let content: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        fs::write(&path, &content).unwrap();
        let file = fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let read = read_without_waiting(&file, len).unwrap();
        let read = read.expect(
            "a file just written is in the page cache; None means this kernel or file \
             system refuses RWF_NOWAIT reads, and every disk hit would take a blocking thread",
        );
        assert_eq!(read.len(), len);
        assert!(read == content, "the bytes of a {len}-byte file differ");
    }
}

#[tokio::test]
async fn a_rendition_enters_memory_on_its_first_hit_not_when_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 1 << 20, Metrics::new());
    let jpeg = Bytes::from_static(b"jpeg");
    cache.put(&key(1), &jpeg);
    let in_memory = |cache: &DiskCache| cache.memory.as_ref().unwrap().contains_key(&key(1));
    assert!(!in_memory(&cache), "rendered once: on disk only");
    assert_eq!(cache.get(&key(1)).await, Some(jpeg.clone()));
    assert!(in_memory(&cache), "hit from disk: now in memory too");
    for f in disk_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    assert_eq!(cache.get(&key(1)).await, Some(jpeg), "served from memory");
}

#[tokio::test]
async fn a_large_rendition_is_sent_from_its_cache_file_not_copied_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10 << 20, 1 << 20, Metrics::new());
    let jpeg = Bytes::from((0..100_000u32).map(|i| (i % 241) as u8).collect::<Vec<_>>());
    cache.put(&key(1), &jpeg);
    for _ in 0..2 {
        // The cache file itself, mapped, not read.
        let hit = cache.get(&key(1)).await.unwrap();
        assert_eq!(hit, jpeg);
        let (file, _) = zero_copy::file_behind(&hit).expect("a hit is a mapped file");
        let on_disk = fs::metadata(&disk_files(dir.path())[0]).unwrap();
        let mapped = file.metadata().unwrap();
        assert_eq!(
            (mapped.dev(), mapped.ino()),
            (on_disk.dev(), on_disk.ino()),
            "the cache's own file"
        );
        assert!(!cache.memory.as_ref().unwrap().contains_key(&key(1)));
    }
}

#[tokio::test]
async fn renditions_of_another_renderer_version_are_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
    cache.put(&key(1), &Bytes::from_static(b"jpeg"));
    drop(cache);
    // Reopened by the same version: kept.
    let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
    assert!(cache.get(&key(1)).await.is_some());
    drop(cache);
    // Written by another version (or before versions were recorded).
    for older in [Some("1"), None] {
        let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
        cache.put(&key(1), &Bytes::from_static(b"jpeg"));
        drop(cache);
        let marker = dir.path().join(VERSION_FILE);
        match older {
            Some(version) => fs::write(&marker, version).unwrap(),
            None => fs::remove_file(&marker).unwrap(),
        }
        let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
        assert!(cache.get(&key(1)).await.is_none(), "{older:?}: not served");
        assert!(disk_files(dir.path()).is_empty(), "{older:?}: deleted");
        assert_eq!(cache.bytes(), 0);
        assert_eq!(
            fs::read_to_string(&marker).unwrap(),
            render::OUTPUT_VERSION.to_string()
        );
    }
}

#[tokio::test]
async fn without_a_usable_disk_renditions_are_kept_in_memory() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let cache = DiskCache::open(file.join("cache"), 10_000, 1 << 20, Metrics::new());
    let jpeg = Bytes::from_static(b"jpeg");
    cache.put(&key(1), &jpeg);
    assert_eq!(cache.get(&key(1)).await, Some(jpeg));
    // Too large for the disk cache's cap, but not for memory: kept in a
    // sealed memory file, sent with `sendfile` like a cache file.
    let (writable, large) = (tempfile::tempdir().unwrap(), Bytes::from(vec![3u8; 40_000]));
    let cache = DiskCache::open(
        writable.path().to_path_buf(),
        10_000,
        1 << 20,
        Metrics::new(),
    );
    cache.put(&key(2), &large);
    let hit = cache.get(&key(2)).await.unwrap();
    assert_eq!(hit, large);
    let (memory_file, _) = zero_copy::file_behind(&hit).expect("a memory file");
    // SAFETY: `fcntl` with F_GET_SEALS on a live descriptor.
    let seals = unsafe { libc::fcntl(memory_file.as_raw_fd(), libc::F_GET_SEALS) };
    assert_ne!(seals & libc::F_SEAL_WRITE, 0, "a sealed memory file");
}

#[tokio::test]
async fn a_disk_hit_keeps_its_file_open_and_mapped_for_the_next_hits() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10 << 20, 0, Metrics::new());
    let large = Bytes::from((0..100_000u32).map(|i| (i % 239) as u8).collect::<Vec<_>>());
    let small = Bytes::from_static(b"a small jpeg");
    cache.put(&key(1), &large);
    cache.put(&key(2), &small);
    let first = cache.get(&key(1)).await.unwrap();
    assert_eq!(cache.get(&key(2)).await, Some(small.clone()));
    // Gone from the directory, but open: served from the open files.
    for f in disk_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    let second = cache.get(&key(1)).await.unwrap();
    assert_eq!(second, large);
    assert_eq!(second.as_ptr(), first.as_ptr(), "the same mapping");
    assert_eq!(cache.get(&key(2)).await, Some(small));
    assert_eq!(cache.metrics.cache_hits.get(), 4);
}

#[tokio::test]
async fn an_open_file_unlinked_behind_its_back_is_a_miss_at_its_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = DiskCache::open(dir.path().to_path_buf(), 10 << 20, 0, Metrics::new());
    cache.open_recheck = Duration::ZERO;
    let large = Bytes::from(vec![7u8; 100_000]);
    cache.put(&key(1), &large);
    cache.put(&key(2), &Bytes::from_static(b"small"));
    assert!(cache.get(&key(1)).await.is_some());
    assert!(cache.get(&key(2)).await.is_some());
    for f in disk_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    assert!(cache.get(&key(1)).await.is_none());
    assert!(cache.get(&key(2)).await.is_none());
    assert_eq!(cache.open_files().len(), 0, "closed");
    assert_eq!(cache.bytes(), 0);
}

#[tokio::test]
async fn eviction_removal_and_a_new_file_close_what_was_kept_open() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two files of 40,000 bytes.
    let cache = DiskCache::open(dir.path().to_path_buf(), 90_000, 0, Metrics::new());
    let jpeg = |n: u8| Bytes::from(vec![n; 40_000]);
    cache.put(&key(1), &jpeg(1));
    cache.put(&key(2), &jpeg(2));
    assert!(cache.get(&key(1)).await.is_some());
    assert!(cache.get(&key(2)).await.is_some());
    assert_eq!(cache.open_files().len(), 2);
    cache.put(&key(3), &jpeg(3)); // evicts 1
    assert!(!cache.open_files().contains(&key(1)), "evicted");
    cache.remove_photo(&key(2).id, &[240]);
    assert!(!cache.open_files().contains(&key(2)), "removed");
    assert!(cache.get(&key(3)).await.is_some());
    cache.put(&key(3), &jpeg(4));
    assert!(!cache.open_files().contains(&key(3)), "replaced");
    assert_eq!(cache.get(&key(3)).await, Some(jpeg(4)), "the new file");
}

#[tokio::test]
async fn a_file_removed_behind_its_back_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = DiskCache::open(dir.path().to_path_buf(), 10_000, 0, Metrics::new());
    cache.put(&key(1), &Bytes::from_static(b"jpeg"));
    for f in disk_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    assert!(cache.get(&key(1)).await.is_none());
    assert_eq!(cache.bytes(), 0);
}
