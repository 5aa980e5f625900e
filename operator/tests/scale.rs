//! Scale scenario of photo-operator against a live API server: many PhotoSites applied at
//! once, as a platform team moving its sites to the operator would. It asserts what users
//! depend on (every site gets all its children and a status of its generation; once settled,
//! nothing more is applied) and prints the figures of the benchmark (time to settle, applies
//! per child, operator memory). It is a benchmark, not a timed test: no figure fails it.
//!
//! The sites are a mix of the contract's samples: one in three minimal (`demo`), one in three
//! full (`fakeflickr`: autoscaling, ingress with TLS, monitoring and alerts, three database
//! instances), one in three minimal with backups (its object store Secret exists). Whether
//! CloudNativePG, the Prometheus Operator and the Barman Cloud plugin are installed is the
//! cluster's: `scripts/operator-e2e.sh` runs this once per combination on fresh stand-ins.
//!
//! Run by `scripts/operator-e2e.sh` (on by default against the stand-in, opt-in on a real
//! cluster with `PHOTO_E2E_SCALE=1`). Environment, besides `common/mod.rs`'s:
//! - `PHOTO_E2E_SCALE_SITES`: how many PhotoSites (default 50);
//! - `PHOTO_E2E_SCALE_QUIET`: seconds watched for writes after settling (default 30);
//! - `PHOTO_E2E_SCALE_REPORT`: a file to append the figures to, one JSON object per line;
//! - `PHOTO_E2E_INSTALL_CRDS`: third-party CRD releases to install first (`cnpg-v1.30.0
//!   prometheus-operator-v0.93.0`, from `PHOTOSTACK_CRDS`): the script sets it for a fresh
//!   stand-in, never for a real cluster.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use photo_operator::children::{self, Apis, Credentials, Inputs, Kind};
use photo_operator::controller::discovery;
use photo_operator::crd::PhotoSite;
use serde_json::{Value, json};

/// How long no apply must be seen, with every child present, to call the sites settled.
const SETTLED_AFTER: Duration = Duration::from_secs(3);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BACKUP_SECRET: &str = "scale-backup-s3";

/// The i-th PhotoSite of the mix.
fn site(i: u64) -> Value {
    let name = format!("site-{i}");
    let mut s = demo(&name);
    match i % 3 {
        0 => {}
        1 => {
            s["spec"] = json!({
                "image": IMAGE,
                "autoscaling": {"enabled": true, "minReplicas": 3, "maxReplicas": 12,
                                "targetCPUUtilizationPercentage": 70},
                "storage": {"originals": {"size": "100Gi", "storageClassName": "efs-sc"},
                            "cache": {"sizeLimit": "4Gi"}},
                "database": {"instances": 3, "storage": {"size": "20Gi"}},
                "ingress": {"host": format!("{name}.example.com"), "className": "nginx",
                            "tls": {"issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}}},
                "monitoring": {"serviceMonitor": true, "alerts": true},
            });
        }
        _ => {
            s["spec"]["backup"] = json!({"objectStore": {
                "bucket": "photostack-scale", "path": format!("sites/{name}"),
                "credentialsSecret": BACKUP_SECRET, "endpointURL": "http://minio.invalid:9000"}});
        }
    }
    s
}

/// The children the operator should create for `site` on a cluster serving `apis`.
fn expected_children(site: &Value, ns: &str, apis: Apis) -> Vec<(Kind, String)> {
    let mut object = site.clone();
    object["apiVersion"] = json!("photostack.io/v1alpha1");
    object["kind"] = json!("PhotoSite");
    object["metadata"]["namespace"] = json!(ns);
    let site: PhotoSite = serde_json::from_value(object).expect("a PhotoSite");
    let inputs = Inputs {
        credentials: Some(Credentials {
            session_key: "k".into(),
            admin_password: "p".into(),
        }),
        apis,
        external_database: None,
        originals_restored: None,
    };
    let valid = photo_operator::site::validate(&site).expect("a valid PhotoSite");
    children::desired(&valid, &inputs)
        .children
        .into_iter()
        .map(|c| (c.kind, c.name))
        .collect()
}

/// What of `expected` is missing, and how many sites have no status of their generation.
async fn missing(env: &Env, expected: &BTreeSet<(Kind, String)>) -> (usize, usize) {
    let kinds: BTreeSet<Kind> = expected.iter().map(|(k, _)| *k).collect();
    let mut present = BTreeSet::new();
    for kind in kinds {
        let list = env
            .dynamic(kind)
            .list(&ListParams::default().labels("photostack.io/site"))
            .await
            .unwrap_or_else(|e| panic!("listing {kind:?}: {e}"));
        present.extend(
            list.items
                .into_iter()
                .filter_map(|o| Some((kind, o.metadata.name?))),
        );
    }
    let sites = env
        .sites()
        .list(&ListParams::default())
        .await
        .expect("listing PhotoSites");
    let stale = sites
        .items
        .iter()
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.observed_generation) != s.metadata.generation
        })
        .count();
    (expected.difference(&present).count(), stale)
}

