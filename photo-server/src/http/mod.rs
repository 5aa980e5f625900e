//! The JSON API and the image path: one file per resource, each handler
//! parsing its request, calling `domain` (or the rendition service) and
//! shaping the response. The routes are composed in `routes`; storage,
//! rendering and SQL live outside this module.

pub(crate) mod admin;
pub mod body_deadline;
mod caching;
pub(crate) mod health;
pub(crate) mod images;
pub(crate) mod observe;
mod originals;
pub mod photos;
pub(crate) mod session;
pub(crate) mod upload;
