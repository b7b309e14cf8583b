//! Group commit: one thread runs every change, writes the whole group to the
//! journal as one record made durable by one `fdatasync`, answers it, then
//! puts it into sled key by key (see [`super::group`]). sled itself is
//! flushed only at checkpoints, each marked in the journal (see
//! [`super::journal`]).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::Notify;

use super::journal::{self, Appended, Journal};
use super::ledger::Ledger;
use super::StoreError;

/// Most changes made durable by one journal record: bounds how long any one
/// waits, and the size of the record.
pub const MAX_GROUP: usize = 256;

/// A change to run on the writer; it returns what to do once the group is durable.
pub type Job = Box<dyn FnOnce(&mut Ledger) -> Completion + Send>;
/// Called with the outcome of the group's commit.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Makes sled's writes durable (a checkpoint): sled 0.34's `flush` ends in
/// `sync_file_range`, which survives a killed process but not a power cut,
/// so the log file is fsynced after it. sled writes a node too big for its
/// log (over 128 KiB: big messages) to a file of its own under `blobs/` and
/// never fsyncs it, so new blob files are fsynced here too.
pub struct Syncer {
    db: sled::Db,
    log: File,
    log_path: PathBuf,
    blobs: PathBuf,
    /// Blob files fsynced already.
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl Syncer {
    pub fn new(db: sled::Db, dir: &Path) -> Result<Self, StoreError> {
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|e| StoreError::io(&log_path, e))?;
        Ok(Self {
            db,
            log,
            log_path,
            blobs: dir.join("blobs"),
            synced_blobs: Mutex::default(),
        })
    }

    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::io(&self.log_path, e))?;
        self.sync_blobs()
    }

    fn sync_blobs(&self) -> Result<(), StoreError> {
        let io = |path: &Path, e| StoreError::io(path, e);
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()), // no blobs yet
            Err(e) => return Err(io(&self.blobs, e)),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        let mut new_files = false;
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.blobs, e))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let path = entry.path();
                if !sync_if_present(&path).map_err(|e| io(&path, e))? {
                    continue;
                }
                new_files = true;
            }
            present.insert(name);
        }
        if new_files {
            super::sync_dir(&self.blobs)?;
        }
        *synced = present;
        Ok(())
    }
}

