//! The commands that work on a data dir no server is using: `backup`,
//! `restore` and `check-store`. Each prints what it did and returns the
//! process's exit code: 0 done, 1 failed, 2 a wrong argument or a data dir
//! that is not what the command needs, 3 the store cannot be opened or read.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::cli::print;
use crate::config;
use crate::store::restore::{self, RestoreError};
use crate::store::{self, Holds, Store, StoreError, StoreOptions};

/// Where an offline command finds the data dir: as `klaxon serve` does.
#[derive(Args)]
pub struct DataDirArgs {
    /// Data directory [default: ./klaxon-data]
    #[arg(long, env = "KLAXON_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// `klaxon serve`'s TOML file; only its data_dir is used, when neither --data-dir nor KLAXON_DATA_DIR is set
    #[arg(long, env = "KLAXON_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataDirArgs {
    /// The data dir; exit 2 when the config file cannot be read.
    fn resolve(&self) -> Result<PathBuf, ExitCode> {
        config::data_dir(self.data_dir.clone(), self.config.clone()).map_err(|e| {
            eprintln!("klaxon: configuration error: {e}");
            ExitCode::from(2)
        })
    }
}

/// `klaxon check-store`'s arguments.
#[derive(Args)]
pub struct CheckStoreArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// `klaxon backup`'s arguments.
#[derive(Args)]
pub struct BackupArgs {
    /// File to write (written to FILE.tmp, synced, then renamed)
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// `klaxon restore`'s arguments.
#[derive(Args)]
pub struct RestoreArgs {
    /// Backup file written by `klaxon backup` or GET /api/v1/backup
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// `klaxon check-store`.
pub fn check_store(args: &CheckStoreArgs) -> ExitCode {
    let data_dir = match args.data.resolve() {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    if let Err(code) = holds_a_store(&data_dir) {
        return code;
    }
    let store = match open_store(&data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let report = store.check();
    store.close();
    match report {
        Ok(report) if report.problems.is_empty() => {
            print(&format!(
                "ok: {} alerts, {} index entries, no problems\n",
                report.alerts, report.index_entries
            ));
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for problem in &report.problems {
                print(&format!("problem: {problem}\n"));
            }
            print(&format!(
                "{} problems in {} alerts\n",
                report.problems.len(),
                report.alerts
            ));
            ExitCode::FAILURE
        }
        // A value the check cannot make sense of is a problem it found; a
        // read that fails is a store it cannot read.
        Err(StoreError::Corrupt(problem)) => {
            print(&format!("problem: {problem}\n"));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("klaxon: check failed: {e}");
            ExitCode::from(3)
        }
    }
}

/// Opens an existing store as it is: a store an earlier klaxon wrote is
/// refused rather than upgraded, so that the server that wrote it can still
/// open it (exit 2, as for a schema 1 store).
fn open_store(data_dir: &Path) -> Result<Store, ExitCode> {
    let options = StoreOptions {
        upgrade: false,
        ..StoreOptions::default()
    };
    Store::open(data_dir, &options).map_err(|e| {
        if matches!(e, StoreError::SchemaTooOld { .. }) {
            eprintln!("klaxon: {e}");
            return ExitCode::from(2);
        }
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
        Ok(Holds::EarlierSchemaBlocked(why)) => eprintln!("klaxon: {why}"),
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

/// FILE.tmp beside FILE (`with_extension` would turn b.jsonl into b.tmp,
/// someone else's file, and remove it on failure).
fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// `klaxon backup`.
pub fn backup(args: &BackupArgs) -> ExitCode {
    let data_dir = match args.data.resolve() {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    if let Err(code) = holds_a_store(&data_dir) {
        return code;
    }
    let partial = partial_path(&args.to);
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
    let store = match open_store(&data_dir) {
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
    print(&format!(
        "backed up {} alerts (seq {}) to {}\n",
        summary.alerts,
        summary.seq,
        args.to.display()
    ));
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

/// Whether `data_dir` holds anything. A freshly formatted volume (a new
/// Kubernetes PVC) holds `lost+found`, and a restore that was stopped
/// leaves its staging directory (the next restore removes it): neither counts.
fn in_use(data_dir: &Path) -> std::io::Result<bool> {
    match fs::read_dir(data_dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name() != "lost+found" && e.file_name() != restore::STAGING))
            .collect::<Result<Vec<_>, _>>()
            .map(|others| others.contains(&true)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `klaxon restore`.
pub fn restore(args: &RestoreArgs) -> ExitCode {
    let data_dir = match args.data.resolve() {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    let in_use = match in_use(&data_dir) {
        Ok(in_use) => in_use,
        Err(e) => {
            eprintln!("klaxon: cannot read {}: {e}", data_dir.display());
            return ExitCode::from(3);
        }
    };
    if in_use {
        eprintln!(
            "klaxon: {} is not empty: restore only into an empty data dir (lost+found aside)",
            data_dir.display()
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
    // One handle, read twice: a file renamed over `--from` meanwhile is not read.
    let mut input = match File::open(&args.from) {
        Ok(file) => BufReader::with_capacity(1 << 20, file),
        Err(e) => {
            eprintln!("klaxon: cannot read {}: {e}", args.from.display());
            return ExitCode::from(2);
        }
    };
    let dir = data_dir.display();
    let summary = match restore::restore(&data_dir, &mut input, &StoreOptions::default()) {
        Ok(summary) => summary,
        Err(e @ (RestoreError::Busy(_) | RestoreError::Occupied(_))) => {
            eprintln!("klaxon: restore refused: {e}");
            return ExitCode::from(2);
        }
        Err(e @ RestoreError::Create(_)) => {
            eprintln!("klaxon: restore failed: {e}");
            return ExitCode::from(3);
        }
        Err(e @ RestoreError::Unsynced(_)) => {
            eprintln!("klaxon: restored into {dir}, but {e}; run `sync` and check the disk");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!(
                "klaxon: restore failed: {e}; {dir} holds no store, so restore can run again"
            );
            return ExitCode::FAILURE;
        }
    };
    let _ = writeln!(
        std::io::stdout(),
        "restored {} alerts (seq {}) into {dir}",
        summary.alerts,
        summary.seq,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_backup_is_file_dot_tmp_beside_the_file() {
        assert_eq!(partial_path(Path::new("b.jsonl")), Path::new("b.jsonl.tmp"));
        assert_eq!(partial_path(Path::new("/x/b")), Path::new("/x/b.tmp"));
    }

    #[test]
    fn a_data_dir_holding_only_lost_and_found_or_a_stopped_restore_is_not_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert!(!in_use(&data).unwrap(), "missing");
        fs::create_dir_all(data.join("lost+found")).unwrap();
        assert!(!in_use(&data).unwrap(), "a fresh volume");
        fs::create_dir_all(data.join(restore::STAGING)).unwrap();
        assert!(!in_use(&data).unwrap(), "a restore that was stopped");
        fs::write(data.join("x"), "").unwrap();
        assert!(in_use(&data).unwrap());
    }
}
