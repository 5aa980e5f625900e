use clap::Parser;
use photo_server::{Config, serve, start, telemetry};

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
