//! End-to-end tests of photo-operator against a real API server: the cluster `KUBECONFIG` (or
//! `~/.kube/config`) points at. Run them with `scripts/operator-e2e.sh`, which skips them with
//! one printed line when no cluster is reachable; `cargo test` only compiles them (they are
//! `#[ignore]`d) so they cannot rot.
//!
//! They need nothing a bare API server lacks: no node, no pod ever running, no
//! controller-manager, no CloudNativePG operator (only its CRD, which the suite installs when
//! the cluster lacks it). So they also run against kube-apiserver + etcd alone (envtest).
//! What they check is what a user checks with kubectl:
//!
//! 1. without CloudNativePG's CRD, a site still gets its Deployment, Services and Ingress
//!    and reports `Degraded`/`CloudNativePGNotInstalled`; once the CRD is installed the
//!    operator notices (periodic discovery) and creates the database cluster;
//! 2. the children appear, labelled and owned, and the status conditions carry
//!    `observedGeneration`;
//! 3. nothing is written while the site is converged;
//! 4. `kubectl scale` through the scale subresource reaches the Deployment;
//! 5. a deleted child is restored;
//! 6. a spec change rolls the pods (new config hash in the pod template) and the conditions
//!    follow the new generation;
//! 7. a child the API refuses (resizing the originals claim: 422 for an unbound claim, 403
//!    where its class cannot expand) is reported `Degraded` by kind and name while the rest
//!    (the Deployment) is still updated;
//! 8. a bad PhotoSite is refused by the API (CEL rules, including the immutable claim class
//!    and access mode, and `kubectl scale` beyond one pod on a ReadWriteOncePod claim) or
//!    reported `Degraded` by the operator;
//! 9. `dataPolicy`: under `Retain` the claim and database carry no owner reference and
//!    survive the PhotoSite (a PhotoSite created again adopts them), under `Delete` they are
//!    owned; where a garbage collector runs, they go with the PhotoSite;
//! 10. backups and restore: bad backup specs and a `spec.restore` added to a running site
//!     are refused (CEL); a backed-up site gets its originals CronJob and the jobs'
//!     NetworkPolicy and reports its missing object store Secret; a restored site gets its
//!     restore Job and no Deployment while the Job has not succeeded.
//!
//! The stand-in API server of `scripts/operator-e2e.sh` differs from Kubernetes where noted
//! below; nothing here is skipped for it. Environment: see `common/mod.rs`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::FutureExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use photo_operator::children::Kind;
use serde_json::{Value, json};

const CNPG: &str = "cnpg-v1.30.0";

async fn has_cnpg(client: &Client) -> bool {
    has_crd(client, "clusters.postgresql.cnpg.io").await
}

/// Every child of a minimal site, by kind and name.
fn demo_children(name: &str) -> Vec<(Kind, String)> {
    vec![
        (Kind::ServiceAccount, name.into()),
        (Kind::ConfigMap, format!("{name}-config")),
        (Kind::Secret, format!("{name}-credentials")),
        (Kind::PersistentVolumeClaim, format!("{name}-originals")),
        (Kind::DatabaseCluster, format!("{name}-db")),
        (Kind::Service, name.into()),
        (Kind::Service, format!("{name}-metrics")),
        (Kind::PodDisruptionBudget, name.into()),
        (Kind::NetworkPolicy, name.into()),
        (Kind::Deployment, name.into()),
    ]
}

// ---------------------------------------------------------------------------------------

