//! The alert store: sled behind one domain-named type. Nothing else touches sled.
//!
//! All changes go through one writer thread ([`writer`]) that commits them in
//! groups: a change is answered only after the journal record that holds it
//! is on disk ([`journal`]). Reads go straight to sled on the blocking pool,
//! once the tree holds every change answered before them.

pub mod backup;
pub mod check;
mod error;
mod group;
mod held;
mod journal;
pub mod keys;
mod ledger;
mod migrate;
#[cfg(test)]
mod model_tests;
mod packed;
mod query;
mod record;
pub mod restore;
pub(crate) use record::decode_alert;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use error::StoreError;
pub use ledger::{Action, Actor, Changed, Inserted, Refused, ReplyOutcome, ThreadReply};
pub use query::{ChangePage, Counts, ListQuery, Page};

use crate::alert::{now_ms, Alert, AlertId, NewAlert};
use journal::Journal;
use ledger::Ledger;
use writer::{Completion, Job, Progress, Syncer};

/// How the store runs.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled's page cache.
    pub cache_bytes: u64,
    /// Writes stop (503) while the data dir's file system has less free space.
    pub min_free_bytes: u64,
    /// Longest a request waits for its commit before answering 503, so that
    /// no request is answered later than this even on a stalled disk.
    pub commit_timeout: Duration,
    /// Whether a store written by an older klaxon (tree schema 2 or 3) is
    /// upgraded on open. The server does; the offline commands refuse it
    /// instead, so that the server that wrote it can still open it.
    pub upgrade: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: crate::config::DEFAULT_CACHE_MB << 20,
            min_free_bytes: 64 << 20,
            commit_timeout: Duration::from_secs(1),
            upgrade: true,
        }
    }
}

/// The on-disk layout version; it names the sled directory inside the data dir.
/// Version 2 packs the indexes into bitmaps and buckets (version 1 had one
/// key per alert per index); a version 1 store is migrated on open.
pub const SCHEMA_VERSION: u64 = 2;

/// The schema number the tree holds (`Z schema`), in the same `v2/` layout:
/// 3 since alert records are postcard (see [`record`]), 4 since a message's
/// dedup key is its channel and ts without the team (see
/// [`keys::message_hash`]). A klaxon from before refuses a newer store (exit
/// code 3) instead of misreading it. An older store is marked when opened,
/// once the journal it left is replayed, together with a note that its
/// message buckets are to be rebuilt; both are durable before the rebuild
/// (see [`migrate::messages_by_channel`]) writes anything.
const TREE_SCHEMA: u64 = 4;

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Tree,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    progress: Arc<Progress>,
    /// Random per database: tells one store's ETags from another's.
    instance: u64,
    /// Sequence numbers this store, and the stores it was restored from,
    /// skipped when they were restored.
    skipped: Vec<RangeInclusive<u64>>,
    commit_timeout: Duration,
    /// Read by queries while they run: see [`group::Applying`].
    applying: group::Applying,
    /// When the last probe passed: see [`Store::probe`].
    probed: tokio::sync::Mutex<Option<Instant>>,
}

/// How long a passed probe answers for the probes after it.
const PROBE_FRESH: Duration = Duration::from_secs(1);

