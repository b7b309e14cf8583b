//! The commit group's pending writes. Every change on the writer adds its
//! writes here whole; reads on the writer see them over the tree. At the end
//! of the group, all its writes go to the journal as one record; once that is
//! durable, they go to sled key by key.
//!
//! Key by key rather than as a sled batch matters for speed: sled 0.34 seals
//! and writes out its IO buffer twice for every batch (`pin_log`), each time
//! waking all its IO threads; that was a quarter of klaxon's CPU under ingest.
//! Atomicity comes from the journal instead: after a crash or a power cut,
//! every group recorded since the last checkpoint is applied again, whatever
//! part of it sled kept (see [`super::journal`]). So nothing reaches the tree
//! before its group's record is durable, and a group too big for a record
//! goes in as one atomic batch between two checkpoints.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard};

use sled::{Batch, IVec, Tree};

use super::{keys, StoreError};

/// The writes of one change: they join the group together or not at all.
/// A later write of a key replaces an earlier one.
#[derive(Default)]
pub struct Writes(BTreeMap<Vec<u8>, Option<IVec>>);

impl Writes {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .insert(key.as_ref().to_vec(), Some(IVec::from(value.as_ref())));
    }

    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.0.insert(key.as_ref().to_vec(), None);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This change's own write of `key`: `Some(None)` when it removes it.
    pub fn get(&self, key: &[u8]) -> Option<&Option<IVec>> {
        self.0.get(key)
    }
}

/// Key → value, `None` when removed; ordered, as sled likes its batches.
pub type WriteMap = BTreeMap<Vec<u8>, Option<IVec>>;

/// Held for writing while a group goes into the tree key by key, and for
/// reading by every query: a query sees each group whole or not at all. (An
/// acknowledgement moves an alert from one index bitmap to another: halfway,
/// a listing showed it twice or not at all, and a cursor walk lost it.)
///
/// It holds `false` once a group failed to go in whole, or the writer
/// panicked putting it in (the writer then stops): the tree holds part of it
/// until the restart applies it again from the journal, so queries fail
/// rather than read it (see [`read_whole`]). The writer's stop comes after
/// the lock is released, too late for a query already waiting on it.
pub type Applying = Arc<RwLock<bool>>;

/// Takes `applying` for a query, waiting at most `wait` (a group held up by
/// a stalled disk must not hold reads for ever): while the guard lives, the
/// tree holds whole groups. `Closed` when it holds part of one.
pub fn read_whole(
    applying: &Applying,
    wait: Duration,
) -> Result<RwLockReadGuard<'_, bool>, StoreError> {
    let whole = applying
        .try_read_for(wait)
        .ok_or(StoreError::Timeout(wait))?;
    if *whole {
        Ok(whole)
    } else {
        Err(StoreError::Closed)
    }
}

/// The writes of the current group.
pub struct Group {
    tree: Tree,
    applying: Applying,
    /// Not yet applied to the tree.
    pending: WriteMap,
    /// Tests: the next [`Group::finish`] stops after this many keys, as a
    /// crash would.
    #[cfg(test)]
    pub stop_finish_after: Option<usize>,
}

impl Group {
    pub fn new(tree: Tree) -> Self {
        Self {
            tree,
            applying: Arc::new(RwLock::new(true)),
            pending: BTreeMap::new(),
            #[cfg(test)]
            stop_finish_after: None,
        }
    }

    /// The lock queries take so as not to see a group half applied.
    pub fn applying(&self) -> Applying {
        self.applying.clone()
    }

    /// Adds one change's writes.
    pub fn add(&mut self, writes: Writes) {
        self.pending.extend(writes.0);
    }

