//! The commit journal: what makes a commit group durable before sled has it.
//!
//! Each group is one record, written in place into a file that was filled
//! with zeros beforehand, then made durable with one `fdatasync`. The writer
//! answers the group's requests at that point and puts the group into sled
//! right after, without sled's own flush.
//!
//! A checkpoint (a sled flush and fsync) makes everything sled has durable;
//! a checkpoint record marks it in the journal. After a crash or a power cut,
//! [`Journal::open`] returns every group recorded after the last mark, to
//! apply again in order. Records hold whole values, so applying one again is
//! harmless, and sled may have kept any part of what it wrote after the
//! checkpoint: after a power cut, sled's recovery may skip a damaged message
//! and keep later ones, so the tree's own note of the last group it applied
//! (`Z journal`) cannot say what is missing.
//!
//! Two files take turns. Each starts with a mark: a file is begun only after
//! a checkpoint, so the other file, older, is never needed again and is
//! written over. A mark carries the number of the last group before it.
//! Because the files are overwritten rather than appended to, `fdatasync`
//! has no file size to commit: on ext4 it takes about half as long as after
//! an append.
//!
//! A record: magic `u32`, CRC-32 of the rest `u32`, store instance `u64`,
//! number `u64`, kind `u8`, payload length `u32`, payload. A group's payload
//! is its writes: key length `u16`, key, `1` and value length `u32` and value
//! (or `0` for a removal); a mark's is empty. Each record starts on a 4 KiB
//! boundary, so that a torn write cannot reach the record before it. Groups
//! are numbered without gaps; reading stops at the first record that is torn,
//! from another store, or out of sequence (the older contents of a reused
//! file).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sled::IVec;

use super::StoreError;

/// Largest a file grows to. Replaying a whole file after a crash takes well under a second.
pub const FILE_BYTES: u64 = 8 << 20;
/// Files grow by this much at a time, zero-filled, so that records overwrite.
const GROW_BYTES: u64 = 1 << 20;
/// Records start on this boundary, so that writing one never rewrites a
/// disk sector holding the one before (a torn write cannot damage it).
const ALIGN: u64 = 4096;
const MAGIC: u32 = 0x4b4c_4a31; // "KLJ1"
const HEADER: usize = 4 + 4 + 8 + 8 + 1 + 4;
const GROUP: u8 = 1;
/// Written by earlier versions after a group too big for a record (not
/// synced): read only to follow the numbering, like a group's.
#[cfg(test)]
const OLD_CHECKPOINT: u8 = 2;
/// A checkpoint mark.
const MARK: u8 = 3;

/// A key and its new value (`None`: removed).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A journalled group sled may lack: recorded after the last checkpoint.
pub struct Replay {
    pub number: u64,
    pub writes: Vec<Write>,
}

/// What became of a group handed to [`Journal::append`].
#[derive(Debug, PartialEq)]
pub enum Appended {
    /// On disk under this number.
    Durable(u64),
    /// Too big for a record: the caller makes it durable in sled itself
    /// (everything before it is already), under this number, then calls
    /// [`Journal::mark_checkpoint`].
    TooBig(u64),
}

pub struct Journal {
    files: [File; 2],
    paths: [PathBuf; 2],
    /// Bytes of each file written (zeros or records) so far.
    filled: [u64; 2],
    current: usize,
    offset: u64,
    instance: u64,
    next: u64,
    file_bytes: u64,
    buf: Vec<u8>,
    /// A record write or fsync failed: what the file holds is uncertain, so
    /// nothing more is written until a restart recovers from the journal.
    broken: bool,
    /// The number of the newest record found at open (0: none).
    reached: u64,
}

