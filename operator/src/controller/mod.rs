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
pub mod dereference;
pub mod discovery;
pub mod events;
pub mod plan;
pub mod status;
pub mod watches;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::Controller;
use kube::runtime::controller::{self, Action};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::children::{self, Apis, Inputs, Kind, OptionalApi};
use crate::crd::PhotoSite;
use crate::metrics::Metrics;
use crate::{Error, names};
pub use discovery::Capabilities;
use plan::Observed;
pub use watches::Stores;

/// Requeue of a converged site: a safety net, the watches trigger everything else.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Requeue while pods or the database are still coming up.
pub const PROGRESSING_REQUEUE: Duration = Duration::from_secs(30);
/// Requeue of a site its author must fix (missing claim, bad spec): slow, no hot loop.
pub const USER_ERROR_REQUEUE: Duration = Duration::from_secs(120);
/// A site's reconcile waits this long after the last change that triggers it, so the burst
/// of watch events its own applies cause (one per child, and the status) ends in one
/// reconcile instead of one per event.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// Arguments of `photo-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(
        long,
        env = "PHOTO_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "PHOTO_OPERATOR_LEASE", default_value = "photo-operator")]
    pub lease_name: String,
    /// Identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME", default_value = "photo-operator")]
    pub identity: String,
    /// Skip leader election (a single replica, or local development).
    #[arg(long, default_value_t = false)]
    pub no_leader_election: bool,
    /// Reconcile PhotoSites in this namespace only (the chart's `scope: Namespace`, whose
    /// Role grants nothing outside it). Unset or empty: every namespace.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Seconds between checks for CloudNativePG, its Barman Cloud plugin and the Prometheus
    /// Operator (discovery): one installed later is watched and used within this interval,
    /// with no restart of the operator.
    #[arg(
        long,
        env = "PHOTO_OPERATOR_DISCOVERY_INTERVAL",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub discovery_interval: u64,
    /// PhotoSites reconciled at the same time (each reconcile applies its children one after
    /// another).
    #[arg(
        long,
        env = "PHOTO_OPERATOR_CONCURRENCY",
        default_value_t = 32,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,
}

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
    fn first_monitoring_warning(&self, key: &str, generation: i64) -> bool {
        let mut warned = match self.monitoring_warned.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        warned.insert(key.to_string(), generation) != Some(generation)
    }

    fn backoff(&self, key: &str) -> Duration {
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

    fn reset_backoff(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }
}

fn object_ref(site: &PhotoSite) -> ObjectReference {
    site.object_ref(&())
}

fn key(site_ns: Option<&str>, name: &str) -> String {
    format!("{}/{}", site_ns.unwrap_or_default(), name)
}

/// What one successful pass of the pipeline did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub applied: Vec<(Kind, String)>,
    pub deleted: Vec<(Kind, String)>,
    pub ready: bool,
    /// Why the site is Degraded (refused children, missing CloudNativePG).
    pub problems: Vec<status::Problem>,
    /// Whether the status was written.
    pub status_changed: bool,
    /// Monitoring objects asked for but the Prometheus Operator is not installed.
    pub monitoring_ignored: bool,
    /// A backup failure that the `BackupHealthy` condition newly reports (a Warning Event).
    pub backup_failure: Option<status::Problem>,
}

