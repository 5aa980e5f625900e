//! Test harness: a real photo-server on a loopback port, backed by the
//! embedded SQLite default or a throwaway PostgreSQL, and an HTTP client with
//! a cookie jar. The suites run every HTTP test against both backends.
#![allow(dead_code)]

pub mod images;
pub mod postgres;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use photo_server::{Config, SharedState};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "admin-password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub url: String,
    pub state: SharedState,
    pub dir: Arc<tempfile::TempDir>,
    pub backend: Backend,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = Config::for_tests(dir.path());
        config.database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(postgres::Postgres::shared().fresh_database()),
        };
        adjust(&mut config);
        TestServer::launch(config, dir, backend).await
    }

    /// A server on a configuration of the caller's (its directories live in
    /// `dir`, which the server keeps alive).
    pub async fn start_on(config: Config, dir: tempfile::TempDir, backend: Backend) -> TestServer {
        TestServer::launch(config, Arc::new(dir), backend).await
    }

    async fn launch(config: Config, dir: Arc<tempfile::TempDir>, backend: Backend) -> TestServer {
        let state = photo_server::start(config).await.expect("server starts");
        tokio::time::timeout(std::time::Duration::from_secs(30), state.db.ready())
            .await
            .expect("the database becomes ready");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let serve_state = state.clone();
        let listeners = photo_server::Listeners {
            public: listener,
            ops: None,
        };
        let task = tokio::spawn(async move {
            let _ = photo_server::serve(serve_state, listeners).await;
        });
        TestServer {
            url,
            state,
            dir,
            backend,
            task,
        }
    }

    /// A second replica of the same site: same database, originals and
    /// session key, its own cache, as another pod would be.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = self.state.config.clone();
        config.database_url = Some(match &config.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                config.data_dir.join("photos.db").display()
            ),
        });
        config.originals_dir = Some(config.originals_dir());
        config.cache_dir = Some(
            self.dir
                .path()
                .join(format!("cache-{}", photo_server::ids::new_id())),
        );
        adjust(&mut config);
        TestServer::launch(config, self.dir.clone(), self.backend).await
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// A client logged in as the admin.
    pub async fn admin(&self) -> Client {
        let mut c = self.client();
        c.login("admin", ADMIN_PASSWORD).await;
        c
    }

    /// Creates a user directly in the database (there is no public sign-up).
    pub async fn create_user(&self, name: &str, password: &str) {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || {
            photo_server::auth::password::hash_blocking(&password)
        })
        .await
        .expect("hash task")
        .expect("hash");
        self.state
            .db
            .create_user(name, &hash, false)
            .await
            .expect("create user")
            .expect("new user");
    }

    /// A logged-in client for a new ordinary user.
    pub async fn user(&self, name: &str) -> Client {
        self.create_user(name, "user-password").await;
        let mut c = self.client();
        c.login(name, "user-password").await;
        c
    }

    /// The value of one metric sample line, e.g. `photo_cache_hits_total`.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        harness::metrics::sum(&text, prefix)
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub csrf: String,
    /// The raw session cookie value from the last login.
    pub session: Option<String>,
}

impl Client {
    /// A client with a cookie jar that does not follow redirects.
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_string(),
            csrf: String::new(),
            session: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&mut self, username: &str, password: &str) -> reqwest::Response {
        let response = self
            .http
            .post(self.url("/rest/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login request");
        if response.status() == 200 {
            self.session = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("photo_session="))
                .and_then(|v| v.split(';').next())
                .map(str::to_string);
            let body: Value = response.json().await.expect("login json");
            self.csrf = body["csrf"].as_str().expect("csrf").to_string();
            // Return a fresh, equivalent response for callers that inspect it.
            return self.get("/rest/session").await;
        }
        response
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("json")
    }

    /// Uploads files (name, bytes) with extra text fields, with the CSRF header.
    pub async fn upload(
        &self,
        files: &[(&str, Vec<u8>)],
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        self.http
            .post(self.url("/rest/edit"))
            .header("x-csrf-token", &self.csrf)
            .multipart(form)
            .send()
            .await
            .expect("upload")
    }

    /// Uploads one fixture and returns the new photo's JSON.
    pub async fn upload_ok(&self, fixture_name: &str, fields: &[(&str, &str)]) -> Value {
        let r = self
            .upload(&[(fixture_name, fixture(fixture_name))], fields)
            .await;
        let status = r.status();
        let body: Value = r.json().await.expect("upload json");
        assert_eq!(status, 201, "upload of {fixture_name}: {body}");
        body["photos"][0].clone()
    }

    /// Uploads one fixture and returns the new photo's id.
    pub async fn upload_id(&self, fixture_name: &str, fields: &[(&str, &str)]) -> String {
        let photo = self.upload_ok(fixture_name, fields).await;
        photo["id"].as_str().expect("id").to_string()
    }

    pub async fn patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
            .expect("DELETE")
    }
}

/// Runs each named async test function against SQLite and PostgreSQL:
/// `both_backends!(name, ...)` makes `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Starts a helper server that lives as long as the test process and no
/// longer, however the run ends (`harness::process`: SIGTERM when the
/// process goes), so a shared server is neither killed under a running test
/// nor left behind.
pub fn spawn_tied_to_process(cmd: std::process::Command) -> std::io::Result<u32> {
    harness::process::spawn_tied(cmd, libc::SIGTERM).map(|child| child.id())
}

/// The photo-server binary as a one-off command (`backup`, `restore`,
/// `orphans`): a clean environment but PATH, warnings only in the log.
pub fn photo_server_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_photo-server"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd` to its end: whether it succeeded, and its stdout and stderr.
pub fn output_of(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().expect("run photo-server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
