//! `photo-server orphans`: originals without a row (a crash between an
//! upload's rename and its commit) are listed and, when asked, moved to a
//! quarantine directory; nothing is ever deleted, young files are left to
//! uploads still committing, and a database that looks wrong is refused.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{Backend, TestServer, fixture};

both_backends!(orphans_are_listed_and_quarantined_and_nothing_else_moves);

/// Runs `photo-server orphans` against the test server's database and store.
fn orphans(server: &TestServer, database_url: &str, args: &[&str]) -> (bool, String) {
    let config = &server.state.config;
    common::output_of(
        common::photo_server_command()
            .env("DATABASE_URL", database_url)
            .env("PHOTO_DATA_DIR", &config.data_dir)
            .env("PHOTO_ORIGINALS_DIR", config.originals_dir())
            .arg("orphans")
            .args(args),
    )
}

fn database_url(server: &TestServer) -> String {
    match &server.state.config.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            server.state.config.data_dir.join("photos.db").display()
        ),
    }
}

/// Puts a file where an original with `id` would be, as old as `age`.
fn plant(originals: &Path, id: &str, age: Duration) -> PathBuf {
    let path = originals.join(&id[..2]).join(format!("{id}.jpg"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, fixture("landscape.jpg")).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
    path
}

fn quarantined(originals: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(batches) = std::fs::read_dir(originals.join(".quarantine")) else {
        return found;
    };
    for batch in batches.flatten() {
        for f in std::fs::read_dir(batch.path()).unwrap().flatten() {
            found.push(f.path());
        }
    }
    found
}

async fn orphans_are_listed_and_quarantined_and_nothing_else_moves(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin().await;
    let kept = admin
        .upload_id("landscape.jpg", &[("visibility", "public")])
        .await;
    let lost = admin.upload_id("portrait.jpg", &[]).await;
    let originals = server.state.config.originals_dir();
    // A crash left an original without its row, an upload is committing
    // right now, and one row lost its file.
    let orphan = plant(
        &originals,
        "zz000000000000000001",
        Duration::from_secs(7200),
    );
    let young = plant(&originals, "zz000000000000000002", Duration::ZERO);
    std::fs::remove_file(
        server
            .state
            .originals
            .path(&lost, photo_server::render::Format::Jpeg),
    )
    .unwrap();
    let url = database_url(&server);

    let (ok, report) = orphans(&server, &url, &[]);
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("orphan  {}", orphan.display())),
        "{report}"
    );
    assert!(!report.contains("zz000000000000000002.jpg  "), "{report}");
    assert!(report.contains(&format!("{lost}.jpg")), "{report}");
    assert!(
        report.contains("1 orphan(s), 1 row(s) without an original"),
        "{report}"
    );
    assert!(report.contains("younger than"), "{report}");
    assert!(orphan.exists(), "listing moves nothing");

    let (ok, report) = orphans(&server, &url, &["--quarantine"]);
    assert!(ok, "{report}");
    assert!(!orphan.exists());
    let moved = quarantined(&originals);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(std::fs::read(&moved[0]).unwrap(), fixture("landscape.jpg"));
    assert!(young.exists(), "a young original is left to its upload");
    let photo = admin.get(&format!("/img/orig/{kept}.jpg")).await;
    assert_eq!(photo.status(), 200, "photos with rows are untouched");

    // Pointed at an empty database, every original looks orphaned: refused.
    let empty = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            server.dir.path().join("empty.db").display()
        ),
        Backend::Postgres => common::postgres::Postgres::shared().fresh_database(),
    };
    let (ok, report) = orphans(&server, &empty, &["--min-age", "0s", "--quarantine"]);
    assert!(!ok, "{report}");
    assert!(report.contains("refusing to quarantine"), "{report}");
    assert_eq!(quarantined(&originals).len(), 1, "nothing more was moved");
    assert!(
        originals
            .join(&kept[..2])
            .join(format!("{kept}.jpg"))
            .exists()
    );
}
