use clap::Parser;
use photo_server::{Config, serve, start, telemetry};

// Cached hits allocate a handful of small objects per request; mimalloc's
// thread-local free lists make that measurably cheaper than glibc malloc
// (bench/run.sh, cached-hit CPU per request).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let listen = config.listen;
    let state = start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    serve(state, listener).await
}