/// How long [`Store::open`] waits for a lock that a store closed by this
/// same process still holds.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens sled at `path`. sled releases a database's lock only once its
/// background threads are done with it, a moment after the last handle is
/// dropped: a store closed and opened again in one process (a restore, a
/// migration, a test) can find it still held, more often on a busy machine.
/// That is waited for, briefly; another process's lock then still fails.
fn open_sled(path: &Path, options: &StoreOptions) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(StoreError::from);
        match opened {
            Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

impl Store {
    /// Opens (or creates) the store under `data_dir`, checking its schema version.
    pub fn open(data_dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        create_dirs(data_dir)?;
        refuse_newer_schema(data_dir)?;
        refuse_unfinished_restore(data_dir)?;
        // On a thread of its own: the migration waits for its writer, which
        // a caller on an async runtime (`klaxon serve` starting) may not do.
        std::thread::scope(|s| {
            s.spawn(|| migrate::from_v1(data_dir, options))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        let path = store_dir(data_dir);
        let db = open_sled(&path, options)?;
        let tree = db.open_tree("klaxon")?;
        let (instance, upgrading) = match tree.get(keys::meta("schema"))? {
            Some(v) => {
                let found = keys::u64_value(&v).unwrap_or(u64::MAX);
                if !(SCHEMA_VERSION..=TREE_SCHEMA).contains(&found) {
                    return Err(StoreError::SchemaTooNew {
                        path,
                        found,
                        supported: TREE_SCHEMA,
                    });
                }
                if found < TREE_SCHEMA && !options.upgrade {
                    return Err(StoreError::SchemaTooOld { path, found });
                }
                let instance = tree
                    .get(keys::meta("instance"))?
                    .and_then(|v| keys::u64_value(&v))
                    .ok_or_else(|| StoreError::Corrupt("store has no instance id".into()))?;
                (instance, found < TREE_SCHEMA)
            }
            None => (initialise(&tree, &path)?, false),
        };
        let syncer = Syncer::new(db, &path)?;
        let journal = recover(&tree, &syncer, &path, instance)?;
        if upgrading {
            // Marked only now: a start that failed before this (a journal that
            // cannot be used) leaves the store to the klaxon that wrote it.
            // Durable before the rebuild writes anything of this schema.
            let mut batch = sled::Batch::default();
            batch.insert(keys::meta("schema"), &TREE_SCHEMA.to_be_bytes());
            batch.insert(keys::meta(migrate::REKEY), &[]);
            tree.apply_batch(batch)?;
            syncer.sync()?;
        }
        if tree.contains_key(keys::meta(migrate::REKEY))? {
            migrate::messages_by_channel(&tree)?;
            // The buckets are durable before the note goes: a power cut can
            // keep a later write of sled's and lose an earlier one.
            syncer.sync()?;
            tree.remove(keys::meta(migrate::REKEY))?;
            syncer.sync()?;
        }
        let last_id = tree
            .scan_prefix([keys::ALERT])
            .keys()
            .next_back()
            .transpose()?
            .and_then(|k| keys::id_suffix(&k))
            .unwrap_or(AlertId::MIN);
        let seq = stored_seq(&tree)?;
        let skipped = tree
            .get(keys::meta("skipped"))?
            .map_or_else(Vec::new, |v| keys::skipped_ranges(&v));
        let ordinals = ordinal_count(&tree)?;
        sync_dir(&path)?;
        sync_dir(data_dir)?;

        let progress = Arc::new(Progress::new(seq));
        let (tx, rx) = mpsc::channel();
        let ledger = Ledger::new(
            tree.clone(),
            last_id,
            seq,
            ordinals,
            data_dir.to_owned(),
            options.min_free_bytes,
        );
        let applying = ledger.applying();
        let handle = writer::spawn(ledger, journal, syncer, rx, progress.clone())
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tree,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                progress,
                instance,
                skipped,
                commit_timeout: options.commit_timeout,
                applying,
                probed: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Stores `new` unless its event or message was seen before. Answers
    /// once the alert (or the dedup record) is on disk.
    pub async fn insert_if_new(&self, new: NewAlert) -> Result<Inserted, StoreError> {
        self.write(move |ledger| ledger.insert_if_new(new)).await
    }

    pub async fn change(
        &self,
        id: AlertId,
        action: Action,
        actor: Actor,
    ) -> Result<Result<Changed, Refused>, StoreError> {
        self.write(move |ledger| ledger.change(id, action, actor))
            .await
    }

    pub async fn add_note(
        &self,
        id: AlertId,
        actor: Actor,
    ) -> Result<Result<Alert, Refused>, StoreError> {
        self.write(move |ledger| ledger.add_note(id, actor)).await
    }

    pub async fn thread_reply(&self, reply: ThreadReply) -> Result<ReplyOutcome, StoreError> {
        self.write(move |ledger| ledger.thread_reply(reply)).await
    }

    /// [`Store::thread_reply`], holding a reply that came before its thread's
    /// first message until that message is an alert (see [`held`]).
    pub async fn thread_reply_or_hold(
        &self,
        reply: ThreadReply,
    ) -> Result<ReplyOutcome, StoreError> {
        self.write(move |ledger| ledger.thread_reply_or_hold(reply))
            .await
    }

    /// Writes, flushes and reads back a probe record (readiness).
    ///
    /// A probe writes durably, and `/readyz` is open to any client: so one
    /// runs at a time, and a probe within a second of one that passed
    /// shares its answer, whatever the rate of calls. A stopped store fails,
    /// and no probe waits longer than a commit may.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let probing = async {
            let mut probed = self.inner.probed.lock().await;
            if self.stopped() {
                return Err(StoreError::Closed);
            }
            if probed.is_some_and(|at| at.elapsed() < PROBE_FRESH) {
                return Ok(());
            }
            self.write(|ledger| ledger.probe()).await?;
            *probed = Some(Instant::now());
            Ok(())
        };
        // Waiting for another probe counts against the same commit timeout:
        // probes queued behind a stalled disk do not wait a second each.
        let timeout = self.inner.commit_timeout;
        tokio::time::timeout(timeout, probing)
            .await
            .unwrap_or(Err(StoreError::Timeout(timeout)))
    }

    pub async fn get(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        self.read(move |tree| decode_alert(tree.get(keys::alert(id))?))
            .await
    }

    pub async fn list(&self, query: ListQuery) -> Result<Seen<Page>, StoreError> {
        self.read_seen(move |tree| query::list(tree, &query)).await
    }

    pub async fn counts(&self) -> Result<Seen<Counts>, StoreError> {
        self.read_seen(query::counts).await
    }

    /// Changes after `after`, up to the latest one settled when it is
    /// called (the page's `seq`).
    pub async fn changes(&self, after: u64, limit: usize) -> Result<Seen<ChangePage>, StoreError> {
        let up_to = self.settled_seq().await?;
        let value = self
            .read(move |tree| query::changes(tree, after, up_to, limit))
            .await?;
        Ok(Seen { value, seq: up_to })
    }

    /// Sequence number of the latest change readers see, once they see
    /// every change answered before this call (on disk, and in the tree).
    pub async fn settled_seq(&self) -> Result<u64, StoreError> {
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.inner.progress.settled()).await {
            Ok(seq) => seq,
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// Blocking callers: returns once the tree holds every change answered
    /// before the call (a no-op change passes through the writer after them).
    fn settle_blocking(&self) -> Result<(), StoreError> {
        self.write_blocking(|_| Ok(()))
    }

    /// The writer has stopped on a storage failure: only a restart recovers.
    pub fn stopped(&self) -> bool {
        self.inner.progress.stopped()
    }

    /// Returns once the writer has stopped on a storage failure.
    pub async fn until_stopped(&self) {
        self.inner.progress.until_stopped().await;
    }

    /// Identifies this database (changes when a store is recreated or restored).
    pub fn instance(&self) -> u64 {
        self.inner.instance
    }

    /// Whether a change feed cursor `after` comes from another history of
    /// this store: beyond its latest change, or among the numbers it skipped
    /// when it, or a store it was restored from, was restored (the original
    /// may have used them after the backup).
    pub async fn foreign_cursor(&self, after: u64) -> Result<bool, StoreError> {
        let latest = self.settled_seq().await?;
        let skipped = &self.inner.skipped;
        Ok(after > latest || skipped.iter().any(|s| s.contains(&after)))
    }

    /// Stops the writer after it has committed what is queued. Later writes fail.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.inner.jobs.lock() {
            jobs.take();
        }
        let handle = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Runs `change` on the writer; answers once the commit covering it is on disk.
    async fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Ledger) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let timeout = self.inner.commit_timeout;
        match tokio::time::timeout(timeout, self.submit(change)?).await {
            Ok(answer) => answer.map_err(|_| StoreError::Closed)?,
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// [`Store::write`] for blocking callers (backup, restore, command line).
    fn write_blocking<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Ledger) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(change)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    fn submit<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut Ledger) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ledger| {
            let outcome = ledger.transact(change);
            let done: Completion = Box::new(move |synced| {
                let _ = tx.send(synced.and(outcome));
            });
            done
        });
        let sender = self
            .inner
            .jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone();
        let sender = sender.ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Runs `query` on the blocking pool once the tree holds every change
    /// answered before the call.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&sled::Tree) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.settled_seq().await?;
        let tree = self.inner.tree.clone();
        let applying = self.inner.applying.clone();
        let wait = self.inner.commit_timeout;
        actix_web::rt::task::spawn_blocking(move || {
            let _whole_groups = group::read_whole(&applying, wait)?;
            query(&tree)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// [`Store::read`], with the sequence number of the tree `query` read (it
    /// holds whole groups meanwhile), which can be past the settled one.
    async fn read_seen<T: Send + 'static>(
        &self,
        query: impl FnOnce(&sled::Tree) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Seen<T>, StoreError> {
        self.read(move |tree| {
            let seq = stored_seq(tree)?;
            Ok(Seen {
                value: query(tree)?,
                seq,
            })
        })
        .await
    }
}

/// What a read found, and the sequence number of the latest change in the
/// tree it read: an answer's ETag names what the answer shows.
#[derive(Debug)]
pub struct Seen<T> {
    pub value: T,
    pub seq: u64,
}

impl<T> std::ops::Deref for Seen<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// What to say of a record that does not decode, named by its key's id.
pub(crate) fn damaged_record(key: &[u8], e: &StoreError) -> String {
    let id = keys::id_suffix(key).map_or("?".into(), |id| id.to_string());
    format!("record of alert {id}: {e}")
}

/// The sequence number of the latest change in the tree: every group writes it.
pub(crate) fn stored_seq(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::meta("seq"))?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0))
}

