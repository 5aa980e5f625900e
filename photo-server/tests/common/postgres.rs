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

fn bin(name: &str) -> PathBuf {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
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
    fn start() -> Postgres {
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
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // signal this child when the spawning thread exits.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        // The spawning thread must outlive every test: it parks forever.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = cmd.spawn();
            let _ = tx.send(child.map(|c| c.id()));
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("spawner thread").expect("postgres starts");
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
