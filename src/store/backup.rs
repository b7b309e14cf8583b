//! Backups as JSON Lines: a header line, one alert per line, a trailer line.
//!
//! A backup is a consistent snapshot without stopping the service: the
//! records there were when it began are scanned while writes go on, then
//! every alert changed since is appended, read on the writer thread (where no
//! other change can run) in short stretches, until a stretch reaches the
//! latest change. Restoring keeps, per id, the line with the highest `seq`,
//! which is exactly the state at the trailer's `seq`. The trailer also proves
//! the file is complete: a truncated backup is refused.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::restore::RestoreError;
use super::{keys, Store, StoreError, SCHEMA_VERSION};
use crate::alert::AlertId;

/// First line of a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub klaxon_backup: u32,
    pub schema: u64,
}

/// Last line of a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Trailer {
    pub klaxon_backup_end: End,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct End {
    /// Alert lines written (an alert changed during the backup appears twice).
    pub lines: u64,
    /// The store's change sequence the snapshot is consistent at.
    pub seq: u64,
    /// The sequence numbers the store skipped when it was restored, and
    /// those the stores it came from skipped, as `[first, last]` pairs: a
    /// store restored from this backup skips them too (see
    /// [`Store::foreign_cursor`]). Missing in backups before 2026-11-25.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<[u64; 2]>,
}

/// Alerts read for the tail of a backup per job on the writer, which holds
/// up commits meanwhile (about 4 µs an alert: 1 ms), and at most about this
/// many bytes of them (alerts with long texts and many notes).
const TAIL_STRETCH: usize = 256;
const TAIL_STRETCH_BYTES: usize = 1 << 20;

/// The format version written and understood.
pub const FORMAT: u32 = 1;

/// What a backup or restore covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Alerts restored; for a backup, alert lines written.
    pub alerts: u64,
    pub seq: u64,
    /// Alerts restored that are over today's limits (see [`super::restore`]).
    pub over_limits: u64,
}

impl Store {
    /// Writes a consistent snapshot to `out`. Blocking: run it off the async workers.
    pub fn backup(&self, out: &mut dyn Write) -> Result<Summary, StoreError> {
        self.settle_blocking()?;
        let started_at = self.inner.progress.seq();
        let header = Header {
            klaxon_backup: FORMAT,
            schema: SCHEMA_VERSION,
        };
        write_line(out, &to_json(&header)?)?;
        let mut lines = 0;
        // Alerts created from here on are in the tail: scan up to the last one now.
        let tree = &self.inner.tree;
        if let Some(newest) = tree
            .scan_prefix([keys::ALERT])
            .keys()
            .next_back()
            .transpose()?
        {
            for entry in tree.range(keys::alert(AlertId::MIN).to_vec()..=newest.to_vec()) {
                let (_, record) = entry?;
                write_line(out, &super::record::json(record)?)?;
                lines += 1;
            }
        }
        let mut seq = started_at;
        loop {
            let tail = self.write_blocking(move |ledger| {
                ledger.changed_since(seq, TAIL_STRETCH, TAIL_STRETCH_BYTES)
            })?;
            for json in &tail.records {
                write_line(out, json)?;
                lines += 1;
            }
            seq = tail.next;
            if tail.done {
                break;
            }
        }
        let skipped = self.inner.skipped.iter();
        let trailer = Trailer {
            klaxon_backup_end: End {
                lines,
                seq,
                skipped: skipped.map(|r| [*r.start(), *r.end()]).collect(),
            },
        };
        write_line(out, &to_json(&trailer)?)?;
        out.flush().map_err(output_error)?;
        Ok(Summary {
            alerts: lines,
            seq,
            over_limits: 0,
        })
    }
}

/// Writes one line of a backup.
fn write_line(out: &mut dyn Write, json: &[u8]) -> Result<(), StoreError> {
    out.write_all(json)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(output_error)
}

fn to_json(line: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(line).map_err(|e| output_error(e.into()))
}

fn output_error(e: std::io::Error) -> StoreError {
    StoreError::io("backup output", e)
}

/// Checks the header and trailer of a backup and hands each alert line to `each`.
pub(super) fn read_backup(
    input: &mut dyn BufRead,
    mut each: impl FnMut(u64, &str) -> Result<(), RestoreError>,
) -> Result<End, RestoreError> {
    let mut lines = input.lines();
    let header = lines.next().ok_or(RestoreError::Truncated)??;
    let header: Header = serde_json::from_str(&header).map_err(|e| RestoreError::Format {
        line: 1,
        message: format!("not a klaxon backup header: {e}"),
    })?;
    if header.klaxon_backup != FORMAT || header.schema > SCHEMA_VERSION {
        let message = format!(
            "backup format {} schema {} is newer than this klaxon",
            header.klaxon_backup, header.schema
        );
        return Err(RestoreError::Format { line: 1, message });
    }
    let mut trailer = None;
    let mut alert_lines = 0;
    for (n, line) in lines.enumerate() {
        let line_no = n as u64 + 2;
        let line = line?;
        if trailer.is_some() {
            return Err(RestoreError::Format {
                line: line_no,
                message: "data after the trailer".into(),
            });
        }
        if line.starts_with("{\"klaxon_backup_end\"") {
            let t: Trailer = serde_json::from_str(&line).map_err(|e| RestoreError::Format {
                line: line_no,
                message: e.to_string(),
            })?;
            if t.klaxon_backup_end.lines != alert_lines {
                let message = format!(
                    "the trailer counts {} alert lines but the file has {alert_lines}: lines were cut out or added",
                    t.klaxon_backup_end.lines
                );
                return Err(RestoreError::Format {
                    line: line_no,
                    message,
                });
            }
            let end = t.klaxon_backup_end;
            super::restore::check_seq(line_no, end.seq)?;
            if let Some([first, last]) = end
                .skipped
                .iter()
                .find(|[first, last]| *first == 0 || first > last || *last > end.seq)
            {
                let message = format!(
                    "the trailer's skipped range [{first}, {last}] is not within 1..={}",
                    end.seq
                );
                return Err(RestoreError::Format {
                    line: line_no,
                    message,
                });
            }
            trailer = Some(end);
        } else {
            alert_lines += 1;
            each(line_no, &line)?;
        }
    }
    trailer.ok_or(RestoreError::Truncated)
}