/// How many alerts the store holds (the next ordinal).
pub(crate) fn ordinal_count(tree: &sled::Tree) -> Result<u64, StoreError> {
    Ok(tree
        .get(keys::meta("ordinals"))?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0))
}

fn initialise(tree: &sled::Tree, path: &Path) -> Result<u64, StoreError> {
    if tree.iter().next().is_some() {
        return Err(StoreError::Corrupt(format!(
            "{} has records but no schema version",
            path.display()
        )));
    }
    let instance = now_ms() ^ (u64::from(std::process::id()) << 40);
    let mut batch = sled::Batch::default();
    batch.insert(keys::meta("schema"), &TREE_SCHEMA.to_be_bytes());
    batch.insert(keys::meta("instance"), &instance.to_be_bytes());
    tree.apply_batch(batch)?;
    Ok(instance)
}

/// Opens the journal, applies again to the tree every group recorded since
/// the last checkpoint (the tree may lack any part of them after a crash or
/// a power cut), then checkpoints and marks it.
fn recover(
    tree: &sled::Tree,
    syncer: &Syncer,
    path: &Path,
    instance: u64,
) -> Result<Journal, StoreError> {
    let applied = tree
        .get(keys::meta("journal"))?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0);
    let (mut journal, replay) = Journal::open(path, instance, applied, journal::FILE_BYTES)?;
    if journal.reached().saturating_add(1) < applied {
        tracing::warn!(
            applied,
            journal = journal.reached(),
            "the journal has no record of the store's latest changes: its files were lost or \
             replaced. If klaxon did not stop cleanly before this start, changes answered after \
             its last checkpoint may be missing; `klaxon check-store` checks the rest"
        );
    }
    if let (Some(first), Some(last)) = (replay.first(), replay.last()) {
        tracing::info!(
            groups = replay.len(),
            from = first.number,
            to = last.number,
            "applying again the groups journalled since the last checkpoint"
        );
    }
    // Key by key, as the writer applies a group. A sled batch seals sled's IO
    // buffer twice and hands it to its IO threads each time; once, after a
    // SIGQUIT, all of them waited on sled's segment lock while this thread,
    // holding it, waited for one of them to truncate a file (sled issue
    // 1412), and the start never ended. Key by key, sled hands its buffer on
    // only when a segment fills.
    for group in replay {
        // Defensive: never lower it (every group too big for a record follows a
        // mark, so replayed groups should always come after what the tree says).
        let number = group.number.max(applied);
        group::put_key_by_key(tree, group.writes, number, || Ok(()))?;
    }
    syncer.sync()?;
    journal.mark_checkpoint()?;
    Ok(journal)
}

