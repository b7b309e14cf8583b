//! An offline integrity check: every record has all its index, dedup and
//! change-feed entries, every index entry points at a matching record, and
//! the counts add up. Used by `klaxon check-store` and the crash test.

use std::collections::HashMap;

use super::{decode_alert, keys, Store, StoreError};
use crate::alert::{Alert, Status};
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
        let tree = &self.inner.tree;
        let mut report = Report::default();
        let mut counts: HashMap<(Status, Urgency), u64> = HashMap::new();
        let mut max_seq = 0;
        for entry in tree.scan_prefix([keys::ALERT]) {
            let (key, json) = entry?;
            let Some(alert) = decode_alert(Some(json))? else {
                continue;
            };
            report.alerts += 1;
            if keys::id_suffix(&key) != Some(alert.id) {
                report
                    .problems
                    .push(format!("record under {key:?} holds alert {}", alert.id));
            }
            *counts.entry((alert.status, alert.urgency)).or_default() += 1;
            max_seq = max_seq.max(alert.seq);
            for (what, key) in expected_entries(&alert) {
                if tree.get(&key)?.is_none() {
                    report
                        .problems
                        .push(format!("alert {} has no {what} entry", alert.id));
                }
            }
        }
        for (space, what) in [
            (keys::STATE, "status index"),
            (keys::CHANNEL, "channel index"),
        ] {
            for entry in tree.scan_prefix([space]) {
                let (key, _) = entry?;
                report.index_entries += 1;
                let holds = |a: &Alert| match space {
                    keys::STATE => {
                        key[..] == keys::with_id(keys::state_prefix(a.status, a.urgency), a.id)[..]
                    }
                    _ => {
                        key[..]
                            == keys::with_id(
                                keys::channel_prefix(&a.slack.channel_id, a.status, a.urgency),
                                a.id,
                            )[..]
                    }
                };
                match keys::id_suffix(&key)
                    .map(|id| tree.get(keys::alert(id)))
                    .transpose()?
                {
                    Some(json) => match decode_alert(json)? {
                        Some(alert) if holds(&alert) => {}
                        Some(alert) => report
                            .problems
                            .push(format!("stale {what} entry for alert {}", alert.id)),
                        None => report
                            .problems
                            .push(format!("{what} entry {key:?} has no record")),
                    },
                    None => report
                        .problems
                        .push(format!("malformed {what} key {key:?}")),
                }
            }
        }
        for entry in tree.scan_prefix([keys::CHANGE]) {
            let (key, id) = entry?;
            report.index_entries += 1;
            let seq = keys::seq_of_change(&key);
            let alert = keys::id_from_value(&id)
                .map(|id| tree.get(keys::alert(id)))
                .transpose()?
                .flatten();
            match decode_alert(alert)? {
                Some(a) if Some(a.seq) == seq => {}
                _ => report
                    .problems
                    .push(format!("change entry {seq:?} does not match a record")),
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
        let seq = tree
            .get(keys::meta("seq"))?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0);
        if seq < max_seq {
            report.problems.push(format!(
                "stored sequence {seq} is behind alert seq {max_seq}"
            ));
        }
        Ok(report)
    }
}

/// The keys that must exist for `alert`.
fn expected_entries(alert: &Alert) -> Vec<(&'static str, Vec<u8>)> {
    let team = alert.slack.team_id.as_deref().unwrap_or("");
    vec![
        (
            "status index",
            keys::with_id(keys::state_prefix(alert.status, alert.urgency), alert.id),
        ),
        (
            "channel index",
            keys::with_id(
                keys::channel_prefix(&alert.slack.channel_id, alert.status, alert.urgency),
                alert.id,
            ),
        ),
        ("change feed", keys::change(alert.seq).to_vec()),
        (
            "message dedup",
            keys::message(team, &alert.slack.channel_id, &alert.slack.ts),
        ),
    ]
}