/// `fdatasync`s the file at `path`; `false` when it is gone. sled deletes a
/// blob file once a newer version of its node is written, which can happen
/// between listing the directory and opening the file: a blob that is gone
/// holds nothing the store needs.
fn sync_if_present(path: &Path) -> std::io::Result<bool> {
    match File::open(path) {
        Ok(file) => {
            file.sync_data()?;
            #[cfg(test)]
            super::testing::file_synced(path);
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// What readers may see: a group is answered once it is committed (in the
/// journal) and visible once it is in the tree, a moment later.
pub struct Progress {
    committed: AtomicU64,
    applied: AtomicU64,
    /// The sequence number of the latest change in the tree.
    seq: AtomicU64,
    /// The writer has stopped (a committed group could not be applied, or
    /// the journal broke): reads fail until a restart recovers.
    stopped: AtomicBool,
    changed: Notify,
    /// Told only when the writer stops, so that waiting for that costs
    /// nothing per group.
    halted: Notify,
}

impl Progress {
    pub fn new(seq: u64) -> Self {
        Self {
            committed: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            seq: AtomicU64::new(seq),
            stopped: AtomicBool::new(false),
            changed: Notify::new(),
            halted: Notify::new(),
        }
    }

    /// The sequence number of the latest change in the tree.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Returns once the writer has stopped.
    pub async fn until_stopped(&self) {
        loop {
            let halted = self.halted.notified();
            tokio::pin!(halted);
            halted.as_mut().enable();
            if self.stopped() {
                return;
            }
            halted.await;
        }
    }

    /// Waits until the tree holds every group answered before this call;
    /// returns the sequence number it holds then.
    pub async fn settled(&self) -> Result<u64, StoreError> {
        let target = self.committed.load(Ordering::Acquire);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.stopped() {
                return Err(StoreError::Closed);
            }
            if self.applied.load(Ordering::Acquire) >= target {
                return Ok(self.seq());
            }
            changed.await;
        }
    }

    fn commit(&self, groups: u64) {
        self.committed.store(groups, Ordering::Release);
    }

    fn publish(&self, groups: u64, seq: u64) {
        self.seq.store(seq, Ordering::Release);
        self.applied.store(groups, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.changed.notify_waiters();
        self.halted.notify_waiters();
    }
}

/// Stops the store if the writer thread ends by panicking, so that no read
/// waits for it.
struct StopOnPanic(Arc<Progress>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
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
            let _guard = StopOnPanic(progress.clone());
            let mut group: Vec<Completion> = Vec::with_capacity(MAX_GROUP);
            // Groups committed to the journal so far.
            let mut groups = 0;
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
                // A group of duplicates and repeated actions writes and syncs nothing.
                let writes = !ledger.writes().is_empty();
                let committed = commit(&mut ledger, &mut journal, &syncer);
                let mut usable = true;
                match &committed {
                    Ok(record) => {
                        if writes {
                            crate::metrics::flushed(started.elapsed(), group.len());
                        }
                        match record {
                            Some(_) => {
                                groups += 1;
                                progress.commit(groups);
                            }
                            // Too big for a record: already in the tree, so a
                            // read that starts after the answer sees it.
                            None if writes => progress.publish(groups, ledger.seq()),
                            None => {}
                        }
                    }
                    Err(e) => {
                        crate::metrics::flush_failed();
                        tracing::error!(error = %e, "committing to the store failed");
                        // Nothing of the group is in the tree: drop it and go
                        // on, unless the journal can no longer be trusted.
                        ledger.discard();
                        usable = !journal.is_broken();
                    }
                }
                for done in group.drain(..) {
                    done(committed.clone().map(|_| ()));
                }
                if let Ok(Some(record)) = committed {
                    if let Err(e) = ledger.finish(record) {
                        tracing::error!(error = %e, record, "applying a committed group to the store failed");
                        usable = false;
                    }
                }
                if !usable {
                    tracing::error!("the store has stopped; restart klaxon to recover from its journal");
                    progress.stop();
                    return;
                }
                progress.publish(groups, ledger.seq());
            }
            // A last checkpoint, marked, so the next start applies nothing again.
            if let Err(e) = syncer.sync().and_then(|()| journal.mark_checkpoint()) {
                tracing::error!(error = %e, "final checkpoint of the store failed");
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
    let writes = ledger.writes();
    if writes.is_empty() {
        return Ok(None);
    }
    match journal.append(journal::borrowed(writes.iter()), || syncer.sync())? {
        Appended::Durable(record) => Ok(Some(record)),
        Appended::TooBig(record) => {
            // Rare (a group of huge messages): sled's own flush makes it durable.
            let durable = ledger.finish_atomically(record, || {
                syncer.sync().and_then(|()| journal.mark_checkpoint())
            });
            if durable.is_err() {
                journal.break_off();
            }
            durable.map(|()| None)
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

    #[test]
    fn a_blob_file_sled_deleted_since_the_listing_is_skipped_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("18439");
        assert!(!sync_if_present(&path).unwrap());
        std::fs::write(&path, b"node").unwrap();
        assert!(sync_if_present(&path).unwrap());
        // Any other failure still counts.
        assert!(sync_if_present(&dir.path().join("18439").join("x")).is_err());
    }

    #[test]
    fn a_checkpoint_fsyncs_the_blob_files_sled_wrote_for_big_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let syncer = Syncer::new(db.clone(), dir.path()).unwrap();
        syncer.sync().unwrap();
        assert!(syncer.synced_blobs.lock().unwrap().is_empty());
        // A value bigger than a log message may be: sled puts it in a blob file.
        db.insert(b"big", vec![7u8; 300_000]).unwrap();
        syncer.sync().unwrap();
        let on_disk: HashSet<OsString> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!on_disk.is_empty(), "sled wrote no blob file");
        assert_eq!(*syncer.synced_blobs.lock().unwrap(), on_disk);
        for name in &on_disk {
            let path = dir.path().join("blobs").join(name);
            assert!(crate::store::testing::was_synced(&path), "{path:?}");
        }
    }

    /// A read started now, given time to reach its wait.
    async fn waiting_reader(
        progress: &Arc<Progress>,
    ) -> tokio::task::JoinHandle<Result<u64, StoreError>> {
        let reader = tokio::spawn({
            let progress = progress.clone();
            async move { progress.settled().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        reader
    }

    #[tokio::test]
    async fn a_read_waits_until_the_tree_holds_every_answered_change() {
        let progress = Arc::new(Progress::new(4));
        // A group is answered (in the journal) but not yet applied to the tree.
        progress.commit(1);
        let reader = waiting_reader(&progress).await;
        assert!(
            !reader.is_finished(),
            "a read went ahead of an answered change"
        );
        progress.publish(1, 5);
        assert_eq!(reader.await.unwrap().unwrap(), 5);
        assert_eq!(progress.settled().await.unwrap(), 5, "nothing to wait for");
    }

    #[tokio::test]
    async fn until_stopped_returns_when_the_writer_stops_and_not_before() {
        let progress = Arc::new(Progress::new(4));
        let waiter = tokio::spawn({
            let progress = progress.clone();
            async move { progress.until_stopped().await }
        });
        progress.commit(1);
        progress.publish(1, 5);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "a published group woke the stop waiter for good"
        );
        progress.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the stop was not seen")
            .unwrap();
        // Once stopped, it returns at once.
        progress.until_stopped().await;
    }

    #[tokio::test]
    async fn reads_fail_rather_than_wait_once_the_writer_has_stopped() {
        let progress = Arc::new(Progress::new(4));
        progress.commit(1);
        let reader = waiting_reader(&progress).await;
        progress.stop();
        assert!(matches!(reader.await.unwrap(), Err(StoreError::Closed)));
    }
}