/// The sled directory of this schema inside `data_dir` (`v2/`).
fn store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(format!("v{SCHEMA_VERSION}"))
}

/// What a data dir holds, for the commands that read a store and must
/// neither create one (at a mistyped path) nor migrate one.
#[derive(Debug, PartialEq, Eq)]
pub enum Holds {
    /// This schema's sled store, or a newer schema's (opening then says so).
    Store,
    /// A schema 1 store: `klaxon serve` migrates it when it starts.
    EarlierSchema,
    /// A schema 1 store beside a `v2/` that holds none: `klaxon serve`
    /// refuses it until `v2/` is moved aside (the message says so).
    EarlierSchemaBlocked(String),
    /// Nothing klaxon wrote (an empty `v2/` is not a store).
    Nothing,
}

/// What `data_dir` holds; an error only when it cannot be read.
pub fn holds(data_dir: &Path) -> std::io::Result<Holds> {
    let entries = match fs::read_dir(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Holds::Nothing),
        entries => entries?,
    };
    let mut found = Holds::Nothing;
    for entry in entries {
        let path = entry?.path();
        match schema_of(&path) {
            Some(v) if v > SCHEMA_VERSION && path.is_dir() => return Ok(Holds::Store),
            Some(SCHEMA_VERSION) if holds_sled(&path)? => return Ok(Holds::Store),
            Some(1) if holds_sled(&path)? => found = Holds::EarlierSchema,
            _ => {}
        }
    }
    if found == Holds::EarlierSchema && store_dir(data_dir).exists() {
        return Ok(Holds::EarlierSchemaBlocked(migrate::blocked(data_dir)));
    }
    Ok(found)
}

