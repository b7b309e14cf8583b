//! An offline integrity check: the packed indexes, ordinals, change feed and
//! counts are exactly what the records say they should be, and every record
//! has its dedup entry. Used by `klaxon check-store` and the crash test.

use std::collections::{BTreeMap, HashMap};

use super::packed::{self, CHANGE_ENTRIES, MESSAGE_ENTRIES};
use super::{decode_alert, keys, Store, StoreError};
use crate::alert::{Alert, AlertId, Status};
use crate::urgency::Urgency;

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    pub alerts: u64,
    pub index_entries: u64,
    pub problems: Vec<String>,
}

impl Store {
    /// Checks the store's invariants. Blocking; run it while no writes happen for an exact answer.
    pub fn check(&self) -> Result<Report, StoreError> {
        self.settle_blocking()?;
        let tree = &self.inner.tree;
        let mut report = Report::default();
        // What the records say every packed key should hold.
        let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut counts: HashMap<(Status, Urgency), u64> = HashMap::new();
        let mut max_seq = 0;
        let mut messages = HashMap::new();
        for (n, entry) in (0u64..).zip(tree.scan_prefix([keys::ALERT])) {
            let (key, record) = entry?;
            let alert = match decode_alert(Some(record)) {
                Ok(Some(alert)) => alert,
                Ok(None) => continue,
                Err(e) => {
                    report.problems.push(super::damaged_record(&key, &e));
                    continue;
                }
            };
            report.alerts += 1;
            if keys::id_suffix(&key) != Some(alert.id) {
                report
                    .problems
                    .push(format!("record under {key:?} holds alert {}", alert.id));
            }
            *counts.entry((alert.status, alert.urgency)).or_default() += 1;
            max_seq = max_seq.max(alert.seq);
            expect(&mut expected, &alert, n);
            // Records come in id order: the first alert of a message keeps it.
            for hash in super::ledger::messages_of(&alert) {
                messages.entry(hash).or_insert(alert.id);
            }
        }
        let ordinals = super::ordinal_count(tree)?;
        if ordinals != report.alerts {
            report.problems.push(format!(
                "ordinal count is {ordinals}, records say {}",
                report.alerts
            ));
        }
        for space in [keys::ORDINAL, keys::STATE, keys::CHANNEL, keys::CHANGE] {
            let wanted = expected.range(vec![space]..vec![space + 1]);
            let mut wanted = wanted.peekable();
            for entry in tree.scan_prefix([space]) {
                let (key, value) = entry?;
                report.index_entries += 1;
                while let Some((k, _)) = wanted.next_if(|(k, _)| k[..] < key[..]) {
                    report.problems.push(format!("missing index entry {k:?}"));
                }
                match wanted.next_if(|(k, _)| k[..] == key[..]) {
                    Some((_, v)) if v[..] == value[..] => {}
                    Some(_) => report.problems.push(format!("stale index entry {key:?}")),
                    None => report
                        .problems
                        .push(format!("index entry {key:?} has no record")),
                }
            }
            for (k, _) in wanted {
                report.problems.push(format!("missing index entry {k:?}"));
            }
        }
        for (hash, id) in messages {
            let bucket = tree.get(keys::message_bucket(&hash))?.unwrap_or_default();
            if MESSAGE_ENTRIES
                .find(&bucket, &hash)
                .and_then(packed::entry_id)
                != Some(id)
            {
                report
                    .problems
                    .push(format!("a message of alert {id} has no dedup entry"));
            }
        }
        for bucket in tree.scan_prefix([keys::MESSAGE]) {
            let (_, bucket) = bucket?;
            for entry in MESSAGE_ENTRIES.iter(&bucket) {
                let id = packed::entry_id(entry).unwrap_or(AlertId::MIN);
                if !tree.contains_key(keys::alert(id))? {
                    report
                        .problems
                        .push(format!("message dedup entry points at missing alert {id}"));
                }
            }
        }
        for s in Status::ALL {
            for u in Urgency::ALL {
                let stored = tree
                    .get(keys::count(s, u))?
                    .and_then(|v| keys::u64_value(&v))
                    .unwrap_or(0);
                let actual = counts.get(&(s, u)).copied().unwrap_or(0);
                if stored != actual {
                    report.problems.push(format!(
                        "count of {}/{u} is {stored}, records say {actual}",
                        s.as_str()
                    ));
                }
            }
        }
        let seq = super::stored_seq(tree)?;
        if seq < max_seq {
            report.problems.push(format!(
                "stored sequence {seq} is behind alert seq {max_seq}"
            ));
        }
        Ok(report)
    }
}

/// Adds what `alert`, at ordinal `n`, puts in the packed keys.
fn expect(expected: &mut BTreeMap<Vec<u8>, Vec<u8>>, alert: &Alert, n: u64) {
    let block = packed::bitmap_block(n);
    for prefix in keys::index_prefixes(alert) {
        packed::set_bit(expected.entry(keys::bitmap(prefix, block)).or_default(), n);
    }
    packed::set_id(
        expected.entry(keys::ordinal_block(n).to_vec()).or_default(),
        n,
        alert.id,
    );
    let entry = packed::entry(&alert.seq.to_be_bytes(), alert.id);
    CHANGE_ENTRIES.insert(
        expected
            .entry(keys::change_block(alert.seq).to_vec())
            .or_default(),
        &entry,
    );
}