impl Journal {
    /// Opens the journal in `dir` for store `instance`, whose sled tree says
    /// it applied every record up to `applied`. Returns it with the groups to
    /// apply again, in order: those after the newest file's last checkpoint
    /// mark. The caller applies them, checkpoints and calls
    /// [`Journal::mark_checkpoint`] before the first [`Journal::append`];
    /// writing starts afresh in the other file.
    pub fn open(
        dir: &Path,
        instance: u64,
        applied: u64,
        file_bytes: u64,
    ) -> Result<(Journal, Vec<Replay>), StoreError> {
        let paths = [dir.join("journal.0"), dir.join("journal.1")];
        let open = |p: &PathBuf| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(|e| StoreError::io(p, e))
        };
        let files = [open(&paths[0])?, open(&paths[1])?];
        // One file in memory at a time: each is read whole, up to `file_bytes`.
        let mut filled = [0; 2];
        let mut found = Vec::with_capacity(2);
        for (i, file) in files.iter().enumerate() {
            let bytes = read_all(file, file_bytes).map_err(|e| StoreError::io(&paths[i], e))?;
            filled[i] = bytes.len() as u64;
            let run = read_run(&bytes, instance);
            // A mark comes after the group of the same number.
            let last = run.last().map(|r| (r.number, r.kind == MARK));
            found.push((last, to_replay(run, applied)));
        }
        let newest = if found[1].0 > found[0].0 { 1 } else { 0 };
        let (last, replay) = found.swap_remove(newest);
        let replay = replay.map_err(|e| unusable(e, dir))?;
        let last = last.map_or(0, |(number, _)| number);
        let next = last.max(applied).checked_add(1).ok_or_else(|| {
            let why = format!("journal record number {} has no next", u64::MAX);
            unusable(StoreError::Corrupt(why), dir)
        })?;
        let journal = Journal {
            files,
            paths,
            filled,
            current: 1 - newest,
            offset: 0,
            instance,
            next,
            file_bytes,
            buf: Vec::new(),
            broken: false,
            reached: last,
        };
        Ok((journal, replay))
    }

    /// Writes one group's writes as a record and makes it durable. A record
    /// that does not fit in the rest of the file goes to the other file, after
    /// `checkpoint` has made sled hold everything recorded so far.
    pub fn append<'a>(
        &mut self,
        writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        checkpoint: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<Appended, StoreError> {
        self.usable()?;
        // Only a damaged number read at open comes this close to the end.
        let after = self.next.checked_add(1).ok_or_else(|| {
            StoreError::Corrupt(format!("journal record {} is the last there is", self.next))
        })?;
        let encoded = encode(&mut self.buf, self.instance, self.next, GROUP, writes);
        let len = self.buf.len() as u64;
        if !encoded || len > self.file_bytes / 4 {
            // Everything before the group goes into sled durably, and is
            // marked so, before any of the group does: the records before it
            // are never applied again over it.
            self.checkpoint(checkpoint)?;
            self.mark_checkpoint()?;
            let number = self.next;
            self.next = after;
            return Ok(Appended::TooBig(number));
        }
        if self.offset + len > self.file_bytes {
            self.checkpoint(checkpoint)?;
            let group = std::mem::take(&mut self.buf);
            // The group's one fdatasync makes the mark durable too.
            let marked = self.write_mark_in_other_file();
            self.buf = group;
            marked?;
        }
        let number = self.next;
        self.write_record()?;
        self.sync()?;
        self.next = after;
        Ok(Appended::Durable(number))
    }

    /// Runs a checkpoint (sled's flush and fsync). A failed one breaks the
    /// journal: sled keeps an IO error for good, and a failed fsync may be
    /// reported once only, so a retry that passed could mark as durable
    /// groups whose pages the kernel dropped. The restart applies them again
    /// from the journal instead.
    fn checkpoint(
        &mut self,
        checkpoint: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        checkpoint().inspect_err(|_| self.broken = true)
    }

    /// Marks the journal unusable: a group got a number it may never have a
    /// record for, and records after a gap would not be read back.
    pub fn break_off(&mut self) {
        self.broken = true;
    }

    /// The number of the newest record [`Journal::open`] found (0: none).
    /// Every start and every checkpoint writes a mark numbered at least as
    /// high as the last group the tree holds (a group too big for a record
    /// is in the tree one number ahead until its mark), so a journal that
    /// stops short of that has lost its files.
    pub fn reached(&self) -> u64 {
        self.reached
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn usable(&self) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::Corrupt(
                "an earlier journal write failed; restart klaxon to recover".into(),
            ));
        }
        Ok(())
    }

    /// Marks a checkpoint: sled holds everything recorded so far durably, so
    /// those records are never applied again. Goes to the other file when
    /// this one is full (the checkpoint has just covered this one).
    pub fn mark_checkpoint(&mut self) -> Result<(), StoreError> {
        self.usable()?;
        if self.offset + HEADER as u64 > self.file_bytes {
            self.write_mark_in_other_file()?;
        } else {
            self.write_mark()?;
        }
        self.sync()
    }

    /// Starts the other file with a mark. If the mark cannot be written (the
    /// file cannot grow), writing stays where it was: a file never starts
    /// without a mark, or its groups would not all be applied again.
    fn write_mark_in_other_file(&mut self) -> Result<(), StoreError> {
        let (current, offset) = (self.current, self.offset);
        self.current = 1 - current;
        self.offset = 0;
        self.write_mark().inspect_err(|_| {
            self.current = current;
            self.offset = offset;
        })
    }

    /// Writes a checkpoint mark, numbered as the last group (not synced).
    fn write_mark(&mut self) -> Result<(), StoreError> {
        let last = self.next - 1;
        let encoded = encode(&mut self.buf, self.instance, last, MARK, std::iter::empty());
        debug_assert!(encoded, "a mark has no writes");
        self.write_record()
    }

    /// Writes the record in `buf` at the offset. A failure to grow the file
    /// (a full disk) leaves the journal as it was; a failure once the
    /// record's bytes are being written breaks it (see [`Journal::break_off`]).
    fn write_record(&mut self) -> Result<(), StoreError> {
        let end = self.offset + self.buf.len() as u64;
        let file = &self.files[self.current];
        let io = |e| StoreError::io(&self.paths[self.current], e);
        while self.filled[self.current] < end {
            let at = self.filled[self.current];
            let grow = GROW_BYTES.min(self.file_bytes.max(end) - at);
            file.write_all_at(&vec![0; grow as usize], at).map_err(io)?;
            self.filled[self.current] = at + grow;
        }
        if let Err(e) = file.write_all_at(&self.buf, self.offset) {
            self.broken = true;
            return Err(io(e));
        }
        self.offset = aligned(end);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let synced = self.files[self.current].sync_data();
        synced.map_err(|e| {
            // After a failed fsync the kernel may have dropped the pages:
            // what the file holds is unknown (PostgreSQL's "fsyncgate").
            self.broken = true;
            StoreError::io(&self.paths[self.current], e)
        })?;
        #[cfg(test)]
        super::testing::journal_synced(&self.paths[self.current]);
        Ok(())
    }
}

