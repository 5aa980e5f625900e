use clap::{Parser, Subcommand};
use photo_server::db::Db;
use photo_server::storage::originals::OriginalStore;
use photo_server::{Config, Listeners, allocator, backup, orphans, serve, start, telemetry};

// Cached hits allocate a handful of small objects per request; with mimalloc
// a cached /img/240 hit took 29.7k instructions against 34.7k with glibc
// malloc (callgrind, as in bench/run.sh test 5). Render buffers of 1 MiB and
// more go to the system allocator (see `allocator`).
#[global_allocator]
static GLOBAL: allocator::PhotoAllocator = allocator::PhotoAllocator;

/// PhotoStack image server. Without a command it serves the site.
#[derive(Debug, Parser)]
#[command(name = "photo-server", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the site (the default).
    Serve,
    /// List originals without a database row (left by a crash between an
    /// upload's rename and its commit) and rows without their original;
    /// `--quarantine` moves the orphans aside, never deletes.
    Orphans(orphans::OrphansArgs),
    /// Copy the originals not yet backed up (and the embedded database) to
    /// object storage, with a manifest of checksums. Resumes where an
    /// interrupted run stopped.
    Backup(backup::BackupArgs),
    /// Copy back every original of the latest backup that is missing here,
    /// verifying its checksum (and the embedded database into an empty data
    /// directory).
    Restore(backup::BackupArgs),
}

fn main() -> anyhow::Result<()> {
    let huge_pages = allocator::without_transparent_huge_pages();
    let threshold = allocator::map_large_allocations();
    let cli = Cli::parse();
    let config = cli.config;
    telemetry::init(config.log_format);
    if let Err(error) = huge_pages {
        tracing::debug!(%error, "cannot turn transparent huge pages off; keeping them");
    }
    if let Err(error) = threshold {
        tracing::warn!(%error, "large buffers may stay in glibc's arenas after use");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli.command, config))
}

async fn run(command: Option<Command>, config: Config) -> anyhow::Result<()> {
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listeners = Listeners::bind(&config).await?;
            let state = start(config).await?;
            serve(state, listeners).await
        }
        Command::Orphans(args) => {
            let db = Db::open(config.database_url.as_deref(), &config.data_dir)?;
            db.migrate().await?;
            let store = OriginalStore::open(config.originals_dir())?;
            orphans::run(&db, &store, &args).await?;
            Ok(())
        }
        Command::Backup(args) => {
            backup::create::run(&config, &args).await?;
            Ok(())
        }
        Command::Restore(args) => {
            backup::restore::run(&config, &args).await?;
            Ok(())
        }
    }
}
