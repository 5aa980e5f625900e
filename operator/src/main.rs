//! `photo-operator`: `run` (default) the controller, print the `crd`, or `render -f FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "photo-operator",
    version,
    about = "Kubernetes operator for PhotoSites"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        global = true,
        env = "PHOTO_OPERATOR_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: String,
}

/// `run`'s arguments when no subcommand is given (read from the environment).
#[derive(Parser)]
struct RunDefaults {
    #[command(flatten)]
    args: photo_operator::run::RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run(photo_operator::run::RunArgs),
    /// Print the PhotoSite CustomResourceDefinition as YAML.
    Crd,
    /// Print every object the operator would create for the PhotoSites in FILE.
    Render {
        /// YAML file with one or more PhotoSites (`-` for standard input).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}

/// Prints a command's YAML, or its error on stderr with a failing exit code.
fn print_or_fail(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            print_or_fail(photo_operator::crd::crd_yaml().map_err(|e| e.to_string()))
        }
        Some(Command::Render { file }) => {
            let input = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            };
            print_or_fail(
                input
                    .map_err(|e| format!("reading {}: {e}", file.display()))
                    .and_then(|i| photo_operator::render::render(&i).map_err(|e| e.to_string())),
            )
        }
        command => {
            photo_operator::telemetry::init(cli.log_format == "json");
            let args = match command {
                Some(Command::Run(a)) => a,
                _ => RunDefaults::parse_from(["photo-operator"]).args,
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(photo_operator::run::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "operator failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