    /// Reads a key as the group sees it: its pending writes over the tree.
    pub fn read(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match self.pending.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.tree.get(key)?),
        }
    }

    /// Reads `key` as a change being built sees it: its own writes `batch`,
    /// then the group's, then the tree.
    pub fn read_through(&self, batch: &Writes, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        match batch.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.read(key),
        }
    }

    /// Read-modify-write of a packed value into `batch`; a value left
    /// empty removes its key.
    pub fn update(
        &self,
        batch: &mut Writes,
        key: &[u8],
        change: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), StoreError> {
        let mut value = self
            .read_through(batch, key)?
            .map(|v| v.to_vec())
            .unwrap_or_default();
        change(&mut value);
        if value.is_empty() {
            batch.remove(key);
        } else {
            batch.insert(key, value);
        }
        Ok(())
    }

    /// The first key in `range` the tree or the group has (the group may
    /// be removing it: [`Group::read`] then finds nothing).
    pub fn first_key(&self, range: RangeInclusive<Vec<u8>>) -> Result<Option<Vec<u8>>, StoreError> {
        let in_tree = self.tree.range(range.clone()).keys().next().transpose()?;
        let pending = self.pending.range(range).next().map(|(k, _)| k);
        Ok(match (in_tree, pending) {
            (Some(t), Some(p)) => Some(p.clone().min(t.to_vec())),
            (t, p) => t.map(|t| t.to_vec()).or_else(|| p.cloned()),
        })
    }

    /// The group's writes, for its journal record.
    pub fn writes(&self) -> &WriteMap {
        &self.pending
    }

    /// Applies a group whose journal record `record` is durable, key by key
    /// in key order, then the record number.
    pub fn finish(&mut self, record: u64) -> Result<(), StoreError> {
        let applying = self.applying.clone();
        let mut whole = applying.write();
        // Set again only once the group is in: a panic midway leaves it unset.
        *whole = false;
        let applied = self.apply_pending(record);
        *whole = applied.is_ok();
        applied
    }

    fn apply_pending(&mut self, record: u64) -> Result<(), StoreError> {
        let (tree, pending) = (self.tree.clone(), std::mem::take(&mut self.pending));
        put_key_by_key(&tree, pending, record, || {
            self.count_down_to_injected_stop()
        })
    }

    /// Applies a group that has no journal record (too big for one) as one
    /// atomic batch, with the number that stands for it, then makes it
    /// durable with `durable` (a checkpoint) before any query may read it.
    pub fn finish_atomically(
        &mut self,
        record: u64,
        durable: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // sled applies a batch atomically key by key, not for a query that
        // reads several keys: a listing takes the read lock.
        let applying = self.applying.clone();
        let mut whole = applying.write();
        *whole = false;
        let mut writes = std::mem::take(&mut self.pending);
        writes.insert(
            keys::meta("journal"),
            Some(IVec::from(&record.to_be_bytes())),
        );
        let applied = self
            .tree
            .apply_batch(batch_of(writes))
            .map_err(StoreError::from)
            .and_then(|()| durable());
        *whole = applied.is_ok();
        applied
    }

    /// Drops the pending writes (the group's commit failed).
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Tests: fails once `stop_finish_after` keys have gone in.
    fn count_down_to_injected_stop(&mut self) -> Result<(), StoreError> {
        #[cfg(test)]
        match self.stop_finish_after.as_mut() {
            Some(0) => {
                self.stop_finish_after = None;
                return Err(StoreError::Corrupt("injected stop".into()));
            }
            Some(left) => *left -= 1,
            None => {}
        }
        Ok(())
    }
}

/// Puts a journalled group's `writes` into `tree` key by key in their
/// order, then `record`, the number of its journal record: a crash midway
/// applies the group again from the journal. `before_each` runs before
/// each key (a test's injected stop).
pub fn put_key_by_key<K: AsRef<[u8]>, V: Into<IVec>>(
    tree: &Tree,
    writes: impl IntoIterator<Item = (K, Option<V>)>,
    record: u64,
    mut before_each: impl FnMut() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (key, value) in writes {
        before_each()?;
        match value {
            Some(value) => tree.insert(key, value)?,
            None => tree.remove(key)?,
        };
    }
    tree.insert(keys::meta("journal"), &record.to_be_bytes())?;
    Ok(())
}

/// A sled batch of writes (`None`: remove the key).
fn batch_of<K: Into<IVec>, V: Into<IVec>>(
    writes: impl IntoIterator<Item = (K, Option<V>)>,
) -> Batch {
    let mut batch = Batch::default();
    for (key, value) in writes {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);

    /// A tree in a sled store of its own, and the directory to keep while it is used.
    fn scratch_tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::Config::new()
            .path(dir.path())
            .open()
            .unwrap()
            .open_tree("t")
            .unwrap();
        (dir, tree)
    }

    #[test]
    fn a_query_waits_for_a_group_going_in_at_most_its_time() {
        let (_dir, tree) = scratch_tree();
        let group = Group::new(tree);
        let applying = group.applying();
        // The writer holds the lock: a group going in on a stalled disk.
        let held = applying.write();
        let started = std::time::Instant::now();
        assert!(matches!(
            read_whole(&applying, WAIT),
            Err(StoreError::Timeout(_))
        ));
        assert!(started.elapsed() >= WAIT);
        drop(held);
        assert!(read_whole(&applying, WAIT).is_ok());
    }

    fn group_of(tree: &Tree, keys: &[&str]) -> Group {
        let mut group = Group::new(tree.clone());
        let mut writes = Writes::default();
        for key in keys {
            writes.insert(key, "1");
        }
        group.add(writes);
        group
    }

    #[test]
    fn a_group_that_does_not_go_in_whole_closes_the_tree_to_queries() {
        let (_dir, tree) = scratch_tree();
        let mut whole = group_of(&tree, &["a", "b"]);
        whole.finish(1).unwrap();
        assert!(read_whole(&whole.applying(), WAIT).is_ok());

        // Key by key: the write of the second key fails (sled keeps an IO error).
        let mut torn = group_of(&tree, &["c", "d", "e"]);
        torn.stop_finish_after = Some(1);
        assert!(torn.finish(2).is_err());
        assert!(tree.contains_key("c").unwrap(), "not part-applied");
        assert!(matches!(
            read_whole(&torn.applying(), WAIT),
            Err(StoreError::Closed)
        ));

        // One batch, in the tree but not made durable.
        let mut big = group_of(&tree, &["f"]);
        let refused = big.finish_atomically(3, || Err(StoreError::Corrupt("fsync".into())));
        assert!(refused.is_err());
        assert!(tree.contains_key("f").unwrap());
        assert!(matches!(
            read_whole(&big.applying(), WAIT),
            Err(StoreError::Closed)
        ));
    }
}
