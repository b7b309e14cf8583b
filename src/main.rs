//! The `klaxon` command line: parses arguments, sets up logging, calls the library.

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::{FromArgMatches, Parser, Subcommand};
use klaxon::cli::print;
use klaxon::config::{ServeArgs, Settings};
use klaxon::offline;
use klaxon::startup::{Application, StartupError};
use klaxon::telemetry;

/// mimalloc: sled and actix allocate and free many short-lived buffers per
/// request, which glibc's allocator spends a tenth of klaxon's CPU on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hands back to the OS what opening the store allocated and freed: sled
/// reads its whole page table while recovering, and mimalloc would keep the
/// freed pages resident (at 1,000,000 alerts, about 16 MiB).
fn release_freed_memory() {
    // SAFETY: mi_collect only walks and purges mimalloc's own free lists.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

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
    Serve(Box<ServeArgs>),
    /// Validate a configuration (flags, environment, --config file) and print
    /// the effective settings, secrets redacted.
    CheckConfig(Box<ServeArgs>),
    /// Write a consistent JSON Lines backup of a data dir no server is using.
    /// (While serving, use the API: GET /api/v1/backup with a write token.)
    Backup(offline::BackupArgs),
    /// Load a backup into an empty data dir.
    Restore(offline::RestoreArgs),
    /// Check the integrity of a data dir no server is using (records, indexes, counts).
    CheckStore(offline::CheckStoreArgs),
    /// Read and change alerts on a running server: list, show, ack, resolve, notes.
    Alerts(klaxon::cli::alerts::AlertsArgs),
}

/// Exit codes: 0 clean stop, 1 server error, 2 bad configuration, 3 store cannot open.
fn main() -> ExitCode {
    let command = <Cli as clap::CommandFactory>::command();
    let matches = command.clone().try_get_matches().unwrap_or_else(|e| {
        // clap names the flag of a value it refuses, also when the value came
        // from the environment: an empty `KLAXON_LISTEN=` in a compose file
        // would be reported as `--listen`.
        if let Some(name) = empty_variable_refused(&command, &e) {
            eprintln!(
                "klaxon: configuration error: {name} is set but empty: unset it or give it a value"
            );
            std::process::exit(2);
        }
        e.exit()
    });
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match (&mut cli.command, matches.subcommand()) {
        (Command::Serve(args) | Command::CheckConfig(args), Some((_, sub))) => {
            args.prefer_flags(sub)
        }
        (Command::Alerts(args), Some((_, sub))) => args.prefer_flags(sub),
        _ => {}
    }
    if let Err(e) = telemetry::init() {
        // The alert client logs nothing of its own; the rest must not run
        // with logging that is not what its operator set.
        if !matches!(cli.command, Command::Alerts(_)) {
            eprintln!("klaxon: configuration error: {e}");
            return ExitCode::from(2);
        }
    }
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckConfig(args) => check_config(*args),
        Command::Backup(args) => offline::backup(&args),
        Command::Restore(args) => offline::restore(&args),
        Command::CheckStore(args) => offline::check_store(&args),
        Command::Alerts(args) => klaxon::cli::alerts::run(args),
    }
}

/// The variable behind the flag clap refused, when it is set but empty.
fn empty_variable_refused(command: &clap::Command, e: &clap::Error) -> Option<String> {
    let Some(ContextValue::String(refused)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        commands.extend(command.get_subcommands());
        for arg in command.get_arguments() {
            let (Some(long), Some(name)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let flag = format!("--{long}");
            let named = refused == &flag || refused.starts_with(&format!("{flag} "));
            let given = std::env::args_os().any(|a| {
                let a = a.as_encoded_bytes();
                a == flag.as_bytes() || a.starts_with(format!("{flag}=").as_bytes())
            });
            if named && !given && std::env::var_os(name).is_some_and(|v| v.is_empty()) {
                return Some(name.to_string_lossy().into_owned());
            }
        }
    }
    None
}

fn check_config(args: ServeArgs) -> ExitCode {
    let file = args.config.as_ref().map(|p| p.display().to_string());
    match Settings::from_args(args) {
        Ok(settings) => {
            print(&format!("{settings}\n"));
            print(&format!(
                "config_file          = {}\n",
                file.as_deref().unwrap_or("none")
            ));
            print(&format!(
                "log                  = {}\n",
                telemetry::describe()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("klaxon: configuration error: {e}");
            ExitCode::from(2)
        }
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
                return match e {
                    StartupError::Store(e) => {
                        if e.is_locked() {
                            eprintln!(
                                "(another process is using {}: two klaxon servers cannot share a data dir)",
                                settings.data_dir.display()
                            );
                        }
                        ExitCode::from(3)
                    }
                    StartupError::Bind { .. } => ExitCode::FAILURE,
                };
            }
        };
        if let Err(e) = app.stop_on_signals() {
            eprintln!("klaxon: cannot take over SIGINT and SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
        release_freed_memory();
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("klaxon: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
