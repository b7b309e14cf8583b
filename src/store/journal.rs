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
        let journal = Journal {
            files,
            paths,
            filled,
            current: 1 - newest,
            offset: 0,
            instance,
            next: last.max(applied) + 1,
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
        let encoded = encode(&mut self.buf, self.instance, self.next, GROUP, writes);
        let len = self.buf.len() as u64;
        if !encoded || len > self.file_bytes / 4 {
            // Everything before the group goes into sled durably, and is
            // marked so, before any of the group does: the records before it
            // are never applied again over it.
            checkpoint()?;
            self.mark_checkpoint()?;
            let number = self.next;
            self.next += 1;
            return Ok(Appended::TooBig(number));
        }
        if self.offset + len > self.file_bytes {
            checkpoint()?;
            let group = std::mem::take(&mut self.buf);
            // The group's one fdatasync makes the mark durable too.
            let marked = self.write_mark_in_other_file();
            self.buf = group;
            marked?;
        }
        let number = self.next;
        self.write_record()?;
        self.sync()?;
        self.next += 1;
        Ok(Appended::Durable(number))
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
        })
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
        let follows = |prev: &Record| match record.kind {
            MARK => (prev.number..=prev.number + 1).contains(&record.number),
            _ => record.number == prev.number + 1,
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
        Some(mark) if run[mark].number > applied => return Err(gap(run[mark].number + 1)),
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
mod tests {
    use super::*;

    const INSTANCE: u64 = 7;

    fn write(key: &str, value: &str) -> (Vec<u8>, Option<IVec>) {
        (key.as_bytes().to_vec(), Some(IVec::from(value.as_bytes())))
    }

    /// Offers one group's writes to the journal.
    fn try_append(
        journal: &mut Journal,
        writes: &[(Vec<u8>, Option<IVec>)],
        checkpoint: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<Appended, StoreError> {
        journal.append(borrowed(writes.iter().map(|(k, v)| (k, v))), checkpoint)
    }

    /// Appends one group and returns its record number.
    fn append(journal: &mut Journal, writes: &[(Vec<u8>, Option<IVec>)]) -> u64 {
        match try_append(journal, writes, || Ok(())).unwrap() {
            Appended::Durable(n) => n,
            other => panic!("not journalled: {other:?}"),
        }
    }

    fn keys_of(groups: &[Replay]) -> Vec<(u64, Vec<String>)> {
        groups
            .iter()
            .map(|g| {
                let keys = g
                    .writes
                    .iter()
                    .map(|(k, _)| String::from_utf8(k.clone()).unwrap());
                (g.number, keys.collect())
            })
            .collect()
    }

    /// Opens the journal as the store does: nothing to apply, then a mark.
    fn open_marked(dir: &Path, applied: u64, file_bytes: u64) -> Journal {
        let (mut journal, replay) = Journal::open(dir, INSTANCE, applied, file_bytes).unwrap();
        assert!(replay.is_empty());
        journal.mark_checkpoint().unwrap();
        journal
    }

    fn keys_only(groups: &[Replay]) -> Vec<Vec<String>> {
        keys_of(groups).into_iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn every_group_since_the_last_mark_comes_back_even_if_the_tree_says_it_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        let removal = (b"gone".to_vec(), None);
        assert_eq!(append(&mut journal, &[write("a", "1"), removal]), 1);
        assert_eq!(append(&mut journal, &[write("b", "2")]), 2);
        assert_eq!(append(&mut journal, &[write("c", "3")]), 3);
        drop(journal);

        // After a power cut, the tree's note (2 applied) may be durable while
        // group 1's writes are not: all three come back, in order.
        let (mut journal, replay) = Journal::open(dir.path(), INSTANCE, 2, FILE_BYTES).unwrap();
        assert_eq!(
            keys_of(&replay),
            vec![
                (1, vec!["a".to_string(), "gone".to_string()]),
                (2, vec!["b".to_string()]),
                (3, vec!["c".to_string()]),
            ]
        );
        assert_eq!(replay[0].writes[1], (b"gone".to_vec(), None));
        assert_eq!(replay[1].writes[0].1.as_deref(), Some(&b"2"[..]));
        // Once they are in sled and checkpointed, the mark says so.
        journal.mark_checkpoint().unwrap();
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 3, FILE_BYTES).unwrap();
        assert!(replay.is_empty(), "{:?}", keys_of(&replay));
    }

    #[test]
    fn a_file_from_before_marks_gives_back_the_groups_after_the_applied_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, none) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert!(none.is_empty());
        append(&mut journal, &[write("a", "1")]);
        append(&mut journal, &[write("b", "2")]);
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 1, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(2, vec!["b".to_string()])]);
    }

    #[test]
    fn checkpoint_records_of_earlier_versions_are_not_marks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        // An earlier version's record after a group too big for a record
        // (number 1), not synced, then groups 2 and 3.
        assert!(encode(
            &mut journal.buf,
            INSTANCE,
            1,
            OLD_CHECKPOINT,
            std::iter::empty(),
        ));
        journal.write_record().unwrap();
        journal.next = 2;
        append(&mut journal, &[write("a", "1")]);
        append(&mut journal, &[write("b", "2")]);
        drop(journal);
        // The tree holds a later big group, 4, whose own record was lost:
        // groups 2 and 3 are not applied over it.
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 4, FILE_BYTES).unwrap();
        assert!(replay.is_empty(), "{:?}", keys_of(&replay));
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 2, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(3, vec!["b".to_string()])]);
    }

    #[test]
    fn a_file_that_cannot_grow_at_a_switch_is_not_started_without_a_mark() {
        let dir = tempfile::tempdir().unwrap();
        let small = 4 * ALIGN;
        let mut journal = open_marked(dir.path(), 0, small);
        let value = "x".repeat(500);
        for n in 1..=3 {
            append(&mut journal, &[write(&format!("k{n}"), &value)]);
        }
        // The other file cannot grow (a full disk): the group fails, and
        // the journal is still usable.
        let other = 1 - journal.current;
        let path = journal.paths[other].clone();
        journal.files[other] = File::open(&path).unwrap();
        let k4 = [write("k4", &value)];
        assert!(try_append(&mut journal, &k4, || Ok(())).is_err());
        assert!(!journal.is_broken());
        // Room again: the next groups go on in the other file, after a mark.
        journal.files[other] = OpenOptions::new().write(true).open(&path).unwrap();
        assert_eq!(append(&mut journal, &k4), 4);
        assert_eq!(append(&mut journal, &[write("k5", &value)]), 5);
        drop(journal);
        // A power cut kept group 5's number in the tree but lost group 4.
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 5, small).unwrap();
        assert_eq!(
            keys_of(&replay),
            vec![(4, vec!["k4".to_string()]), (5, vec!["k5".to_string()])]
        );
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        append(&mut journal, &[write("a", "1")]);
        let (file, start) = (journal.current, journal.offset);
        assert_eq!(start % ALIGN, 0, "a record starts on a sector boundary");
        append(&mut journal, &[write("b", "2")]);
        drop(journal);
        // Part of the last record never reached the disk.
        let path = dir.path().join(format!("journal.{file}"));
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff], start + HEADER as u64).unwrap();

        let (mut journal, replay) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(1, vec!["a".to_string()])]);
        // The store applies that, checkpoints and goes on in the other file:
        // the next group is number 2 again.
        journal.mark_checkpoint().unwrap();
        assert_eq!(append(&mut journal, &[write("c", "3")]), 2);
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 1, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(2, vec!["c".to_string()])]);
    }

    #[test]
    fn a_full_file_checkpoints_and_the_other_file_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let small = 4 * ALIGN; // four records a file
        let mut journal = open_marked(dir.path(), 0, small);
        let value = "x".repeat(500);
        let mut checkpoints = 0;
        let mut numbers = Vec::new();
        for n in 1..=40u64 {
            let writes = [write(&format!("k{n}"), &value)];
            let appended = try_append(&mut journal, &writes, || {
                checkpoints += 1;
                Ok(())
            })
            .unwrap();
            let Appended::Durable(number) = appended else {
                panic!("not journalled: {appended:?}");
            };
            numbers.push(number);
        }
        assert!(checkpoints >= 4, "{checkpoints} checkpoints");
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        drop(journal);
        // Only the newest file's groups come back, those after its mark: the
        // last ones appended, since the last checkpoint. The older records
        // left in the reused file are not read as new.
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 40, small).unwrap();
        let back = keys_only(&replay);
        assert!(!back.is_empty() && back.len() <= 3, "{back:?}");
        let expected: Vec<Vec<String>> = (41 - back.len()..=40)
            .map(|n| vec![format!("k{n}")])
            .collect();
        assert_eq!(back, expected);
        assert_eq!(replay.last().map(|g| g.number), numbers.last().copied());
        for len in [0, 1].map(|i| std::fs::metadata(dir.path().join(format!("journal.{i}")))) {
            assert!(len.unwrap().len() <= small, "a file grew past its size");
        }
    }

    #[test]
    fn a_group_too_big_for_a_record_is_preceded_by_a_checkpoint_and_followed_by_one() {
        let dir = tempfile::tempdir().unwrap();
        // Room for all the records in one file; a record may take a quarter.
        let small = 16 * ALIGN;
        let mut journal = open_marked(dir.path(), 0, small);
        append(&mut journal, &[write("a", "1")]);
        let huge = [write("big", &"x".repeat(20_000))];
        let mut checkpoints = 0;
        let appended = try_append(&mut journal, &huge, || {
            checkpoints += 1;
            Ok(())
        });
        // A mark says sled holds group 1; the big group is number 2.
        assert_eq!(appended.unwrap(), Appended::TooBig(2));
        assert_eq!(
            checkpoints, 1,
            "sled was not checkpointed before the big group"
        );
        // A crash before the big group's own checkpoint: group 1 is not
        // applied again over what the big group may have written.
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 2, small).unwrap();
        assert!(replay.is_empty(), "{:?}", keys_of(&replay));

        // The mark after the big group has its number, one above the mark before.
        journal.mark_checkpoint().unwrap();
        assert_eq!(append(&mut journal, &[write("b", "2")]), 3);
        assert_eq!(journal.current, 1, "the records did not all go to one file");
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 2, small).unwrap();
        assert_eq!(keys_of(&replay), vec![(3, vec!["b".to_string()])]);
    }

    #[test]
    fn a_key_too_long_for_a_record_makes_its_group_too_big_not_a_broken_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        append(&mut journal, &[write("a", "1")]);
        // A key past the record's 16-bit key length, in a small group.
        let long = [write(&"k".repeat(70_000), "v")];
        let appended = try_append(&mut journal, &long, || Ok(()));
        assert_eq!(appended.unwrap(), Appended::TooBig(2));
        journal.mark_checkpoint().unwrap();
        assert_eq!(append(&mut journal, &[write("b", "2")]), 3);
        drop(journal);
        // Every record reads back: the store opens after a crash.
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 2, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(3, vec!["b".to_string()])]);
    }

    #[test]
    fn a_journal_file_is_read_only_up_to_the_journal_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.0");
        std::fs::write(&path, vec![7u8; 3 * ALIGN as usize]).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read_all(&file, ALIGN).unwrap(), vec![7u8; ALIGN as usize]);
        assert_eq!(
            read_all(&file, 8 * ALIGN).unwrap().len(),
            3 * ALIGN as usize
        );
    }

    #[test]
    fn a_failed_record_write_breaks_the_journal_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        append(&mut journal, &[write("a", "1")]);
        // The disk starts failing writes where the file has room already.
        let path = journal.paths[journal.current].clone();
        journal.files[journal.current] = File::open(&path).unwrap();
        let writes = [write("b", "2")];
        assert!(try_append(&mut journal, &writes, || Ok(())).is_err());
        assert!(journal.is_broken());
        // Nothing more is written, even where it would work again.
        journal.files[journal.current] = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(try_append(&mut journal, &writes, || Ok(())).is_err());
        assert!(journal.mark_checkpoint().is_err());
        drop(journal);
        let (_, replay) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&replay), vec![(1, vec!["a".to_string()])]);
    }

    #[test]
    fn records_of_another_store_are_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        append(&mut journal, &[write("a", "1")]);
        drop(journal);
        let (mut journal, replay) = Journal::open(dir.path(), INSTANCE + 1, 0, FILE_BYTES).unwrap();
        assert!(replay.is_empty());
        assert_eq!(append(&mut journal, &[write("b", "2")]), 1);
    }

    #[test]
    fn the_newest_record_found_at_open_is_reported_and_zero_without_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = open_marked(dir.path(), 0, FILE_BYTES);
        assert_eq!(journal.reached(), 0);
        append(&mut journal, &[write("a", "1")]);
        append(&mut journal, &[write("b", "2")]);
        drop(journal);
        let (journal, replay) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!((journal.reached(), replay.len()), (2, 2));
        drop(journal);
        for file in ["journal.0", "journal.1"] {
            std::fs::remove_file(dir.path().join(file)).unwrap();
        }
        let (journal, replay) = Journal::open(dir.path(), INSTANCE, 2, FILE_BYTES).unwrap();
        assert_eq!((journal.reached(), replay.len()), (0, 0));
    }

    #[test]
    fn a_journal_that_does_not_reach_back_to_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A mark after group 10, then group 11.
        let mut journal = open_marked(dir.path(), 10, FILE_BYTES);
        append(&mut journal, &[write("a", "1")]);
        drop(journal);
        // A store that says it applied only up to 5: records 6 to 10 are missing.
        let refused = Journal::open(dir.path(), INSTANCE, 5, FILE_BYTES);
        let Err(StoreError::Corrupt(message)) = refused else {
            panic!("opened");
        };
        // The error says the way out, with the directory.
        let way_out = format!(
            "move journal.0 and journal.1 out of {}",
            dir.path().display()
        );
        assert!(message.contains(&way_out), "{message}");
        // The same for a file from before marks.
        let old = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(old.path(), INSTANCE, 10, FILE_BYTES).unwrap();
        append(&mut journal, &[write("a", "1")]);
        drop(journal);
        let refused = Journal::open(old.path(), INSTANCE, 5, FILE_BYTES);
        assert!(matches!(refused, Err(StoreError::Corrupt(_))));
    }
}
