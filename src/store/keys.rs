//! Key encodings of the one sled tree. Every key starts with a keyspace byte;
//! ids and sequence numbers are big-endian so keys sort the way we list them;
//! variable parts are length-prefixed so no two keys can collide.

use crate::alert::{AlertId, Status};
use crate::urgency::Urgency;

/// `A` id → alert JSON.
pub const ALERT: u8 = b'A';
/// `M` team channel ts → id: Slack messages already handled (any surface,
/// any event naming the message, any retry). Thread replies get one too.
pub const MESSAGE: u8 = b'M';
/// `S` status urgency id → (): index for status/urgency filters.
pub const STATE: u8 = b'S';
/// `C` channel status urgency id → (): index for channel filters.
pub const CHANNEL: u8 = b'C';
/// `Q` seq → id: the change feed; each alert sits at its latest change.
pub const CHANGE: u8 = b'Q';
/// `N` status urgency → u64 count: the summary.
pub const COUNT: u8 = b'N';
/// `Z` name → value: schema version, sequence, store id.
pub const META: u8 = b'Z';

pub fn alert(id: AlertId) -> [u8; 9] {
    let mut key = [ALERT; 9];
    key[1..].copy_from_slice(&id.as_u64().to_be_bytes());
    key
}

/// The id in the last eight bytes of an alert or index key.
pub fn id_suffix(key: &[u8]) -> Option<AlertId> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(AlertId::from_u64(u64::from_be_bytes(tail)))
}

pub fn id_value(id: AlertId) -> [u8; 8] {
    id.as_u64().to_be_bytes()
}

pub fn id_from_value(value: &[u8]) -> Option<AlertId> {
    Some(AlertId::from_u64(u64::from_be_bytes(
        value.try_into().ok()?,
    )))
}

pub fn message(team: &str, channel: &str, ts: &str) -> Vec<u8> {
    let mut key = vec![MESSAGE];
    push_part(&mut key, team);
    push_part(&mut key, channel);
    push_part(&mut key, ts);
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

/// `prefix` followed by `id`: an index entry.
pub fn with_id(mut prefix: Vec<u8>, id: AlertId) -> Vec<u8> {
    prefix.extend(id_value(id));
    prefix
}

pub fn change(seq: u64) -> [u8; 9] {
    let mut key = [CHANGE; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub fn seq_of_change(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
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

fn push_part(key: &mut Vec<u8>, part: &str) {
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    key.extend(len.to_be_bytes());
    key.extend(part.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_keys_sort_by_id() {
        let a = alert(AlertId::from_u64(255));
        let b = alert(AlertId::from_u64(256));
        assert!(a < b);
        assert_eq!(id_suffix(&b), Some(AlertId::from_u64(256)));
    }

    #[test]
    fn length_prefixes_keep_parts_apart() {
        assert_ne!(message("T1", "C1", "1.2"), message("T1C", "1", "1.2"));
        assert_ne!(message("", "C1", "1.2"), message("C1", "", "1.2"));
    }

    #[test]
    fn index_entries_keep_their_prefix_and_id() {
        let id = AlertId::from_u64(42);
        let key = with_id(channel_prefix("C9", Status::Open, Urgency::High), id);
        assert!(key.starts_with(&channel_prefix("C9", Status::Open, Urgency::High)));
        assert_eq!(id_suffix(&key), Some(id));
        assert_eq!(seq_of_change(&change(7)), Some(7));
    }
}
