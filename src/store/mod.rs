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
mod journal;
pub mod keys;
mod ledger;
mod migrate;
mod packed;
mod query;
mod record;
pub(crate) use record::decode_alert;
#[cfg(test)]
mod testing;
mod writer;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            min_free_bytes: 64 << 20,
            commit_timeout: Duration::from_secs(1),
        }
    }
}

/// The on-disk layout version; it names the sled directory inside the data dir.
/// Version 2 packs the indexes into bitmaps and buckets (version 1 had one
/// key per alert per index); a version 1 store is migrated on open.
pub const SCHEMA_VERSION: u64 = 2;

/// The schema number the tree holds (`Z schema`): 3 since alert records are
/// postcard (see [`record`]), in the same `v2/` layout. A klaxon from before
/// knows only 2, so it refuses such a store (exit code 3) instead of serving
/// binary records as JSON. A store marked 2 is marked 3 when opened, and the
/// open's checkpoint makes that durable before anything else is written.
const TREE_SCHEMA: u64 = 3;

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
    commit_timeout: Duration,
}

impl Store {
    /// Opens (or creates) the store under `data_dir`, checking its schema version.
    pub fn open(data_dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        refuse_newer_schema(data_dir)?;
        migrate::from_v1(data_dir, options)?;
        let path = data_dir.join(format!("v{SCHEMA_VERSION}"));
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(None)
            .open()?;
        let tree = db.open_tree("klaxon")?;
        let instance = match tree.get(keys::meta("schema"))? {
            Some(v) => {
                let found = keys::u64_value(&v).unwrap_or(u64::MAX);
                if !(SCHEMA_VERSION..=TREE_SCHEMA).contains(&found) {
                    return Err(StoreError::SchemaTooNew {
                        path,
                        found,
                        supported: TREE_SCHEMA,
                    });
                }
                if found < TREE_SCHEMA {
                    tree.insert(keys::meta("schema"), &TREE_SCHEMA.to_be_bytes())?;
                }
                tree.get(keys::meta("instance"))?
                    .and_then(|v| keys::u64_value(&v))
                    .ok_or_else(|| StoreError::Corrupt("store has no instance id".into()))?
            }
            None => initialise(&tree, &path)?,
        };
        let syncer = Syncer::new(db, &path)?;
        let journal = recover(&tree, &syncer, &path, instance)?;
        let last_id = tree
            .scan_prefix([keys::ALERT])
            .keys()
            .next_back()
            .transpose()?
            .and_then(|k| keys::id_suffix(&k))
            .unwrap_or(AlertId::MIN);
        let seq = tree
            .get(keys::meta("seq"))?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0);
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
        let handle = writer::spawn(ledger, journal, syncer, rx, progress.clone())
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tree,
                jobs: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                progress,
                instance,
                commit_timeout: options.commit_timeout,
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

    /// Writes, flushes and reads back a probe record (readiness).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.write(|ledger| ledger.probe()).await
    }

    pub async fn get(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        self.read(move |tree| decode_alert(tree.get(keys::alert(id))?))
            .await
    }

    pub async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        self.read(move |tree| query::list(tree, &query)).await
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(query::counts).await
    }

    /// Changes after `after`, up to the latest one in the tree.
    pub async fn changes(&self, after: u64, limit: usize) -> Result<ChangePage, StoreError> {
        let up_to = self.settled_seq().await?;
        self.read(move |tree| query::changes(tree, after, up_to, limit))
            .await
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

    /// Identifies this database (changes when a store is recreated or restored).
    pub fn instance(&self) -> u64 {
        self.inner.instance
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
            let outcome = change(ledger);
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
        actix_web::rt::task::spawn_blocking(move || query(&tree))
            .await
            .map_err(|_| StoreError::Closed)?
    }
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
    if let (Some(first), Some(last)) = (replay.first(), replay.last()) {
        tracing::info!(
            groups = replay.len(),
            from = first.number,
            to = last.number,
            "applying again the groups journalled since the last checkpoint"
        );
    }
    for group in replay {
        let mut batch = group::batch_of(group.writes);
        // Defensive: never lower it (every group too big for a record follows a
        // mark, so replayed groups should always come after what the tree says).
        let number = group.number.max(applied);
        batch.insert(keys::meta("journal"), &number.to_be_bytes());
        tree.apply_batch(batch)?;
    }
    syncer.sync()?;
    journal.mark_checkpoint()?;
    Ok(journal)
}

