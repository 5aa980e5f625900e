//! The harness of the mock-API scenarios: a [`Scenario`] is the live children the watch
//! stores hold, the optional APIs discovery found, and the requests the operator must make, in
//! order (`crate::fixtures` plays them); its reconciles return a [`Run`] with the result, the
//! requests seen and the context (metrics). The builders below give each scenario its
//! starting point: a new site, a converged one, a converged one whose spec just changed.

use std::sync::Arc;

use http::Method;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::children::{Apis, Credentials, Inputs, Kind};
use crate::controller::ssa::with_hash;
use crate::controller::{Context, Error, observe, reconcile, restore, status};
use crate::crd::PhotoSite;
use crate::fixtures::*;
use crate::test_support::*;

pub const NS: &str = "photos";

/// Requests seen by the mock API server: method, URI, body.
pub type Seen = Vec<(Method, String, Value)>;

/// One or more reconciles against the mock API server.
pub struct Scenario {
    live: Vec<(Kind, Value)>,
    apis: Apis,
    steps: Vec<Step>,
}

/// The outcome of a scenario's reconcile.
pub struct Run {
    pub result: Result<Action, Error>,
    pub seen: Seen,
    pub ctx: Arc<Context>,
}

impl Run {
    /// The reconcile's action (it must have succeeded).
    pub fn action(&self) -> Action {
        match &self.result {
            Ok(action) => action.clone(),
            Err(e) => panic!("reconcile failed: {e}"),
        }
    }
}

/// A scenario started: reconcile as often as it needs, then [`Session::finish`].
pub struct Session {
    pub ctx: Arc<Context>,
    verifier: tokio::task::JoinHandle<Seen>,
}

impl Session {
    pub async fn reconcile(&self, site: PhotoSite) -> Result<Action, Error> {
        reconcile(guard(site), self.ctx.clone()).await
    }

    /// Every expected request was made, and no other: the requests seen.
    pub async fn finish(self) -> Seen {
        self.verifier.await.expect("the mock API server's checks")
    }
}

impl Scenario {
    /// No child exists yet.
    pub fn new() -> Self {
        Scenario::with_live(&[])
    }

    /// The stores hold these live children.
    pub fn with_live(live: &[(Kind, Value)]) -> Self {
        Scenario {
            live: live.to_vec(),
            apis: Apis::ALL,
            steps: Vec::new(),
        }
    }

    /// Discovery found these optional APIs (all by default).
    pub fn apis(mut self, apis: Apis) -> Self {
        self.apis = apis;
        self
    }

    /// Expect these requests next, in order.
    pub fn expect(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.steps.extend(steps);
        self
    }

    pub fn start(self) -> Session {
        let (ctx, server) = Context::test(stores(&self.live));
        ctx.capabilities.set(self.apis);
        Session {
            ctx,
            verifier: server.run(self.steps),
        }
    }

    /// Reconcile `site` once.
    pub async fn reconcile(self, site: PhotoSite) -> Run {
        self.reconcile_guard(guard(site)).await
    }

    /// Reconcile a PhotoSite as the watch hands it over (which may not deserialise).
    pub async fn reconcile_guard(self, site: Arc<DeserializeGuard<PhotoSite>>) -> Run {
        let session = self.start();
        let result = reconcile(site, session.ctx.clone()).await;
        let ctx = session.ctx.clone();
        let seen = session.finish().await;
        Run { result, seen, ctx }
    }
}

pub fn guard(site: PhotoSite) -> Arc<DeserializeGuard<PhotoSite>> {
    Arc::new(DeserializeGuard(Ok(site)))
}

fn creds() -> Credentials {
    Credentials {
        session_key: "session".into(),
        admin_password: "password".into(),
    }
}

/// What the controller builds with: credentials generated, every optional API.
pub fn controller_inputs() -> Inputs {
    Inputs {
        credentials: Some(creds()),
        apis: Apis::ALL,
        external_database: None,
        originals_restored: None,
    }
}

fn ready_deployment_status(replicas: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
           "updatedReplicas": replicas, "availableReplicas": replicas})
}

