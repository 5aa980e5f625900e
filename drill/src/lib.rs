//! The drill harness: a local PhotoStack of several photo-server replicas
//! in two "zones" behind HAProxy, sharing one originals volume and one
//! PostgreSQL primary with a streaming standby, driven by the seeds'
//! traffic while replicas, zones, the database and the volume fail.
//!
//! - [`procs`] starts child processes that die with the drill;
//! - [`postgres`], [`haproxy`] and [`stack`] build the stack;
//! - [`traffic`] is the load (visitors and uploaders) and [`record`] what
//!   it saw;
//! - [`verify`] reads every acknowledged upload back and compares the
//!   database with the originals volume;
//! - [`drills`] runs each drill in its phases and [`scenarios`] holds each one's fault and
//!   pass rules; [`report`] and
//!   [`plot`] write what happened.

pub mod drills;
pub mod haproxy;
pub mod photos;
pub mod plot;
pub mod postgres;
pub mod procs;
pub mod record;
pub mod report;
pub mod scenarios;
pub mod stack;
pub mod traffic;
pub mod verify;

use std::path::PathBuf;

/// What can stop the harness itself (as opposed to a drill's rule failing,
/// which is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{program} failed: {detail}")]
    Command { program: String, detail: String },
    #[error("HTTP {what}: {detail}")]
    Http { what: String, detail: String },
    #[error("timed out after {seconds:.1} s waiting for {what}")]
    Timeout { what: String, seconds: f64 },
    #[error("{0}")]
    Setup(String),
    #[error("cannot draw {path}: {detail}")]
    Plot { path: PathBuf, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    pub fn http(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Error {
        let what = what.into();
        move |e| Error::Http {
            what,
            detail: e.to_string(),
        }
    }
}
