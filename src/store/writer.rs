//! Group commit: one thread runs every change, writes the whole group to the
//! journal as one record made durable by one `fdatasync`, answers it, then
//! applies it to sled as one batch. sled itself is flushed only at
//! checkpoints (see [`super::journal`]).

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tokio::sync::Notify;

use super::journal::{self, Appended, Journal};
use super::ledger::Ledger;
use super::StoreError;

/// Most changes made durable by one journal record: bounds how long any one
/// waits, and the size of the group's sled batch (sled's memory grows with it).
pub const MAX_GROUP: usize = 256;

/// A change to run on the writer; it returns what to do once the group is durable.
pub type Job = Box<dyn FnOnce(&mut Ledger) -> Completion + Send>;
/// Called with the outcome of the group's commit.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Makes sled's writes durable (a checkpoint): sled 0.34's `flush` ends in
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

/// What readers may see: a change is answered once it is committed (in the
/// journal) and visible once it is in the tree, a moment later.
pub struct Progress {
    committed: AtomicU64,
    visible: AtomicU64,
    /// A committed group could not be applied to the tree: the store stops
    /// until a restart applies it from the journal.
    stopped: AtomicBool,
    changed: Notify,
}

impl Progress {
    pub fn new(seq: u64) -> Self {
        Self {
            committed: AtomicU64::new(seq),
            visible: AtomicU64::new(seq),
            stopped: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    /// The sequence number of the latest change in the tree.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Waits until the tree holds every change answered before this call;
    /// returns the sequence number it holds then.
    pub async fn settled(&self) -> Result<u64, StoreError> {
        let target = self.committed.load(Ordering::Acquire);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.stopped.load(Ordering::Acquire) {
                return Err(StoreError::Closed);
            }
            let visible = self.visible();
            if visible >= target {
                return Ok(visible);
            }
            changed.await;
        }
    }

    fn publish(&self, visible: u64) {
        self.visible.store(visible, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }
}

/// Starts the writer thread. It stops when every sender is dropped, after a last checkpoint.
pub fn spawn(
    mut ledger: Ledger,
    mut journal: Journal,
    syncer: Syncer,
    jobs: mpsc::Receiver<Job>,
    progress: Arc<Progress>,
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
                let committed = commit(&mut ledger, &mut journal, &syncer);
                match &committed {
                    Ok(_) => {
                        crate::metrics::flushed(started.elapsed(), group.len());
                        progress
                            .committed
                            .store(ledger.seq(), Ordering::Release);
                    }
                    Err(e) => {
                        ledger.discard();
                        crate::metrics::flush_failed();
                        tracing::error!(error = %e, "committing to the store failed");
                    }
                }
                for done in group.drain(..) {
                    done(committed.clone().map(|_| ()));
                }
                if let Ok(Some(record)) = committed {
                    if let Err(e) = ledger.finish(record) {
                        tracing::error!(error = %e, record, "applying a committed group to the store failed; the store stops, and a restart applies it from the journal");
                        progress.stop();
                        return;
                    }
                }
                progress.publish(ledger.seq());
            }
            if let Err(e) = syncer.sync() {
                tracing::error!(error = %e, "final flush of the store failed");
            }
        })
}

/// Makes the group durable. Returns the journal record to apply once its
/// changes are answered, or `None` when nothing is left to apply.
fn commit(
    ledger: &mut Ledger,
    journal: &mut Journal,
    syncer: &Syncer,
) -> Result<Option<u64>, StoreError> {
    let writes = ledger.seal()?;
    if writes.is_empty() {
        return Ok(None);
    }
    let appended = journal.append(journal::borrowed(writes.iter()), || syncer.sync());
    drop(writes);
    match appended? {
        Appended::Durable(record) => Ok(Some(record)),
        Appended::TooBig(record) => {
            // Rare (a group of huge messages): sled's own flush makes it durable.
            ledger.finish(record)?;
            syncer.sync()?;
            journal.checkpointed(record)?;
            Ok(None)
        }
    }
}

/// Runs one job; a panic in it (a bug) fails that request, not the writer.
fn run(job: Job, ledger: &mut Ledger, group: &mut Vec<Completion>) {
    match catch_unwind(AssertUnwindSafe(|| job(ledger))) {
        Ok(done) => group.push(done),
        Err(_) => tracing::error!("a store job panicked; its request fails"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_read_waits_until_the_tree_holds_every_answered_change() {
        let progress = Arc::new(Progress::new(4));
        // Change 5 is answered (in the journal) but not yet applied to the tree.
        progress.committed.store(5, Ordering::Release);
        let reader = tokio::spawn({
            let progress = progress.clone();
            async move { progress.settled().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !reader.is_finished(),
            "a read went ahead of an answered change"
        );
        progress.publish(5);
        assert_eq!(reader.await.unwrap().unwrap(), 5);
        assert_eq!(progress.settled().await.unwrap(), 5, "nothing to wait for");
    }

    #[tokio::test]
    async fn reads_fail_rather_than_wait_once_the_writer_has_stopped() {
        let progress = Arc::new(Progress::new(4));
        progress.committed.store(5, Ordering::Release);
        let reader = tokio::spawn({
            let progress = progress.clone();
            async move { progress.settled().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        progress.stop();
        assert!(matches!(reader.await.unwrap(), Err(StoreError::Closed)));
    }
}
