//! The reconciler, shaped as a pipeline (Stackable style); [`reconcile::pipeline`] runs the
//! stages in this order, one module each:
//!
//! 1. validate: [`crate::site::validate`] turns the PhotoSite into the
//!    [`crate::site::ValidatedSite`] that the builders alone accept.
//! 2. [`observe`]: once the watches the reconcile reads have listed ([`watches`]), the site's
//!    children in the stores, parsed once into typed observations.
//! 3. [`restore`]: where `spec.restore` stands, decided once for every later stage.
//! 4. [`dereference`]: read what the PhotoSite points at (its credentials Secret, an existing
//!    originals claim, an external database Secret, the object store Secrets of its backups
//!    and restore). The only reads besides the stores.
//! 5. build: [`crate::children::desired`], pure, no client; children of an optional API the
//!    cluster lacks ([`discovery`]) are left out and reported.
//! 6. [`plan`]: the pure diff of the desired children against the observations, so a
//!    converged PhotoSite causes no writes; objects become JSON only at this boundary
//!    ([`ssa`]: the applied hash, the stores' pruned projection).
//! 7. [`apply`]: carry the plan out with one field manager, going on past a child the API
//!    refuses, then delete the children the spec no longer asks for.
//! 8. [`status`]: compute the status from what was applied (or is live), with the backup
//!    health ([`backups`]) and the [`conditions`] vocabulary, and patch it only when it changed;
//!    a refused child or a missing CloudNativePG is `Degraded`. [`events`] reports changes and
//!    failures.
//!
//! [`context`] is what every reconcile shares; [`Error`] is the reconcile's error, one variant
//! per stage. `crate::run` wires the watches, discovery and kube's `Controller` together.
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
pub mod reconcile;
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
