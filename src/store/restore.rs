//! Restoring a backup into an empty data dir, all or nothing.
//!
//! The backup is read twice through one handle, rewound in between, so a
//! file renamed over its path meanwhile (a cron job writing `latest.jsonl`)
//! is not read. The first pass reads every line whole and finds each
//! alert's newest line, before anything is written. The second imports
//! those lines into a new store in a staging directory inside the data dir,
//! which is renamed into place (`v2/`) only once it is complete. A restore
//! that fails or is killed leaves no store that `klaxon serve` would open,
//! and the next restore removes what it left.

use std::fs::{self, File};
use std::io::{BufRead, Seek};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use serde::Deserialize;

use super::backup::{read_backup, Summary};
use super::ledger::{notes_fit, MAX_NOTES, MAX_NOTE_BYTES};
use super::{create_dirs, migrate, store_dir, Store, StoreError, StoreOptions};
use crate::alert::{Alert, AlertId, MAX_ACTOR_BYTES, MAX_ID_BYTES};

/// The staging directory inside the data dir, where a restore builds the
/// store. `klaxon serve` never opens it; a data dir holding only this (a
/// restore was stopped) counts as empty.
pub const STAGING: &str = ".restoring";

/// Alerts over today's limits a restore names in its log; the rest are counted.
const MAX_OVER_LIMITS_LOGGED: u64 = 10;

/// Why a restore failed. In every case the data dir is left without a store.
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
    /// Another restore into the same data dir holds the staging directory.
    #[error("another restore is writing {0}")]
    Busy(PathBuf),
    /// A store appeared in the data dir during the restore (a server started on it).
    #[error("{0} appeared during the restore: something else is using this data dir")]
    Occupied(PathBuf),
    /// The data dir, the staging directory or the new store cannot be created.
    #[error("cannot create the new store: {0}")]
    Create(StoreError),
    /// The store is in place, but the data dir could not be synced: a power
    /// cut may still take the rename back.
    #[error("the store is in place, but the data dir could not be synced ({0}): it may not survive a power cut")]
    Unsynced(StoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Alerts restored per write batch. Small on purpose: sled 0.34's memory
/// grows with the size of a batch (1,000 alerts per batch peaked at 15 GiB
/// restoring 1,000,000 alerts; 100 peaks at about 100 MiB, and is faster).
const RESTORE_BATCH: usize = 100;

/// Restores the backup `input` (read twice: a file, not a pipe) into
/// `data_dir`, which must hold no store. Blocking.
pub fn restore(
    data_dir: &Path,
    input: &mut (impl BufRead + Seek),
    options: &StoreOptions,
) -> Result<Summary, RestoreError> {
    let plan = Plan::read(input)?;
    input.rewind()?;
    let staging = data_dir.join(STAGING);
    let _held = stage(data_dir, &staging)?;
    let restored = build(&staging, &plan, input, options).and_then(|summary| {
        install(&staging, data_dir)?;
        Ok(summary)
    });
    if restored.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    restored
}

/// What the first pass learns: each alert's newest line, and the change
/// sequence the store goes on from.
struct Plan {
    /// By id, each alert's id and the `seq` of its newest line (16 bytes
    /// per alert in memory). An alert's ordinal is its index here: its rank
    /// by id, whatever order the lines come in.
    newest: Vec<(AlertId, u64)>,
    seq: u64,
    /// What the backup's store had skipped (see [`super::Store::foreign_cursor`]).
    skipped: Vec<RangeInclusive<u64>>,
}

impl Plan {
    /// The first pass. It reads every line as a whole alert: a bad field
    /// found only by the second pass would come after batches already
    /// written.
    fn read(input: &mut dyn BufRead) -> Result<Plan, RestoreError> {
        let mut newest = Vec::new();
        let end = read_backup(input, |line_no, line| {
            let alert: Alert = parse(line_no, line)?;
            if !(AlertId::MIN < alert.id && alert.id < LATEST_ID) {
                return Err(RestoreError::Format {
                    line: line_no,
                    message: format!(
                        "alert id {} is not one klaxon makes (0, or dated after the year 6400)",
                        alert.id
                    ),
                });
            }
            check_seq(line_no, alert.seq)?;
            newest.push((alert.id, alert.seq));
            Ok(())
        })?;
        // By id, the newest line of each first: keep that one.
        newest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        newest.dedup_by_key(|(id, _)| *id);
        let seq = end
            .seq
            .max(newest.iter().map(|(_, s)| *s).max().unwrap_or(0));
        let skipped = end.skipped.iter().map(|[first, last]| *first..=*last);
        Ok(Plan {
            newest,
            seq,
            skipped: skipped.collect(),
        })
    }
}

/// Creates the data dir, and in it an empty staging directory, locked for
/// this restore until the handle returned is dropped (or the process ends,
/// killed too). A staging directory a stopped restore left is removed
/// first; one that a running restore holds is not.
fn stage(data_dir: &Path, staging: &Path) -> Result<File, RestoreError> {
    create_dirs(data_dir).map_err(RestoreError::Create)?;
    if staging.exists() {
        let _leftover = lock(staging)?;
        migrate::remove_work_dir(staging).map_err(RestoreError::Create)?;
    }
    fs::create_dir(staging).map_err(|e| RestoreError::Create(StoreError::io(staging, e)))?;
    lock(staging)
}

/// Takes `dir`'s lock (`flock`), or says that another restore holds it.
fn lock(dir: &Path) -> Result<File, RestoreError> {
    let io = |e| RestoreError::Create(StoreError::io(dir, e));
    let handle = File::open(dir).map_err(io)?;
    if !handle.try_lock_exclusive().map_err(io)? {
        return Err(RestoreError::Busy(dir.to_owned()));
    }
    Ok(handle)
}

/// Builds the store in `staging`, then opens it once more: sled 0.34
/// writes its snapshot only when it opens a store, and until then each
/// start reads the whole log. Reopening here moves that cost from the
/// service's first start to the restore. (sled keeps no absolute path, so
/// the store can be moved after.)
fn build(
    staging: &Path,
    plan: &Plan,
    input: &mut dyn BufRead,
    options: &StoreOptions,
) -> Result<Summary, RestoreError> {
    let store = Store::open(staging, options).map_err(RestoreError::Create)?;
    let imported = store.import_backup(plan, input);
    store.close();
    drop(store);
    let summary = imported?;
    Store::open(staging, options)?.close();
    Ok(summary)
}

/// Renames the complete store into the data dir, durably, and removes the
/// staging directory. The data dir held no store when the restore began;
/// one that appeared since is not replaced (a rename would replace an
/// empty `v2/` silently).
fn install(staging: &Path, data_dir: &Path) -> Result<(), RestoreError> {
    let target = store_dir(data_dir);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(RestoreError::Occupied(target));
    }
    migrate::move_into_place(staging, data_dir).map_err(|e| match e {
        // Renamed, then the sync failed: the store is there.
        e if target.exists() => RestoreError::Unsynced(e),
        e => RestoreError::Store(e),
    })?;
    if let Err(e) = fs::remove_dir(staging) {
        tracing::warn!(staging = %staging.display(), error = %e, "the restore is complete, but its empty staging directory could not be removed");
    }
    Ok(())
}

