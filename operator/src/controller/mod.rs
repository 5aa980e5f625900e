//! The reconciler, shaped as a pipeline (Stackable style), one module per step:
//!
//! 1. validate: [`crate::children::validate`] turns the PhotoSite into the
//!    [`crate::children::ValidatedSite`] that the builders alone accept.
//! 2. [`dereference`]: read what the PhotoSite points at (its credentials Secret, an existing
//!    originals claim, an external database Secret, the object store Secrets of its backups
//!    and restore). The only reads besides the stores.
//! 3. build: [`crate::children::desired`], pure, no client; children of an optional API the
//!    cluster lacks ([`discovery`]) are left out and reported.
//! 4. [`plan`]: the pure diff of desired against the watch stores, so a converged PhotoSite
//!    causes no writes; [`apply`] carries it out with one field manager, going on past a
//!    child the API refuses, then deletes children the spec no longer asks for.
//! 5. [`status`]: compute status from what was applied (or is live) and patch it only when it
//!    changed; a refused child or a missing CloudNativePG is `Degraded`.
//!
//! Deletion needs no finalizer: children carry a controller owner reference and the garbage
//! collector removes them; the originals claim and the database carry one only under
//! `dataPolicy: Delete`, so under `Retain` they outlive the PhotoSite (and a PhotoSite created
//! again with the same name adopts them).

pub mod apply;
pub mod backups;
pub mod conditions;
pub mod context;
pub mod dereference;
pub mod discovery;
mod error;
pub mod events;
pub mod observe;
pub mod plan;
mod reconcile;
pub mod restore;
pub mod ssa;
pub mod status;
pub mod watches;

pub use context::Context;
pub use discovery::Capabilities;
pub use error::Error;
pub use reconcile::{
    DEBOUNCE, Outcome, PROGRESSING_REQUEUE, RESYNC, USER_ERROR_REQUEUE, error_policy, pipeline,
    reconcile,
};
pub use watches::Stores;

#[cfg(test)]
mod tests;
