//! Values that pack many alerts into one sled key: bitmaps of ordinals,
//! sorted fixed-size entries, and the ordinal → id slots. sled 0.34 keeps
//! page metadata in memory for every eight or so keys, and does a node copy
//! per key written, so one key per alert (its record) is what the store
//! can afford at a million alerts; the indexes live in these.

use sled::IVec;

use super::keys::IDS_PER_BLOCK;
use super::StoreError;
use crate::alert::AlertId;

/// Ordinals per bitmap block.
pub const BITS_PER_BLOCK: u64 = 1024;
const BITMAP_BYTES: usize = (BITS_PER_BLOCK / 8) as usize;

/// The block holding ordinal `n`.
pub fn bitmap_block(n: u64) -> u64 {
    n / BITS_PER_BLOCK
}

/// Sets ordinal `n` in `bitmap` (an empty value is an empty bitmap).
pub fn set_bit(bitmap: &mut Vec<u8>, n: u64) {
    bitmap.resize(BITMAP_BYTES, 0);
    let bit = n % BITS_PER_BLOCK;
    bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
}

/// Clears ordinal `n`; an all-zero bitmap becomes empty (its key is removed).
pub fn clear_bit(bitmap: &mut Vec<u8>, n: u64) {
    let bit = n % BITS_PER_BLOCK;
    if let Some(byte) = bitmap.get_mut((bit / 8) as usize) {
        *byte &= !(1 << (bit % 8));
    }
    if bitmap.iter().all(|&b| b == 0) {
        bitmap.clear();
    }
}

/// The ordinals set in block `block`'s bitmap, in `[low, high)`, largest
/// first; `None` when a damaged block number (or bitmap length) would
/// number them past `u64::MAX`.
pub fn bits_desc(bitmap: &[u8], block: u64, low: u64, high: u64) -> Option<Vec<u64>> {
    let base = block.checked_mul(BITS_PER_BLOCK)?;
    let mut found = Vec::new();
    for (i, &byte) in bitmap.iter().enumerate().rev() {
        if byte == 0 {
            continue;
        }
        for bit in (0..8).rev() {
            let n = base.checked_add((i as u64) * 8 + bit)?;
            if byte & (1 << bit) != 0 && n >= low && n < high {
                found.push(n);
            }
        }
    }
    Some(found)
}

/// Fixed-size entries kept sorted by their first `key_len` bytes, all in
/// one value: the message buckets (hash, id) and change blocks (seq, id).
#[derive(Clone, Copy)]
pub struct Entries {
    pub size: usize,
    pub key_len: usize,
}

/// `M` bucket entries: 16-byte message hash, 8-byte id.
pub const MESSAGE_ENTRIES: Entries = Entries {
    size: 24,
    key_len: 16,
};
/// `Q` block entries: 8-byte seq, 8-byte id.
pub const CHANGE_ENTRIES: Entries = Entries {
    size: 16,
    key_len: 8,
};

impl Entries {
    pub fn iter<'a>(&self, value: &'a [u8]) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        value.chunks_exact(self.size)
    }

    fn position(&self, value: &[u8], key: &[u8]) -> Result<usize, usize> {
        let (mut low, mut high) = (0, value.len() / self.size);
        while low < high {
            let mid = low + (high - low) / 2;
            let at = mid * self.size;
            match value[at..at + self.key_len].cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Equal => return Ok(mid),
                std::cmp::Ordering::Greater => high = mid,
            }
        }
        Err(low)
    }

    /// The entry whose key is `key`.
    pub fn find<'a>(&self, value: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
        let i = self.position(value, key).ok()?;
        value.get(i * self.size..(i + 1) * self.size)
    }

    /// Inserts `entry` in order, replacing one with the same key.
    pub fn insert(&self, value: &mut Vec<u8>, entry: &[u8]) {
        debug_assert_eq!(entry.len(), self.size);
        value.truncate(value.len() / self.size * self.size);
        match self.position(value, &entry[..self.key_len]) {
            Ok(i) => value[i * self.size..(i + 1) * self.size].copy_from_slice(entry),
            Err(i) => {
                let at = i * self.size;
                value.splice(at..at, entry.iter().copied());
            }
        }
    }

    /// Removes the entry whose key is `key`, if there is one.
    pub fn remove(&self, value: &mut Vec<u8>, key: &[u8]) {
        if let Ok(i) = self.position(value, key) {
            value.drain(i * self.size..(i + 1) * self.size);
        }
    }
}

/// An entry of `key` followed by an id.
pub fn entry(key: &[u8], id: AlertId) -> Vec<u8> {
    let mut entry = key.to_vec();
    entry.extend(id.as_u64().to_be_bytes());
    entry
}

/// The id at the end of an entry.
pub fn entry_id(entry: &[u8]) -> Option<AlertId> {
    super::keys::id_suffix(entry)
}

/// Ordinal `n`'s slot in its `I` block.
fn slot(n: u64) -> usize {
    (n % IDS_PER_BLOCK) as usize * 8
}

/// Records `id` as ordinal `n` in its block.
pub fn set_id(block: &mut Vec<u8>, n: u64, id: AlertId) {
    let at = slot(n);
    if block.len() < at + 8 {
        block.resize(at + 8, 0);
    }
    block[at..at + 8].copy_from_slice(&id.as_u64().to_be_bytes());
}

/// The id of ordinal `n`, from its block.
pub fn id_at(block: &[u8], n: u64) -> Option<AlertId> {
    let at = slot(n);
    let raw = u64::from_be_bytes(block.get(at..at + 8)?.try_into().ok()?);
    (raw != 0).then(|| AlertId::from_u64(raw))
}

