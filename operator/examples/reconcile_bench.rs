//! Benchmark: time to build and diff the desired state of 1000 PhotoSites, and the process's
//! memory (RSS) with 1000 PhotoSites and all their children held in reflector stores, as the
//! running controller holds them.
//!
//! `cargo run --release -p photo-operator --example reconcile_bench [N]`
//! (or, reusing the dev build's dependencies: `CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo run -p
//! photo-operator --example reconcile_bench`)
//!
//! Per site it does what a reconcile does without API round trips: validate and build every
//! child, read the live copies from the stores (parsed into typed observations), decide the
//! restore, plan (hash and compare: the no-write check,
//! the same `plan` the controller uses), and compute the status.

use std::collections::HashMap;
use std::time::Instant;

use kube::api::DynamicObject;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use photo_operator::children::{self, Apis, Credentials, Inputs, Kind};
use photo_operator::controller::Stores;
use photo_operator::controller::observe::Observed;
use photo_operator::controller::plan;
use photo_operator::controller::ssa::{prune_dynamic, with_hash};
use photo_operator::controller::{restore, status};
use photo_operator::crd::PhotoSite;
use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn site(i: usize) -> PhotoSite {
    let ns = i % 50;
    let mut yaml = format!(
        "apiVersion: photostack.io/v1alpha1
kind: PhotoSite
metadata: {{name: site-{i}, namespace: ns-{ns}, uid: uid-{i}, generation: 1}}
spec:
  image: ghcr.io/photostack/photo-server:0.1.0
"
    );
    // every other site sets everything the operator builds children for
    if i % 2 == 1 {
        yaml.push_str(&format!(
            "  replicas: 3
  autoscaling: {{enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 70}}
  storage:
    originals: {{size: 100Gi, storageClassName: efs-sc}}
    cache: {{sizeLimit: 4Gi}}
  database: {{instances: 3, storage: {{size: 20Gi}}}}
  ingress:
    host: site-{i}.example.com
    className: nginx
    tls: {{issuerRef: {{kind: ClusterIssuer, name: letsencrypt}}}}
  monitoring: {{serviceMonitor: true, alerts: true}}
"
        ));
    }
    serde_yaml::from_str(&yaml).expect("site")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let rss_start = rss_kib();
    let inputs = Inputs {
        credentials: Some(Credentials {
            session_key: "s".repeat(64),
            admin_password: "p".repeat(24),
        }),
        apis: Apis::ALL,
        external_database: None,
        originals_restored: None,
    };

    // Fill the stores with every child of every site, as live objects with statuses.
    let mut writers: HashMap<Kind, Writer<DynamicObject>> = Kind::ALL
        .iter()
        .map(|k| (*k, Writer::new(k.api_resource())))
        .collect();
    let mut site_writer = Writer::<PhotoSite>::new(());
    let sites: Vec<PhotoSite> = (0..n).map(site).collect();
    let mut children = 0;
    for s in &sites {
        site_writer.apply_watcher_event(&watcher::Event::Apply(s.clone()));
        let valid = photo_operator::site::validate(s).expect("valid");
        let desired = children::desired(&valid, &inputs);
        for c in desired.children {
            let mut o = with_hash(&c.to_json().expect("json")).expect("hash");
            o["metadata"]["resourceVersion"] = json!("12345");
            o["metadata"]["uid"] = json!("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0");
            o["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            if c.kind == Kind::Deployment {
                o["status"] = json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
            }
            let mut obj: DynamicObject = serde_json::from_value(o).expect("object");
            // as the controller's watches do before storing
            prune_dynamic(c.kind, &mut obj);
            if let Some(w) = writers.get_mut(&c.kind) {
                w.apply_watcher_event(&watcher::Event::Apply(obj));
            }
            children += 1;
        }
    }
    let mut stores = Stores::default();
    for (k, w) in writers {
        stores.insert_listed(k, w);
    }
    let rss_loaded = rss_kib();

    // Build + diff + status for every site, as a reconcile does without API calls.
    let mut writes = 0;
    let rounds = 3;
    let start = Instant::now();
    for _ in 0..rounds {
        for s in &sites {
            let valid = photo_operator::site::validate(s).expect("valid");
            let desired = children::desired(&valid, &inputs);
            let observed = Observed::from_stores(&stores, &valid).expect("observed");
            let seen = restore::Evidence::of(&observed, &valid);
            let restore = restore::decide(&valid, s.status.as_ref(), &seen);
            let plan = plan::plan(&desired, &observed).expect("plan");
            writes += plan.apply.len() + plan.delete.len();
            let observations = status::Observations {
                live: observed.children,
                problems: status::problems(&plan.held, &desired.missing),
                missing: &desired.missing,
                existing_claim_phase: None,
                now: k8s_openapi::jiff::Timestamp::now(),
                restore,
            };
            std::hint::black_box(status::compute(s, &valid, &observations));
        }
    }
    let elapsed = start.elapsed();
    let per_site = elapsed / (n * rounds) as u32;
    println!("sites: {n}, children in stores: {children}");
    println!(
        "build+diff+status: {:.3} ms per PhotoSite ({:.1} ms for {n} sites), writes needed: {writes}",
        per_site.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / rounds as f64
    );
    println!(
        "RSS: {:.1} MiB at start, {:.1} MiB with {n} PhotoSites and their children in stores",
        rss_start as f64 / 1024.0,
        rss_loaded as f64 / 1024.0
    );
    drop(site_writer);
}
