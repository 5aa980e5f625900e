//! What the end-to-end tests share: a namespace of their own on the cluster `KUBECONFIG` (or
//! `~/.kube/config`) points at, the operator started locally to watch it (or the one installed
//! in the cluster), polling helpers and the third-party CRDs.
//!
//! Environment:
//! - `PHOTO_E2E_OPERATOR=installed`: test the operator already running in the cluster
//!   (watching every namespace) instead of starting one locally;
//! - `PHOTO_E2E_OPERATOR_BIN`: the operator binary to start (default: this build's, so a
//!   benchmark can run the release build);
//! - `PHOTOSTACK_CRDS`: directory of the third-party CRDs (default `../shared/crds` beside
//!   the repository);
//! - `PHOTO_E2E_TIMEOUT`: seconds to wait for each expected state (default 90);
//! - `PHOTO_E2E_API_SERVER=kube-peer`: the API server is the stand-in of
//!   `../shared/tools/kube-peer` (set by `scripts/operator-e2e.sh` when it starts one): the
//!   checks it cannot pass are skipped, each with a line naming the difference.

#![allow(dead_code)] // each test binary uses its part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, ResourceExt};
use photo_operator::children::Kind;
use photo_operator::crd::PhotoSite;
use serde_json::{Value, json};

pub const MANAGER: &str = "photo-operator-e2e";
pub const IMAGE: &str = "ghcr.io/photostack/photo-server:0.1.0";