/// Reconcile one PhotoSite (the controller's entry point).
pub async fn reconcile(
    guard: Arc<DeserializeGuard<PhotoSite>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.timer();
    let site = match &guard.0 {
        Ok(site) => site,
        Err(invalid) => {
            // One bad object must not stop the others: report it and wait for a change.
            let err = Error::InvalidObject(invalid.error.clone());
            ctx.metrics.count_error(&err);
            ctx.metrics.count_result("invalid");
            let reference = ObjectReference {
                api_version: Some(PhotoSite::api_version(&()).into()),
                kind: Some(PhotoSite::kind(&()).into()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..ObjectReference::default()
            };
            events::warning(&ctx, &reference, &err, "Deserialize").await;
            return Ok(Action::await_change());
        }
    };
    if site.metadata.deletion_timestamp.is_some() {
        // Owner references and the garbage collector do the rest (see module docs).
        return Ok(Action::await_change());
    }
    let k = key(site.metadata.namespace.as_deref(), &site.name_any());
    match pipeline(site, &ctx).await {
        Ok(outcome) => {
            ctx.reset_backoff(&k);
            let reference = object_ref(site);
            if !outcome.applied.is_empty() || !outcome.deleted.is_empty() {
                events::changed(&ctx, &reference, &outcome).await;
            }
            if outcome.status_changed && !outcome.problems.is_empty() {
                events::degraded(&ctx, &reference, &outcome.problems).await;
            }
            if outcome.monitoring_ignored
                && ctx.first_monitoring_warning(&k, site.metadata.generation.unwrap_or_default())
            {
                events::monitoring_ignored(&ctx, &reference).await;
            }
            if let Some(failure) = &outcome.backup_failure {
                warn!(site = %k, reason = failure.reason, problem = %failure.message, "backup failing");
                events::degraded(&ctx, &reference, std::slice::from_ref(failure)).await;
            }
            if !outcome.problems.is_empty() {
                // Reported in the status; the author (or an admin) must act: retry slowly.
                ctx.metrics.count_result("degraded");
                for p in &outcome.problems {
                    warn!(site = %k, reason = p.reason, problem = %p.message, "PhotoSite degraded");
                }
                return Ok(Action::requeue(USER_ERROR_REQUEUE));
            }
            ctx.metrics.count_result("ok");
            Ok(Action::requeue(if outcome.ready {
                RESYNC
            } else {
                PROGRESSING_REQUEUE
            }))
        }
        Err(err) if err.is_user_error() => {
            ctx.metrics.count_error(&err);
            ctx.metrics.count_result("degraded");
            ctx.reset_backoff(&k);
            warn!(site = %k, error = %err, "PhotoSite cannot be satisfied");
            let report = status::patch_degraded(site, &ctx, &err).await;
            if let Ok(true) = report {
                events::warning(&ctx, &object_ref(site), &err, "Reconcile").await;
            }
            report?;
            Ok(Action::requeue(USER_ERROR_REQUEUE))
        }
        Err(err) => {
            ctx.metrics.count_error(&err);
            ctx.metrics.count_result("error");
            events::warning(&ctx, &object_ref(site), &err, "Reconcile").await;
            Err(err)
        }
    }
}

/// validate -> dereference -> build -> plan -> apply -> cleanup -> status.
pub async fn pipeline(photosite: &PhotoSite, ctx: &Context) -> Result<Outcome, Error> {
    let site = crate::site::validate(photosite)?;
    // One answer of discovery for the whole pass; the stores of what it serves must have listed.
    let apis = ctx.capabilities.get();
    ctx.stores.wait_listed(apis, watches::LIST_TIMEOUT).await?;
    let observed = Observed::from_stores(&ctx.stores, &site)?;
    // the restore (spec.restore) gates the Deployment: done once recorded or seen done
    let restore_job = names::restore(site.name);
    let originals_restored = backups::restored_time(
        photosite.status.as_ref(),
        observed.get(Kind::Job, &restore_job),
    )
    .is_some();
    let restore_pending = site.restore.is_some() && !originals_restored;
    let refs = dereference::dereference(&site, ctx, restore_pending).await?;
    let inputs = Inputs {
        credentials: Some(refs.credentials),
        apis,
        external_database: refs.external_database,
        originals_restored,
    };
    let desired = children::desired(&site, &inputs)?;
    let plan = plan::plan(&desired, &observed)?;
    let applied = apply::apply(&site, &plan, observed, ctx).await?;
    let deleted = apply::cleanup(&site, &plan, ctx).await?;
    let mut problems = status::problems(&applied.refused, &desired.missing);
    problems.extend(refs.missing_store_secrets.iter().map(|m| status::Problem {
        reason: status::reason::BACKUP_SECRET_NOT_FOUND,
        message: m.clone(),
    }));
    problems.extend(backups::restore_failure(
        &site,
        originals_restored,
        applied.live.get(&(Kind::Job, restore_job)),
    ));
    let observations = status::Observations {
        live: applied.live,
        problems: problems.clone(),
        missing: &desired.missing,
        existing_claim_phase: refs.existing_claim_phase,
        now: k8s_openapi::jiff::Timestamp::now(),
    };
    let status = status::compute(photosite, &site, &observations);
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == status::ConditionType::Ready.as_str() && c.status == "True");
    let backup_failure = backups::failure_event(photosite.status.as_ref(), &status);
    let status_changed = status::patch_if_changed(photosite, ctx, status).await?;
    Ok(Outcome {
        applied: applied.changed,
        deleted,
        ready,
        problems,
        status_changed,
        monitoring_ignored: desired.missing.contains(&OptionalApi::PrometheusOperator),
        backup_failure,
    })
}

