//! photo-server: the PhotoStack image server.
//!
//! One stateless process per pod. Originals live on a shared write-once store
//! (`storage::originals`), rendered sizes in a per-pod cache
//! (`storage::cache`), metadata and accounts in SQL (`db`). Rendering runs on
//! a bounded CPU pool (`render::pool`). The rules of the site (who may see,
//! edit and upload what) live in `domain`; the JSON API (`http`) and the
//! pages (`web`) are thin layers over it; `server` runs the listeners.

pub mod allocator;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod orphans;
pub mod render;
pub mod renditions;
pub mod routes;
pub mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod units;
pub mod web;

pub use bootstrap::{StartError, start};
pub use config::Config;
pub use server::{Listeners, serve};
pub use state::{AppState, SharedState};