struct Record<'a> {
    number: u64,
    kind: u8,
    payload: &'a [u8],
}

/// Encodes a record into `buf`. Returns false, leaving `buf` unusable, when
/// a key is longer than its 16-bit length field (or the payload than 32
/// bits): such a group is handled as too big for a record.
#[must_use]
fn encode<'a>(
    buf: &mut Vec<u8>,
    instance: u64,
    number: u64,
    kind: u8,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> bool {
    buf.clear();
    buf.resize(HEADER, 0);
    for (key, value) in writes {
        let Ok(key_len) = u16::try_from(key.len()) else {
            return false;
        };
        buf.extend_from_slice(&key_len.to_le_bytes());
        buf.extend_from_slice(key);
        match value {
            Some(v) => {
                let Ok(len) = u32::try_from(v.len()) else {
                    return false;
                };
                buf.push(1);
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(v);
            }
            None => buf.push(0),
        }
    }
    let Ok(payload) = u32::try_from(buf.len() - HEADER) else {
        return false;
    };
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[8..16].copy_from_slice(&instance.to_le_bytes());
    buf[16..24].copy_from_slice(&number.to_le_bytes());
    buf[24] = kind;
    buf[25..29].copy_from_slice(&payload.to_le_bytes());
    let crc = crc32fast::hash(&buf[8..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    true
}

/// The valid records at the start of a file, in sequence: a group follows
/// the record before it by one; a mark has the same number, or the next one
/// after a group too big for a record (it has no record).
fn read_run(bytes: &[u8], instance: u64) -> Vec<Record<'_>> {
    let mut run: Vec<Record> = Vec::new();
    let mut at = 0;
    while let Some((record, len)) = read_record(&bytes[at..], instance) {
        // A damaged number at the top of the range is followed by none.
        let follows = |prev: &Record| {
            let next = prev.number.checked_add(1);
            match record.kind {
                MARK => record.number == prev.number || Some(record.number) == next,
                _ => Some(record.number) == next,
            }
        };
        if run.last().is_some_and(|prev| !follows(prev)) {
            break;
        }
        run.push(record);
        at = aligned((at + len) as u64) as usize;
        if at >= bytes.len() {
            break;
        }
    }
    run
}

fn read_record(bytes: &[u8], instance: u64) -> Option<(Record<'_>, usize)> {
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    if bytes.len() < HEADER || u32_at(0) != MAGIC || u64_at(8) != instance {
        return None;
    }
    let len = HEADER + u32_at(25) as usize;
    if bytes.len() < len || crc32fast::hash(&bytes[8..len]) != u32_at(4) {
        return None;
    }
    let record = Record {
        number: u64_at(16),
        kind: bytes[24],
        payload: &bytes[HEADER..len],
    };
    Some((record, len))
}

/// A journal that cannot be used, with what an operator can do about it.
fn unusable(e: StoreError, dir: &Path) -> StoreError {
    match e {
        StoreError::Corrupt(why) => StoreError::Corrupt(format!(
            "{why}. To start without the journal, move journal.0 and journal.1 out of {}: \
             changes the tree does not hold yet are then lost, and `klaxon check-store` \
             tells whether the rest is whole",
            dir.display()
        )),
        other => other,
    }
}

/// The groups of `run` to apply again: those after its last checkpoint mark.
/// A file without a mark was written by an earlier klaxon, which applied the
/// records after `applied` (its own checkpoint records, kind 2, were not
/// synced, so they are not marks). Either way the
/// journal must reach back to what the tree holds: the tree has applied at
/// least up to the mark, or up to the group before the first.
fn to_replay(run: Vec<Record>, applied: u64) -> Result<Vec<Replay>, StoreError> {
    let gap = |first: u64| {
        StoreError::Corrupt(format!(
            "the journal resumes at record {first} but the store has applied only up to {applied}"
        ))
    };
    let records: Vec<Record> = match run.iter().rposition(|r| r.kind == MARK) {
        Some(mark) if run[mark].number > applied => {
            return Err(gap(run[mark].number.saturating_add(1)))
        }
        Some(mark) => run.into_iter().skip(mark + 1).collect(),
        None => {
            let after: Vec<Record> = run.into_iter().filter(|r| r.number > applied).collect();
            match after.first() {
                Some(first) if first.number != applied + 1 => return Err(gap(first.number)),
                _ => after,
            }
        }
    };
    let mut groups = Vec::with_capacity(records.len());
    for record in records.into_iter().filter(|r| r.kind == GROUP) {
        let writes = decode(record.payload).ok_or_else(|| {
            StoreError::Corrupt(format!("journal record {} is malformed", record.number))
        })?;
        groups.push(Replay {
            number: record.number,
            writes,
        });
    }
    Ok(groups)
}

fn decode(mut payload: &[u8]) -> Option<Vec<Write>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    let mut writes = Vec::new();
    while !payload.is_empty() {
        let key_len = u16::from_le_bytes(take(&mut payload, 2)?.try_into().ok()?);
        let key = take(&mut payload, key_len.into())?.to_vec();
        let value = match take(&mut payload, 1)?[0] {
            0 => None,
            _ => {
                let len = u32::from_le_bytes(take(&mut payload, 4)?.try_into().ok()?);
                Some(take(&mut payload, len as usize)?.to_vec())
            }
        };
        writes.push((key, value));
    }
    Some(writes)
}

fn aligned(offset: u64) -> u64 {
    offset.div_ceil(ALIGN) * ALIGN
}

/// The file's first `most` bytes, or all of it if shorter: klaxon never
/// writes records past `file_bytes`, and a damaged or foreign file of any
/// length must not make the start allocate it whole.
fn read_all(file: &File, most: u64) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len().min(most);
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// `IVec`-valued writes as the journal takes them.
pub fn borrowed<'a>(
    writes: impl Iterator<Item = (&'a Vec<u8>, &'a Option<IVec>)>,
) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> {
    writes.map(|(k, v)| (k.as_slice(), v.as_deref()))
}

#[cfg(test)]
mod tests;
