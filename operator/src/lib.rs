//! photo-operator: turns a `PhotoSite` into a running photo stack.
//!
//! The crate is a library so the controller, the `render` command, the tests and the benchmark
//! all run the same stages. One reconcile of a PhotoSite, with the type each stage hands on:
//!
//! ```text
//! PhotoSite ─ site::validate ─> ValidatedSite                      (site/)
//!   watch stores ─ controller::observe ─> Observed                 (typed observations)
//!   status + restore Job ─ controller::restore::decide ─> Restore  (the restore gate, once)
//!   cluster ─ controller::dereference ─> References ─> children::Inputs
//! ValidatedSite + Inputs ─ children::desired ─> Desired            (typed ChildObjects)
//! Desired + Observed ─ controller::plan ─> Plan                    (JSON only here: ssa.rs)
//! Plan ─ controller::apply (+ cleanup) ─> Applied                  (apply answers observed)
//! Applied + Restore + problems ─ controller::status ─> PhotoSiteStatus
//! ```
//!
//! Each stage has its own error enum; `controller::Error` wraps them. Layout:
//! - [`crd`]: the PhotoSite types, source of `crds/photosite.yaml`;
//! - [`site`]: stage 1, the validated site the builders accept;
//! - [`children`]: the desired children: the kind registry ([`children::kind`]), one pure
//!   builder per kind, typed objects ([`children::crd_types`] for the kinds k8s-openapi has
//!   no types for);
//! - [`controller`]: the other stages, the watches, discovery and the reconcile;
//! - [`names`], [`labels`], [`quantity`]: derived names and labels, Kubernetes quantities;
//! - [`error`]: the failed API call every stage's error may carry;
//! - [`installed_crd`]: at start, is the cluster's PhotoSite CRD this operator's;
//! - [`render`]: `photo-operator render -f FILE`;
//! - [`run`]: `photo-operator run`, the wiring; [`leader`], [`metrics`], [`telemetry`]: what
//!   it runs besides the controller.

pub mod children;
pub mod controller;
pub mod crd;
pub mod error;
#[cfg(test)]
pub mod fixtures;
pub mod installed_crd;
pub mod labels;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod quantity;
pub mod render;
pub mod run;
#[cfg(test)]
mod schema_check;
pub mod site;
pub mod telemetry;
#[cfg(test)]
pub mod test_support;
