//! Files: the shared originals store and the per-pod rendition cache.

pub mod cache;
pub mod originals;
