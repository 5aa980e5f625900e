//! photo-server: the PhotoStack image server.
//!
//! One stateless process per pod. Originals live on a shared write-once store
//! (`storage::originals`), rendered sizes in a per-pod cache
//! (`storage::cache`), metadata and accounts in SQL (`db`). Rendering runs on
//! a bounded CPU pool (`render::pool`), driven by the rendition service
//! (`renditions::service`). The rules of the site (who may see, edit and
//! upload what) live in `domain`; the JSON API and the image path (`http`)
//! and the pages (`web`) are thin layers over it, siblings that never import
//! each other, composed into one router by `routes`; `server` runs the
//! listeners. `bootstrap` starts it all; `state` holds what a request needs.
//!
//! # The life of a request
//!
//! `GET /img/<size>/<id>.jpg` (and `HEAD`):
//!
//! 1. `server` accepts the connection (within the connection cap and the
//!    client's share of it, `server::client_shares`) and hands it to hyper
//!    over `server::timed_io` (head and write deadlines) and
//!    `server::sendfile` (the socket).
//! 2. `routes::App` sees a `GET` or `HEAD` under `/img/` and skips the axum
//!    router: `http::observe` (request id, span, metrics, panic safety)
//!    wraps `http::images::image`.
//! 3. `http::images` parses the path (`ids`, the configured sizes of
//!    `renditions::sizes`), reads the photo's metadata through
//!    `AppState::photo_cached` (`db::cached`; the database only when the
//!    entry has expired), looks the session up only when the answer depends
//!    on it, asks `domain::access::can_fetch` (`404` if not), and answers
//!    `304` to a matching `If-None-Match` (`http::caching`).
//! 4. An original is streamed by `http::originals`. A rendition comes from
//!    `renditions::service::RenditionService`: the cache
//!    (`storage::cache`, memory then disk) or else one render per pod at a
//!    time on `render::pool`, planned and run by `render`, then written to
//!    the cache.
//! 5. `http::caching::respond` builds the response; `http::observe` records
//!    it; a large body that is a mapped cache file leaves by `sendfile(2)`
//!    (`storage::cache::zero_copy::file_behind`, looked up by
//!    `server::sendfile`).
//!
//! `POST /rest/edit` (an upload):
//!
//! 1. `server` as above; `routes::App` passes it to the axum router of
//!    `routes`, whose layers run in turn: `http::observe`,
//!    `http::body_deadline` (a stalled or trickling body fails with `408`),
//!    then the route's body limit (`PHOTO_MAX_REQUEST_BYTES`).
//! 2. `http::upload::upload` takes an `auth::extract::Viewer` (the
//!    session, from the database), requires a user (`401`), and checks the
//!    CSRF token from the header or the form's first part (`403`).
//! 3. It reads the multipart body within its caps, spooling each file to
//!    the originals volume as it arrives (`storage::originals`), refusing a
//!    file past the user's quota as it comes (`domain::quota`), and checks
//!    the title and description (`domain::photos::validate_text`).
//! 4. `domain::upload::check` probes each file on the render pool;
//!    `domain::upload::commit` makes the originals durable and inserts the
//!    rows in one transaction (`db`), all or nothing.
//! 5. The photos go back as JSON (`http::photos::to_json`); a refusal from
//!    `domain` (`domain::error::DomainError`) becomes the API's error
//!    (`error::ApiError`, in `error.rs`).

pub mod allocator;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod clients;
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
