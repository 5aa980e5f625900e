//! The local stack, shaped like what the operator creates:
//!
//! ```text
//!   drill traffic ──▶ HAProxy :web ──▶ photo-server a1, b1, a2 (+ spare b2)
//!                                       each: own cache dir, metrics port
//!                                       all: one originals dir (a tmpfs as root)
//!                                           │
//!                        HAProxy :db (the "-rw" address) ──▶ pg0 (primary)
//!                                                            pg1 (streaming standby)
//! ```
//!
//! Replicas alternate between zones `a` and `b`. One slot more than the
//! replica count is configured in HAProxy, for a replica started during a
//! drill (a scale-up). Everything lives under one directory in the system
//! temp dir; [`Stack`]'s `Drop` stops every process, unmounts the tmpfs and
//! removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::haproxy::{self, Haproxy};
use crate::postgres::{self, PgNode};
use crate::procs::Proc;
use crate::{Error, Result};

/// Shared by every replica, like the site's Secret.
pub const ADMIN_PASSWORD: &str = "drill-admin-password";
const SESSION_KEY: &str = "drill-session-key-0123456789abcdef0123456789";
/// Prefix of the stack's directory in the temp dir.
const DIR_PREFIX: &str = "photostack-drill-";

#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Replicas serving (the spare slot comes on top).
    pub replicas: usize,
    pub server_bin: PathBuf,
    /// Where every process's log goes.
    pub logs: PathBuf,
    /// Size of the originals tmpfs; `None`: a plain directory.
    pub originals_tmpfs: Option<u64>,
    /// `PHOTO_SHUTDOWN_DELAY` of the replicas.
    pub shutdown_delay: Duration,
    /// Leave the stack's directory behind (for a post-mortem).
    pub keep: bool,
}

/// One photo-server slot.
#[derive(Debug)]
pub struct Replica {
    pub name: String,
    pub zone: char,
    pub port: u16,
    pub ops_port: u16,
    home: PathBuf,
    pub log: PathBuf,
    process: Option<Proc>,
    /// How many times it was started.
    pub starts: u32,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ops_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ops_port)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.home.join("cache")
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }
}

#[derive(Debug)]
pub struct Stack {
    pub config: StackConfig,
    root: PathBuf,
    pub originals: PathBuf,
    /// Whether `originals` is a tmpfs we mounted.
    pub tmpfs: Option<u64>,
    pub pg: Vec<PgNode>,
    /// Index in `pg` of the node behind the database address.
    pub primary: usize,
    pub haproxy: Option<Haproxy>,
    /// `config.replicas` serving slots, then the spare.
    pub replicas: Vec<Replica>,
    pub web_port: u16,
    pub db_port: u16,
    http: reqwest::Client,
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    // All bound at once so no two are the same.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("find a free port"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("find a free port"))
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io(format!("mkdir {}", path.display())))
}