/// Backoff on errors: 5s doubling to 5 minutes per PhotoSite, reset on success.
pub fn error_policy(
    guard: Arc<DeserializeGuard<PhotoSite>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let (ns, name) = match &guard.0 {
        Ok(s) => (s.metadata.namespace.clone(), s.name_any()),
        Err(i) => (
            i.metadata.namespace.clone(),
            i.metadata.name.clone().unwrap_or_default(),
        ),
    };
    let k = key(ns.as_deref(), &name);
    let delay = ctx.backoff(&k);
    warn!(site = %k, error = %err, ?delay, "reconcile failed, retrying");
    Action::requeue(delay)
}

/// Run the operator until SIGTERM: metrics server, leader election, controller.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());

    let server_metrics = metrics.clone();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr).await?;
    info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, crate::metrics::router(server_metrics)).await {
            warn!(error = %e, "metrics server stopped");
        }
    });

    // Ready means "this process is healthy", leader or standby: a standby that never became
    // ready would stall rollouts and, under the PodDisruptionBudget, block node drains.
    metrics.ready.store(true, Ordering::Relaxed);

    // SIGTERM (what Kubernetes sends) or Ctrl-C: stop waiting for the Lease, or finish the
    // reconciles under way and release it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        info!("shutdown requested");
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let leadership = if args.no_leader_election {
        None
    } else {
        tokio::select! {
            lease = crate::leader::acquire(client.clone(), &args, metrics.clone()) => Some(lease?),
            _ = stopped() => return Ok(()),
        }
    };

    let apis = discovery::discover(&client, Apis::NONE).await;
    info!(
        cloudnative_pg = apis.cloudnative_pg,
        prometheus = apis.prometheus,
        barman_cloud = apis.barman_cloud,
        "discovered optional APIs"
    );
    if !apis.cloudnative_pg {
        warn!(
            "CloudNativePG is not installed: PhotoSites without database.external are Degraded (CloudNativePGNotInstalled) until it is"
        );
    }

    let namespace = args.watch_namespace.as_deref().filter(|ns| !ns.is_empty());
    let sites: Api<DeserializeGuard<PhotoSite>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let capabilities = Arc::new(Capabilities::new(apis));
    let (site_store, site_events) = watches::site_watch(sites, metrics.clone());
    let mut controller = Controller::for_stream(site_events, site_store).with_config(
        controller::Config::default()
            .debounce(DEBOUNCE)
            .concurrency(args.concurrency),
    );
    let mut stores = Stores::default();
    for kind in Kind::ALL {
        let ar = kind.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let watch = watches::child_watch(kind, api, capabilities.subscribe(), metrics.clone());
        stores.insert(kind, watch.writer, watch.state);
        controller = controller.watches_stream_with(watch.events, watches::site_of, ar);
    }
    let changes = capabilities.changes();
    let _discovery = discovery::spawn_refresh(
        client.clone(),
        capabilities.clone(),
        Duration::from_secs(args.discovery_interval),
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        stores,
        capabilities,
    ));
    let run = controller
        .reconcile_all_on(changes)
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        });
    match leadership {
        Some(mut lease) => {
            tokio::select! {
                _ = run => {},
                lost = lease.lost() => warn!(?lost, "lost leadership, exiting so another replica takes over"),
            }
            lease.release().await;
        }
        None => run.await,
    }
    Ok(())
}

#[cfg(test)]
mod tests;
