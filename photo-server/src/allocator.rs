//! The process's memory allocator, and how it gives memory back.
//!
//! A request allocates many small objects; a render allocates a few large
//! buffers (decoded pixels, resize output: 13 MB for a 17.9 MP photo
//! rendered to 1440 px) that are freed a moment later. The two want
//! different allocators:
//!
//! - below [`LARGE`], mimalloc: fast for the small objects of a request, and
//!   it keeps freed memory for a while to hand it out again;
//! - from [`LARGE`] up, the system allocator, which maps such a buffer
//!   straight from the kernel and unmaps it on free ([`map_large_allocations`] fixes
//!   glibc's threshold for that at [`LARGE`]; otherwise glibc raises it up to
//!   32 MiB after the first large free and then keeps freed buffers in its
//!   arenas). libjpeg's own buffers (the coefficients of a progressive JPEG)
//!   go through the system allocator too.
//!
//! Measured with bench/mixed.py's throughput phase, medians of 3 interleaved
//! rounds: with everything in mimalloc, which keeps freed memory for 1 s, the
//! peaks were 191 / 243 MiB at 2 / 16 concurrent renders; with this split
//! 178 / 204 MiB, at 24.7 / 26.6 renders/s against 24.6 / 27.2. mimalloc
//! with a purge delay of 0 instead (`MIMALLOC_PURGE_DELAY=0`) gave 164 / 197
//! MiB but cut disk-cache hits from 34k to 21k requests/s, since every hit's
//! buffer was then returned to the kernel and faulted in again.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of this size and larger go to the system allocator.
pub const LARGE: usize = 1 << 20;

/// mimalloc for small allocations, the system allocator for large ones.
pub struct PhotoAllocator;

fn is_large(size: usize) -> bool {
    size >= LARGE
}

/// The allocator for blocks of `size` bytes.
fn for_size(size: usize) -> &'static dyn GlobalAlloc {
    if is_large(size) {
        &System
    } else {
        &mimalloc::MiMalloc
    }
}

// SAFETY: every block is freed or resized by the allocator that made it:
// Rust passes `dealloc` and `realloc` the layout the block was allocated
// with, and its size alone decides the allocator ([`for_size`]). A
// `realloc` across `LARGE` moves the block from one allocator to the other.
unsafe impl GlobalAlloc for PhotoAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees (non-zero size).
        unsafe { for_size(layout.size()).alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { for_size(layout.size()).alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `layout` is the one `ptr` was allocated with, so its size
        // picks the allocator that made it.
        unsafe { for_size(layout.size()).dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let from = for_size(layout.size());
        // SAFETY: within one allocator, forwarded as is. Across `LARGE`: a new
        // block from the other allocator, the bytes both sizes hold copied,
        // the old block freed by the allocator that made it.
        unsafe {
            // Compared by size, not by address: both allocators are zero-sized
            // values, whose references may share one address.
            if is_large(layout.size()) == is_large(new_size) {
                return from.realloc(ptr, layout, new_size);
            }
            let new = for_size(new_size)
                .alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                from.dealloc(ptr, layout);
            }
            new
        }
    }
}

/// Sets glibc to map every allocation of [`LARGE`] or more straight from
/// the kernel and give it back on free, unless `MALLOC_MMAP_THRESHOLD_` in
/// the environment already says otherwise. Call once at start.
pub fn map_large_allocations() -> std::io::Result<()> {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return Ok(());
    }
    // SAFETY: mallopt takes integers and only changes glibc's settings.
    match unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int) } {
        1 => Ok(()),
        _ => Err(std::io::Error::other("mallopt(M_MMAP_THRESHOLD) refused")),
    }
}

/// Turns transparent huge pages off for this process, unless
/// `MIMALLOC_ALLOW_THP` is set (then mimalloc's own setting decides). With
/// them, a 2 MiB page is resident once any byte of it is used: an idle
/// server held 46 MiB instead of 34, and the peaks under render load were
/// 210 / 258 MiB at 2 / 16 concurrent renders instead of 194 / 247, for the
/// same render rate and hit rate. The `no_thp` feature of the mimalloc crate
/// already keeps mimalloc from asking for them; this also covers kernels set
/// to give them to every large mapping (`enabled` = `always`). Call before
/// the runtime starts its threads.
pub fn without_transparent_huge_pages() -> std::io::Result<()> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return Ok(());
    }
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of
    // ours; it sets a flag on the process that the kernel checks at page faults.
    match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `size` bytes, fills them, grows and shrinks the block across
    /// `LARGE` and checks that the bytes survive each move.
    fn round_trip(from: usize, to: usize) {
        let a = PhotoAllocator;
        let layout = Layout::from_size_align(from, 16).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            for i in 0..from {
                *p.add(i) = (i % 251) as u8;
            }
            let q = a.realloc(p, layout, to);
            assert!(!q.is_null());
            assert_eq!(q as usize % 16, 0, "alignment lost moving {from} -> {to}");
            for i in 0..from.min(to) {
                assert_eq!(
                    *q.add(i),
                    (i % 251) as u8,
                    "byte {i} lost moving {from} -> {to}"
                );
            }
            a.dealloc(q, Layout::from_size_align(to, 16).unwrap());
        }
    }

    #[test]
    fn a_block_keeps_its_bytes_when_resized_within_and_across_the_threshold() {
        round_trip(100, 4_000);
        round_trip(100, LARGE + 1);
        round_trip(LARGE - 1, LARGE);
        round_trip(LARGE + 10, 3 * LARGE);
        round_trip(3 * LARGE, 200);
        round_trip(LARGE, LARGE - 1);
    }

    #[test]
    fn a_large_zeroed_block_is_zero() {
        let a = PhotoAllocator;
        let layout = Layout::from_size_align(2 * LARGE, 64).unwrap();
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % 64, 0);
            assert!((0..layout.size()).all(|i| *p.add(i) == 0));
            a.dealloc(p, layout);
        }
    }
}
