//! The restore drill: photos uploaded, backed up to a real S3-protocol
//! server (moto), the originals and the database destroyed, restored into a
//! fresh data directory and database, and every photo, its metadata, owner
//! and visibility checked byte for byte; then photos added and a second
//! backup shown to copy only those. For SQLite (the database goes into the
//! same backup) and PostgreSQL (the database by `pg_dump`/`pg_restore`, the
//! path of an external database's user; in a cluster CloudNativePG backs it
//! up).
//!
//! The S3 server is moto's `moto_server`, from `PHOTO_TEST_S3_SERVER` or
//! PATH; `scripts/test-all.sh` installs it (`pip install 'moto[server]'`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::process::report;
use common::{Backend, TestServer, fixture};
use serde_json::Value;

both_backends!(a_site_is_restored_byte_for_byte_and_backups_are_incremental);

/// The S3 server, one per test process.
struct S3 {
    url: String,
}

fn s3() -> &'static S3 {
    static SERVER: OnceLock<S3> = OnceLock::new();
    SERVER.get_or_init(|| {
        let program = std::env::var_os("PHOTO_TEST_S3_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("moto_server"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut cmd = Command::new(&program);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        common::spawn_tied_to_process(cmd).unwrap_or_else(|e| {
                panic!(
                    "the restore drill needs an S3 server: {} ({e}); run scripts/test-all.sh, \
                     or `pip install 'moto[server]'` and set PHOTO_TEST_S3_SERVER to its moto_server",
                    program.display()
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        S3 { url }
    })
}

/// Makes a bucket (moto accepts unsigned requests).
async fn bucket(name: &str) {
    let r = reqwest::Client::new()
        .put(format!("{}/{name}", s3().url))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

/// Runs `photo-server <command>` for a site's directories and database.
fn cli(command: &str, data_dir: &Path, database_url: Option<&str>, backup_url: &str) -> String {
    let mut cmd = common::photo_server_command();
    cmd.env("PHOTO_DATA_DIR", data_dir)
        .env("PHOTO_BACKUP_URL", backup_url)
        .env("AWS_ENDPOINT_URL", &s3().url)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .arg(command);
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    let (ok, text) = common::output_of(&mut cmd);
    assert!(ok, "photo-server {command}: {text}");
    text
}

fn pg(program: &str, args: &[&str]) {
    let out = Command::new(harness::postgres::bin(program).unwrap_or_else(|e| panic!("{e}")))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything about every photo that must survive, and each original.
async fn everything(server: &TestServer) -> (Vec<Value>, BTreeMap<String, Vec<u8>>) {
    let admin = server.admin().await;
    let list = admin.get_json("/rest/photos?limit=100").await;
    let photos = list["photos"].as_array().unwrap().clone();
    let mut originals = BTreeMap::new();
    for p in &photos {
        let id = p["id"].as_str().unwrap();
        let r = admin.get(&format!("/img/orig/{id}.jpg")).await;
        assert_eq!(r.status(), 200);
        originals.insert(id.to_string(), r.bytes().await.unwrap().to_vec());
    }
    (photos, originals)
}

/// The number `n` in "..., `n` copied now" of a backup's summary.
fn copied(summary: &str) -> usize {
    summary
        .lines()
        .find_map(|l| {
            l.split(" copied now")
                .next()
                .filter(|_| l.contains(" copied now"))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no copy count in: {summary}"))
}

async fn a_site_is_restored_byte_for_byte_and_backups_are_incremental(backend: Backend) {
    let name = format!("site-{}", photo_server::ids::new_id());
    bucket(&name).await;
    // Under a path, and at the bucket's root (as the operator's objectStore
    // allows: `path` is optional).
    let backup_url = match backend {
        Backend::Sqlite => format!("s3://{name}/photos"),
        Backend::Postgres => format!("s3://{name}"),
    };

    // A site with two users, public and private photos.
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let alice = server.user("alice").await;
    admin
        .upload_id(
            "landscape.jpg",
            &[("title", "Lake"), ("visibility", "public")],
        )
        .await;
    admin
        .upload_id("portrait.jpg", &[("description", "mine")])
        .await;
    alice
        .upload_id("rotated.jpg", &[("title", "Alice's secret")])
        .await;
    alice
        .upload_id("photo.png", &[("visibility", "public")])
        .await;
    alice.upload_id("photo.webp", &[]).await;
    let before = everything(&server).await;
    assert_eq!(before.0.len(), 5);
    let bytes: usize = before.1.values().map(Vec::len).sum();

    // Full backup, while the server runs.
    let data_dir = server.state.config.data_dir.clone();
    let database_url = server.state.config.database_url.clone();
    let dumps = tempfile::tempdir().unwrap();
    let dump = dumps.path().join("site.pgdump");
    let started = Instant::now();
    let summary = cli("backup", &data_dir, database_url.as_deref(), &backup_url);
    let full = started.elapsed();
    assert_eq!(copied(&summary), 5, "{summary}");
    if let Some(url) = &database_url {
        pg("pg_dump", &["-Fc", "-f", &dump.display().to_string(), url]);
    }
    report(
        &format!("full backup ({backend:?})"),
        format!("5 originals, {bytes} bytes, {:.2} s", full.as_secs_f64()),
    );

    // Lose everything: the server, its originals and its database.
    drop(admin);
    drop(alice);
    drop(server);
    if let Some(url) = &database_url {
        let (base, db) = url.rsplit_once('/').unwrap();
        pg(
            "psql",
            &[
                &format!("{base}/postgres"),
                "-c",
                &format!("DROP DATABASE {db} WITH (FORCE)"),
            ],
        );
    }
    assert!(!data_dir.exists(), "the data directory is gone");

    // Restore into a fresh data directory and database.
    let fresh = tempfile::tempdir().unwrap();
    let mut config = photo_server::Config::for_tests(fresh.path());
    if database_url.is_some() {
        let url = common::postgres::Postgres::shared().fresh_database();
        pg(
            "pg_restore",
            &["--no-owner", "-d", &url, &dump.display().to_string()],
        );
        config.database_url = Some(url);
    }
    let restored = cli(
        "restore",
        fresh.path(),
        config.database_url.as_deref(),
        &backup_url,
    );
    assert!(restored.contains("5 restored"), "{restored}");
    let server = TestServer::start_on(config, fresh, backend).await;
    let after = everything(&server).await;
    assert_eq!(
        after.0, before.0,
        "every photo's metadata, owner and visibility"
    );
    assert_eq!(after.1, before.1, "every original, byte for byte");
    let mut alice = server.client();
    assert_eq!(alice.login("alice", "user-password").await.status(), 200);
    assert_eq!(
        alice.get_json("/rest/photos").await["photos"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let public = server.client().get_json("/rest/photos").await;
    assert_eq!(public["photos"].as_array().unwrap().len(), 2);

    // New photos; the next backup copies only them.
    let admin = server.admin().await;
    admin.upload_id("gray.jpg", &[]).await;
    admin.upload_id("cmyk.jpg", &[]).await;
    let started = Instant::now();
    let summary = cli(
        "backup",
        &server.state.config.data_dir,
        server.state.config.database_url.as_deref(),
        &backup_url,
    );
    let incremental = started.elapsed();
    assert_eq!(copied(&summary), 2, "{summary}");
    assert!(summary.contains("7 originals"), "{summary}");
    let added = fixture("gray.jpg").len() + fixture("cmyk.jpg").len();
    report(
        &format!("incremental backup ({backend:?})"),
        format!(
            "2 of 7 originals copied, {added} bytes, {:.2} s",
            incremental.as_secs_f64()
        ),
    );
}

/// A backup cut short before its manifest resumes without copying again;
/// `--dry-run` copies nothing; a copy damaged in the store is refused at
/// restore (and the command fails), the intact ones are restored. With a
/// `file://` store, whose objects are plain files this test can tamper with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_resume_and_restores_verify_every_checksum() {
    let server = TestServer::start(Backend::Sqlite).await;
    let admin = server.admin().await;
    let first = admin.upload_id("landscape.jpg", &[]).await;
    admin.upload_id("portrait.jpg", &[]).await;
    let store_dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", store_dir.path().display());
    let data_dir = server.state.config.data_dir.clone();

    let dry = cli_raw(&["backup", "--dry-run"], &data_dir, &url);
    assert!(dry.0 && dry.1.contains("2 to copy"), "{}", dry.1);
    assert!(
        !store_dir.path().join("originals").exists(),
        "a dry run copies nothing"
    );

    let summary = cli("backup", &data_dir, None, &url);
    assert_eq!(copied(&summary), 2, "{summary}");
    // As if the run had been cut short before writing its manifest.
    std::fs::remove_dir_all(store_dir.path().join("manifests")).unwrap();
    let summary = cli("backup", &data_dir, None, &url);
    assert_eq!(
        copied(&summary),
        0,
        "resumed without copying again: {summary}"
    );
    assert_eq!(
        std::fs::read_dir(store_dir.path().join("manifests"))
            .unwrap()
            .count(),
        1
    );

    // One copy in the store is damaged.
    let damaged = store_dir
        .path()
        .join("originals")
        .join(&first[..2])
        .join(format!("{first}.jpg"));
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (ok, text) = cli_raw(&["restore"], fresh.path(), &url);
    assert!(!ok, "a damaged copy must fail the restore: {text}");
    assert!(text.contains("does not match the manifest"), "{text}");
    assert!(text.contains("1 restored"), "{text}");
    let originals = fresh.path().join("originals");
    assert!(
        !originals
            .join(&first[..2])
            .join(format!("{first}.jpg"))
            .exists(),
        "the damaged copy is not put in place"
    );
    assert!(
        fresh.path().join("photos.db").exists(),
        "the database was restored"
    );
}

/// `cli` without the S3 settings and without asserting success.
fn cli_raw(args: &[&str], data_dir: &Path, backup_url: &str) -> (bool, String) {
    common::output_of(
        common::photo_server_command()
            .env("PHOTO_DATA_DIR", data_dir)
            .env("PHOTO_BACKUP_URL", backup_url)
            .args(args),
    )
}