/// 1. CloudNativePG missing, then installed. Returns the CRDs this run installed.
async fn cloudnative_pg_missing_then_installed(env: &Env) -> Vec<String> {
    if has_cnpg(&env.client).await {
        eprintln!(
            "e2e: CloudNativePG's CRDs are already installed: the 'not installed' scenario is skipped"
        );
        return Vec::new();
    }
    eprintln!("e2e: 1. CloudNativePG not installed");
    let mut site = demo("nocnpg");
    site["spec"]["ingress"] = json!({"host": "nocnpg.example.com", "className": "nginx"});
    env.apply_site(site).await.expect("PhotoSite nocnpg");
    for (kind, name) in [
        (Kind::Deployment, "nocnpg"),
        (Kind::Service, "nocnpg"),
        (Kind::Ingress, "nocnpg"),
    ] {
        env.wait_child(kind, name).await;
    }
    let s = env
        .wait_status("nocnpg", "Degraded CloudNativePGNotInstalled", |s| {
            condition(s, "Degraded")
                .is_some_and(|(st, r, _)| st == "True" && r == "CloudNativePGNotInstalled")
        })
        .await;
    assert_eq!(
        s.status.and_then(|st| st.database).as_deref(),
        Some("NotInstalled")
    );
    let mut crds = Vec::new();
    for file in third_party_crds(CNPG) {
        crds.push(install_crd(&env.client, &file).await);
    }
    eprintln!(
        "e2e:    installed CloudNativePG's CRDs ({}); the operator must notice without a restart",
        crds.join(", ")
    );
    let installed = Instant::now();
    env.wait_child(Kind::DatabaseCluster, "nocnpg-db").await;
    eprintln!(
        "e2e:    the database cluster appeared {:.1} s after the CRDs (discovery every 2 s)",
        installed.elapsed().as_secs_f64()
    );
    env.wait_status(
        "nocnpg",
        "Degraded False after CloudNativePG appeared",
        |s| condition(s, "Degraded").is_some_and(|(st, _, _)| st == "False"),
    )
    .await;
    env.sites()
        .delete("nocnpg", &DeleteParams::default())
        .await
        .expect("delete nocnpg");
    crds
}

/// 2. The children appear with labels and owners; conditions carry observedGeneration.
async fn children_appear(env: &Env) {
    eprintln!("e2e: 2. children appear");
    env.apply_site(demo("demo")).await.expect("PhotoSite demo");
    let site = env.sites().get("demo").await.expect("PhotoSite demo");
    let uid = site.uid().expect("uid");
    for (kind, name) in demo_children("demo") {
        let child = env.wait_child(kind, &name).await;
        let labels = child.labels();
        assert_eq!(
            labels.get("photostack.io/site").map(String::as_str),
            Some("demo"),
            "{kind:?} {name}"
        );
        let owners = child.owner_references();
        let data = matches!(kind, Kind::PersistentVolumeClaim | Kind::DatabaseCluster);
        if data {
            // dataPolicy Retain (the default): no owner, no pod selector labels
            assert!(owners.is_empty(), "{kind:?} {name} is owned under Retain");
            assert!(!labels.contains_key("app.kubernetes.io/name"), "{kind:?}");
        } else {
            assert!(
                owners
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true)),
                "{kind:?} {name} is not owned by the PhotoSite"
            );
        }
    }
    let s = env
        .wait_status("demo", "every condition reported", |s| {
            s.status.as_ref().is_some_and(|st| st.conditions.len() == 4)
        })
        .await;
    let st = s.status.as_ref().expect("status");
    for c in &st.conditions {
        assert_eq!(c.observed_generation, s.metadata.generation, "{}", c.type_);
    }
    // no pod runs here: the site is progressing, not ready
    assert_eq!(
        condition(&s, "Ready").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(
        st.selector.as_deref(),
        Some("app.kubernetes.io/instance=demo,app.kubernetes.io/name=photo-server")
    );
    // the Service the Ingress uses does not expose the metrics port
    let svc = env.wait_child(Kind::Service, "demo").await;
    let ports = svc.data["spec"]["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "http");
}

/// What the operator writes of a site: each child's generation and the time of the
/// operator's managed-fields entry (moved by any write of its own), and the PhotoSite's
/// generation. (Status changes that follow the pods are legitimate writes; no pod runs on a
/// bare API server, but one may on kind, so the status is not part of this.)
async fn fingerprint(env: &Env, site: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (kind, name) in demo_children(site) {
        if let Some(c) = env.child(kind, &name).await {
            let managed = c
                .metadata
                .managed_fields
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.manager.as_deref() == Some("photo-operator"))
                .map(|m| format!("{:?}", m.time))
                .collect::<Vec<_>>()
                .join(",");
            out.insert(
                format!("{kind:?}/{name}"),
                format!("{:?} {managed}", c.metadata.generation),
            );
        }
    }
    let s = env.sites().get(site).await.expect("PhotoSite");
    out.insert("PhotoSite".into(), format!("{:?}", s.metadata.generation));
    out
}

