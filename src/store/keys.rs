//! Key encodings of the one sled tree. Every key starts with a keyspace byte;
//! ids and sequence numbers are big-endian so keys sort the way we list them;
//! variable parts are length-prefixed so no two keys can collide.

use std::ops::RangeInclusive;

use crate::alert::{Alert, AlertId, Status};
use crate::urgency::Urgency;

/// `A` id → the alert (see [`super::record`]). The one key per alert: everything else below packs
/// many alerts into one sled value, because sled 0.34's memory and work grow
/// with the number of keys (about 300 bytes of page metadata per 8 keys).
pub const ALERT: u8 = b'A';
/// `I` block → the ids of 64 consecutive ordinals. An ordinal numbers alerts
/// densely in id order (0, 1, 2 ...), so that bitmaps can index them.
pub const ORDINAL: u8 = b'I';
/// `M` bucket → (message hash, id) entries: Slack messages already handled
/// (any surface, any event naming the message, any retry, any workspace of a
/// shared channel). Thread replies get one too. 65,536 buckets by the hash's
/// first two bytes.
pub const MESSAGE: u8 = b'M';
/// `S` status urgency block → bitmap of ordinals: status/urgency filters.
pub const STATE: u8 = b'S';
/// `C` channel status urgency block → bitmap of ordinals: channel filters.
pub const CHANNEL: u8 = b'C';
/// `Q` block → (seq, id) entries: the change feed, 64 sequence numbers per
/// block; each alert sits at its latest change.
pub const CHANGE: u8 = b'Q';
/// `N` status urgency → u64 count: the summary.
pub const COUNT: u8 = b'N';
/// `Z` name → value: schema version, sequence, ordinal count, store id.
pub const META: u8 = b'Z';

/// Ordinals per `I` block.
pub const IDS_PER_BLOCK: u64 = 64;
/// Sequence numbers per `Q` block.
pub const SEQS_PER_BLOCK: u64 = 64;

pub fn alert(id: AlertId) -> [u8; 9] {
    let mut key = [ALERT; 9];
    key[1..].copy_from_slice(&id.as_u64().to_be_bytes());
    key
}

/// The id in the last eight bytes of an alert key.
pub fn id_suffix(key: &[u8]) -> Option<AlertId> {
    u64_suffix(key).map(AlertId::from_u64)
}

/// A Slack message's identity, hashed: 128 bits of SHA-256 over its channel
/// and ts (length-prefixed), so that no two messages share one. Slack names a
/// message by these two alone (`chat.update` takes no team): a channel shared
/// between workspaces (Slack Connect) keeps one id, while the `team_id` of its
/// deliveries can name either workspace.
pub fn message_hash(channel: &str, ts: &str) -> [u8; 16] {
    use sha2::Digest;
    let mut parts = Vec::with_capacity(channel.len() + ts.len() + 8);
    push_part(&mut parts, channel);
    push_part(&mut parts, ts);
    let digest = sha2::Sha256::digest(&parts);
    let mut hash = [0; 16];
    hash.copy_from_slice(&digest[..16]);
    hash
}

/// The `M` bucket a message hash lives in.
pub fn message_bucket(hash: &[u8; 16]) -> [u8; 3] {
    [MESSAGE, hash[0], hash[1]]
}

/// The `I` block holding ordinal `n`.
pub fn ordinal_block(n: u64) -> [u8; 9] {
    block_key(ORDINAL, n / IDS_PER_BLOCK)
}

/// The `Q` block holding sequence number `seq`.
pub fn change_block(seq: u64) -> [u8; 9] {
    block_key(CHANGE, seq / SEQS_PER_BLOCK)
}

fn block_key(space: u8, block: u64) -> [u8; 9] {
    let mut key = [space; 9];
    key[1..].copy_from_slice(&block.to_be_bytes());
    key
}

pub fn state_prefix(status: Status, urgency: Urgency) -> Vec<u8> {
    vec![STATE, status.code(), urgency.code()]
}

