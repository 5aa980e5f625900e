//! The watches that feed the controller, and the stores they fill.
//!
//! One watch per child kind (only the operator's children, by label; pruned before they are
//! stored, [`ssa::prune_dynamic`]) and one of the PhotoSites. Three rules, each learned on a
//! live API server:
//!
//! - **A watch handles its own errors.** It retries with its own backoff
//!   ([`retry_with_backoff`]); its errors are logged and counted
//!   (`photo_operator_watch_errors_total{kind}`), never handed to the controller. kube's `Controller` backs off *all* of its triggers after an error of any one
//!   of them, and the stores are filled only while the triggers are polled: one failing watch
//!   (a CRD that is not installed) held every reconcile back for minutes, and the reconciles
//!   that ran anyway (requeues) read stale stores and applied children again and again.
//! - **An optional API's kinds are watched only while discovery says they are served**
//!   ([`super::discovery`]): the watch starts when the API appears and stops, its store
//!   emptied, when it goes. Nothing is asked of an API that is not there.
//! - **Deletions trigger too**, so a deleted child is restored at once, not at the next
//!   requeue.
//!
//! A reconcile reads the stores only once every watch it depends on has listed
//! ([`Stores::wait_listed`]): a store that has not listed yet shows existing children as
//! missing, and they would be applied again (at every start of the operator). And the API
//! server's answer to each apply goes into the store at once ([`Stores::record`]), as the
//! watch event of that write will: the reconcile that the first of those events triggers
//! must not find the store behind the operator's own writes, or it applies again the children
//! whose events are still on their way (on a busy API server, one apply in ten).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::DefaultBackoff;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tracing::warn;

use super::ssa;
use crate::children::{Apis, Kind, OptionalApi};
use crate::crd::PhotoSite;
use crate::labels;
use crate::metrics::Metrics;

/// The watch of a kind the reconcile reads has not listed (its store would show children as
/// missing): a permission or an API the operator cannot list.
#[derive(thiserror::Error, Debug)]
#[error("the watch of {kind} has not listed in {seconds} s: {detail}")]
pub struct NotListed {
    pub kind: &'static str,
    pub seconds: u64,
    pub detail: String,
}

/// How long a reconcile waits for the watches it depends on to list.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a kind's watch stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListState {
    /// Not watched: the API is not served.
    NotWatched,
    /// Watched, its first list not complete yet; the watch's last error, if any.
    Listing(Option<String>),
    /// Listed since the watch started: the store shows the cluster (as of the last event).
    Listed,
}

type SharedWriter = Arc<Mutex<Writer<DynamicObject>>>;

#[derive(Clone)]
struct Watched {
    writer: SharedWriter,
    store: Store<DynamicObject>,
    state: watch::Receiver<ListState>,
}

/// Live children, as seen by the watches, pruned to what the diff and the status need
/// ([`ssa::prune`]) to keep memory small.
#[derive(Clone, Default)]
pub struct Stores {
    stores: HashMap<Kind, Watched>,
}

impl Stores {
    /// Add a kind's store (by its writer) and the state of the watch that fills it.
    pub fn insert(&mut self, kind: Kind, writer: SharedWriter, state: watch::Receiver<ListState>) {
        let store = lock(&writer).as_reader();
        self.stores.insert(
            kind,
            Watched {
                writer,
                store,
                state,
            },
        );
    }

    /// Add a store filled by other means (tests, the benchmark): listed.
    pub fn insert_listed(&mut self, kind: Kind, writer: Writer<DynamicObject>) {
        let (_, state) = watch::channel(ListState::Listed);
        self.insert(kind, Arc::new(Mutex::new(writer)), state);
    }

    /// Put the API server's answer to a write of a child into its store (pruned as the
    /// watch prunes), ahead of the watch event that will bring the same object.
    pub fn record(&self, kind: Kind, mut object: DynamicObject) {
        if let Some(watched) = self.stores.get(&kind) {
            ssa::prune_dynamic(kind, &mut object);
            lock(&watched.writer).apply_watcher_event(&watcher::Event::Apply(object));
        }
    }

