//! PostgreSQL nodes from the installed binaries: a primary made by
//! `initdb`, a streaming standby made by `pg_basebackup -R`, promotion with
//! `pg_ctl promote`. As root they run as the `postgres` user (PostgreSQL
//! refuses to run as root), like the tests' throwaway server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::postgres::{self, run_as};

use crate::procs::Proc;
use crate::{Error, Result};

/// The database and its owner, as CloudNativePG bootstraps them.
pub const DATABASE: &str = "photos";
pub const OWNER: &str = "app";

fn command(program: &str, user: Option<(u32, u32)>) -> Result<Command> {
    postgres::command(program, user).map_err(Error::Setup)
}

/// Runs a short PostgreSQL program to its end, off the async threads.
async fn run(program: &str, mut cmd: Command) -> Result<String> {
    let program = program.to_string();
    let out = tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output())
        .await
        .map_err(|e| Error::Setup(format!("{program}: {e}")))?
        .map_err(Error::io(format!("cannot run {program}")))?;
    if !out.status.success() {
        return Err(Error::Command {
            program,
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `sql` with psql on `port` as the superuser; returns unaligned,
/// tuples-only output (`|` between fields).
pub async fn psql(port: u16, database: &str, sql: &str) -> Result<String> {
    run(
        "psql",
        postgres::psql(port, database, sql).map_err(Error::Setup)?,
    )
    .await
}

/// Whether commits on the primary at `port` wait until a standby has them
/// (`on`, returning once the standby counts) or not: what the operator's CloudNativePG `Cluster` asks for
/// (`synchronous: {method: any, number: 1, dataDurability: preferred}`),
/// switched as that standby comes and goes. Without it, a primary killed
/// right after acknowledging an upload takes that upload's row along, and
/// the promoted standby never had it.
pub async fn replicate_synchronously(port: u16, on: bool) -> Result<()> {
    let names = if on { "ANY 1 (*)" } else { "" };
    psql(
        port,
        "postgres",
        &format!("ALTER SYSTEM SET synchronous_standby_names = '{names}'"),
    )
    .await?;
    psql(port, "postgres", "SELECT pg_reload_conf()").await?;
    if !on {
        return Ok(());
    }
    // The drill's rule on lost uploads depends on this taking hold: wait
    // until the primary counts the standby in its quorum.
    let started = Instant::now();
    let quorum = "select count(*) from pg_stat_replication where sync_state in ('sync', 'quorum')";
    while psql(port, "postgres", quorum).await?.trim() == "0" {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(Error::Timeout {
                what: format!("the standby to replicate synchronously from port {port}"),
                seconds: 30.0,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Whether a server on `port` accepts logins and answers a query.
pub async fn accepts(port: u16) -> bool {
    psql(port, "postgres", "select 1").await.is_ok()
}

/// Waits until `port` accepts logins.
pub async fn wait_accepting(port: u16, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    while !accepts(port).await {
        if started.elapsed() > timeout {
            return Err(Error::Timeout {
                what: format!("PostgreSQL on port {port} to accept connections"),
                seconds: timeout.as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// One PostgreSQL server: its data directory, port and process.
#[derive(Debug)]
pub struct PgNode {
    pub name: String,
    pub port: u16,
    /// The node's own directory (data, socket, nothing else).
    home: PathBuf,
    log: PathBuf,
    user: Option<(u32, u32)>,
    process: Option<Proc>,
}

impl PgNode {
    /// A node that will live in `home` (created) and log to `log`.
    pub fn new(name: &str, port: u16, home: PathBuf, log: PathBuf) -> Result<PgNode> {
        std::fs::create_dir_all(&home).map_err(Error::io(format!("mkdir {}", home.display())))?;
        let user = run_as();
        postgres::chown_tree(&home, user);
        Ok(PgNode {
            name: name.to_string(),
            port,
            home,
            log,
            user,
            process: None,
        })
    }

    fn data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// A fresh primary: `initdb`, started, with the site's database and owner.
    pub async fn init_primary(&mut self) -> Result<()> {
        let cmd = postgres::initdb(&self.data(), self.user).map_err(Error::Setup)?;
        run("initdb", cmd).await?;
        self.start().await?;
        psql(self.port, "postgres", &format!("CREATE ROLE {OWNER} LOGIN")).await?;
        psql(
            self.port,
            "postgres",
            &format!("CREATE DATABASE {DATABASE} OWNER {OWNER}"),
        )
        .await?;
        Ok(())
    }

    /// A fresh standby of the primary on `primary_port`: `pg_basebackup -R`
    /// into an empty data directory, then started (it streams from the primary).
    pub async fn init_standby(&mut self, primary_port: u16) -> Result<()> {
        self.stop_now();
        let data = self.data();
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(Error::io(format!("rm {}", data.display())))?;
        }
        let mut cmd = command("pg_basebackup", self.user)?;
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary_port.to_string(),
            "-U",
            "postgres",
        ])
        .arg("-D")
        .arg(&data)
        .args(["-R", "-X", "stream", "-c", "fast"]);
        run("pg_basebackup", cmd).await?;
        self.start().await
    }

    /// Starts the server and waits until it accepts logins.
    pub async fn start(&mut self) -> Result<()> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(Error::io(format!("open {}", self.log.display())))?;
        let _ = writeln!(
            log,
            "=== drill: starting {} on port {}",
            self.name, self.port
        );
        let mut cmd = postgres::server(&self.data(), self.port, &self.home, self.user)
            .map_err(Error::Setup)?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SIGQUIT: immediate shutdown, the postmaster takes its backends along.
        self.process = Some(Proc::spawn(&self.name, cmd, libc::SIGQUIT)?);
        wait_accepting(self.port, Duration::from_secs(60)).await
    }

    /// A restart's first half: fast shutdown (SIGINT), waiting for the exit.
    pub async fn stop_fast(&mut self) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            process.signal(libc::SIGINT);
            if process.wait_exit(Duration::from_secs(30)).await.is_none() {
                return Err(Error::Timeout {
                    what: format!("{} to shut down", self.name),
                    seconds: 30.0,
                });
            }
        }
        Ok(())
    }

    /// The node dies whole, as with a lost pod or node: SIGKILL to the
    /// postmaster and every backend at once.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_now();
        }
    }

    fn stop_now(&mut self) {
        // Dropping the process stops it (SIGQUIT, then SIGKILL).
        self.process = None;
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// Promotes this standby to primary and waits for the promotion.
    pub async fn promote(&self) -> Result<()> {
        let mut cmd = command("pg_ctl", self.user)?;
        cmd.args(["promote", "-w", "-t", "60", "-D"])
            .arg(self.data());
        run("pg_ctl promote", cmd).await?;
        Ok(())
    }
}
