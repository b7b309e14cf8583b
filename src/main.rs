//! The `klaxon` command line: parses arguments, sets up logging, calls the library.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand};
use klaxon::config::{ServeArgs, Settings, DEFAULT_DATA_DIR};
use klaxon::startup::{Application, StartupError};
use klaxon::store::{self, Holds, Store, StoreOptions};
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
    Backup(BackupArgs),
    /// Load a backup into an empty data dir.
    Restore(RestoreArgs),
    /// Check the integrity of a data dir no server is using (records, indexes, counts).
    CheckStore(CheckStoreArgs),
    /// Read and change alerts on a running server: list, show, ack, resolve, notes.
    Alerts(klaxon::cli::alerts::AlertsArgs),
}

#[derive(Args)]
struct CheckStoreArgs {
    /// Data directory to check
    #[arg(long, env = "KLAXON_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct BackupArgs {
    /// File to write (written to FILE.tmp, synced, then renamed)
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Data directory to back up
    #[arg(long, env = "KLAXON_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct RestoreArgs {
    /// Backup file written by `klaxon backup` or GET /api/v1/backup
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Empty (or not yet existing) data directory to restore into
    #[arg(long, env = "KLAXON_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data_dir: PathBuf,
}

/// Exit codes: 0 clean stop, 1 server error, 2 bad configuration, 3 store cannot open.
fn main() -> ExitCode {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Serve(args) | Command::CheckConfig(args), Some((_, sub))) =
        (&mut cli.command, matches.subcommand())
    {
        args.prefer_flags(sub);
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
        Command::Backup(args) => backup(&args),
        Command::Restore(args) => restore(&args),
        Command::CheckStore(args) => check_store(&args),
        Command::Alerts(args) => klaxon::cli::alerts::run(args),
    }
}

