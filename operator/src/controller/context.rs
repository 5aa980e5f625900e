//! [`Context`]: what every reconcile shares (client, Event recorder, metrics, watch stores,
//! discovered APIs) and the per-site memory the controller keeps between reconciles (error
//! backoff, warnings already sent).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::discovery::Capabilities;
use super::watches::Stores;
use crate::metrics::Metrics;

/// State shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    /// Which optional APIs are installed (discovery, refreshed periodically).
    pub capabilities: Arc<Capabilities>,
    /// Consecutive failures per PhotoSite, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Generation of each PhotoSite last warned that its monitoring is ignored, so the
    /// Warning Event is sent once per generation, not on every reconcile.
    monitoring_warned: Mutex<HashMap<String, i64>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        stores: Stores,
        capabilities: Arc<Capabilities>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            stores,
            capabilities,
            failures: Mutex::new(HashMap::new()),
            monitoring_warned: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the "monitoring ignored" Event is due for this site and generation (and
    /// remember that it was sent).
    pub(super) fn first_monitoring_warning(&self, key: &str, generation: i64) -> bool {
        let mut warned = match self.monitoring_warned.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        warned.insert(key.to_string(), generation) != Some(generation)
    }

    pub(super) fn backoff(&self, key: &str) -> Duration {
        let mut f = match self.failures.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        // 5s, 10s, 20s, ... capped at 5 minutes
        let secs = 5u64.saturating_mul(1u64 << (*n - 1).min(6));
        Duration::from_secs(secs.min(300))
    }

    pub(super) fn reset_backoff(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }
}