    /// The live object of a kind, namespace and name, if watched and present.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let watched = self.stores.get(&kind)?;
        watched
            .store
            .get(&ObjectRef::new_with(name, kind.api_resource()).within(namespace))
    }

    /// Wait until the watch of every kind a reconcile with these `apis` reads has listed, or
    /// fail after `timeout` naming the first kind that has not (and its watch's last error).
    pub async fn wait_listed(&self, apis: Apis, timeout: Duration) -> Result<(), NotListed> {
        let deadline = tokio::time::Instant::now() + timeout;
        for kind in Kind::ALL {
            if kind.needs().is_some_and(|api| !apis.has(api)) {
                continue;
            }
            let Some(watched) = self.stores.get(&kind) else {
                continue;
            };
            let mut state = watched.state.clone();
            let waited =
                tokio::time::timeout_at(deadline, state.wait_for(|s| *s == ListState::Listed))
                    .await
                    .map(|listed| listed.is_ok());
            let detail = match waited {
                Ok(true) => continue,
                Ok(false) => "its watch has stopped".to_string(),
                Err(_) => match &*state.borrow() {
                    ListState::Listing(Some(e)) => e.clone(),
                    ListState::Listing(None) => "no answer yet".to_string(),
                    ListState::NotWatched => "its API was not served yet".to_string(),
                    ListState::Listed => "listed just now".to_string(),
                },
            };
            return Err(NotListed {
                kind: kind.kind_name(),
                seconds: timeout.as_secs(),
                detail,
            });
        }
        Ok(())
    }
}

/// The watch of one child kind: its store's writer, the state of its first list, and the
/// stream of children it saw change (the controller maps each to its PhotoSite, [`site_of`]).
pub struct ChildWatch {
    pub writer: SharedWriter,
    pub state: watch::Receiver<ListState>,
    pub events: futures::stream::BoxStream<'static, Result<DynamicObject, watcher::Error>>,
}

/// Watch `kind` through `api`. A kind of an optional API is watched only while `served`
/// says its API is.
pub fn child_watch(
    kind: Kind,
    api: Api<DynamicObject>,
    served: watch::Receiver<Apis>,
    metrics: Arc<Metrics>,
) -> ChildWatch {
    let writer: SharedWriter = Arc::new(Mutex::new(Writer::new(kind.api_resource())));
    let shared = writer.clone();
    let (state_tx, state) = watch::channel(ListState::NotWatched);
    let state_tx = Arc::new(state_tx);
    let events = match kind.needs() {
        None => {
            state_tx.send_replace(ListState::Listing(None));
            watch_events(kind, api, writer, state_tx, metrics).boxed()
        }
        Some(optional) => served_changes(served.clone(), optional)
            .map(move |is_served| {
                if is_served {
                    state_tx.send_replace(ListState::Listing(None));
                    let mut until = served.clone();
                    let gone = async move {
                        let _ = until.wait_for(|apis| !apis.has(optional)).await;
                    };
                    watch_events(
                        kind,
                        api.clone(),
                        writer.clone(),
                        state_tx.clone(),
                        metrics.clone(),
                    )
                    .take_until(gone)
                    .left_stream()
                } else {
                    // Empty the store: the kind is gone with its API.
                    let mut w = lock(&writer);
                    w.apply_watcher_event(&watcher::Event::Init);
                    w.apply_watcher_event(&watcher::Event::InitDone);
                    state_tx.send_replace(ListState::NotWatched);
                    futures::stream::empty().right_stream()
                }
            })
            .flatten()
            .boxed(),
    };
    ChildWatch {
        writer: shared,
        state,
        events: events.map(Ok).boxed(),
    }
}

fn lock(writer: &Mutex<Writer<DynamicObject>>) -> std::sync::MutexGuard<'_, Writer<DynamicObject>> {
    match writer.lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Whether `api` is served: now, then at each change.
