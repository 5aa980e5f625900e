//! Mock API server tests of the reconcile, as named scenarios ([`scenario::Scenario`]): the
//! live children, the optional APIs, and every request the operator must make, in order, with
//! assertions on their bodies (`crate::fixtures` plays them).
//!
//! - [`lifecycle`]: created, converged, changed, scaled, deleted;
//! - [`failures`]: API errors, specs that cannot be satisfied, children the API refuses;
//! - [`optional_apis`]: CloudNativePG or the Prometheus Operator missing, discovery;
//! - [`backups`]: backups and the restore.

mod backups;
mod failures;
mod lifecycle;
mod optional_apis;
mod scenario;
