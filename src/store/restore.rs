//! Restoring a backup into an empty store: each alert at its newest line.

use std::io::{BufRead, Seek};

use serde::Deserialize;

use super::backup::{read_backup, Summary};
use super::ledger::{notes_fit, MAX_NOTES, MAX_NOTE_BYTES};
use super::{Store, StoreError};
use crate::alert::{Alert, AlertId, MAX_ACTOR_BYTES, MAX_ID_BYTES};

/// Alerts over today's limits a restore names in its log; the rest are counted.
const MAX_OVER_LIMITS_LOGGED: u64 = 10;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    #[error("the backup ends without its trailer line: it is truncated")]
    Truncated,
    #[error("reading the backup: {0}")]
    Read(#[from] std::io::Error),
    #[error("the backup changed while it was read: {missing} of its {alerts} alerts were not in it the second time (restore from a copy that nothing writes to)")]
    Changed { missing: u64, alerts: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Alerts restored per write batch. Small on purpose: sled 0.34's memory
/// grows with the size of a batch (1,000 alerts per batch peaked at 15 GiB
/// restoring 1,000,000 alerts; 100 peaks at about 100 MiB, and is faster).
const RESTORE_BATCH: usize = 100;

impl Store {
    /// Loads a backup into this (empty) store. Blocking. `input` is read
    /// twice, rewound in between: the first pass validates the file and
    /// finds each alert's newest line (16 bytes per alert in memory), the
    /// second imports those lines in batches, so memory stays flat whatever
    /// the backup's size. An alert's ordinal is its rank by id, whatever
    /// order the lines come in. One handle for both passes: a file renamed
    /// over the backup's path in between (a cron job writing `latest.jsonl`)
    /// is not read, and a file rewritten in place is noticed, as alerts the
    /// first pass counted that the second does not find.
    pub fn restore(&self, input: &mut (impl BufRead + Seek)) -> Result<Summary, RestoreError> {
        let mut newest: Vec<(AlertId, u64)> = Vec::new();
        let end = read_backup(input, |line_no, line| {
            let key: LineKey = parse(line_no, line)?;
            newest.push((key.id, key.seq));
            Ok(())
        })?;
        // By id, the newest line of each first: keep that one.
        newest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        newest.dedup_by_key(|(id, _)| *id);
        let count = newest.len() as u64;
        let seq = end
            .seq
            .max(newest.iter().map(|(_, s)| *s).max().unwrap_or(0));
        let mut taken = vec![false; newest.len()];
        let mut batch = Vec::with_capacity(RESTORE_BATCH);
        let mut over_limits = 0;
        input.rewind()?;
        read_backup(input, |line_no, line| {
            let key: LineKey = parse(line_no, line)?;
            // Take each alert once, at its newest line.
            if let Ok(rank) = newest.binary_search_by_key(&key.id, |(id, _)| *id) {
                if newest[rank].1 == key.seq && !taken[rank] {
                    taken[rank] = true;
                    let alert: Alert = parse(line_no, line)?;
                    if let Some(over) = over_limits_of(&alert) {
                        over_limits += 1;
                        if over_limits <= MAX_OVER_LIMITS_LOGGED {
                            tracing::warn!(
                                line = line_no,
                                alert = %alert.id,
                                over,
                                "restoring an alert over today's limits, as it was stored"
                            );
                        }
                    }
                    batch.push((rank as u64, alert));
                }
            }
            if batch.len() == RESTORE_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(RESTORE_BATCH));
                self.write_blocking(move |ledger| ledger.import(full))?;
            }
            Ok(())
        })?;
        // An ordinal without its alert would fail every listing.
        let missing = taken.iter().filter(|taken| !**taken).count() as u64;
        if missing > 0 {
            return Err(RestoreError::Changed {
                missing,
                alerts: count,
            });
        }
        // The last alerts and the sequence gap go in together: a restore
        // cut short in between would leave the gap out.
        self.write_blocking(move |ledger| {
            ledger.import(batch)?;
            ledger.skip_after_restore(seq)
        })?;
        Ok(Summary {
            alerts: count,
            seq,
            over_limits,
        })
    }
}