/// 3. Converged: no writes for a while.
async fn converged_writes_nothing(env: &Env) {
    eprintln!("e2e: 3. nothing written when converged");
    // let the extra reconcile triggered by our own status write pass
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = fingerprint(env, "demo").await;
    let writes = env.writes().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        fingerprint(env, "demo").await,
        before,
        "the operator wrote to a converged site"
    );
    if let Some(w) = writes {
        assert_eq!(
            env.writes().await,
            Some(w),
            "applies or deletes while converged"
        );
    }
}

/// 4. kubectl scale photosite/demo --replicas=3
async fn scale_reaches_the_deployment(env: &Env) {
    eprintln!("e2e: 4. scale subresource");
    if skipped_on_stand_in(
        "kubectl scale photosite",
        "its scale subresource of custom resources ignores specReplicasPath, statusReplicasPath \
         and labelSelectorPath (GET reads replicas 0 and no selector, PUT changes nothing, \
         PATCH is 405)",
    ) {
        return;
    }
    let scale = env.sites().get_scale("demo").await.expect("GET scale");
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("app.kubernetes.io/instance=demo,app.kubernetes.io/name=photo-server")
    );
    env.sites()
        .patch_scale(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("PATCH scale");
    wait_for("Deployment demo with 3 replicas", || async {
        let d = env.child(Kind::Deployment, "demo").await?;
        (d.data["spec"]["replicas"] == 3).then_some(())
    })
    .await;
    env.wait_status("demo", "status follows the scale", |_| true)
        .await;
}

/// 5. A deleted child is restored.
async fn deleted_child_is_restored(env: &Env) {
    eprintln!("e2e: 5. deleted child restored");
    // A label of the test's own marks the copy deleted: the restored Service lacks it. (Not
    // the uid: the stand-in gives no uid to built-in objects created by server-side apply.)
    env.wait_child(Kind::Service, "demo").await;
    let marker = json!({"metadata": {"labels": {"photostack.io/e2e-deleted": "yes"}}});
    env.dynamic(Kind::Service)
        .patch("demo", &PatchParams::default(), &Patch::Merge(&marker))
        .await
        .expect("label Service demo");
    env.dynamic(Kind::Service)
        .delete("demo", &DeleteParams::default())
        .await
        .expect("delete Service demo");
    wait_for("Service demo restored", || async {
        let s = env.child(Kind::Service, "demo").await?;
        (!s.labels().contains_key("photostack.io/e2e-deleted")).then_some(())
    })
    .await;
}

fn config_hash(d: &DynamicObject) -> Value {
    d.data["spec"]["template"]["metadata"]["annotations"]["photostack.io/config-hash"].clone()
}

/// 6. A spec change rolls the pods; conditions follow the generation.
async fn spec_change_rolls_the_pods(env: &Env) {
    eprintln!("e2e: 6. spec change");
    let before = config_hash(&env.wait_child(Kind::Deployment, "demo").await);
    let mut site = demo("demo");
    site["spec"]["replicas"] = json!(3);
    site["spec"]["renditions"] = json!([320, 1024]);
    env.apply_site(site).await.expect("update demo");
    wait_for("ConfigMap demo-config with the new renditions", || async {
        let cm = env.child(Kind::ConfigMap, "demo-config").await?;
        (cm.data["data"]["PHOTO_RENDITIONS"] == "320,1024").then_some(())
    })
    .await;
    wait_for("a new config hash in the pod template", || async {
        let d = env.child(Kind::Deployment, "demo").await?;
        (config_hash(&d) != before).then_some(())
    })
    .await;
    let s = env
        .wait_status("demo", "conditions at the new generation", |s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .all(|c| c.observed_generation == s.metadata.generation)
            })
        })
        .await;
    if !skipped_on_stand_in(
        "metadata.generation 2 after a spec change",
        "the generation of a custom resource never increases (observedGeneration cannot \
         tell a stale status there)",
    ) {
        assert!(s.metadata.generation >= Some(2));
    }
}

