//! photo-operator: turns a `PhotoSite` into a running photo stack.
//!
//! The crate is a library so the controller, the `render` command, the tests and the benchmark
//! all use the same pure builders ([`build`]). Layout:
//! - [`crd`]: the PhotoSite types, source of `crds/photosite.yaml`;
//! - [`names`], [`labels`]: every derived name and label, in one place;
//! - [`build`]: one pure builder per child object;
//! - [`controller`]: the reconcile pipeline (dereference, validate, build, apply, cleanup,
//!   status, events);
//! - [`render`]: `photo-operator render -f FILE`;
//! - [`leader`], [`metrics`], [`telemetry`]: running it.

pub mod children;
pub mod controller;
pub mod crd;
pub mod error;
#[cfg(test)]
pub mod fixtures;
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
