//! Moves an older store to the current layout, on open. A schema 1 store
//! (one key per alert per index) is moved when `v1` exists and the current
//! version's directory does not. The new store is built beside the old one
//! and renamed into place only when complete, so a crash midway just starts
//! it again; the old directory is kept as `v1.migrated` until an operator
//! removes it. A tree of schema 2 or 3 keeps its place and gets its message
//! buckets rebuilt ([`messages_by_channel`]).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::{
    decode_alert, holds_sled, keys, ledger, open_sled, store_dir, sync_dir, Store, StoreError,
    StoreOptions, SCHEMA_VERSION,
};

const BATCH: usize = 100;

/// The `Z` key that is there while the message buckets are still to be
/// rebuilt by [`messages_by_channel`].
pub const REKEY: &str = "rekey";

/// Rebuilds every message bucket from the records, each message keyed by its
/// channel and ts alone (tree schema 4; before, the team was hashed in too).
/// Each bucket is written whole, so a crash midway just runs it again at the
/// next open. Where two alerts stand for one message (stored by a klaxon that
/// told the workspaces of a shared channel apart), the first keeps it. Lost:
/// the entries of thread replies that acted (ack, resolve) rather than became
/// notes, which no record keeps; Slack's retry of such a reply, minutes after
/// the upgrade at most, acts again. Returns the number of messages.
pub fn messages_by_channel(tree: &sled::Tree) -> Result<usize, StoreError> {
    let started = std::time::Instant::now();
    let mut entries = Vec::new();
    // Records come in id order, and the sort is stable: the first alert of a
    // message stays ahead of later ones.
    for entry in tree.scan_prefix([keys::ALERT]) {
        let (key, record) = entry?;
        // A damaged record is left out, as listings leave it out, rather
        // than leaving a store no klaxon opens (`klaxon check-store` names it).
        let alert = match decode_alert(Some(record)) {
            Ok(Some(alert)) => alert,
            Ok(None) => continue,
            Err(e) => {
                let damaged = super::damaged_record(&key, &e);
                tracing::warn!(%damaged, "left out of the message dedup entries");
                continue;
            }
        };
        for message in ledger::messages_of(&alert) {
            let mut entry = [0; 24];
            entry[..16].copy_from_slice(&message);
            entry[16..].copy_from_slice(&alert.id.as_u64().to_be_bytes());
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| a[..16].cmp(&b[..16]));
    entries.dedup_by(|later, first| later[..16] == first[..16]);
    // Sorted by hash, each bucket's entries (its hash's first two bytes) are
    // one run, already in the order a bucket keeps them.
    let mut written = HashSet::new();
    for run in entries.chunk_by(|a, b| a[..2] == b[..2]) {
        let mut hash = [0; 16];
        hash.copy_from_slice(&run[0][..16]);
        let key = keys::message_bucket(&hash);
        tree.insert(key, run.concat())?;
        written.insert(key);
    }
    for key in tree.scan_prefix([keys::MESSAGE]).keys() {
        let key = key?;
        if !written.contains(&key[..]) {
            tree.remove(key)?;
        }
    }
    tracing::info!(
        messages = entries.len(),
        buckets = written.len(),
        ms = started.elapsed().as_millis() as u64,
        "message dedup keys rebuilt by channel and ts (store schema 4)"
    );
    Ok(entries.len())
}

/// Migrates `data_dir/v1` if there is one to migrate.
pub fn from_v1(data_dir: &Path, options: &StoreOptions) -> Result<(), StoreError> {
    let old = data_dir.join("v1");
    let new = store_dir(data_dir);
    if !old.is_dir() {
        return Ok(());
    }
    if new.exists() {
        let io = |e| StoreError::io(&new, e);
        if holds_sled(&new).map_err(io)? {
            // A crash between the two renames at the end left both: the
            // migration is done but for putting v1 aside.
            return put_aside(data_dir, &old);
        }
        // A v2 that holds no store would be opened empty, and every schema
        // 1 alert would be gone from the service.
        if holds_sled(&old).map_err(io)? {
            return Err(StoreError::Corrupt(blocked(data_dir)));
        }
        return Ok(());
    }
    let work = data_dir.join(".migrating");
    remove_work_dir(&work)?;
    tracing::info!(from = %old.display(), "migrating the store to schema {SCHEMA_VERSION}");
    // Through open_sled: a schema 1 store closed a moment ago in this
    // process (a test, say) can still hold its lock.
    let v1 = open_sled(&old, options)?.open_tree("klaxon")?;
    let store = Store::open(&work, options)?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut alerts = 0u64;
    // Records come in id order, so each alert's ordinal is its position.
    for entry in v1.scan_prefix([keys::ALERT]) {
        let (_, json) = entry?;
        if let Some(alert) = decode_alert(Some(json))? {
            batch.push((alerts, alert));
            alerts += 1;
        }
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            store.write_blocking(move |ledger| ledger.import(full))?;
        }
    }
    store.write_blocking(move |ledger| ledger.import(batch))?;
    let seq = v1
        .get(keys::meta("seq"))?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0);
    store.write_blocking(move |ledger| ledger.raise_seq(seq))?;
    store.close();
    drop(store);
    drop(v1);
    move_into_place(&work, data_dir)?;
    tracing::info!(alerts, "store migrated");
    put_aside(data_dir, &old)
}