pub fn timeout() -> Duration {
    let secs = std::env::var("PHOTO_E2E_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    Duration::from_secs(secs)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Poll `check` until it returns `Some`, or fail naming what was awaited.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout(),
            "timed out after {:?} waiting for {what}",
            timeout()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the API server is the stand-in (`PHOTO_E2E_API_SERVER=kube-peer`).
pub fn on_stand_in() -> bool {
    std::env::var("PHOTO_E2E_API_SERVER").as_deref() == Ok("kube-peer")
}

/// On the stand-in, print that `what` is skipped because of `difference` and return true.
pub fn skipped_on_stand_in(what: &str, difference: &str) -> bool {
    if on_stand_in() {
        eprintln!("e2e:    SKIPPED on the stand-in API server: {what}: {difference}");
    }
    on_stand_in()
}

pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The test run: a namespace of its own and, unless told to use the installed operator, a
/// local operator process watching only that namespace.
pub struct Env {
    pub client: Client,
    pub ns: String,
    pub operator: Option<Child>,
    pub metrics: Option<String>,
    pub log: PathBuf,
}

impl Env {
    pub fn dynamic(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &kind.api_resource())
    }

    pub fn sites(&self) -> Api<PhotoSite> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn raw_sites(&self) -> Api<DynamicObject> {
        let ar = ApiResource::erase::<PhotoSite>(&());
        Api::namespaced_with(self.client.clone(), &self.ns, &ar)
    }

    /// Server-side apply a PhotoSite given as JSON (`metadata.name` and `spec`).
    pub async fn apply_site(&self, site: Value) -> Result<DynamicObject, kube::Error> {
        let name = site["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut object = site;
        object["apiVersion"] = json!("photostack.io/v1alpha1");
        object["kind"] = json!("PhotoSite");
        object["metadata"]["namespace"] = json!(self.ns);
        self.raw_sites()
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
    }

    pub async fn child(&self, kind: Kind, name: &str) -> Option<DynamicObject> {
        self.dynamic(kind).get_opt(name).await.ok().flatten()
    }

    pub async fn wait_child(&self, kind: Kind, name: &str) -> DynamicObject {
        wait_for(&format!("{} {name}", kind.kind_name()), || async {
            self.child(kind, name).await
        })
        .await
    }

    /// Wait until the status describes the current generation and `check` accepts it.
    pub async fn wait_status<F>(&self, name: &str, what: &str, check: F) -> PhotoSite
    where
        F: Fn(&PhotoSite) -> bool,
    {
        wait_for(&format!("PhotoSite {name}: {what}"), || async {
            let site = self.sites().get_opt(name).await.ok().flatten()?;
            let status = site.status.as_ref()?;
            (status.observed_generation == site.metadata.generation && check(&site)).then_some(site)
        })
        .await
    }

    /// The sum of the local operator's metric samples whose line starts with `prefix`.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let url = self.metrics.as_ref()?;
        let body = http_get(url).await?;
        Some(
            body.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// Operator counters of writes to children (applies + deletes), when it runs locally.
    pub async fn writes(&self) -> Option<u64> {
        let applied = self.metric("photo_operator_objects_applied_total").await?;
        let deleted = self.metric("photo_operator_objects_deleted_total").await?;
        Some((applied + deleted) as u64)
    }

    /// The local operator's resident memory now and at its peak, in KiB.
    pub fn operator_memory_kib(&self) -> Option<(u64, u64)> {
        let pid = self.operator.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    pub fn operator_log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// A plain HTTP GET on 127.0.0.1 (the local operator's /metrics), without another crate.
pub async fn http_get(addr_path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, path) = addr_path.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /{path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).await.ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

pub fn condition(site: &PhotoSite, type_: &str) -> Option<(String, String, String)> {
    site.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Server-side apply a CRD file and wait until it is established.
pub async fn install_crd(client: &Client, file: &Path) -> String {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let crd: CustomResourceDefinition =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let name = crd.name_any();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    wait_for(&format!("CRD {name} established"), || async {
        let crd = api.get(&name).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
    name
}

/// The third-party CRDs of one project and release (`cnpg-v1.30.0`, ...), as a user installs
/// them: every file of its directory under `PHOTOSTACK_CRDS` (default `../shared/crds`).
pub fn third_party_crds(release: &str) -> Vec<PathBuf> {
    let dir = std::env::var_os("PHOTOSTACK_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/crds"))
        .join(release);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; set PHOTOSTACK_CRDS to the directory made by scripts/fetch-crds.sh",
                dir.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no CRD in {}", dir.display());
    files
}

pub async fn has_crd(client: &Client, name: &str) -> bool {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    matches!(api.get_opt(name).await, Ok(Some(_)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A client of the API server, which must answer.
pub async fn connect() -> Client {
    let client = Client::try_default().await.unwrap_or_else(|e| {
        panic!(
            "no Kubernetes client configuration ({e}); scripts/operator-e2e.sh skips this suite when no cluster is reachable"
        )
    });
    let version = client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("the API server does not answer: {e}"));
    eprintln!(
        "e2e: API server {}.{} ({})",
        version.major, version.minor, version.git_version
    );
    client
}

/// Connect, install the PhotoSite CRD, create a namespace named after `prefix`, and start
/// the operator watching it, with discovery every `discovery_interval` seconds.
pub async fn start(prefix: &str, discovery_interval: u64) -> Env {
    let client = connect().await;
    install_crd(&client, &repo().join("crds/photosite.yaml")).await;

    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or_default()
    );
    let ns = format!("{prefix}-{suffix}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {"photostack.io/e2e": "true"}}
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));

    let log = std::env::temp_dir().join(format!("photo-operator-{prefix}-{suffix}.log"));
    let (operator, metrics) = if std::env::var("PHOTO_E2E_OPERATOR").as_deref() == Ok("installed") {
        eprintln!("e2e: testing the operator installed in the cluster");
        (None, None)
    } else {
        let port = free_port();
        let file = std::fs::File::create(&log).expect("operator log file");
        let err = file.try_clone().expect("operator log file");
        let bin = std::env::var_os("PHOTO_E2E_OPERATOR_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_photo-operator")));
        let child = Command::new(&bin)
            .args([
                "run",
                "--no-leader-election",
                "--discovery-interval",
                &discovery_interval.to_string(),
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .env("WATCH_NAMESPACE", &ns)
            .env("RUST_LOG", "info,photo_operator=debug")
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        eprintln!(
            "e2e: operator {} (pid {}) watching {ns}, log {}",
            bin.display(),
            child.id(),
            log.display()
        );
        (Some(child), Some(format!("127.0.0.1:{port}/metrics")))
    };
    Env {
        client,
        ns,
        operator,
        metrics,
        log,
    }
}

pub async fn stop(mut env: Env) {
    if let Some(child) = env.operator.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    // Without a namespace controller (a bare API server) it stays Terminating; that is fine.
    let _ = namespaces
        .delete(&env.ns, &DeleteParams::background())
        .await;
}

/// A minimal PhotoSite (the contract's first sample).
pub fn demo(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"image": IMAGE}})
}