fn served_changes(rx: watch::Receiver<Apis>, api: OptionalApi) -> impl Stream<Item = bool> + Send {
    futures::stream::unfold((rx, None), move |(mut rx, last)| async move {
        loop {
            let now = rx.borrow_and_update().has(api);
            if last != Some(now) {
                return Some((now, (rx, Some(now))));
            }
            rx.changed().await.ok()?;
        }
    })
}

/// The operator's children of one kind, pruned, reflected into the store; yields every child
/// created, changed or deleted (and each one listed). Errors are logged, counted and kept in
/// the list state, never yielded.
fn watch_events(
    kind: Kind,
    api: Api<DynamicObject>,
    writer: SharedWriter,
    state: Arc<watch::Sender<ListState>>,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = DynamicObject> + Send {
    let config = watcher::Config::default().labels(&labels::managed_selector());
    let failed = state.clone();
    let watched = watcher(api, config).modify(move |o| ssa::prune_dynamic(kind, o));
    retry_with_backoff(watched, move |e| {
        warn!(kind = kind.kind_name(), error = %e, "watch failed; retrying with backoff");
        metrics.count_watch_error(kind.kind_name());
        failed.send_if_modified(|s| match s {
            ListState::Listing(last) => {
                *last = Some(e.to_string());
                true
            }
            _ => false,
        });
    })
    .filter_map(move |event| {
        lock(&writer).apply_watcher_event(&event);
        future::ready(match event {
            watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o) => {
                Some(o)
            }
            watcher::Event::Init => None,
            watcher::Event::InitDone => {
                state.send_replace(ListState::Listed);
                None
            }
        })
    })
}

/// The events of a watch; each error is handed to `on_error` and then waited after, 0.8 s
/// doubling to 30 s (kube's `DefaultBackoff`), reset by any event but `Init`.
///
/// Not kube's `default_backoff()`: that resets on every event, and the watcher emits `Init`
/// before each attempt to list, so a list that keeps failing (a kind the operator may not
/// list, a CRD half installed) was retried about once a second for ever.
pub fn retry_with_backoff<K, S>(
    events: S,
    mut on_error: impl FnMut(&watcher::Error) + Send,
) -> impl Stream<Item = watcher::Event<K>> + Send
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events
        .scan(DefaultBackoff::default(), move |backoff, event| {
            let delay = match &event {
                Err(e) => {
                    on_error(e);
                    backoff.next()
                }
                Ok(watcher::Event::Init) => None,
                Ok(_) => {
                    backoff.reset();
                    None
                }
            };
            async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                Some(event.ok())
            }
        })
        .filter_map(future::ready)
}

/// The PhotoSites' watch: their store and the stream of sites created or changed. Errors are
/// logged and counted (kind `PhotoSite`), never yielded (the stream's type has room for them
/// because the controller's does).
pub fn site_watch(
    api: Api<DeserializeGuard<PhotoSite>>,
    metrics: Arc<Metrics>,
) -> (
    Store<DeserializeGuard<PhotoSite>>,
    impl Stream<Item = Result<DeserializeGuard<PhotoSite>, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    let watched = watcher(api, watcher::Config::default().any_semantic());
    let events = retry_with_backoff(watched, move |e| {
        warn!(kind = "PhotoSite", error = %e, "watch failed; retrying with backoff");
        metrics.count_watch_error("PhotoSite");
    })
    .map(Ok)
    .reflect(writer)
    .applied_objects();
    (store, events)
}

/// The PhotoSite a child belongs to (its site label, in its namespace).
pub fn site_of(obj: DynamicObject) -> Option<ObjectRef<DeserializeGuard<PhotoSite>>> {
    let site = obj.labels().get(labels::SITE)?.clone();
    let ns = obj.namespace()?;
    Some(ObjectRef::new(&site).within(&ns))
}

#[cfg(test)]
mod tests {
    //! The watches against a mock API server (`tower-test`): what they ask, when, and what
    //! they hand the controller.

    use std::time::Duration;

