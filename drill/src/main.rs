//! `drill`: the PhotoStack drills (issue 11).
//!
//! ```sh
//! drill short            # every drill, a few seconds each; exits 1 if a rule fails
//! drill long             # minutes at the seeds' rates; writes drill/out/long/report.md
//! drill up               # just the stack, until Ctrl-C
//! ```
//!
//! `scripts/drill.sh` installs what is missing (HAProxy, PostgreSQL),
//! builds, fetches the long form's photos and runs this.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use drill::drills::{self, Drill, Drills, Form, Outcome};
use drill::report::{self, RunInfo};
use drill::stack::{ADMIN_PASSWORD, Stack, StackConfig};
use drill::traffic::Traffic;
use drill::{photos, plot};

#[derive(Debug, Parser)]
#[command(
    name = "drill",
    about = "Runs a local PhotoStack (replicas in two zones behind HAProxy, PostgreSQL primary and standby, one originals volume) under the seeds' traffic while parts of it fail"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Every drill in its short form (a few seconds of load each), asserting the pass rules.
    Short(RunArgs),
    /// Every drill in its long form (minutes at the seeds' rates), writing the report.
    Long(RunArgs),
    /// Start the stack and keep it running until Ctrl-C.
    Up(StackArgs),
}

#[derive(Debug, Args)]
struct StackArgs {
    /// The photo-server binary. Default: built with cargo, in this binary's target dir and profile.
    #[arg(long, env = "PHOTO_SERVER_BIN")]
    server_bin: Option<PathBuf>,
    /// Replicas serving (zones a and b, alternately).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=8))]
    replicas: u16,
    /// Where the report and the logs go. Default: drill/out/<form> in the repository.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the stack's files (databases, originals, caches) after the run.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Run only these drills (comma-separated), in the usual order.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Drill>,
    /// A directory of JPEG photographs to upload. Default: photo-server's test fixtures.
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Visitor requests a second at the steady rate (default: the form's).
    #[arg(long)]
    rps: Option<f64>,
    /// Uploads a second (default: the form's).
    #[arg(long)]
    uploads_per_sec: Option<f64>,
    /// Length of the steady drill in seconds (the seeds' fakeflickr ran 900).
    #[arg(long)]
    steady_secs: Option<u64>,
}

/// The repository, where this crate was built from.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The photo-server binary: given, or built in this binary's target dir
/// and profile.
fn server_bin(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(bin) = given {
        anyhow::ensure!(bin.is_file(), "no photo-server binary at {}", bin.display());
        return Ok(bin);
    }
    let exe = std::env::current_exe().context("where is this binary")?;
    let profile_dir = exe.parent().context("binary without a directory")?;
    let target = profile_dir
        .parent()
        .context("binary outside a target dir")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    println!(
        "drill: building photo-server ({}) in {}",
        if release { "release" } else { "debug" },
        target.display()
    );
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target)
        .args(["build", "-p", "photo-server"]);
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().context("run cargo")?;
    anyhow::ensure!(status.success(), "cargo build -p photo-server failed");
    Ok(profile_dir.join("photo-server"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// First line of `program args`, or "?".
fn version(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// The current UTC time as `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn out_dir(given: Option<PathBuf>, form: &str) -> anyhow::Result<PathBuf> {
    let dir = given.unwrap_or_else(|| repo().join("drill").join("out").join(form));
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    // Only what a run writes is cleared: the report, its pictures and logs.
    let _ = std::fs::remove_dir_all(dir.join("logs"));
    let _ = std::fs::remove_file(dir.join("report.md"));
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|e| e == "png") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(dir)
}

fn stack_config(
    args: &StackArgs,
    logs: PathBuf,
    tmpfs: Option<u64>,
) -> anyhow::Result<StackConfig> {
    drill::haproxy::program()?;
    harness::postgres::bin("initdb").map_err(anyhow::Error::msg)?;
    Ok(StackConfig {
        replicas: usize::from(args.replicas),
        server_bin: server_bin(args.server_bin.clone())?,
        logs,
        originals_tmpfs: if is_root() { tmpfs } else { None },
        shutdown_delay: Duration::from_secs(2),
        keep: args.keep,
    })
}

async fn up(args: StackArgs) -> anyhow::Result<()> {
    let out = out_dir(args.out.clone(), "up")?;
    let config = stack_config(&args, out.join("logs"), Some(1 << 30))?;
    let stack = Stack::start(config).await?;
    println!("\nThe stack is up; Ctrl-C stops it.");
    println!(
        "  site:        {}/  (admin / {ADMIN_PASSWORD})",
        stack.url()
    );
    for r in &stack.replicas[stack.serving()] {
        println!(
            "  replica {} (zone {}): {}  probes {}/readyz",
            r.name,
            r.zone,
            r.url(),
            r.ops_url()
        );
    }
    println!(
        "  database:    {} (moves on failover)",
        stack.database_url()
    );
    println!("  originals:   {}", stack.originals.display());
    println!("  logs:        {}", out.join("logs").display());
    tokio::signal::ctrl_c().await?;
    println!("\nstopping");
    drop(stack);
    Ok(())
}

async fn run(args: RunArgs, mut form: Form) -> anyhow::Result<bool> {
    let started = Instant::now();
    if let Some(rps) = args.rps {
        form.rps = rps;
    }
    if let Some(u) = args.uploads_per_sec {
        form.uploads_per_sec = u;
    }
    if let Some(s) = args.steady_secs {
        form.steady = Duration::from_secs(s);
    }
    let mut chosen: Vec<Drill> = Drill::ALL
        .into_iter()
        .filter(|d| args.only.is_empty() || args.only.contains(d))
        .collect();
    if args.only.is_empty() && form.steady.is_zero() {
        chosen.retain(|d| *d != Drill::Steady);
    }
    if chosen.contains(&Drill::Steady) && form.steady.is_zero() {
        form.steady = Duration::from_secs(10);
    }
    let out = out_dir(args.stack.out.clone(), form.name)?;
    let tmpfs = if form.name == "long" {
        8u64 << 30
    } else {
        512 << 20
    };
    let config = stack_config(&args.stack, out.join("logs"), Some(tmpfs))?;
    if !is_root() {
        println!(
            "drill: not root: the originals volume cannot be a tmpfs; the volume-full and volume-read-only drills will be skipped"
        );
    }
    let corpus = match &args.photos {
        Some(dir) => photos::load(dir, &[])?,
        None => photos::load(
            &repo().join("photo-server/tests/fixtures"),
            &photos::FIXTURES,
        )?,
    };
    let corpus_bytes: usize = corpus.iter().map(|p| p.bytes.len()).sum();
    let corpus_line = format!(
        "photos: {} JPEGs ({}), {:.0} kB on average",
        corpus.len(),
        args.photos
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "photo-server's test fixtures".into()),
        corpus_bytes as f64 / corpus.len() as f64 / 1000.0
    );

    println!("drill: starting the stack ({} replicas)", config.replicas);
    let server_bin = config.server_bin.clone();
    let stack = Stack::start(config).await?;
    let traffic = Traffic::setup(
        &stack,
        corpus,
        form.uploaders,
        form.hot_photos,
        form.client_timeout,
    )
    .await?;
    for i in stack.serving() {
        traffic.warm(&stack, i).await?;
    }
    let mut setup = vec![
        format!(
            "{}; {} cores; {:.0} GiB of memory",
            utc_now(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib()
        ),
        format!(
            "photo-server: {} (commit {})",
            server_bin
                .strip_prefix(repo())
                .unwrap_or(&server_bin)
                .display(),
            version(
                Path::new("git"),
                &[
                    "-C",
                    &repo().to_string_lossy(),
                    "describe",
                    "--always",
                    "--dirty"
                ]
            )
        ),
        format!(
            "stack: {} replicas (zones {}) behind {}, PHOTO_SHUTDOWN_DELAY {} s; {} primary and streaming standby behind the same HAProxy; originals on {}",
            stack.config.replicas,
            stack.replicas[stack.serving()]
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            version(&drill::haproxy::program()?, &["-v"]),
            stack.config.shutdown_delay.as_secs(),
            version(
                &harness::postgres::bin("postgres").map_err(anyhow::Error::msg)?,
                &["--version"],
            ),
            match stack.tmpfs {
                Some(size) => format!("a {} MiB tmpfs", size >> 20),
                None => "a plain directory".into(),
            }
        ),
        format!(
            "load: {:.0} visitor requests a second ({:.0} a minute; {}x in the spike), {} uploads a second by {} users, client timeout {} s; {} photos rendered beforehand on every replica count as cached hits",
            form.rps,
            form.rps * 60.0,
            form.spike_factor,
            form.uploads_per_sec,
            form.uploaders,
            form.client_timeout.as_secs(),
            form.hot_photos
        ),
        corpus_line,
    ];
    let mut drills = Drills {
        stack,
        traffic: Arc::new(traffic),
        form: form.clone(),
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for drill in chosen {
        match drills.run(drill).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                println!("drill: {} could not finish: {e}", drill.id());
                outcomes.push(drills::broken(drill, &e, &drills.stack));
                setup.push(format!(
                    "the run stopped at {}: the stack did not recover",
                    drill.id()
                ));
                break;
            }
        }
    }
    drop(drills);

    for o in outcomes.iter().filter(|o| o.skipped.is_none()) {
        let title = format!(
            "{}. {}: {} ({})",
            o.drill.number(),
            o.drill.id(),
            o.drill.title(),
            if o.passed() { "PASS" } else { "FAIL" }
        );
        plot::timeline(o, &title, &out.join(format!("{}.png", o.drill.id())))?;
    }
    let info = RunInfo {
        form: form.name.to_string(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        setup,
        seconds: started.elapsed().as_secs_f64(),
    };
    report::write(&out, &info, &outcomes)?;
    println!("\n{}", report::summary_table(&outcomes));
    println!("drill: report in {}", out.join("report.md").display());
    let failed: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            o.checks
                .iter()
                .filter(|c| !c.passed)
                .map(move |c| format!("{}: {} ({})", o.drill.id(), c.rule, c.detail))
        })
        .collect();
    if failed.is_empty() {
        println!(
            "drill: every pass rule holds ({} drills in {:.0} s)",
            outcomes.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(true)
    } else {
        println!("drill: {} pass rules FAIL:", failed.len());
        for f in &failed {
            println!("  - {f}");
        }
        Ok(false)
    }
}

fn memory_gib() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,drill=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Thousands of connections at the spike.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let cli = Cli::parse();
    let is_up = matches!(cli.command, Cmd::Up(_));
    // Ctrl-C drops the running future, and with it the stack: every
    // process is stopped and the tmpfs unmounted on the way out.
    let work = async move {
        match cli.command {
            Cmd::Up(args) => up(args).await.map(|_| true),
            Cmd::Short(args) => run(args, Form::short()).await,
            Cmd::Long(args) => run(args, Form::long()).await,
        }
    };
    if is_up {
        // `up` waits for Ctrl-C itself and stops the stack.
        work.await?;
        return Ok(());
    }
    let passed = tokio::select! {
        result = work => result?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; the stack was stopped"),
    };
    if !passed {
        std::process::exit(1);
    }
    Ok(())
}