impl Store {
    /// The second pass: imports each alert's newest line in batches, so
    /// memory stays flat whatever the backup's size. Into an empty store.
    fn import_backup(&self, plan: &Plan, input: &mut dyn BufRead) -> Result<Summary, RestoreError> {
        let newest = &plan.newest;
        let count = newest.len() as u64;
        let seq = plan.seq;
        let skipped = plan.skipped.clone();
        let mut taken = vec![false; newest.len()];
        let mut batch = Vec::with_capacity(RESTORE_BATCH);
        let mut over_limits = 0;
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
        // A file rewritten in place between the passes: an ordinal without
        // its alert would fail every listing.
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
            ledger.skip_after_restore(seq, &skipped)
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

/// Ids from here on are dated after the year 6400, which no clock klaxon
/// runs on gives: new ids follow the largest one stored, so one near the
/// top of the range would leave them none to take. (0 is an empty slot of
/// the ordinal blocks.)
const LATEST_ID: AlertId = AlertId::first_at(1 << 47);

/// Refuses a sequence number past what klaxon numbers changes up to: a
/// restore goes on past the backup's by [`super::ledger::RESTORE_GAP`] at
/// least, and every number stays exact in a JavaScript client.
pub(super) fn check_seq(line_no: u64, seq: u64) -> Result<(), RestoreError> {
    if seq > MAX_SEQ {
        return Err(RestoreError::Format {
            line: line_no,
            message: format!("sequence number {seq} is over 2^53 - 2^33"),
        });
    }
    Ok(())
}

/// The largest sequence number a backup may carry.
pub(super) const MAX_SEQ: u64 = (1 << 53) - (1 << 33);

fn parse<T: serde::de::DeserializeOwned>(line_no: u64, line: &str) -> Result<T, RestoreError> {
    serde_json::from_str(line).map_err(|e| RestoreError::Format {
        line: line_no,
        message: format!("not an alert: {e}"),
    })
}

#[cfg(test)]
mod tests;
