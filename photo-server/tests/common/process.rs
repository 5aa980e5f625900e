//! The real `photo-server` binary as a child process, for tests that
//! measure what only a separate process shows: its peak memory, its open
//! file descriptors, its log lines, its exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "admin-password";

pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    /// `/metrics`, `/healthz` and `/readyz` (`PHOTO_METRICS_LISTEN`).
    pub ops_url: String,
    pub dir: tempfile::TempDir,
    /// What the process wrote to stdout (its logs) and stderr.
    pub output: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl ServerProcess {
    /// Starts the binary on free ports with a fresh data directory, the
    /// environment given on top, and waits until it is ready.
    pub async fn start(env: &[(&str, &str)]) -> ServerProcess {
        let server = ServerProcess::spawn(env);
        server.wait_ready().await;
        server
    }

    /// Starts the binary without waiting for it.
    pub fn spawn(env: &[(&str, &str)]) -> ServerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, ops) = (free_port(), free_port());
        let output = dir.path().join("output.log");
        let log = std::fs::File::create(&output).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_photo-server"));
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PHOTO_LISTEN", format!("127.0.0.1:{port}"))
            .env("PHOTO_METRICS_LISTEN", format!("127.0.0.1:{ops}"))
            .env("PHOTO_ADMIN_PASSWORD", PASSWORD)
            .env("PHOTO_SESSION_KEY", "test-session-key-0123456789abcdef")
            .env("PHOTO_SHUTDOWN_DELAY", "0s")
            .env("RUST_LOG", "info")
            // Logs go to stdout; both streams are kept.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("photo-server starts");
        ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            ops_url: format!("http://127.0.0.1:{ops}"),
            dir,
            output,
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to 20 s) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.ops_url)).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "never ready: {}",
                std::fs::read_to_string(&self.output).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn status_field(&self, name: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc status"))
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_field("VmHWM:") * 1024
    }

    /// Open file descriptors now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server logged (and printed) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// The sum of the samples of metric `name` (from the metrics listener).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.ops_url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        harness::metrics::sum(&text, name)
    }

    /// A client logged in as the admin.
    pub async fn admin(&self) -> super::Client {
        let mut client = super::Client::new(&self.url);
        client.login("admin", PASSWORD).await;
        client
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends a figure to the file named by `HOSTILE_REPORT`, when set, for
/// `bench/hostile.sh` to print.
pub fn report(figure: &str, value: String) {
    eprintln!("{figure}: {value}");
    if let Ok(path) = std::env::var("HOSTILE_REPORT") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "| {figure} | {value} |");
        }
    }
}
