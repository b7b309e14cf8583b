//! The commit group's pending writes. Every change on the writer adds its
//! writes here whole; reads on the writer see them over the tree. At the end
//! of the group, all its writes go to the journal as one record; once that is
//! durable, they go to sled key by key.
//!
//! Key by key rather than as a sled batch matters for speed: sled 0.34 seals
//! and writes out its IO buffer twice for every batch (`pin_log`), each time
//! waking all its IO threads; that was a quarter of klaxon's CPU under ingest.
//! Atomicity comes from the journal instead. After a killed process sled
//! recovers a prefix of its log (it stops at the first tear), and the record
//! number (`Z journal`) goes in last, so the tree holds every group up to
//! that number and at most part of the next, whose record is in the journal
//! (it was durable before any of it went in): recovery writes that group
//! whole again. After a power cut, what sled wrote since the last checkpoint
//! was only `sync_file_range`d, and sled's recovery skips a damaged message
//! below its recorded stable point rather than stopping; a sled batch relied
//! on the same guarantee, so this is no weaker than before.
//!
//! Writes that reach the tree without a durable record (applied early, or a
//! group too big for the journal) still go in as one atomic batch.

use std::borrow::Cow;
use std::collections::BTreeMap;

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

    /// This change's own write of `key`: `Some(None)` when it removes it.
    pub fn get(&self, key: &[u8]) -> Option<&Option<IVec>> {
        self.0.get(key)
    }
}

/// Key → value, `None` when removed; ordered, as sled likes its batches.
pub type WriteMap = BTreeMap<Vec<u8>, Option<IVec>>;

/// The writes of the current group.
pub struct Group {
    tree: Tree,
    /// Not yet applied to the tree.
    pending: WriteMap,
    /// Applied to the tree before the group ended, for a change that had to
    /// see them there; they still belong in the group's journal record.
    early: WriteMap,
    /// Set when applying part of the group failed: the whole group fails.
    failed: Option<StoreError>,
    /// Tests: the next apply to the tree fails.
    #[cfg(test)]
    pub fail_next_apply: bool,
    /// Tests: the next [`Group::finish`] stops after this many keys, as a
    /// crash would.
    #[cfg(test)]
    pub stop_finish_after: Option<usize>,
}

impl Group {
    pub fn new(tree: Tree) -> Self {
        Self {
            tree,
            pending: BTreeMap::new(),
            early: BTreeMap::new(),
            failed: None,
            #[cfg(test)]
            fail_next_apply: false,
            #[cfg(test)]
            stop_finish_after: None,
        }
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

    /// Ends the group's changes: all its writes, for the journal. Fails if
    /// part of the group could not be applied, so that no change of the group
    /// is answered 2xx.
    pub fn seal(&mut self) -> Result<Cow<'_, WriteMap>, StoreError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.early.is_empty() {
            return Ok(Cow::Borrowed(&self.pending));
        }
        let mut all = self.early.clone();
        all.extend(self.pending.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Cow::Owned(all))
    }

    /// Applies the rest of a group whose journal record `record` is durable,
    /// key by key in key order (records before the indexes that point at
    /// them), then the record number.
    pub fn finish(&mut self, record: u64) -> Result<(), StoreError> {
        let writes = std::mem::take(&mut self.pending);
        let applied = self.check_injected_failure().and_then(|()| {
            for (key, value) in writes {
                self.count_down_to_injected_stop()?;
                match value {
                    Some(value) => self.tree.insert(key, value)?,
                    None => self.tree.remove(key)?,
                };
            }
            self.tree
                .insert(keys::meta("journal"), &record.to_be_bytes())?;
            Ok(())
        });
        self.early.clear();
        applied.inspect_err(|e| self.failed = Some(e.clone()))
    }

    /// Applies the rest of a group that has no journal record (too big for
    /// one) as one atomic batch, with the number that stands for it.
    pub fn finish_atomically(&mut self, record: u64) -> Result<(), StoreError> {
        self.pending.insert(
            keys::meta("journal"),
            Some(IVec::from(&record.to_be_bytes())),
        );
        self.apply()?;
        self.early.clear();
        Ok(())
    }

    /// Whether part of the group is in the tree already (see [`Group::apply`]).
    pub fn applied_early(&self) -> bool {
        !self.early.is_empty()
    }

    /// Drops the pending writes (the group's commit failed).
    pub fn discard(&mut self) {
        self.pending.clear();
        self.early.clear();
        self.failed = None;
    }

    /// Applies the pending writes now, for a change that must see them in
    /// the tree (a range scan). A failure here fails the whole group.
    pub fn apply(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = batch_of(self.pending.iter().map(|(k, v)| (k.as_slice(), v.clone())));
        let applied = std::mem::take(&mut self.pending);
        self.check_injected_failure()
            .and_then(|()| Ok(self.tree.apply_batch(batch)?))
            .inspect_err(|e| self.failed = Some(e.clone()))?;
        self.early.extend(applied);
        Ok(())
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

    /// Tests: fails once when told to (`fail_next_apply`).
    fn check_injected_failure(&mut self) -> Result<(), StoreError> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_apply) {
            return Err(StoreError::Corrupt("injected apply failure".into()));
        }
        Ok(())
    }
}

/// A sled batch of writes (`None`: remove the key).
pub fn batch_of<K: Into<IVec>, V: Into<IVec>>(
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
