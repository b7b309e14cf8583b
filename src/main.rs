//! The `klaxon` command line: parses arguments, sets up logging, calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use klaxon::config::{ServeArgs, Settings};
use klaxon::startup::Application;
use klaxon::telemetry;

/// klaxon turns Slack messages into durable on-call alerts.
#[derive(Parser)]
#[command(name = "klaxon", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server: Slack webhooks and Events API in, alert API out.
    Serve(ServeArgs),
}

/// Exit codes: 0 clean stop, 1 server error, 2 bad configuration, 3 store cannot open.
fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::from_args(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("klaxon: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(&settings) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("klaxon: {e}");
                return ExitCode::from(3);
            }
        };
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("klaxon: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
