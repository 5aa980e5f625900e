//! HAProxy in front of the replicas, standing in for the Service and
//! ingress-nginx, and for CloudNativePG's `-rw` Service in front of the
//! database.
//!
//! - **Web**: round robin over the replicas, health-checked on `/readyz`
//!   of each metrics port every 500 ms (down after two failures, so a
//!   SIGTERMed replica, which fails readiness for `PHOTO_SHUTDOWN_DELAY`
//!   first, is out before it closes). Like ingress-nginx's default
//!   `proxy_next_upstream error timeout` with 3 tries, a request is retried
//!   on another replica when the connection fails, and a GET or HEAD also
//!   when the replica closed without answering or timed out; a POST is
//!   never resent once sent. A replica whose connection fails is marked
//!   down at once (a retry never goes back to it) until its checks pass.
//! - **Database**: a TCP frontend with the primary enabled and the standby
//!   in maintenance; failing over moves it through the admin socket.
//!
//! Each response carries `x-drill-server` (the replica) and
//! `x-drill-retries` (HAProxy's retries for it), for the evidence.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procs::Proc;
use crate::{Error, Result};

/// The web backend's and the database frontend's names in the config.
pub const WEB: &str = "photo";
pub const DB: &str = "db";

/// A replica as HAProxy sees it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub port: u16,
    pub ops_port: u16,
}

#[derive(Debug)]
pub struct Haproxy {
    socket: PathBuf,
    process: Option<Proc>,
}

/// The configuration file's text.
pub fn config(
    socket: &Path,
    web_port: u16,
    db_port: u16,
    replicas: &[Backend],
    databases: &[(String, u16)],
) -> String {
    let mut servers = String::new();
    for r in replicas {
        servers.push_str(&format!(
            "    server {} 127.0.0.1:{} check port {}\n",
            r.name, r.port, r.ops_port
        ));
    }
    let mut db_servers = String::new();
    for (i, (name, port)) in databases.iter().enumerate() {
        let state = if i == 0 { "" } else { " disabled" };
        db_servers.push_str(&format!("    server {name} 127.0.0.1:{port}{state}\n"));
    }
    format!(
        "# Written by the drill harness.
global
    maxconn 5000
    stats socket {socket} mode 600 level admin
    log stdout format short local0 info

defaults
    log global
    mode http
    option httplog
    # Only abnormal requests are logged: errors, retries, redispatches.
    option dontlog-normal
    timeout connect 1s
    timeout client 30s
    timeout server 20s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout check 1s
    timeout queue 5s

frontend web
    bind 127.0.0.1:{web_port}
    default_backend {WEB}

backend {WEB}
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    option forwardfor
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    http-request disable-l7-retry unless METH_GET
    http-response set-header x-drill-server %s
    http-response set-header x-drill-retries %rc
    # A connection refused takes the replica out at once (like nginx trying
    # the next upstream, never the failed one again), until checks pass.
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
{servers}
listen {DB}
    mode tcp
    option tcplog
    bind 127.0.0.1:{db_port}
    timeout client 1h
    timeout server 1h
{db_servers}",
        socket = socket.display(),
    )
}

impl Haproxy {
    /// Writes the config to `dir/haproxy.cfg` and starts HAProxy in the
    /// foreground, logging to `log`.
    pub fn start(dir: &Path, config_text: &str, log: &Path) -> Result<Haproxy> {
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config_text).map_err(Error::io(format!("write {}", cfg.display())))?;
        let socket = dir.join("haproxy.sock");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(Error::io(format!("open {}", log.display())))?;
        let mut cmd = Command::new(program()?);
        cmd.arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(Error::io("log file"))?)
            .stderr(log);
        let process = Proc::spawn("haproxy", cmd, libc::SIGKILL)?;
        Ok(Haproxy {
            socket,
            process: Some(process),
        })
    }

    /// Sends one command to the admin socket and returns the answer.
    pub async fn command(&self, line: &str) -> Result<String> {
        let mut stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(Error::io("connect to the HAProxy admin socket"))?;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(Error::io("write to the HAProxy admin socket"))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .map_err(Error::io("read from the HAProxy admin socket"))?;
        Ok(answer)
    }

    /// Waits until the admin socket answers.
    pub async fn wait_started(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            if self.command("show info").await.is_ok() {
                return Ok(());
            }
            if let Some(p) = self.process.as_mut()
                && !p.is_running()
            {
                return Err(Error::Setup("haproxy exited at start (see its log)".into()));
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(Error::Timeout {
                    what: "HAProxy's admin socket".into(),
                    seconds: 10.0,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status of each server of `backend` (`UP`, `DOWN`, `UP 1/2`,
    /// `MAINT`, `no check`, ...), from `show stat`.
    pub async fn statuses(&self, backend: &str) -> Result<HashMap<String, String>> {
        let csv = self.command("show stat").await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(px), Some(sv), Some(status)) =
            (column("pxname"), column("svname"), column("status"))
        else {
            return Err(Error::Setup(format!(
                "unexpected `show stat` answer: {csv}"
            )));
        };
        let mut out = HashMap::new();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.get(px) == Some(&backend)
                && let (Some(name), Some(state)) = (fields.get(sv), fields.get(status))
                && *name != "BACKEND"
                && *name != "FRONTEND"
            {
                out.insert(name.to_string(), state.to_string());
            }
        }
        Ok(out)
    }

    /// Waits until `server` of the web backend is `UP` (or, with
    /// `up == false`, anything but up).
    pub async fn wait_server(&self, server: &str, up: bool, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let statuses = self.statuses(WEB).await?;
            let is_up = statuses.get(server).is_some_and(|s| s == "UP");
            if is_up == up {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "HAProxy to see {server} {} (status: {:?})",
                        if up { "UP" } else { "DOWN" },
                        statuses.get(server)
                    ),
                    seconds: timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Points the database address at `to` instead of `from` and cuts the
    /// sessions still open to `from`, like the `-rw` Service's selector
    /// moving to the promoted instance.
    pub async fn move_database(&self, from: &str, to: &str) -> Result<()> {
        for line in [
            format!("set server {DB}/{to} state ready"),
            format!("set server {DB}/{from} state maint"),
            format!("shutdown sessions server {DB}/{from}"),
        ] {
            let answer = self.command(&line).await?;
            if !answer.trim().is_empty() {
                return Err(Error::Setup(format!("haproxy `{line}`: {}", answer.trim())));
            }
        }
        Ok(())
    }
}

/// The haproxy program: on PATH, or Debian's /usr/sbin.
pub fn program() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        Error::Setup(
            "haproxy is not installed: `apt-get install haproxy` (scripts/drill.sh does)".into(),
        )
    })
}