/// What a restore reads of a line to find each alert's newest one.
#[derive(Deserialize)]
struct LineKey {
    id: AlertId,
    seq: u64,
}

/// Which of today's limits `alert` is over, naming the field, if any: a
/// Slack identifier or an actor over 255 bytes, too many notes. klaxon
/// before these limits stored such alerts, so a restore keeps them as they
/// are (a channel id is part of index keys: an id over 64 KiB makes every
/// change to its alert a group too big for a journal record, slower but whole).
fn over_limits_of(alert: &Alert) -> Option<String> {
    if let Some(field) = alert.slack.long_field() {
        return Some(format!("slack.{field} is longer than {MAX_ID_BYTES} bytes"));
    }
    for (i, note) in alert.notes.iter().enumerate() {
        if note.ts.as_ref().is_some_and(|ts| ts.len() > MAX_ID_BYTES) {
            return Some(format!("notes[{i}].ts is longer than {MAX_ID_BYTES} bytes"));
        }
        if note
            .user
            .as_ref()
            .is_some_and(|u| u.len() > MAX_ACTOR_BYTES)
        {
            return Some(format!(
                "notes[{i}].user is longer than {MAX_ACTOR_BYTES} bytes"
            ));
        }
    }
    let actors = [
        ("acknowledged_by", &alert.acknowledged_by),
        ("resolved_by", &alert.resolved_by),
    ];
    if let Some((field, _)) = actors
        .into_iter()
        .find(|(_, by)| by.as_ref().is_some_and(|by| by.len() > MAX_ACTOR_BYTES))
    {
        return Some(format!("{field} is longer than {MAX_ACTOR_BYTES} bytes"));
    }
    if !notes_fit(alert) {
        return Some(format!(
            "notes: more than {MAX_NOTES}, or more than {MAX_NOTE_BYTES} bytes of text"
        ));
    }
    None
}

