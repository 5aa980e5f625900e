//! A throwaway PostgreSQL server for tests, started from the installed
//! binaries: `initdb` into a temp dir, `postgres` on a free port and a private
//! socket directory, one fresh database per test. The server is a child of a
//! thread that lives as long as the test process and is started with
//! PR_SET_PDEATHSIG, so it goes away with the process however the run ends.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use harness::postgres::{self, run_as};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
}

fn command(program: &str, user: Option<(u32, u32)>) -> Command {
    postgres::command(program, user).unwrap_or_else(|e| panic!("{e}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Postgres {
    /// A server of its own that accepts TLS with this certificate and key
    /// (PEM files), besides plain connections.
    pub fn start_tls(cert: &Path, key: &Path) -> Postgres {
        Postgres::start_with(Some((cert, key)))
    }

    fn start() -> Postgres {
        Postgres::start_with(None)
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> Postgres {
        let user = run_as();
        let dir = tempfile::Builder::new()
            .prefix("photo-pg-")
            .tempdir()
            .expect("temp dir");
        postgres::chown_tree(dir.path(), user);
        let data = dir.path().join("data");
        let out = postgres::initdb(&data, user)
            .unwrap_or_else(|e| panic!("{e}"))
            .arg("--no-sync")
            .output()
            .expect("initdb runs (PostgreSQL 15 binaries must be installed)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let socket_dir = dir.path().to_path_buf();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("log file");
        if let Some((uid, gid)) = user {
            let _ = std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(uid), Some(gid));
        }
        let mut cmd =
            postgres::server(&data, port, &socket_dir, user).unwrap_or_else(|e| panic!("{e}"));
        cmd.args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((cert, key)) = tls {
            // PostgreSQL wants its key readable by itself only.
            use std::os::unix::fs::PermissionsExt;
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let target = data.join(to);
                std::fs::copy(from, &target).expect("copy TLS file");
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
                if let Some((uid, gid)) = user {
                    let _ = std::os::unix::fs::chown(&target, Some(uid), Some(gid));
                }
            }
            cmd.args(["-c", "ssl=on"]);
        }
        super::spawn_tied_to_process(cmd).expect("postgres starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Accepting TCP is not quite accepting logins; wait for that too.
        while !postgres::psql(port, "postgres", "select 1")
            .unwrap_or_else(|e| panic!("{e}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres never accepted logins"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Postgres { port, _dir: dir }
    }

    /// The process-wide server.
    pub fn shared() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(Postgres::start)
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("t_{}", photo_server::ids::new_id());
        self.create_database(&name);
        self.url(&name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` (which may not exist yet).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    pub fn create_database(&self, name: &str) {
        let status = postgres::psql(self.port, "postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("{e}"))
            .status()
            .expect("psql runs");
        assert!(status.success(), "CREATE DATABASE failed");
    }
}