/// Scenario 7: a refused child is reported and does not stop the others. Returns the demo
/// site as it leaves it.
async fn refused_child_is_reported(env: &Env) -> Value {
    eprintln!("e2e: 7. refused child");
    let mut site = demo("demo");
    site["spec"]["replicas"] = json!(3);
    site["spec"]["renditions"] = json!([320, 1024]);
    site["spec"]["storage"] = json!({"originals": {"size": "20Gi"}});
    site["spec"]["image"] = json!("ghcr.io/photostack/photo-server:0.2.0");
    env.apply_site(site).await.expect("update demo");
    // the Deployment, after the claim in apply order, is updated whatever the claim's fate
    wait_for("Deployment demo with the new image", || async {
        let d = env.child(Kind::Deployment, "demo").await?;
        (d.data["spec"]["template"]["spec"]["containers"][0]["image"]
            == "ghcr.io/photostack/photo-server:0.2.0")
            .then_some(())
    })
    .await;
    let s = env
        .wait_status("demo", "status of the resize", |_| true)
        .await;
    let claim = env
        .wait_child(Kind::PersistentVolumeClaim, "demo-originals")
        .await;
    let resized = claim.data["spec"]["resources"]["requests"]["storage"] == "20Gi";
    let (status, reason, message) = condition(&s, "Degraded").expect("Degraded");
    if resized {
        eprintln!("e2e:    this cluster expanded the claim: not degraded");
        assert_eq!(status, "False", "{message}");
    } else {
        let s = env
            .wait_status("demo", "Degraded ChildRefused", |s| {
                condition(s, "Degraded")
                    .is_some_and(|(st, r, _)| st == "True" && r == "ChildRefused")
            })
            .await;
        let (_, _, message) = condition(&s, "Degraded").expect("Degraded");
        assert!(
            message.contains("PersistentVolumeClaim demo-originals"),
            "{reason}: {message}"
        );
        eprintln!("e2e:    refused as expected: {message}");
    }
    // back to the original size: nothing refused any more
    let mut site = demo("demo");
    site["spec"]["replicas"] = json!(3);
    site["spec"]["renditions"] = json!([320, 1024]);
    site["spec"]["image"] = json!("ghcr.io/photostack/photo-server:0.2.0");
    if resized {
        // a claim never shrinks; keep the size it has
        site["spec"]["storage"] = json!({"originals": {"size": "20Gi"}});
    }
    env.apply_site(site.clone()).await.expect("update demo");
    env.wait_status("demo", "Degraded False again", |s| {
        condition(s, "Degraded").is_some_and(|(st, _, _)| st == "False")
    })
    .await;
    site
}

/// What a PhotoSite that the CRD's CEL rules refuse gets from an API server that does not
/// enforce them (the stand-in).
enum WithoutCel {
    /// The operator's own validation reports it Degraded with this reason; afterwards the
    /// site is deleted, or set back to the given object if it existed before.
    Degraded(&'static str, Option<Value>),
    /// Nothing in the operator repeats the rule (a transition the API server must refuse):
    /// not applied there.
    Skip,
}

async fn expect_refused(env: &Env, what: &str, site: Value, without_cel: WithoutCel) {
    const NO_CEL: &str = "it does not enforce the CRD's CEL rules (x-kubernetes-validations)";
    if on_stand_in() {
        let WithoutCel::Degraded(reason, previous) = without_cel else {
            skipped_on_stand_in(what, NO_CEL);
            return;
        };
        let name = site["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        env.apply_site(site)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        env.wait_status(&name, &format!("Degraded {reason}"), |s| {
            condition(s, "Degraded").is_some_and(|(st, r, _)| st == "True" && r == reason)
        })
        .await;
        eprintln!(
            "e2e:    accepted by the stand-in ({NO_CEL}), reported Degraded {reason} by the operator: {what}"
        );
        match previous {
            Some(previous) => {
                env.apply_site(previous)
                    .await
                    .expect("setting the site back");
                env.wait_status(&name, "Degraded False again", |s| {
                    condition(s, "Degraded").is_some_and(|(st, _, _)| st == "False")
                })
                .await;
            }
            None => {
                let _ = env.sites().delete(&name, &DeleteParams::default()).await;
            }
        }
        return;
    }
    match env.apply_site(site).await {
        Err(e) if api_code(&e) == Some(422) => eprintln!("e2e:    refused: {what}"),
        Err(e) => panic!("{what}: expected 422 Invalid, got {e}"),
        Ok(_) => panic!("{what}: the API server accepted it"),
    }
}