fn parse<T: serde::de::DeserializeOwned>(line_no: u64, line: &str) -> Result<T, RestoreError> {
    serde_json::from_str(line).map_err(|e| RestoreError::Format {
        line: line_no,
        message: format!("not an alert: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read, SeekFrom};

    use crate::alert::Status;
    use crate::store::backup::FORMAT;
    use crate::store::keys;
    use crate::store::testing::{alert, listed};
    use crate::store::StoreOptions;
    use crate::urgency::Urgency;

    /// A backup holding `alerts`, read by `Store::restore` as from a file.
    fn backup_of(alerts: &[Alert]) -> Cursor<Vec<u8>> {
        let mut text = format!("{{\"klaxon_backup\":{FORMAT},\"schema\":1}}\n");
        for a in alerts {
            text.push_str(&serde_json::to_string(a).unwrap());
            text.push('\n');
        }
        let seq = alerts.iter().map(|a| a.seq).max().unwrap_or(0);
        let lines = alerts.len();
        text.push_str(&format!(
            "{{\"klaxon_backup_end\":{{\"lines\":{lines},\"seq\":{seq}}}}}\n"
        ));
        Cursor::new(text.into_bytes())
    }

    /// Restores `alerts` into a new store: how many it counted over today's
    /// limits, and the alerts the store then holds (its check clean).
    fn restore_all(alerts: &[Alert]) -> (u64, Vec<Alert>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let summary = store.restore(&mut backup_of(alerts)).unwrap();
        let report = store.check().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let tree = &store.inner.tree;
        let held = alerts
            .iter()
            .map(|a| super::super::decode_alert(tree.get(keys::alert(a.id)).unwrap()))
            .map(|a| a.unwrap().unwrap())
            .collect();
        store.close();
        (summary.over_limits, held)
    }

    #[test]
    fn alerts_stored_before_todays_limits_are_restored_as_they_were_and_counted() {
        let base = alert(0, Urgency::High, Status::Open);
        let mut alerts = vec![base.clone()];
        let note = crate::alert::Note {
            user: None,
            text: "x".into(),
            ts: None,
            at: base.created_at.clone(),
        };
        type Change = fn(&mut Alert);
        let variants: [(&str, Change); 6] = [
            ("channel_id", |a| {
                a.slack.channel_id = "C".repeat(MAX_ID_BYTES + 1)
            }),
            ("event_id", |a| {
                a.slack.event_id = Some("E".repeat(MAX_ID_BYTES + 1))
            }),
            ("note ts", |a| {
                a.notes[0].ts = Some("1".repeat(MAX_ID_BYTES + 1))
            }),
            ("note user", |a| {
                a.notes[0].user = Some("u".repeat(MAX_ACTOR_BYTES + 1))
            }),
            ("resolved_by", |a| {
                a.resolved_by = Some("u".repeat(MAX_ACTOR_BYTES + 1))
            }),
            ("notes", |a| {
                a.notes.resize(MAX_NOTES + 1, a.notes[0].clone())
            }),
        ];
        for (i, (name, change)) in variants.iter().enumerate() {
            let mut over = alert(i as u64 + 1, Urgency::High, Status::Open);
            over.notes.push(note.clone());
            change(&mut over);
            assert!(over_limits_of(&over).is_some(), "{name}");
            alerts.push(over);
        }
        // At the limits is within them.
        let mut at = alert(9, Urgency::Low, Status::Open);
        at.slack.channel_id = "C".repeat(MAX_ID_BYTES);
        at.resolved_by = Some("u".repeat(MAX_ACTOR_BYTES));
        at.notes = vec![note; MAX_NOTES];
        assert_eq!(over_limits_of(&at), None);
        alerts.push(at);

        let (over, held) = restore_all(&alerts);
        assert_eq!(over, variants.len() as u64);
        assert_eq!(held, alerts);
    }

    #[test]
    fn restore_numbers_alerts_in_id_order_whatever_the_line_order() {
        // As a backup taken while serving: the scan, then alerts changed
        // during it again, out of id order, with a newer seq.
        let mut changed = alert(1, Urgency::High, Status::Resolved);
        changed.seq = 10;
        let lines = [
            alert(0, Urgency::High, Status::Open),
            alert(1, Urgency::High, Status::Open),
            alert(2, Urgency::High, Status::Open),
            alert(3, Urgency::Low, Status::Open),
            changed.clone(),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let summary = store.restore(&mut backup_of(&lines)).unwrap();
        assert_eq!((summary.alerts, summary.seq), (4, 10));

        let report = store.check().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let ids = listed(&store, Status::Open, Urgency::High);
        assert_eq!(ids, vec![lines[2].id, lines[0].id]);
        store.close();
    }

    /// A backup file rewritten in place between the two passes (a cron job
    /// writing `latest.jsonl` with `>`): rewound, it reads `then`.
    struct RewrittenOnRewind {
        now: Cursor<Vec<u8>>,
        then: Option<Cursor<Vec<u8>>>,
    }

    impl Read for RewrittenOnRewind {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.now.read(buf)
        }
    }

    impl BufRead for RewrittenOnRewind {
        fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
            self.now.fill_buf()
        }

        fn consume(&mut self, n: usize) {
            self.now.consume(n)
        }
    }

    impl Seek for RewrittenOnRewind {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            if let Some(then) = self.then.take() {
                self.now = then;
            }
            self.now.seek(to)
        }
    }

    #[test]
    fn a_backup_that_changes_between_the_passes_is_refused_not_restored_in_part() {
        let before: Vec<Alert> = (0..5)
            .map(|i| alert(i, Urgency::High, Status::Open))
            .collect();
        // A later backup, equally whole: alert 3 was resolved since.
        let mut after = before.clone();
        after[3].status = Status::Resolved;
        after[3].seq = 9;
        let mut input = RewrittenOnRewind {
            now: backup_of(&before),
            then: Some(backup_of(&after)),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();

        let restored = store.restore(&mut input);

        assert!(
            matches!(
                restored,
                Err(RestoreError::Changed {
                    missing: 1,
                    alerts: 5
                })
            ),
            "{restored:?}"
        );
        store.close();
    }
}
