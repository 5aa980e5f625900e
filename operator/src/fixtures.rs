//! Test-only mock API server, in the style of kube-rs's controller-rs.
//!
//! [`Context::test`] builds a `kube::Client` over a `tower-test` mock service. The
//! [`ApiServerVerifier`] plays a scripted scenario: for each expected request it asserts the
//! method and the full URI (path and query, so `fieldManager` and `force=true` are checked),
//! lets the test inspect the body, and answers with a canned status and body (or echoes the
//! applied object, as server-side apply would return it). A one-second timeout catches a
//! missing request; after the script, any further request fails the test.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::api::DynamicObject;
use kube::client::Body;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::children::{Apis, Kind};
use crate::controller::{Capabilities, Context, Stores};
use crate::metrics::Metrics;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How the mock answers one request.
pub enum Reply {
    /// Return the request body with a resourceVersion (server-side apply's answer).
    Echo,
    /// Return the request body merged with this value (e.g. a status).
    EchoWith(Value),
    /// Return this status code and body.
    Json(u16, Value),
}

/// An assertion on a request body.
pub type BodyCheck = Box<dyn Fn(&Value) + Send>;

/// One expected request.
pub struct Step {
    pub method: Method,
    pub uri: String,
    /// Match `uri` as a prefix (for names the client generates, such as an Event's).
    pub prefix: bool,
    pub reply: Reply,
    pub check: Option<BodyCheck>,
}

impl Step {
    pub fn new(method: Method, uri: impl Into<String>, reply: Reply) -> Self {
        Step {
            method,
            uri: uri.into(),
            prefix: false,
            reply,
            check: None,
        }
    }

    /// Assert something about the request body.
    pub fn check(mut self, f: impl Fn(&Value) + Send + 'static) -> Self {
        self.check = Some(Box::new(f));
        self
    }
}

/// A Kubernetes API error body.
pub fn status_error(code: u16, reason: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("mock {reason}"), "reason": reason, "code": code
    })
}

pub const QUERY: &str = "?&force=true&fieldManager=photo-operator";

/// URI of a child.
fn child_uri(kind: Kind, ns: &str, name: &str) -> String {
    let ar = kind.api_resource();
    let base = if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    format!("{base}/namespaces/{ns}/{}/{name}", ar.plural)
}

/// URI of a server-side apply of a child.
pub fn apply_uri(kind: Kind, ns: &str, name: &str) -> String {
    format!("{}{QUERY}", child_uri(kind, ns, name))
}

/// Expect a delete of a child, answered with `code` (200: deleted, 404: already gone).
pub fn delete(kind: Kind, ns: &str, name: &str, code: u16) -> Step {
    let reason = if code == 404 { "NotFound" } else { "Success" };
    Step::new(
        Method::DELETE,
        format!("{}?", child_uri(kind, ns, name)),
        Reply::Json(code, status_error(code, reason)),
    )
}

/// Expect a server-side apply of `kind/name`, answered by echoing the object.
pub fn apply(kind: Kind, ns: &str, name: &str) -> Step {
    let expected_kind = kind.kind_name();
    let expected_name = name.to_string();
    Step::new(Method::PATCH, apply_uri(kind, ns, name), Reply::Echo).check(move |body| {
        assert_eq!(body["kind"], expected_kind);
        assert_eq!(body["metadata"]["name"], expected_name.as_str());
    })
}

/// Expect the status patch of a PhotoSite.
pub fn status_patch(ns: &str, name: &str) -> Step {
    Step::new(
        Method::PATCH,
        format!("/apis/photostack.io/v1alpha1/namespaces/{ns}/photosites/{name}/status{QUERY}"),
        // the API server answers with the whole object
        Reply::EchoWith(
            json!({"metadata": {"name": name, "namespace": ns}, "spec": {"image": "x"}}),
        ),
    )
}

/// Expect an Event on a PhotoSite.
pub fn event(ns: &str, event_type: &'static str, reason: &'static str) -> Step {
    Step::new(
        Method::POST,
        format!("/apis/events.k8s.io/v1/namespaces/{ns}/events?"),
        Reply::Echo,
    )
    .check(move |body| {
        assert_eq!(body["type"], event_type, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["regarding"]["kind"], "PhotoSite");
    })
}

