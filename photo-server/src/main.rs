use clap::Parser;
use photo_server::{Config, Listeners, serve, start, telemetry};

// Cached hits allocate a handful of small objects per request; with mimalloc
// a cached /img/240 hit takes 29.7k instructions against 34.7k with glibc
// malloc (callgrind, as in bench/run.sh test 5).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let listeners = Listeners::bind(&config).await?;
    let state = start(config).await?;
    serve(state, listeners).await
}