/// Maps ordinals to ids through `read` (a reader of `I` blocks), and ids
/// back to ordinals by binary search: ordinals follow id order.
pub struct Ordinals<R> {
    count: u64,
    read: R,
    cached: Option<(u64, IVec)>,
}

impl<R> Ordinals<R>
where
    R: Fn(&[u8]) -> Result<Option<IVec>, StoreError>,
{
    pub fn new(count: u64, read: R) -> Self {
        Self {
            count,
            read,
            cached: None,
        }
    }

    /// The id of ordinal `n`; an error when the mapping has a hole.
    pub fn id(&mut self, n: u64) -> Result<AlertId, StoreError> {
        let block = n / IDS_PER_BLOCK;
        if self.cached.as_ref().is_none_or(|(b, _)| *b != block) {
            let value = (self.read)(&super::keys::ordinal_block(n))?.unwrap_or_default();
            self.cached = Some((block, value));
        }
        self.cached
            .as_ref()
            .and_then(|(_, value)| id_at(value, n))
            .ok_or_else(|| StoreError::Corrupt(format!("ordinal {n} has no alert")))
    }

    /// The first ordinal whose id is at least `id` (`count` when none is).
    pub fn first_at_or_after(&mut self, id: AlertId) -> Result<u64, StoreError> {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.id(mid)? < id {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(low)
    }

    /// The ordinal of `id`, which must be stored.
    pub fn of(&mut self, id: AlertId) -> Result<u64, StoreError> {
        let n = self.first_at_or_after(id)?;
        if n < self.count && self.id(n)? == id {
            Ok(n)
        } else {
            Err(StoreError::Corrupt(format!("alert {id} has no ordinal")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_set_clear_and_list_largest_first() {
        let mut bitmap = Vec::new();
        for n in [2048, 2050, 3071] {
            set_bit(&mut bitmap, n);
        }
        assert_eq!(
            bits_desc(&bitmap, 2, 0, u64::MAX),
            Some(vec![3071, 2050, 2048])
        );
        assert_eq!(bits_desc(&bitmap, 2, 2049, 3071), Some(vec![2050]));
        clear_bit(&mut bitmap, 2050);
        assert_eq!(bits_desc(&bitmap, 2, 0, u64::MAX), Some(vec![3071, 2048]));
        clear_bit(&mut bitmap, 2048);
        clear_bit(&mut bitmap, 3071);
        assert!(bitmap.is_empty(), "an empty bitmap is removed");
    }

    #[test]
    fn a_block_number_past_the_last_ordinal_is_damage() {
        let mut bitmap = Vec::new();
        set_bit(&mut bitmap, 5);
        assert_eq!(bits_desc(&bitmap, u64::MAX, 0, u64::MAX), None);
        // The last block that exists, with a bitmap longer than a block's.
        let last = u64::MAX / BITS_PER_BLOCK;
        assert_eq!(
            bits_desc(&bitmap, last, 0, u64::MAX).map(|b| b.len()),
            Some(1)
        );
        bitmap.resize(2 * BITMAP_BYTES, 0xff);
        assert_eq!(bits_desc(&bitmap, last, 0, u64::MAX), None);
    }

    #[test]
    fn entries_stay_sorted_and_unique_by_key() {
        let mut value = Vec::new();
        for seq in [5u64, 1, 3] {
            CHANGE_ENTRIES.insert(
                &mut value,
                &entry(&seq.to_be_bytes(), AlertId::from_u64(seq)),
            );
        }
        CHANGE_ENTRIES.insert(
            &mut value,
            &entry(&3u64.to_be_bytes(), AlertId::from_u64(30)),
        );
        let seqs: Vec<u64> = CHANGE_ENTRIES
            .iter(&value)
            .map(|e| u64::from_be_bytes(e[..8].try_into().unwrap()))
            .collect();
        assert_eq!(seqs, vec![1, 3, 5]);
        let found = CHANGE_ENTRIES.find(&value, &3u64.to_be_bytes()).unwrap();
        assert_eq!(entry_id(found), Some(AlertId::from_u64(30)));
        CHANGE_ENTRIES.remove(&mut value, &1u64.to_be_bytes());
        assert!(CHANGE_ENTRIES.find(&value, &1u64.to_be_bytes()).is_none());
        assert_eq!(value.len(), 2 * CHANGE_ENTRIES.size);
    }

    #[test]
    fn ordinals_map_both_ways() {
        let ids: Vec<u64> = (0..200).map(|i| 1000 + 7 * i).collect();
        let mut blocks = std::collections::BTreeMap::<Vec<u8>, Vec<u8>>::new();
        for (n, &id) in ids.iter().enumerate() {
            let key = super::super::keys::ordinal_block(n as u64).to_vec();
            set_id(
                blocks.entry(key).or_default(),
                n as u64,
                AlertId::from_u64(id),
            );
        }
        let mut ordinals = Ordinals::new(200, |key: &[u8]| {
            Ok(blocks.get(key).map(|v| IVec::from(v.as_slice())))
        });
        assert_eq!(ordinals.id(130).unwrap(), AlertId::from_u64(1000 + 7 * 130));
        assert_eq!(ordinals.of(AlertId::from_u64(1000 + 7 * 99)).unwrap(), 99);
        assert!(ordinals.of(AlertId::from_u64(1001)).is_err());
        assert_eq!(
            ordinals.first_at_or_after(AlertId::from_u64(1001)).unwrap(),
            1
        );
        assert_eq!(ordinals.first_at_or_after(AlertId::from_u64(0)).unwrap(), 0);
        assert_eq!(ordinals.first_at_or_after(AlertId::MAX).unwrap(), 200);
    }
}