/// Scenario 8: bad PhotoSites are refused by the API server or reported Degraded.
/// `demo_site` is the demo site as scenario 7 left it.
async fn bad_sites_are_refused_or_degraded(env: &Env, demo_site: &Value) {
    eprintln!("e2e: 8. bad PhotoSites");
    let invalid = || WithoutCel::Degraded("InvalidSpec", None);
    let mut s = demo("bad-alerts");
    s["spec"]["monitoring"] = json!({"alerts": true});
    expect_refused(env, "alerts without a ServiceMonitor", s, invalid()).await;
    let mut s = demo("bad-rwop");
    s["spec"]["replicas"] = json!(3);
    s["spec"]["storage"] = json!({"originals": {"accessMode": "ReadWriteOncePod"}});
    expect_refused(env, "ReadWriteOncePod with 3 replicas", s, invalid()).await;
    let long = demo(&"x".repeat(41));
    expect_refused(env, "a name longer than 40", long, invalid()).await;
    let mut s = demo_site.clone();
    s["spec"]["storage"]["originals"]["accessMode"] = json!("ReadWriteOnce");
    // set back explicitly: the stand-in's server-side apply of a custom resource keeps the
    // fields an apply leaves out (a merge patch), where Kubernetes removes them
    let mut previous = demo_site.clone();
    previous["spec"]["storage"]["originals"]["accessMode"] = json!("ReadWriteMany");
    let refused = WithoutCel::Degraded("ChildRefused", Some(previous));
    expect_refused(env, "changing the claim's access mode", s, refused).await;

    // the claim class: immutable once set
    let mut s = demo("classy");
    s["spec"]["storage"] = json!({"originals": {"storageClassName": "standard"}});
    env.apply_site(s.clone()).await.expect("PhotoSite classy");
    env.wait_child(Kind::PersistentVolumeClaim, "classy-originals")
        .await;
    let mut changed = demo("classy");
    changed["spec"]["storage"] = json!({"originals": {"storageClassName": "fast"}});
    let refused = WithoutCel::Degraded("ChildRefused", Some(s));
    expect_refused(env, "changing the claim's storage class", changed, refused).await;

    // kubectl scale beyond one pod on a ReadWriteOncePod claim
    let mut s = demo("solo");
    s["spec"]["replicas"] = json!(1);
    s["spec"]["storage"] = json!({"originals": {"accessMode": "ReadWriteOncePod"}});
    env.apply_site(s).await.expect("PhotoSite solo");
    if !skipped_on_stand_in(
        "scaling a ReadWriteOncePod site to 2 through the scale subresource",
        "its scale subresource of custom resources does not reach spec.replicas (PATCH is 405)",
    ) {
        let scaled = env
            .sites()
            .patch_scale(
                "solo",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await;
        match scaled {
            Err(e) if api_code(&e) == Some(422) => eprintln!("e2e:    refused: scaling solo to 2"),
            other => panic!("scaling a ReadWriteOncePod site to 2: expected 422, got {other:?}"),
        }
    }

    // accepted by the schema, refused by the operator
    let mut s = demo("bad-claim");
    s["spec"]["storage"] = json!({"originals": {"existingClaim": "does-not-exist"}});
    env.apply_site(s).await.expect("PhotoSite bad-claim");
    env.wait_status("bad-claim", "Degraded ExistingClaimNotFound", |s| {
        condition(s, "Degraded")
            .is_some_and(|(st, r, _)| st == "True" && r == "ExistingClaimNotFound")
    })
    .await;
    let mut s = demo("bad-cidr");
    s["spec"]["networkPolicy"] = json!({"ingressCIDRs": ["10.0.0.1/16"]});
    env.apply_site(s).await.expect("PhotoSite bad-cidr");
    env.wait_status("bad-cidr", "Degraded InvalidSpec", |s| {
        condition(s, "Degraded").is_some_and(|(st, r, m)| {
            st == "True" && r == "InvalidSpec" && m.contains("10.0.0.0/16")
        })
    })
    .await;
    for name in ["classy", "solo", "bad-claim", "bad-cidr"] {
        let _ = env.sites().delete(name, &DeleteParams::default()).await;
    }
}

/// 9. dataPolicy on delete.
async fn data_policy_on_delete(env: &Env) {
    eprintln!("e2e: 9. dataPolicy");
    env.apply_site(demo("keep")).await.expect("PhotoSite keep");
    let mut s = demo("drop");
    s["spec"]["dataPolicy"] = json!("Delete");
    env.apply_site(s).await.expect("PhotoSite drop");
    let drop_uid = env.sites().get("drop").await.expect("drop").uid();
    for kind in [Kind::PersistentVolumeClaim, Kind::DatabaseCluster] {
        let name = |site: &str| match kind {
            Kind::PersistentVolumeClaim => format!("{site}-originals"),
            _ => format!("{site}-db"),
        };
        let kept = env.wait_child(kind, &name("keep")).await;
        assert!(kept.owner_references().is_empty(), "{kind:?} keep owned");
        let dropped = env.wait_child(kind, &name("drop")).await;
        assert!(
            dropped
                .owner_references()
                .iter()
                .any(|o| Some(&o.uid) == drop_uid.as_ref()),
            "{kind:?} drop not owned by its PhotoSite under Delete"
        );
    }
    // A label of the test's own marks the claim (not its uid: the stand-in gives none to
    // built-in objects created by server-side apply).
    env.wait_child(Kind::PersistentVolumeClaim, "keep-originals")
        .await;
    let marker = json!({"metadata": {"labels": {"photostack.io/e2e-retained": "yes"}}});
    env.dynamic(Kind::PersistentVolumeClaim)
        .patch(
            "keep-originals",
            &PatchParams::default(),
            &Patch::Merge(&marker),
        )
        .await
        .expect("label claim keep-originals");
    env.wait_child(Kind::Deployment, "keep").await;
    for name in ["keep", "drop"] {
        env.sites()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete PhotoSite");
    }
    // Is there a garbage collector (a controller-manager)? Owned children then go.
    let start = Instant::now();
    let mut collected = false;
    let gc_wait = if skipped_on_stand_in(
        "the deletion of owned children after their PhotoSite",
        "no garbage collector runs there (owner references are checked above)",
    ) {
        Duration::ZERO
    } else {
        Duration::from_secs(30)
    };
    while start.elapsed() < gc_wait {
        if env.child(Kind::Deployment, "keep").await.is_none() {
            collected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Retain: kept in any case
    assert!(
        env.child(Kind::PersistentVolumeClaim, "keep-originals")
            .await
            .is_some()
    );
    assert!(env.child(Kind::DatabaseCluster, "keep-db").await.is_some());
    if collected {
        wait_for(
            "drop's claim and database deleted (or terminating)",
            || async {
                let gone = |o: Option<DynamicObject>| {
                    o.is_none_or(|o| o.metadata.deletion_timestamp.is_some())
                };
                (gone(
                    env.child(Kind::PersistentVolumeClaim, "drop-originals")
                        .await,
                ) && gone(env.child(Kind::DatabaseCluster, "drop-db").await))
                .then_some(())
            },
        )
        .await;
    } else if !on_stand_in() {
        eprintln!(
            "e2e:    no garbage collector runs here (bare API server): owner references checked, deletion itself not"
        );
    }
    // Created again with the same name: the retained claim is adopted, not replaced.
    env.apply_site(demo("keep"))
        .await
        .expect("PhotoSite keep again");
    env.wait_status("keep", "status of the re-created site", |_| true)
        .await;
    let claim = env
        .wait_child(Kind::PersistentVolumeClaim, "keep-originals")
        .await;
    assert!(
        claim.labels().contains_key("photostack.io/e2e-retained"),
        "the retained claim was replaced"
    );
    let _ = env.sites().delete("keep", &DeleteParams::default()).await;
}

/// 10. Backups and restore: what a bare API server can show (no Job ever runs there).
async fn backups_and_restore(env: &Env) {
    eprintln!("e2e: 10. backups and restore");
    let store = |path: &str| {
        json!({"bucket": "photostack-e2e", "path": path, "credentialsSecret": "e2e-backup-s3",
               "endpointURL": "http://minio.invalid:9000"})
    };
    let mut s = demo("bad-schedule");
    s["spec"]["backup"] = json!({"schedule": "daily", "objectStore": store("a")});
    let invalid = || WithoutCel::Degraded("InvalidSpec", None);
    expect_refused(env, "a backup schedule that is not cron", s, invalid()).await;
    let mut s = demo("bad-overwrite");
    s["spec"]["backup"] = json!({"objectStore": store("a")});
    s["spec"]["restore"] = json!({"objectStore": store("a")});
    expect_refused(
        env,
        "backing up over the backup restored from",
        s,
        invalid(),
    )
    .await;
    let mut s = demo("demo");
    s["spec"]["restore"] = json!({"objectStore": store("a")});
    expect_refused(
        env,
        "adding spec.restore to a running site",
        s,
        WithoutCel::Skip,
    )
    .await;

    // backups: the originals CronJob and the jobs' NetworkPolicy appear; the missing Secret
    // is reported
    let mut s = demo("backed");
    s["spec"]["backup"] = json!({"objectStore": store("e2e/backed")});
    env.apply_site(s).await.expect("PhotoSite backed");
    let cron = env.wait_child(Kind::CronJob, "backed-backup").await;
    assert_eq!(
        cron.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "backup"
    );
    env.wait_child(Kind::NetworkPolicy, "backed-jobs").await;
    env.wait_status("backed", "BackupSecretNotFound reported", |s| {
        condition(s, "Degraded")
            .is_some_and(|(st, _, m)| st == "True" && m.contains("e2e-backup-s3"))
            && condition(s, "BackupHealthy").is_some_and(|(st, _, _)| st == "False")
    })
    .await;

    // restore: the Job first, and no Deployment while it has not succeeded
    let mut s = demo("restored");
    s["spec"]["restore"] = json!({"objectStore": store("e2e/backed"), "siteName": "backed"});
    env.apply_site(s).await.expect("PhotoSite restored");
    let job = env.wait_child(Kind::Job, "restored-restore").await;
    assert_eq!(
        job.data["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "restore"
    );
    env.wait_status("restored", "Ready False while restoring", |s| {
        condition(s, "Ready").is_some_and(|(st, r, _)| {
            st == "False"
                && [
                    "RestoringOriginals",
                    "RestoreFailed",
                    "BackupSecretNotFound",
                    "BarmanCloudNotInstalled",
                ]
                .contains(&r.as_str())
        })
    })
    .await;
    assert!(
        env.child(Kind::Deployment, "restored").await.is_none(),
        "the Deployment of a site being restored exists"
    );
    for name in ["backed", "restored"] {
        let _ = env.sites().delete(name, &DeleteParams::default()).await;
    }
}

async fn scenarios(env: &Env) -> Vec<String> {
    let installed = cloudnative_pg_missing_then_installed(env).await;
    assert!(
        has_cnpg(&env.client).await,
        "CloudNativePG's CRDs are installed by the first scenario"
    );
    children_appear(env).await;
    converged_writes_nothing(env).await;
    scale_reaches_the_deployment(env).await;
    deleted_child_is_restored(env).await;
    spec_change_rolls_the_pods(env).await;
    let demo_site = refused_child_is_reported(env).await;
    bad_sites_are_refused_or_degraded(env, &demo_site).await;
    data_policy_on_delete(env).await;
    backups_and_restore(env).await;
    installed
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run scripts/operator-e2e.sh"]
async fn photosite_end_to_end() {
    let env = start("photo-e2e", 2).await;
    let result = std::panic::AssertUnwindSafe(scenarios(&env))
        .catch_unwind()
        .await;
    if result.is_err() {
        eprintln!(
            "e2e: FAILED; last lines of the operator log {}:\n{}",
            env.log.display(),
            env.operator_log_tail()
        );
    }
    if let Ok(crds) = &result {
        // leave the cluster as it was: this run installed CloudNativePG's CRDs
        let api: Api<CustomResourceDefinition> = Api::all(env.client.clone());
        for crd in crds {
            let _ = api.delete(crd, &DeleteParams::default()).await;
        }
    }
    stop(env).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    eprintln!("e2e: all scenarios passed");
}
