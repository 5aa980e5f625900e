//! A throwaway PostgreSQL server for tests, started from the installed
//! binaries: `initdb` into a temp dir, `postgres` on a free port and a private
//! socket directory, one fresh database per test. The server is a child of a
//! thread that lives as long as the test process and is started with
//! PR_SET_PDEATHSIG, so it goes away with the process however the run ends.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Postgres {
    port: u16,
    _dir: tempfile::TempDir,
}

/// The uid/gid to run PostgreSQL as: itself refuses to run as root.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    })
}

/// A PostgreSQL program: from PATH, or else from the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian keeps `initdb` and `postgres`
/// off PATH).
pub fn bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((major, p))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!("PostgreSQL's `{name}` is neither on PATH nor in /usr/lib/postgresql/*/bin: install PostgreSQL (scripts/test-all.sh does)")
    })
}

fn command(program: &str, user: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(bin(program));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C");
    cmd
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
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
        if let Some((uid, gid)) = user {
            chown_tree(dir.path(), uid, gid);
        }
        let data = dir.path().join("data");
        let out = command("initdb", user)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
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
        let mut cmd = command("postgres", user);
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&socket_dir)
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
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
        while !command("psql", None)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-c",
                "select 1",
            ])
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
        let status = command("psql", None)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-q",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .expect("psql runs");
        assert!(status.success(), "CREATE DATABASE failed");
    }
}