fn ready_cluster_status(instances: i64) -> Value {
    json!({"readyInstances": instances, "phase": "Cluster in healthy state",
           "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                           "message": "Cluster is Ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
}

/// Every child `inputs` build for `site`, as applied (with the hash annotation).
pub fn applied(site: &PhotoSite, inputs: &Inputs) -> Vec<(Kind, Value)> {
    build_all(site, inputs)
        .children
        .iter()
        .map(|c| (c.kind, with_hash(&c.json()).unwrap()))
        .collect()
}

/// Live objects of a converged site: every desired child as applied, with ready statuses.
pub fn converged(site: &PhotoSite) -> Vec<(Kind, Value)> {
    let mut live = applied(site, &controller_inputs());
    for (kind, o) in live.iter_mut() {
        o["metadata"]["generation"] = json!(1);
        o["metadata"]["resourceVersion"] = json!("7");
        match kind {
            Kind::Deployment => o["status"] = ready_deployment_status(site.spec.replicas as i64),
            Kind::DatabaseCluster => {
                o["status"] = ready_cluster_status(site.spec.database.instances as i64)
            }
            Kind::PersistentVolumeClaim => o["status"] = json!({"phase": "Bound"}),
            _ => {}
        }
    }
    live
}

/// Change the live object of `kind` (the first of that kind).
pub fn edit_live(live: &mut [(Kind, Value)], kind: Kind, f: impl FnOnce(&mut Value)) {
    let (_, o) = live
        .iter_mut()
        .find(|(k, _)| *k == kind)
        .unwrap_or_else(|| panic!("no live {kind:?}"));
    f(o);
}

/// What the status of `site` is computed from when its children are `live`.
pub fn observations(site: &PhotoSite, live: &[(Kind, Value)]) -> status::Observations<'static> {
    let live: std::collections::HashMap<_, _> = live
        .iter()
        .map(|(k, o)| {
            let name = o["metadata"]["name"].as_str().unwrap().to_string();
            let child = observe::ObservedChild::from_json(*k, o.clone()).unwrap();
            ((*k, name), child)
        })
        .collect();
    let v = valid(site);
    let get = |kind, name| live.get(&(kind, name));
    let seen = restore::Evidence {
        job: get(Kind::Job, crate::names::restore(v.name)),
        claim: get(
            Kind::PersistentVolumeClaim,
            crate::names::originals_claim(v.name),
        ),
        deployment: get(Kind::Deployment, crate::names::app(v.name)),
    };
    let restore = restore::decide(&v, site.status.as_ref(), &seen);
    status::Observations {
        live,
        restore,
        ..status::Observations::default()
    }
}

/// The site with the status a converged reconcile computes.
pub fn with_converged_status(mut site: PhotoSite, live: &[(Kind, Value)]) -> PhotoSite {
    let obs = observations(&site, live);
    site.status = Some(status::compute(&site, &valid(&site), &obs));
    site
}

/// The site with the status a reconcile computes now (backup ages count from now).
pub fn with_status_now(mut site: PhotoSite, live: &[(Kind, Value)]) -> PhotoSite {
    let obs = status::Observations {
        now: k8s_openapi::jiff::Timestamp::now(),
        ..observations(&site, live)
    };
    site.status = Some(status::compute(&site, &valid(&site), &obs));
    site
}

/// A converged site (its children live, its status written) whose spec `change` then edits,
/// as generation 2: the site to reconcile and its live children.
pub fn changed(
    site: PhotoSite,
    change: impl FnOnce(&mut PhotoSite),
) -> (PhotoSite, Vec<(Kind, Value)>) {
    let live = converged(&site);
    let mut site = with_converged_status(site, &live);
    change(&mut site);
    site.metadata.generation = Some(2);
    (site, live)
}

/// The credentials Secret lookup that starts a new site's reconcile.
pub fn credentials_lookup(site: &str) -> Step {
    get_missing(format!(
        "/api/v1/namespaces/{NS}/secrets/{site}-credentials"
    ))
}

/// The applies of a site's children (after the lookups), in order.
pub fn apply_steps(site: &PhotoSite, inputs: &Inputs) -> Vec<Step> {
    build_all(site, inputs)
        .children
        .iter()
        .map(|c| apply(c.kind, NS, &c.name))
        .collect()
}

/// A new site's requests up to its status: the credentials lookup, then every apply.
pub fn new_site_steps(site: &PhotoSite) -> Vec<Step> {
    let mut steps = vec![credentials_lookup(site.metadata.name.as_deref().unwrap())];
    steps.extend(apply_steps(site, &controller_inputs()));
    steps
}

/// Index of the first apply of `kind` in [`new_site_steps`].
pub fn position(site: &PhotoSite, kind: Kind) -> usize {
    // + 1: the credentials Secret lookup comes first
    1 + build_all(site, &controller_inputs())
        .children
        .iter()
        .position(|c| c.kind == kind)
        .unwrap()
}

/// A Secret with the object store keys, as the API server returns it.
pub fn store_secret(name: &str) -> Step {
    crate::fixtures::Step::new(
        Method::GET,
        format!("/api/v1/namespaces/{NS}/secrets/{name}"),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                   "data": {"ACCESS_KEY_ID": "QUtJQQ==", "ACCESS_SECRET_KEY": "c2VjcmV0"}}),
        ),
    )
}

/// The condition `type_` of a status patch's body.
pub fn condition(body: &Value, type_: &str) -> Value {
    body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {body}"))
        .clone()
}

/// Ready's status and reason in a status patch's body.
pub fn ready_of(body: &Value) -> (String, String) {
    let c = condition(body, "Ready");
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

/// Whether a request went to a URI containing `part`.
pub fn requested(seen: &Seen, part: &str) -> bool {
    seen.iter().any(|(_, uri, _)| uri.contains(part))
}