/// Expect a repeated Event on a PhotoSite (the recorder patches the first one).
pub fn event_repeated(ns: &str, reason: &'static str) -> Step {
    let mut step = Step::new(
        Method::PATCH,
        format!("/apis/events.k8s.io/v1/namespaces/{ns}/events/"),
        Reply::Echo,
    )
    .check(move |body| assert!(body.to_string().contains(reason), "{body}"));
    step.prefix = true;
    step
}

/// Expect a GET that finds nothing.
pub fn get_missing(uri: impl Into<String>) -> Step {
    Step::new(
        Method::GET,
        uri,
        Reply::Json(404, status_error(404, "NotFound")),
    )
}

/// Plays a scenario against the client's requests.
pub struct ApiServerVerifier(Handle);

impl ApiServerVerifier {
    /// Serve the steps in order, then fail on any further request. Returns the bodies seen.
    pub fn run(self, steps: Vec<Step>) -> tokio::task::JoinHandle<Vec<(Method, String, Value)>> {
        tokio::spawn(async move {
            let mut handle = self.0;
            let mut seen = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                let next =
                    tokio::time::timeout(Duration::from_secs(1), handle.next_request()).await;
                let (request, send) = next
                    .unwrap_or_else(|_| {
                        panic!(
                            "timed out waiting for step {i}: {} {}",
                            step.method, step.uri
                        )
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "client closed before step {i}: {} {}",
                            step.method, step.uri
                        )
                    });
                let method = request.method().clone();
                let uri = request.uri().to_string();
                if step.prefix && uri.starts_with(&step.uri) {
                    assert_eq!(method, step.method, "step {i}: {uri}");
                } else {
                    assert_eq!(
                        (&method, uri.as_str()),
                        (&step.method, step.uri.as_str()),
                        "step {i}"
                    );
                }
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
                };
                if let Some(check) = &step.check {
                    check(&body);
                }
                let (code, reply) = match step.reply {
                    Reply::Echo => (200, echo(&body, &Value::Null)),
                    Reply::EchoWith(extra) => (200, echo(&body, &extra)),
                    Reply::Json(code, v) => (code, v),
                };
                seen.push((method, uri, body));
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap_or_default()))
                    .expect("response");
                send.send_response(response);
            }
            if let Ok(Some((request, _))) =
                tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
            {
                panic!("unexpected request {} {}", request.method(), request.uri());
            }
            seen
        })
    }
}

fn merge(into: &mut Value, extra: &Value) {
    match (into, extra) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

fn echo(body: &Value, extra: &Value) -> Value {
    let mut v = body.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!("1"));
        m.insert("generation".into(), json!(1));
        m.insert("uid".into(), json!("00000000-0000-0000-0000-000000000001"));
    }
    if !extra.is_null() {
        merge(&mut v, extra);
    }
    v
}

/// Stores pre-filled with live objects, as the watches' initial list would have them.
pub fn stores(objects: &[(Kind, Value)]) -> Stores {
    let mut stores = Stores::default();
    for kind in Kind::ALL {
        let mut writer = Writer::<DynamicObject>::new(kind.api_resource());
        for (k, obj) in objects {
            if *k == kind {
                // as a list response has them: no apiVersion and kind on the items
                let mut listed = obj.clone();
                if let Some(m) = listed.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                let mut o: DynamicObject = serde_json::from_value(listed).expect("dynamic object");
                crate::controller::ssa::prune_dynamic(kind, &mut o);
                writer.apply_watcher_event(&watcher::Event::Apply(o));
            }
        }
        stores.insert_listed(kind, writer);
    }
    stores
}

impl Context {
    /// A context whose client talks to a mock API server.
    pub fn test(stores: Stores) -> (Arc<Context>, ApiServerVerifier) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let capabilities = Arc::new(Capabilities::new(Apis::ALL));
        let ctx = Context::new(client, Arc::new(Metrics::new()), stores, capabilities);
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}