pub fn channel_prefix(channel: &str, status: Status, urgency: Urgency) -> Vec<u8> {
    let mut key = vec![CHANNEL];
    push_part(&mut key, channel);
    key.extend([status.code(), urgency.code()]);
    key
}

/// The prefixes of the index bitmaps an alert is in.
pub fn index_prefixes(alert: &Alert) -> [Vec<u8>; 2] {
    [
        state_prefix(alert.status, alert.urgency),
        channel_prefix(&alert.slack.channel_id, alert.status, alert.urgency),
    ]
}

/// `prefix` followed by a bitmap's block number: an index entry.
pub fn bitmap(mut prefix: Vec<u8>, block: u64) -> Vec<u8> {
    prefix.extend(block.to_be_bytes());
    prefix
}

/// The number in the last eight bytes of a key (an id or a block number).
pub fn u64_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub fn count(status: Status, urgency: Urgency) -> [u8; 3] {
    [COUNT, status.code(), urgency.code()]
}

pub fn meta(name: &str) -> Vec<u8> {
    let mut key = vec![META];
    key.extend(name.as_bytes());
    key
}

pub fn u64_value(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

/// The value of `Z skipped`: each range of sequence numbers a restore
/// skipped, as the number before it and its last (16 bytes a range).
pub fn skipped_value(ranges: &[RangeInclusive<u64>]) -> Vec<u8> {
    let mut value = Vec::with_capacity(ranges.len() * 16);
    for range in ranges {
        value.extend(range.start().saturating_sub(1).to_be_bytes());
        value.extend(range.end().to_be_bytes());
    }
    value
}

/// The ranges in a `Z skipped` value (see [`skipped_value`]).
pub fn skipped_ranges(value: &[u8]) -> Vec<RangeInclusive<u64>> {
    value
        .chunks_exact(16)
        .filter_map(|pair| {
            let before = u64_value(&pair[..8])?;
            Some(before.checked_add(1)?..=u64_value(&pair[8..])?)
        })
        .collect()
}

fn push_part(key: &mut Vec<u8>, part: &str) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    key.extend(len.to_be_bytes());
    key.extend(part.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_ranges_round_trip() {
        let ranges = [4..=4_294_967_299, 4_294_967_400..=1_764_000_000_000_000];
        assert_eq!(skipped_ranges(&skipped_value(&ranges)), ranges);
        // A value from before several ranges were kept: one pair.
        let mut one = 3u64.to_be_bytes().to_vec();
        one.extend(9u64.to_be_bytes());
        assert_eq!(skipped_ranges(&one), [4..=9]);
    }

    #[test]
    fn alert_keys_sort_by_id() {
        let a = alert(AlertId::from_u64(255));
        let b = alert(AlertId::from_u64(256));
        assert!(a < b);
        assert_eq!(id_suffix(&b), Some(AlertId::from_u64(256)));
    }

    #[test]
    fn length_prefixes_keep_parts_apart() {
        assert_ne!(message_hash("C1", "1.2"), message_hash("C11", ".2"));
        assert_ne!(message_hash("", "C1"), message_hash("C1", ""));
        assert_ne!(message_hash("C1", "1.2"), message_hash("C2", "1.2"));
        assert_eq!(message_hash("C1", "1.2"), message_hash("C1", "1.2"));
    }

    #[test]
    fn bitmap_keys_keep_their_prefix_and_sort_by_block() {
        let prefix = channel_prefix("C9", Status::Open, Urgency::High);
        let key = bitmap(prefix.clone(), 7);
        assert!(key.starts_with(&prefix));
        assert_eq!(u64_suffix(&key), Some(7));
        assert!(bitmap(prefix.clone(), 255) < bitmap(prefix, 256));
        assert_eq!(ordinal_block(63), ordinal_block(0));
        assert!(ordinal_block(64) > ordinal_block(63));
        assert_eq!(change_block(130), block_key(CHANGE, 2));
    }
}
