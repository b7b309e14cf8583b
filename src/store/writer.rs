//! Group commit: one thread runs every change, applies the whole group to
//! sled as one batch, then makes it durable with one flush and one fsync
//! before answering any of it.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use super::ledger::Ledger;
use super::StoreError;

/// Most changes made durable by one flush: bounds how long any one waits,
/// and the size of the group's sled batch (sled's memory grows with it).
pub const MAX_GROUP: usize = 256;

/// A change to run on the writer; it returns what to do once the group is durable.
pub type Job = Box<dyn FnOnce(&mut Ledger) -> Completion + Send>;
/// Called with the outcome of the group's flush.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Makes sled's writes durable: sled 0.34's `flush` ends in
/// `sync_file_range`, which survives a killed process but not a power cut,
/// so the log file is fsynced after it.
pub struct Syncer {
    db: sled::Db,
    log: File,
    log_path: std::path::PathBuf,
}

impl Syncer {
    pub fn new(db: sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|e| StoreError::io(&log_path, e))?;
        Ok(Self { db, log, log_path })
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::io(&self.log_path, e))
    }
}

/// Starts the writer thread. It stops when every sender is dropped, after a last flush.
pub fn spawn(
    mut ledger: Ledger,
    syncer: Syncer,
    jobs: mpsc::Receiver<Job>,
    durable_seq: Arc<AtomicU64>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("klaxon-writer".into())
        .spawn(move || {
            let mut group: Vec<Completion> = Vec::with_capacity(MAX_GROUP);
            while let Ok(first) = jobs.recv() {
                ledger.measure_room();
                run(first, &mut ledger, &mut group);
                while group.len() < MAX_GROUP {
                    match jobs.try_recv() {
                        Ok(job) => run(job, &mut ledger, &mut group),
                        Err(_) => break,
                    }
                }
                let started = std::time::Instant::now();
                let synced = ledger.commit().and_then(|()| syncer.sync());
                if synced.is_err() {
                    ledger.discard();
                }
                match &synced {
                    Ok(()) => {
                        crate::metrics::flushed(started.elapsed(), group.len());
                        durable_seq.store(ledger.seq(), Ordering::Release);
                    }
                    Err(e) => {
                        crate::metrics::flush_failed();
                        tracing::error!(error = %e, "flushing the store failed");
                    }
                }
                for done in group.drain(..) {
                    done(synced.clone());
                }
            }
            if let Err(e) = syncer.sync() {
                tracing::error!(error = %e, "final flush of the store failed");
            }
        })
}

/// Runs one job; a panic in it (a bug) fails that request, not the writer.
fn run(job: Job, ledger: &mut Ledger, group: &mut Vec<Completion>) {
    match catch_unwind(AssertUnwindSafe(|| job(ledger))) {
        Ok(done) => group.push(done),
        Err(_) => tracing::error!("a store job panicked; its request fails"),
    }
}