fn check_store(args: &CheckStoreArgs) -> ExitCode {
    if let Err(code) = holds_a_store(&args.data_dir) {
        return code;
    }
    let store = match open_store(&args.data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let report = store.check();
    store.close();
    match report {
        Ok(report) if report.problems.is_empty() => {
            println!(
                "ok: {} alerts, {} index entries, no problems",
                report.alerts, report.index_entries
            );
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            println!(
                "{} problems in {} alerts",
                report.problems.len(),
                report.alerts
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("klaxon: check failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(args: ServeArgs) -> ExitCode {
    match Settings::from_args(args) {
        Ok(settings) => {
            println!("{settings}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("klaxon: configuration error: {e}");
            ExitCode::from(2)
        }
    }
}

fn open_store(data_dir: &Path) -> Result<Store, ExitCode> {
    Store::open(data_dir, &StoreOptions::default()).map_err(|e| {
        eprintln!("klaxon: cannot open the store in {}: {e}", data_dir.display());
        if e.is_locked() {
            eprintln!("(another process is using it; if that is a klaxon server, back up through its API: GET /api/v1/backup with a write token)");
        }
        ExitCode::from(3)
    })
}

/// `backup` and `check-store` read an existing store: opening a mistyped
/// path would create an empty one there and report success on it, and
/// opening a schema 1 store would migrate it.
fn holds_a_store(data_dir: &Path) -> Result<(), ExitCode> {
    let dir = data_dir.display();
    match store::holds(data_dir) {
        Ok(Holds::Store) => return Ok(()),
        Ok(Holds::Nothing) => eprintln!("klaxon: {dir} holds no klaxon store (no v2/ store inside)"),
        Ok(Holds::EarlierSchema) => eprintln!(
            "klaxon: {dir} holds a schema 1 store (v1/); `klaxon serve` migrates it when it starts (keeping v1.migrated/), then back it up or check it"
        ),
        // Unreadable (another user's directory, say) is not "no store".
        Err(e) => {
            eprintln!("klaxon: cannot read {dir}: {e}");
            return Err(ExitCode::from(3));
        }
    }
    Err(ExitCode::from(2))
}

fn backup(args: &BackupArgs) -> ExitCode {
    if let Err(code) = holds_a_store(&args.data_dir) {
        return code;
    }
    // FILE.tmp beside FILE (with_extension would turn b.jsonl into b.tmp,
    // someone else's file, and remove it on failure).
    let partial = {
        let mut name = args.to.clone().into_os_string();
        name.push(".tmp");
        PathBuf::from(name)
    };
    // The backup is written to FILE.tmp and renamed over FILE: through a
    // symlink that would write wherever it points, and the rename would
    // replace a device, a pipe or a symlink itself (as root, `--to
    // /dev/null` replaced it). A regular FILE.tmp is an earlier run's.
    for path in [&args.to, &partial] {
        if fs::symlink_metadata(path).is_ok_and(|meta| !meta.is_file()) {
            eprintln!(
                "klaxon: {} exists and is not a regular file: give a file to replace or a new path",
                path.display()
            );
            return ExitCode::from(2);
        }
    }
    let store = match open_store(&args.data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let _ = fs::remove_file(&partial);
    // create_new: whatever appeared at FILE.tmp since is not followed.
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|file| {
            let mut out = BufWriter::new(file);
            let summary = store.backup(&mut out).map_err(std::io::Error::other)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&partial, &args.to)?;
            Ok(summary)
        });
    store.close();
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            eprintln!("klaxon: backup failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "backed up {} alerts (seq {}) to {}",
        summary.alerts,
        summary.seq,
        args.to.display()
    );
    // The rename itself is durable once the directory is synced.
    let dir = match args.to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        eprintln!(
            "klaxon: the backup is complete, but {} could not be synced, so a power cut could still undo its rename: {e}",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn restore(args: &RestoreArgs) -> ExitCode {
    // A freshly formatted volume (a new Kubernetes PVC) holds `lost+found`.
    let in_use = match fs::read_dir(&args.data_dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name() != "lost+found"))
            .collect::<Result<Vec<_>, _>>()
            .map(|others| others.contains(&true)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    };
    let in_use = match in_use {
        Ok(in_use) => in_use,
        Err(e) => {
            eprintln!("klaxon: cannot read {}: {e}", args.data_dir.display());
            return ExitCode::from(2);
        }
    };
    if in_use {
        eprintln!(
            "klaxon: {} is not empty: restore only into an empty data dir (lost+found aside)",
            args.data_dir.display()
        );
        return ExitCode::from(2);
    }
    // Checked before opening: opening a pipe would wait for its writer.
    if fs::metadata(&args.from).is_ok_and(|m| !m.is_file()) {
        eprintln!(
            "klaxon: {} is not a regular file: restore reads a backup twice, so save it to a file first",
            args.from.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = File::open(&args.from) {
        eprintln!("klaxon: cannot read {}: {e}", args.from.display());
        return ExitCode::from(2);
    }
    let from = args.from.clone();
    let open = move || -> std::io::Result<Box<dyn std::io::BufRead>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(&from)?,
        )))
    };
    let store = match open_store(&args.data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let restored = store.restore(&open);
    store.close();
    drop(store);
    // sled 0.34 writes its snapshot only when it opens a store; until then
    // each start reads the whole log. Reopening once here moves that cost
    // from the service's first start to the restore.
    if restored.is_ok() {
        match open_store(&args.data_dir) {
            Ok(store) => store.close(),
            Err(code) => return code,
        }
    }
    match restored {
        Ok(summary) => {
            let _ = writeln!(
                std::io::stdout(),
                "restored {} alerts (seq {}) into {}",
                summary.alerts,
                summary.seq,
                args.data_dir.display()
            );
            if summary.over_limits > 0 {
                let _ = writeln!(
                    std::io::stdout(),
                    "{} of them are over today's limits (stored so by an earlier klaxon) and were kept as they were; the log names the first",
                    summary.over_limits
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("klaxon: restore failed: {e}; {} may hold a partial store: empty it before retrying", args.data_dir.display());
            ExitCode::FAILURE
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
                    StartupError::Store(_) => ExitCode::from(3),
                    StartupError::Bind { .. } => ExitCode::FAILURE,
                };
            }
        };
        release_freed_memory();
        app.stop_on_signals();
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("klaxon: server error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