/// Removes a work directory that a migration or restore stopped midway left.
pub(super) fn remove_work_dir(work: &Path) -> Result<(), StoreError> {
    if work.exists() {
        fs::remove_dir_all(work).map_err(|e| StoreError::io(work, e))?;
    }
    Ok(())
}

/// Renames the store built in `work` (its `v2/`) into `data_dir`, whole,
/// and syncs `data_dir` so that the rename survives a power cut.
pub(super) fn move_into_place(work: &Path, data_dir: &Path) -> Result<(), StoreError> {
    let new = store_dir(data_dir);
    fs::rename(store_dir(work), &new).map_err(|e| StoreError::io(&new, e))?;
    sync_dir(data_dir)
}

/// Why a schema 1 store cannot be migrated: `v2/` is in the way.
pub fn blocked(data_dir: &Path) -> String {
    let new = store_dir(data_dir);
    format!(
        "{} holds a schema 1 store, and {} holds none: move {} aside and klaxon migrates the schema 1 store when it next opens it",
        data_dir.join("v1").display(),
        new.display(),
        new.display()
    )
}

/// Keeps the migrated schema 1 store as `v1.migrated` and removes the
/// work directory, once the new store is in place.
fn put_aside(data_dir: &Path, old: &Path) -> Result<(), StoreError> {
    let kept = data_dir.join("v1.migrated");
    if kept.exists() {
        tracing::warn!(
            v1 = %old.display(),
            kept = %kept.display(),
            "both are beside the migrated store and neither is used: keep one of them elsewhere"
        );
        return Ok(());
    }
    fs::rename(old, &kept).map_err(|e| StoreError::io(&kept, e))?;
    remove_work_dir(&data_dir.join(".migrating"))?;
    sync_dir(data_dir)?;
    tracing::info!(kept = %kept.display(), "the schema 1 store is kept aside");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Status;
    use crate::store::testing::{alert, listed};
    use crate::urgency::Urgency;

    #[test]
    fn a_schema_1_store_is_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = [
            alert(0, Urgency::Low, Status::Resolved),
            alert(1, Urgency::Critical, Status::Open),
            alert(2, Urgency::Critical, Status::Acknowledged),
        ];
        {
            // Schema 1's layout: the records, plus index keys that are left behind.
            let db = sled::Config::new()
                .path(dir.path().join("v1"))
                .open()
                .unwrap();
            let tree = db.open_tree("klaxon").unwrap();
            tree.insert(keys::meta("schema"), &1u64.to_be_bytes())
                .unwrap();
            tree.insert(keys::meta("seq"), &9u64.to_be_bytes()).unwrap();
            for a in &alerts {
                tree.insert(keys::alert(a.id), serde_json::to_vec(a).unwrap())
                    .unwrap();
                tree.insert(
                    [&[keys::STATE][..], &a.id.as_u64().to_be_bytes()].concat(),
                    &[],
                )
                .unwrap();
            }
            db.flush().unwrap();
        }
        // Opened as `klaxon serve` opens it: on its async runtime.
        let path = dir.path().to_owned();
        let store = actix_web::rt::System::new()
            .block_on(async move { Store::open(&path, &StoreOptions::default()) })
            .unwrap();
        assert!(dir.path().join("v1.migrated").is_dir());
        assert!(!dir.path().join("v1").exists());
        assert!(!dir.path().join(".migrating").exists());

        let report = store.check().unwrap();
        assert_eq!(report.alerts, 3);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let ids = listed(&store, Status::Open, Urgency::Critical);
        assert_eq!(ids, vec![alerts[1].id]);
        // Changes continue after the old store's sequence.
        let seq = store.write_blocking(|ledger| Ok(ledger.seq())).unwrap();
        assert_eq!(seq, 9);
        store.close();
        drop(store);

        // Cut off between its two renames: v2 whole, v1 still there.
        let path = |name: &str| dir.path().join(name);
        std::fs::rename(path("v1.migrated"), path("v1")).unwrap();
        std::fs::create_dir(path(".migrating")).unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert!(path("v1.migrated").is_dir(), "the migration is finished");
        assert!(!path("v1").exists() && !path(".migrating").exists());
        assert_eq!(store.check().unwrap().alerts, 3);
        store.close();
    }
}