/// The schema version a data dir entry is named for: `v2` is 2; only the
/// names klaxon writes (`v02` is none).
fn schema_of(path: &Path) -> Option<u64> {
    let digits = path.file_name()?.to_str()?.strip_prefix('v')?;
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| n.to_string() == digits)
}

/// Whether `dir` holds a sled store: its `db` file, with something in it
/// (sled makes a new store of an empty one).
fn holds_sled(dir: &Path) -> std::io::Result<bool> {
    match fs::metadata(dir.join("db")) {
        Ok(meta) => Ok(meta.is_file() && meta.len() > 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A `v{N}` entry with N above ours means a newer klaxon wrote here.
fn refuse_newer_schema(data_dir: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
    for entry in entries.flatten() {
        if let Some(found) = schema_of(&entry.path()).filter(|&v| v > SCHEMA_VERSION) {
            let path: PathBuf = entry.path();
            return Err(StoreError::SchemaTooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    Ok(())
}

/// A restore that was stopped leaves its staging directory and no store:
/// opening would start an empty store in its place, and a retried restore
/// would then refuse the data dir as not empty.
fn refuse_unfinished_restore(data_dir: &Path) -> Result<(), StoreError> {
    let staging = data_dir.join(restore::STAGING);
    if staging.exists() && !store_dir(data_dir).exists() {
        return Err(StoreError::UnfinishedRestore(staging));
    }
    Ok(())
}

/// Creates `dir` and its missing parents, each made durable in its own
/// parent: a power cut just after the first answers must not take the data
/// dir, and every answered change in it, away with an unsynced directory entry.
fn create_dirs(dir: &Path) -> Result<(), StoreError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    for created in missing.into_iter().rev() {
        let parent = match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."), // a relative path's first part
        };
        match fs::File::open(parent) {
            Ok(d) => d.sync_all().map_err(|e| StoreError::io(parent, e))?,
            // A parent klaxon may write in but not read (mode 0733) cannot
            // be opened to fsync it: not worth refusing to start over.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => tracing::warn!(
                dir = %parent.display(),
                "cannot open the data dir's parent to make its new entry durable; a power cut soon after this start could lose it"
            ),
            Err(e) => return Err(StoreError::io(parent, e)),
        }
    }
    Ok(())
}

/// fsync a directory so that files created in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests;