/// Runs `mount`/`umount` with `args`; the error carries its message.
fn mount_command(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("run {program}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            program: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Bytes used on the filesystem holding `path`.
pub fn used_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Setup(format!("bad path {}", path.display())))?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(Error::io(format!("statvfs {}", path.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok((stat.f_blocks - stat.f_bfree) * stat.f_frsize)
}

/// Unmounts what an earlier drill that died left mounted, and removes its
/// directory (only directories whose drill process is gone).
fn sweep_leftovers(temp: &Path) {
    let prefix = temp.join(DIR_PREFIX);
    let prefix = prefix.to_string_lossy();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let stale = |dir: &str| {
        dir.strip_prefix(&*prefix)
            .and_then(|rest| rest.split('/').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    for line in mounts.lines() {
        if let Some(point) = line.split(' ').nth(1)
            && stale(point)
        {
            tracing::info!(point, "unmounting a tmpfs left by an earlier drill");
            let _ = mount_command("umount", &["-l", point]);
        }
    }
    for entry in std::fs::read_dir(temp).into_iter().flatten().flatten() {
        let path = entry.path();
        if stale(&path.to_string_lossy()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Stack {
    /// Builds and starts the whole stack, and waits until every replica is
    /// ready and up in the load balancer.
    pub async fn start(config: StackConfig) -> Result<Stack> {
        let temp = std::env::temp_dir();
        sweep_leftovers(&temp);
        let root = temp.join(format!("{DIR_PREFIX}{}", std::process::id()));
        mkdir(&root)?;
        mkdir(&config.logs)?;
        // PostgreSQL runs as another user and must reach its directories.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io("chmod the stack directory"))?;

        let n = config.replicas;
        let ports = free_ports(2 * (n + 1) + 4)?;
        let (web_port, db_port) = (ports[0], ports[1]);
        let pg_ports = [ports[2], ports[3]];
        let replicas: Vec<Replica> = (0..=n)
            .map(|i| {
                let zone = if i % 2 == 0 { 'a' } else { 'b' };
                let name = format!("{zone}{}", i / 2 + 1);
                let home = root.join("replicas").join(&name);
                Replica {
                    log: config.logs.join(format!("{name}.log")),
                    name,
                    zone,
                    port: ports[4 + 2 * i],
                    ops_port: ports[5 + 2 * i],
                    home,
                    process: None,
                    starts: 0,
                }
            })
            .collect();

        let originals = root.join("originals");
        mkdir(&originals)?;
        let mut stack = Stack {
            tmpfs: None,
            originals,
            pg: Vec::new(),
            primary: 0,
            haproxy: None,
            replicas,
            web_port,
            db_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(Error::http("client"))?,
            root,
            config,
        };
        if let Some(size) = stack.config.originals_tmpfs {
            let dir = stack.originals.to_string_lossy().into_owned();
            let options = format!("size={size},mode=0755");
            match mount_command("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &dir]) {
                Ok(()) => stack.tmpfs = Some(size),
                Err(e) => println!(
                    "drill: the originals volume is a plain directory, not a tmpfs ({e}); the volume drills will be skipped"
                ),
            }
        }

        tracing::info!("starting PostgreSQL: primary and streaming standby");
        for (i, port) in pg_ports.into_iter().enumerate() {
            let name = format!("pg{i}");
            let log = stack.config.logs.join(format!("{name}.log"));
            stack
                .pg
                .push(PgNode::new(&name, port, stack.root.join(&name), log)?);
        }
        stack.pg[0].init_primary().await?;
        stack.pg[1].init_standby(pg_ports[0]).await?;
        postgres::replicate_synchronously(pg_ports[0], true).await?;

        tracing::info!("starting HAProxy");
        let backends: Vec<haproxy::Backend> = stack
            .replicas
            .iter()
            .map(|r| haproxy::Backend {
                name: r.name.clone(),
                port: r.port,
                ops_port: r.ops_port,
            })
            .collect();
        let databases: Vec<(String, u16)> =
            stack.pg.iter().map(|p| (p.name.clone(), p.port)).collect();
        let text = haproxy::config(
            &stack.root.join("haproxy.sock"),
            web_port,
            db_port,
            &backends,
            &databases,
        );
        let mut lb = Haproxy::start(&stack.root, &text, &stack.config.logs.join("haproxy.log"))?;
        lb.wait_started().await?;
        stack.haproxy = Some(lb);

        tracing::info!(replicas = n, "starting photo-server replicas");
        for i in 0..n {
            stack.start_replica(i, true)?;
        }
        for i in 0..n {
            stack.wait_ready(i, Duration::from_secs(60)).await?;
        }
        for i in 0..n {
            stack.wait_lb(i, true, Duration::from_secs(20)).await?;
        }
        Ok(stack)
    }

    pub fn lb(&self) -> &Haproxy {
        self.haproxy
            .as_ref()
            .expect("haproxy runs while the stack lives")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// The spare slot's index.
    pub fn spare(&self) -> usize {
        self.config.replicas
    }

    /// The serving slots (not the spare).
    pub fn serving(&self) -> std::ops::Range<usize> {
        0..self.config.replicas
    }

    pub fn database_url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            postgres::OWNER,
            self.db_port,
            postgres::DATABASE
        )
    }

    /// Starts replica `i` (a new pod when `fresh_cache`: its cache
    /// directory starts empty; a restarted container keeps it).
    pub fn start_replica(&mut self, i: usize, fresh_cache: bool) -> Result<()> {
        use std::io::Write;
        let database_url = self.database_url();
        let originals = self.originals.clone();
        let server_bin = self.config.server_bin.clone();
        let shutdown_delay = format!("{}ms", self.config.shutdown_delay.as_millis());
        let r = &mut self.replicas[i];
        if r.is_running() {
            return Err(Error::Setup(format!("{} is already running", r.name)));
        }
        if fresh_cache && r.cache_dir().exists() {
            std::fs::remove_dir_all(r.cache_dir())
                .map_err(Error::io(format!("rm {}", r.cache_dir().display())))?;
        }
        mkdir(&r.home.join("data"))?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&r.log)
            .map_err(Error::io(format!("open {}", r.log.display())))?;
        r.starts += 1;
        let _ = writeln!(
            log,
            "=== drill: start #{} of {} (zone {}){}",
            r.starts,
            r.name,
            r.zone,
            if fresh_cache { ", empty cache" } else { "" }
        );
        let mut cmd = Command::new(&server_bin);
        cmd.current_dir(&r.home)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PHOTO_LISTEN", format!("127.0.0.1:{}", r.port))
            .env("PHOTO_METRICS_LISTEN", format!("127.0.0.1:{}", r.ops_port))
            .env("DATABASE_URL", database_url)
            .env("PHOTO_DATA_DIR", r.home.join("data"))
            .env("PHOTO_ORIGINALS_DIR", originals)
            .env("PHOTO_CACHE_DIR", r.cache_dir())
            .env("PHOTO_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("PHOTO_SESSION_KEY", SESSION_KEY)
            .env("PHOTO_TRUSTED_PROXIES", "127.0.0.0/8")
            .env("PHOTO_SHUTDOWN_DELAY", shutdown_delay)
            .env("PHOTO_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(Error::io("log file"))?)
            .stderr(log);
        r.process = Some(Proc::spawn(&r.name, cmd, libc::SIGKILL)?);
        Ok(())
    }

    /// SIGKILL to replica `i`, reaped.
    pub fn kill_replica(&mut self, i: usize) {
        if let Some(mut p) = self.replicas[i].process.take() {
            p.kill_now();
        }
    }

    /// SIGTERM to replica `i`; waits for its exit. Returns how it exited
    /// (`None` if it had to be killed after `timeout`).
    pub async fn terminate_replica(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut p = self.replicas[i].process.take()?;
        p.signal(libc::SIGTERM);
        let status = p.wait_exit(timeout).await;
        if status.is_none() {
            p.kill_now();
        }
        status
    }

    /// `/readyz` of replica `i`: its status and body.
    pub async fn readyz(&self, i: usize) -> Option<(u16, String)> {
        let r = self
            .http
            .get(format!("{}/readyz", self.replicas[i].ops_url()))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.unwrap_or_default()))
    }

    /// Waits until replica `i` answers `/readyz` with 200.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            let answer = self.readyz(i).await;
            if answer.as_ref().is_some_and(|(s, _)| *s == 200) {
                return Ok(());
            }
            if !self.replicas[i].is_running() {
                return Err(Error::Setup(format!(
                    "{} exited before it was ready (see {})",
                    self.replicas[i].name,
                    self.replicas[i].log.display()
                )));
            }
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "{} to be ready (last /readyz: {answer:?})",
                        self.replicas[i].name
                    ),
                    seconds: timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until HAProxy sees replica `i` up (or down).
    pub async fn wait_lb(&self, i: usize, up: bool, timeout: Duration) -> Result<()> {
        self.lb()
            .wait_server(&self.replicas[i].name, up, timeout)
            .await
    }

    /// The node behind the database address.
    pub fn primary(&mut self) -> &mut PgNode {
        let i = self.primary;
        &mut self.pg[i]
    }

    pub fn standby_index(&self) -> usize {
        1 - self.primary
    }

    /// Whether the database address accepts logins.
    pub async fn database_accepts(&self) -> bool {
        postgres::accepts(self.db_port).await
    }

    /// Promotes the standby and moves the database address to it. The old
    /// primary's node is left stopped until [`Stack::rebuild_standby`].
    pub async fn promote_standby(&mut self) -> Result<()> {
        let standby = self.standby_index();
        self.pg[standby].promote().await?;
        // No standby is left to wait for until the old primary is rebuilt.
        postgres::replicate_synchronously(self.pg[standby].port, false).await
    }

    pub async fn move_database_address(&mut self) -> Result<()> {
        let (old, new) = (self.primary, self.standby_index());
        self.lb()
            .move_database(&self.pg[old].name, &self.pg[new].name)
            .await?;
        self.primary = new;
        Ok(())
    }

    /// Makes the node that is not primary a fresh standby of the primary
    /// (as CloudNativePG re-clones a failed instance).
    pub async fn rebuild_standby(&mut self) -> Result<()> {
        let primary_port = self.pg[self.primary].port;
        let standby = self.standby_index();
        self.pg[standby].init_standby(primary_port).await?;
        postgres::replicate_synchronously(primary_port, true).await
    }

    /// Fills the originals tmpfs: shrinks it to what is used plus `spare` bytes.
    pub fn fill_volume(&self, spare: u64) -> Result<()> {
        let dir = self.originals.to_string_lossy().into_owned();
        let mut last = None;
        for _ in 0..20 {
            let size = used_bytes(&self.originals)? + spare;
            match mount_command("mount", &["-o", &format!("remount,size={size}"), &dir]) {
                Ok(()) => return Ok(()),
                // Something was written meanwhile: measure again.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Setup("cannot shrink the tmpfs".into())))
    }

    /// Gives the originals tmpfs its size back.
    pub fn restore_volume(&self) -> Result<()> {
        let size = self.tmpfs.ok_or_else(|| Error::Setup("no tmpfs".into()))?;
        let dir = self.originals.to_string_lossy().into_owned();
        mount_command("mount", &["-o", &format!("remount,size={size}"), &dir])
    }

    /// Remounts the originals read-only (or back read-write). A tmpfs with a
    /// file open for writing (an upload being spooled) refuses to become
    /// read-only, so this retries for a while.
    pub async fn set_volume_read_only(&self, read_only: bool) -> Result<()> {
        let dir = self.originals.to_string_lossy().into_owned();
        let option = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let started = Instant::now();
        loop {
            match mount_command("mount", &["-o", option, &dir]) {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(10) => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Removes every serving replica's cache directory.
    pub fn remove_caches(&self) -> Result<()> {
        // The servers keep writing renditions meanwhile: try until it is gone.
        for r in &self.replicas[self.serving()] {
            let dir = r.cache_dir();
            let mut attempts = 0;
            while dir.exists() {
                attempts += 1;
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && attempts > 50
                {
                    return Err(Error::io(format!("rm {}", dir.display()))(e));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Replicas first (they hold files on the volume), then the balancer
        // and the database, then the volume itself.
        for r in &mut self.replicas {
            r.process = None;
        }
        self.haproxy = None;
        self.pg.clear();
        if self.tmpfs.is_some() {
            let dir = self.originals.to_string_lossy().into_owned();
            if mount_command("umount", &[&dir]).is_err() {
                let _ = mount_command("umount", &["-l", &dir]);
            }
        }
        if self.config.keep {
            println!(
                "drill: the stack's files are kept in {}",
                self.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