    use http::{Request, Response};
    use kube::Client;
    use kube::client::Body;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;
    use crate::fixtures::status_error;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
    type Responder = tower_test::mock::SendResponse<Response<Body>>;

    fn mock_client() -> (Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "photos"), handle)
    }

    fn reply(send: Responder, code: u16, body: &Value) {
        let response = Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
            .expect("response");
        send.send_response(response);
    }

    fn object_store(name: &str, site: &str) -> Value {
        json!({"apiVersion": "barmancloud.cnpg.io/v1", "kind": "ObjectStore",
               "metadata": {"name": name, "namespace": "photos", "resourceVersion": "5",
                            "labels": {labels::SITE: site, labels::MANAGED_BY: labels::MANAGER}},
               "spec": {"configuration": {"destinationPath": "s3://bucket/x"}}})
    }

    /// Drive a watch's events in a task of their own; what it hands the controller arrives on
    /// the channel.
    fn drive(
        watch: ChildWatch,
    ) -> (
        Store<DynamicObject>,
        watch::Receiver<ListState>,
        mpsc::UnboundedReceiver<DynamicObject>,
    ) {
        let store = lock(&watch.writer).as_reader();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = watch.events;
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(o) => {
                        let _ = tx.send(o);
                    }
                    Err(e) => panic!("a watch error reached the controller: {e}"),
                }
            }
        });
        (store, watch.state, rx)
    }

    async fn next_request(handle: &mut Handle) -> Option<(Request<Body>, Responder)> {
        tokio::time::timeout(Duration::from_millis(300), handle.next_request())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn an_optional_kind_is_watched_only_while_its_api_is_served() {
        let (client, mut handle) = mock_client();
        let capabilities = crate::controller::Capabilities::new(Apis::NONE);
        let api = Api::namespaced_with(client, "photos", &Kind::ObjectStore.api_resource());
        let watch = child_watch(
            Kind::ObjectStore,
            api,
            capabilities.subscribe(),
            Arc::new(Metrics::new()),
        );
        let (store, mut state, mut triggered) = drive(watch);

        // Not served: nothing is asked of the API server.
        assert!(next_request(&mut handle).await.is_none());
        assert_eq!(*state.borrow(), ListState::NotWatched);

        // Served (discovery found the plugin): listed, then watched.
        capabilities.set(Apis::ALL);
        let (request, send) = next_request(&mut handle).await.expect("a list request");
        let uri = request.uri().to_string();
        assert!(
            uri.starts_with("/apis/barmancloud.cnpg.io/v1/namespaces/photos/objectstores?"),
            "{uri}"
        );
        assert!(
            uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dphoto-operator"),
            "{uri}"
        );
        assert!(!uri.contains("watch=true"), "{uri}");
        reply(
            send,
            200,
            &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "5"},
                    "items": [object_store("demo-backup", "demo")]}),
        );
        let listed = triggered.recv().await.expect("the listed object");
        assert_eq!(listed.metadata.name.as_deref(), Some("demo-backup"));
        state
            .wait_for(|s| *s == ListState::Listed)
            .await
            .expect("listed");
        assert_eq!(store.state().len(), 1);
        // the store keeps the pruned copy: no spec beyond what the plan compares
        assert!(store.state()[0].data.get("spec").is_none());

        // A deletion triggers a reconcile of its site (the child is then restored).
        let (request, send) = next_request(&mut handle).await.expect("a watch request");
        assert!(request.uri().to_string().contains("watch=true"));
        let deleted = json!({"type": "DELETED", "object": object_store("demo-backup", "demo")});
        let mut line = serde_json::to_vec(&deleted).expect("event");
        line.push(b'\n');
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(line))
                .expect("response"),
        );
        let gone = triggered.recv().await.expect("the deleted object");
        assert_eq!(
            site_of(gone).map(|r| r.name),
            Some("demo".to_string()),
            "a deletion is mapped to its site"
        );
        assert!(store.state().is_empty());

        // No longer served (the plugin was uninstalled): the watch stops, its store empties.
        let (_held_watch, _held_send) = next_request(&mut handle).await.expect("the next watch");
        capabilities.set(Apis::NONE);
        state
            .wait_for(|s| *s == ListState::NotWatched)
            .await
            .expect("not watched");
        assert!(store.state().is_empty());
        assert!(next_request(&mut handle).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_list_backs_off_and_never_reaches_the_controller() {
        let (client, mut handle) = mock_client();
        let capabilities = crate::controller::Capabilities::new(Apis::NONE);
        let metrics = Arc::new(Metrics::new());
        let api = Api::namespaced_with(client, "photos", &Kind::ConfigMap.api_resource());
        let watch = child_watch(
            Kind::ConfigMap,
            api,
            capabilities.subscribe(),
            metrics.clone(),
        );
        let (_store, state, mut triggered) = drive(watch);

        // Every list is refused for a minute (a Role without this kind).
        let start = tokio::time::Instant::now();
        let mut lists = 0;
        while start.elapsed() < Duration::from_secs(60) {
            let Ok(Some((_, send))) =
                tokio::time::timeout(Duration::from_secs(60), handle.next_request()).await
            else {
                break;
            };
            lists += 1;
            reply(send, 403, &status_error(403, "Forbidden"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // the last answer is handled
        // 0.8 s doubling to 30 s, jittered: a handful, not one a second (kube's
        // default_backoff() made 54 in the same minute).
        assert!((3..=10).contains(&lists), "{lists} lists in a minute");
        assert!(
            triggered.try_recv().is_err(),
            "nothing was handed to the controller"
        );
        match &*state.borrow() {
            ListState::Listing(Some(e)) => {
                assert!(e.contains("403") || e.contains("Forbidden"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            metrics.encode().contains(&format!(
                "photo_operator_watch_errors_total{{kind=\"ConfigMap\"}} {lists}"
            )),
            "{}",
            metrics.encode()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_waits_for_the_watches_it_reads_and_names_one_that_cannot_list() {
        let mut stores = Stores::default();
        let (stuck, stuck_state) =
            watch::channel(ListState::Listing(Some("403 Forbidden: configmaps".into())));
        stores.insert(
            Kind::ConfigMap,
            Arc::new(Mutex::new(Writer::new(Kind::ConfigMap.api_resource()))),
            stuck_state,
        );
        // an optional kind whose API is not served is not waited for
        let (_cluster, cluster_state) = watch::channel(ListState::NotWatched);
        stores.insert(
            Kind::DatabaseCluster,
            Arc::new(Mutex::new(Writer::new(
                Kind::DatabaseCluster.api_resource(),
            ))),
            cluster_state,
        );
        let err = crate::controller::observe::ObserveError::from(
            stores
                .wait_listed(Apis::NONE, Duration::from_secs(30))
                .await
                .expect_err("ConfigMaps never listed"),
        );
        let text = err.to_string();
        assert!(
            text.contains("ConfigMap") && text.contains("403 Forbidden"),
            "{text}"
        );
        assert_eq!(err.metric_label(), "watch_not_listed");

        // listed a little later: the reconcile goes on
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stuck.send_replace(ListState::Listed);
            stuck.closed().await;
        });
        stores
            .wait_listed(Apis::NONE, Duration::from_secs(30))
            .await
            .expect("listed");
    }

    #[test]
    fn an_applied_child_is_in_the_store_before_its_event_arrives() {
        let mut stores = Stores::default();
        stores.insert_listed(
            Kind::ObjectStore,
            Writer::new(Kind::ObjectStore.api_resource()),
        );
        let answer: DynamicObject =
            serde_json::from_value(object_store("demo-backup", "demo")).expect("object");
        stores.record(Kind::ObjectStore, answer);
        let live = stores
            .get(Kind::ObjectStore, "photos", "demo-backup")
            .expect("recorded");
        assert_eq!(live.metadata.resource_version.as_deref(), Some("5"));
        assert!(
            live.data.get("spec").is_none(),
            "pruned as the watch prunes"
        );
    }
}
