//! Renditions: a photo rendered at one of the configured widths, as served
//! at `/img/{width}/{id}.jpg`.
//!
//! - `sizes`: which widths there are (`PHOTO_RENDITIONS`) and how a URL
//!   names one; the JSON API and the pages link to them with these.
//! - `service`: getting the bytes of one, the same way for every caller: the
//!   cache first, then one render per pod at a time (single-flight) on the
//!   render pool, failures remembered for a while, the result cached.

pub mod service;
pub mod sizes;

pub use service::{RenditionError, RenditionService};
pub use sizes::{Renditions, Size};