async fn applies(env: &Env) -> u64 {
    env.metric("photo_operator_objects_applied_total")
        .await
        .expect("the operator's metrics") as u64
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run scripts/operator-e2e.sh"]
async fn photosites_at_scale() {
    let n = env_number("PHOTO_E2E_SCALE_SITES", 50);
    let quiet = Duration::from_secs(env_number("PHOTO_E2E_SCALE_QUIET", 30));
    // the optional APIs are there before the operator starts, as in a cluster set up first
    let releases = std::env::var("PHOTO_E2E_INSTALL_CRDS").unwrap_or_default();
    if !releases.trim().is_empty() {
        let client = connect().await;
        for release in releases.split_whitespace() {
            for file in third_party_crds(release) {
                install_crd(&client, &file).await;
            }
        }
    }
    let env = start("photo-scale", 30).await;
    assert!(
        env.metrics.is_some(),
        "the scale scenario measures an operator it starts (unset PHOTO_E2E_OPERATOR)"
    );
    let apis = discovery::discover(&env.client, Apis::NONE).await;
    let crds = format!(
        "CloudNativePG {}, Prometheus Operator {}, Barman Cloud plugin {}",
        yes_no(apis.cloudnative_pg),
        yes_no(apis.prometheus),
        yes_no(apis.barman_cloud)
    );
    eprintln!("scale: {n} PhotoSites; installed: {crds}");

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": BACKUP_SECRET},
        "stringData": {"ACCESS_KEY_ID": "scale", "ACCESS_SECRET_KEY": "scale-secret"}
    }))
    .expect("a Secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("the backups' Secret");

    let sites: Vec<Value> = (0..n).map(site).collect();
    let expected: BTreeSet<(Kind, String)> = sites
        .iter()
        .flat_map(|s| expected_children(s, &env.ns, apis))
        .collect();
    let children = expected.len() as u64;
    let before = applies(&env).await;

    let t0 = Instant::now();
    futures::stream::iter(sites.iter().cloned().map(|s| env.apply_site(s)))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .expect("applying the PhotoSites");
    let created = t0.elapsed();

    // Settled: every child present, every status current, and no apply for SETTLED_AFTER.
    let mut last = before;
    let mut last_change = t0;
    let mut complete = false;
    let mut next_check = Instant::now();
    loop {
        let now_applies = applies(&env).await;
        // An apply may be under way for seconds on a loaded API server: settled also needs a
        // moment with no reconcile running, after which every apply started has been counted.
        let running = env
            .metric("photo_operator_reconciles_running")
            .await
            .unwrap_or_default();
        if now_applies != last {
            last = now_applies;
            last_change = Instant::now();
        }
        if !complete && Instant::now() >= next_check {
            let (absent, stale) = missing(&env, &expected).await;
            complete = absent == 0 && stale == 0;
            assert!(
                t0.elapsed() < timeout() * 2,
                "after {:?}: {absent} of {children} children missing, {stale} of {n} statuses not current\n{}",
                t0.elapsed(),
                env.operator_log_tail()
            );
            next_check = Instant::now() + Duration::from_secs(1);
        }
        if complete && last_change.elapsed() >= SETTLED_AFTER && running == 0.0 {
            break;
        }
        assert!(
            t0.elapsed() < timeout() * 2,
            "still applying after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = last_change - t0;
    let settle_applies = last - before;

    tokio::time::sleep(quiet).await;
    let quiet_applies = applies(&env).await - last;
    let status_writes = env
        .metric("photo_operator_status_writes_total")
        .await
        .unwrap_or_default() as u64;
    let (rss, peak) = env.operator_memory_kib().unwrap_or_default();
    let per_child = settle_applies as f64 / children as f64;
    println!(
        "scale: {n} sites ({crds}): {children} children; sites created in {:.1} s; settled {:.1} s after the first was applied, with {settle_applies} applies ({per_child:.2} per child); {quiet_applies} applies in the next {} s; {status_writes} status writes; operator memory {} MiB (peak {} MiB)",
        created.as_secs_f64(),
        settled.as_secs_f64(),
        quiet.as_secs(),
        rss / 1024,
        peak / 1024,
    );
    if let Some(path) = std::env::var_os("PHOTO_E2E_SCALE_REPORT") {
        let line = json!({
            "sites": n, "cloudnative_pg": apis.cloudnative_pg, "prometheus": apis.prometheus,
            "barman_cloud": apis.barman_cloud, "children": children,
            "settled_seconds": settled.as_secs_f64(), "applies": settle_applies,
            "applies_per_child": per_child, "quiet_seconds": quiet.as_secs(),
            "quiet_applies": quiet_applies, "status_writes": status_writes,
            "rss_kib": rss, "peak_rss_kib": peak,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("the report file");
        writeln!(file, "{line}").expect("writing the report");
    }
    let log = env.operator_log_tail();
    stop(env).await;
    assert_eq!(
        quiet_applies, 0,
        "the operator kept applying after the sites had settled\n{log}"
    );
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