/// A `v{N}` directory with N above ours means a newer klaxon wrote here.
fn refuse_newer_schema(data_dir: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let version = name
            .to_str()
            .and_then(|n| n.strip_prefix('v'))
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(found) = version.filter(|&v| v > SCHEMA_VERSION) {
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

/// fsync a directory so that files created in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_commit_slower_than_the_timeout_is_answered_with_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            commit_timeout: Duration::from_millis(200),
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        // A stalled disk, as the writer sees it: the group takes longer than the timeout.
        let slow = store
            .write(|ledger| {
                std::thread::sleep(Duration::from_millis(600));
                ledger.probe()
            })
            .await;
        assert!(matches!(slow, Err(StoreError::Timeout(_))), "{slow:?}");
        // The writer carries on: once the slow group is done, changes commit normally.
        tokio::time::sleep(Duration::from_millis(600)).await;
        store.probe().await.unwrap();
        store.close();
    }

    #[tokio::test]
    async fn a_damaged_record_is_left_out_of_listings_and_the_change_feed_but_fails_a_backup() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let metrics = crate::metrics::handle();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let alerts: Vec<_> = (0..4)
            .map(|i| (i, testing::alert(i, Urgency::High, Status::Open)))
            .collect();
        let imported = alerts.clone();
        store.write(move |l| l.import(imported)).await.unwrap();
        store.settled_seq().await.unwrap();
        // One record of an unknown format, one cut short from before the
        // binary format (a JSON record).
        let damaged = [alerts[1].1.id, alerts[2].1.id];
        let tree = &store.inner.tree;
        tree.insert(keys::alert(damaged[0]), &[0xff, 1, 2][..])
            .unwrap();
        tree.insert(keys::alert(damaged[1]), &br#"{"id":"#[..])
            .unwrap();
        let ids = |jsons: &[sled::IVec]| -> Vec<AlertId> {
            jsons
                .iter()
                .map(|j| serde_json::from_slice::<Alert>(j).unwrap().id)
                .collect()
        };
        let (newest, oldest) = (alerts[3].1.id, alerts[0].1.id);

        // Pages of one: the cursor goes past the damaged record.
        let mut listed = Vec::new();
        let mut before = None;
        for _ in 0..4 {
            let query = ListQuery {
                limit: 1,
                before,
                ..ListQuery::default()
            };
            let page = store.list(query).await.unwrap();
            listed.extend(ids(&page.alerts));
            before = page.next;
            if before.is_none() {
                break;
            }
        }
        assert_eq!(listed, vec![newest, oldest]);
        let feed = store.changes(0, 10).await.unwrap();
        assert_eq!(ids(&feed.alerts), vec![oldest, newest]);
        assert_eq!(feed.next_after, 4);
        let rendered = metrics.render();
        assert!(
            rendered.contains("klaxon_store_damaged_records_total"),
            "{rendered}"
        );
        // A backup must be whole: it fails instead.
        let backup = store.clone();
        let backed_up = tokio::task::spawn_blocking(move || backup.backup(&mut Vec::new()));
        assert!(backed_up.await.unwrap().is_err());
        // The store check names both.
        let checked = store.clone();
        let report = tokio::task::spawn_blocking(move || checked.check())
            .await
            .unwrap()
            .unwrap();
        for id in damaged {
            let named = format!("record of alert {id}:");
            assert!(
                report.problems.iter().any(|p| p.starts_with(&named)),
                "{named} not in {:?}",
                report.problems
            );
        }
        store.close();
    }

    #[test]
    fn records_written_as_json_by_earlier_versions_are_served_and_changed_as_before() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let alerts: Vec<_> = (0..3)
            .map(|i| (i, testing::alert(i, Urgency::High, Status::Open)))
            .collect();
        let imported = alerts.clone();
        store.write_blocking(move |l| l.import(imported)).unwrap();
        // Answered groups go into the tree just after: wait for that.
        store.settle_blocking().unwrap();
        // Before the binary format, records were the alert's JSON.
        for (_, alert) in &alerts {
            let stored = store
                .inner
                .tree
                .get(keys::alert(alert.id))
                .unwrap()
                .unwrap();
            assert_eq!(stored[0], 1, "a new record is not in the binary format");
            let json = serde_json::to_vec(alert).unwrap();
            store
                .inner
                .tree
                .insert(keys::alert(alert.id), json)
                .unwrap();
        }
        let (_, old) = &alerts[1];
        assert_eq!(rt.block_on(store.get(old.id)).unwrap().as_ref(), Some(old));
        let listing = ListQuery {
            limit: 10,
            ..ListQuery::default()
        };
        let list = |query: ListQuery| -> Vec<Alert> {
            let page = rt.block_on(store.list(query)).unwrap();
            page.alerts
                .iter()
                .map(|json| serde_json::from_slice(json).unwrap())
                .collect()
        };
        let newest_first: Vec<_> = alerts.iter().rev().map(|(_, a)| a.clone()).collect();
        assert_eq!(list(listing.clone()), newest_first);
        let oldest_first: Vec<_> = alerts.iter().map(|(_, a)| a.clone()).collect();
        let feed = rt.block_on(store.changes(0, 10)).unwrap();
        let fed: Vec<Alert> = feed
            .alerts
            .iter()
            .map(|json| serde_json::from_slice(json).unwrap())
            .collect();
        assert_eq!(fed, oldest_first);
        let mut backup = Vec::new();
        store.backup(&mut backup).unwrap();
        let lines: Vec<&[u8]> = backup.split(|&b| b == b'\n').collect();
        let backed_up: Vec<Alert> = lines[1..=3]
            .iter()
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(backed_up, oldest_first);
        // A change writes the record anew, in the current format.
        let changed = rt
            .block_on(store.change(old.id, Action::Acknowledge, Actor::default()))
            .unwrap();
        assert!(matches!(changed, Ok(Changed::Yes(_))), "{changed:?}");
        store.settle_blocking().unwrap();
        let stored = store.inner.tree.get(keys::alert(old.id)).unwrap().unwrap();
        assert_eq!(stored[0], 1);
        let listed = list(listing);
        assert_eq!(listed[1].status, Status::Acknowledged);
        assert_eq!(
            (listed[0].id, listed[2].id),
            (alerts[2].1.id, alerts[0].1.id)
        );
        let report = store.check().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        store.close();
    }

    #[test]
    fn a_store_opened_by_this_version_is_marked_so_that_older_versions_refuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Store::open(dir.path(), &StoreOptions::default());
        // `Z schema` as sled has it, optionally set first.
        let schema = |set: Option<u64>| {
            let db = sled::Config::new()
                .path(dir.path().join(format!("v{SCHEMA_VERSION}")))
                .flush_every_ms(None)
                .open()
                .unwrap();
            let tree = db.open_tree("klaxon").unwrap();
            if let Some(schema) = set {
                tree.insert(keys::meta("schema"), &schema.to_be_bytes())
                    .unwrap();
                db.flush().unwrap();
            }
            let found = tree.get(keys::meta("schema")).unwrap();
            found.and_then(|v| keys::u64_value(&v)).unwrap()
        };
        let store = open().unwrap();
        store.close();
        drop(store);
        assert_eq!(schema(None), TREE_SCHEMA);
        // A store last written by a version that stored records as JSON.
        assert_eq!(schema(Some(2)), 2);
        let store = open().unwrap();
        store.close();
        drop(store);
        assert_eq!(schema(None), 3, "not marked for binary records");
        // A store marked by a later version is refused.
        schema(Some(4));
        assert!(matches!(
            open(),
            Err(StoreError::SchemaTooNew { found: 4, .. })
        ));
    }

    /// Copies a data dir as a crash would leave it: what is on disk now.
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    #[test]
    fn a_crash_while_a_group_goes_into_the_tree_keeps_every_answered_change() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let alerts = |ids: std::ops::Range<u64>| -> Vec<_> {
            ids.map(|i| (i, testing::alert(i, Urgency::High, Status::Open)))
                .collect()
        };
        let first = alerts(0..10);
        store.write_blocking(move |l| l.import(first)).unwrap();
        // The next group is journalled and answered; then the process dies
        // after three of its keys went into the tree, and sled wrote those out.
        let second = alerts(10..20);
        store
            .write_blocking(move |l| {
                l.stop_finish_after(3);
                l.import(second)
            })
            .unwrap();
        assert!(wait_until(|| store.stopped()), "the writer went on");
        store.inner.tree.flush().unwrap();
        let (crashed, inspected) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        copy_dir(dir.path(), crashed.path());
        copy_dir(dir.path(), inspected.path());
        store.close();
        // What sled alone recovers (from a second copy, since opening it
        // writes): part of the answered group, under the first group's number.
        let v2 = inspected.path().join(format!("v{SCHEMA_VERSION}"));
        // No background flusher: nothing of sled may outlive this copy.
        let db = sled::Config::new()
            .path(&v2)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let partial = db.open_tree("klaxon").unwrap();
        let before = partial.scan_prefix([keys::ALERT]).count();
        assert!(
            (11..20).contains(&before),
            "{before} alerts: not a partial group"
        );
        let applied = partial.get(keys::meta("journal")).unwrap();
        assert_eq!(applied.and_then(|v| keys::u64_value(&v)), Some(1));
        drop((partial, db));

        let reopened = Store::open(crashed.path(), &StoreOptions::default()).unwrap();
        let report = reopened.check().unwrap();
        assert_eq!(report.alerts, 20);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        reopened.close();
    }

    #[test]
    fn a_power_cut_that_loses_part_of_what_sled_wrote_keeps_every_answered_change() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let alerts = |ids: std::ops::Range<u64>| -> Vec<_> {
            ids.map(|i| (i, testing::alert(i, Urgency::High, Status::Open)))
                .collect()
        };
        for range in [0..10, 10..20, 20..30] {
            let group = alerts(range);
            store.write_blocking(move |l| l.import(group)).unwrap();
        }
        store.settle_blocking().unwrap();
        // sled wrote its log out (it does when its buffer fills) but no
        // checkpoint was made since the store opened.
        store.inner.tree.flush().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), crashed.path());
        store.close();

        // The power cut: sled's recovery kept the last group's note (`Z journal`)
        // but lost a record of an earlier group since the checkpoint, and put
        // the change feed's block back as it was before that group.
        let v2 = crashed.path().join(format!("v{SCHEMA_VERSION}"));
        let db = sled::Config::new()
            .path(&v2)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let tree = db.open_tree("klaxon").unwrap();
        let lost = testing::alert(15, Urgency::High, Status::Open).id;
        assert!(tree.remove(keys::alert(lost)).unwrap().is_some());
        let block = keys::change_block(0);
        let feed = tree.get(block).unwrap().unwrap();
        tree.insert(block, &feed[..10 * 16]).unwrap();
        let applied = tree.get(keys::meta("journal")).unwrap();
        assert_eq!(applied.and_then(|v| keys::u64_value(&v)), Some(3));
        db.flush().unwrap();
        drop((tree, db));

        let reopened = Store::open(crashed.path(), &StoreOptions::default()).unwrap();
        let report = reopened.check().unwrap();
        assert_eq!(report.alerts, 30);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let tree = &reopened.inner.tree;
        assert!(tree.get(keys::alert(lost)).unwrap().is_some());
        assert_eq!(tree.get(block).unwrap().unwrap(), feed);
        reopened.close();
    }

    #[test]
    fn a_store_closed_cleanly_has_nothing_to_apply_again() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let group = vec![(0, testing::alert(0, Urgency::High, Status::Open))];
        store.write_blocking(move |l| l.import(group)).unwrap();
        let instance = store.instance();
        store.close();
        drop(store);
        let v2 = dir.path().join(format!("v{SCHEMA_VERSION}"));
        // The last checkpoint is marked: the next start applies nothing again.
        let (_, replay) = Journal::open(&v2, instance, 1, journal::FILE_BYTES).unwrap();
        assert_eq!(replay.len(), 0);
    }

    fn wait_until(done: impl Fn() -> bool) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            done()
        })
    }

    #[test]
    fn a_crash_after_a_group_too_big_for_the_journal_keeps_every_answered_change() {
        use crate::alert::Status;
        use crate::urgency::Urgency;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        // 100 alerts of 30 KB: one group of about 3 MB, more than a record may hold.
        let big: Vec<_> = (0..100)
            .map(|i| {
                let mut a = testing::alert(i, Urgency::High, Status::Open);
                a.text = "x".repeat(30_000);
                (i, a)
            })
            .collect();
        store.write_blocking(move |l| l.import(big)).unwrap();
        // Then ordinary groups: journalled, answered, applied, but not flushed by sled.
        let small = vec![(100, testing::alert(100, Urgency::Low, Status::Open))];
        store.write_blocking(move |l| l.import(small)).unwrap();
        store.write_blocking(|l| l.raise_seq(500)).unwrap();
        store.settle_blocking().unwrap();
        let crashed = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), crashed.path());
        store.close();

        let reopened = Store::open(crashed.path(), &StoreOptions::default()).unwrap();
        let report = reopened.check().unwrap();
        assert_eq!(report.alerts, 101);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let seq = reopened.inner.tree.get(keys::meta("seq")).unwrap();
        assert_eq!(seq.and_then(|v| keys::u64_value(&v)), Some(500));
        reopened.close();
    }
}
