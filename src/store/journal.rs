//! The commit journal: what makes a commit group durable before sled has it.
//!
//! Each group is one record, written in place into a file that was filled
//! with zeros beforehand, then made durable with one `fdatasync`. The writer
//! answers the group's requests at that point and puts the group into sled
//! right after, without sled's own flush, its record's number (`Z journal`)
//! last; after a crash, [`Journal::open`] returns the records sled does not
//! have, to apply again.
//!
//! Two files take turns. A file is written over only after a checkpoint (a
//! sled flush and fsync) has made everything in it durable in sled. Because
//! the files are overwritten rather than appended to, `fdatasync` has no file
//! size to commit: on ext4 it takes about half as long as after an append.
//!
//! A record: magic `u32`, CRC-32 of the rest `u32`, store instance `u64`,
//! number `u64`, kind `u8`, payload length `u32`, payload. A group's payload
//! is its writes: key length `u16`, key, `1` and value length `u32` and value
//! (or `0` for a removal). Each record starts on a 4 KiB boundary, so that a
//! torn write cannot reach the record before it. Records are numbered without gaps; reading stops at
//! the first record that is torn, from another store, or out of sequence (the
//! older contents of a reused file).

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
const CHECKPOINT: u8 = 2;

/// A key and its new value (`None`: removed).
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// A journalled group sled had not applied when the store was last closed.
pub struct Unapplied {
    pub number: u64,
    pub writes: Vec<Write>,
}

/// What became of a group handed to [`Journal::append`].
#[derive(Debug, PartialEq)]
pub enum Appended {
    /// On disk under this number.
    Durable(u64),
    /// Too big for a record: the caller makes it durable in sled itself,
    /// under this number, then calls [`Journal::checkpointed`].
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
}

impl Journal {
    /// Opens the journal in `dir` for store `instance`, whose sled tree has
    /// applied every record up to `applied`. Returns it with the records after
    /// `applied`, in order, for the caller to apply and checkpoint before the
    /// first [`Journal::append`]. Writing starts afresh in the other file.
    pub fn open(
        dir: &Path,
        instance: u64,
        applied: u64,
        file_bytes: u64,
    ) -> Result<(Journal, Vec<Unapplied>), StoreError> {
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
            let bytes = read_all(file).map_err(|e| StoreError::io(&paths[i], e))?;
            filled[i] = bytes.len() as u64;
            let run = read_run(&bytes, instance);
            let last = run.last().map(|r| r.number);
            found.push((last, unapplied_after(run, applied)));
        }
        let newest = if found[1].0 > found[0].0 { 1 } else { 0 };
        let (last, unapplied) = found.swap_remove(newest);
        let unapplied = unapplied?;
        let last = last.unwrap_or(0);
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
        };
        Ok((journal, unapplied))
    }

    /// Writes one group's writes as a record and makes it durable. A record
    /// that does not fit in the rest of the file goes to the other file, after
    /// `checkpoint` has made sled hold everything the other file has.
    pub fn append<'a>(
        &mut self,
        writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
        checkpoint: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<Appended, StoreError> {
        self.usable()?;
        let number = self.next;
        encode(&mut self.buf, self.instance, number, GROUP, writes);
        let len = self.buf.len() as u64;
        if len > self.file_bytes / 4 {
            self.next += 1;
            return Ok(Appended::TooBig(number));
        }
        if self.offset + len > self.file_bytes {
            checkpoint()?;
            self.current = 1 - self.current;
            self.offset = 0;
        }
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

    /// Notes that sled holds every record up to `number` durably (after a
    /// [`Appended::TooBig`] group). Not synced: sled's own record covers it.
    pub fn checkpointed(&mut self, number: u64) -> Result<(), StoreError> {
        self.usable()?;
        encode(
            &mut self.buf,
            self.instance,
            number,
            CHECKPOINT,
            std::iter::empty(),
        );
        if self.offset + self.buf.len() as u64 > self.file_bytes {
            self.current = 1 - self.current;
            self.offset = 0;
        }
        self.next = self.next.max(number + 1);
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

fn encode<'a>(
    buf: &mut Vec<u8>,
    instance: u64,
    number: u64,
    kind: u8,
    writes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) {
    buf.clear();
    buf.resize(HEADER, 0);
    for (key, value) in writes {
        buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
        buf.extend_from_slice(key);
        match value {
            Some(v) => {
                buf.push(1);
                buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                buf.extend_from_slice(v);
            }
            None => buf.push(0),
        }
    }
    let payload = (buf.len() - HEADER) as u32;
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[8..16].copy_from_slice(&instance.to_le_bytes());
    buf[16..24].copy_from_slice(&number.to_le_bytes());
    buf[24] = kind;
    buf[25..29].copy_from_slice(&payload.to_le_bytes());
    let crc = crc32fast::hash(&buf[8..]);
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The valid records at the start of a file, numbered without gaps.
fn read_run(bytes: &[u8], instance: u64) -> Vec<Record<'_>> {
    let mut run: Vec<Record> = Vec::new();
    let mut at = 0;
    while let Some((record, len)) = read_record(&bytes[at..], instance) {
        if run
            .last()
            .is_some_and(|prev| record.number != prev.number + 1)
        {
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

/// The groups of `run` after `applied`, which must follow it without a gap.
fn unapplied_after(run: Vec<Record>, applied: u64) -> Result<Vec<Unapplied>, StoreError> {
    let mut groups = Vec::new();
    let after = run.into_iter().filter(|r| r.number > applied);
    for (expected, record) in (applied + 1..).zip(after) {
        if record.number != expected {
            return Err(StoreError::Corrupt(format!(
                "the journal resumes at record {} but the store has applied only up to {applied}",
                record.number
            )));
        }
        if record.kind == GROUP {
            let writes = decode(record.payload).ok_or_else(|| {
                StoreError::Corrupt(format!("journal record {} is malformed", record.number))
            })?;
            groups.push(Unapplied {
                number: record.number,
                writes,
            });
        }
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

fn read_all(file: &File) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
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

    fn keys_of(groups: &[Unapplied]) -> Vec<(u64, Vec<String>)> {
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

    #[test]
    fn records_after_the_applied_one_come_back_in_order_with_their_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, none) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert!(none.is_empty());
        let removal = (b"gone".to_vec(), None);
        assert_eq!(append(&mut journal, &[write("a", "1"), removal]), 1);
        assert_eq!(append(&mut journal, &[write("b", "2")]), 2);
        assert_eq!(append(&mut journal, &[write("c", "3")]), 3);
        drop(journal);

        let (_, unapplied) = Journal::open(dir.path(), INSTANCE, 1, FILE_BYTES).unwrap();
        assert_eq!(
            keys_of(&unapplied),
            vec![(2, vec!["b".to_string()]), (3, vec!["c".to_string()])]
        );
        assert_eq!(unapplied[0].writes[0].1.as_deref(), Some(&b"2"[..]));
        let (_, all) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!(all[0].writes[1], (b"gone".to_vec(), None));
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        append(&mut journal, &[write("a", "1")]);
        let (file, start) = (journal.current, journal.offset);
        assert_eq!(start % ALIGN, 0, "a record starts on a sector boundary");
        append(&mut journal, &[write("b", "2")]);
        drop(journal);
        // Part of the last record never reached the disk.
        let path = dir.path().join(format!("journal.{file}"));
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff], start + HEADER as u64).unwrap();

        let (mut journal, unapplied) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&unapplied), vec![(1, vec!["a".to_string()])]);
        // The writer applies that and goes on: the next record is number 2 again.
        assert_eq!(append(&mut journal, &[write("c", "3")]), 2);
        drop(journal);
        let (_, unapplied) = Journal::open(dir.path(), INSTANCE, 1, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&unapplied), vec![(2, vec!["c".to_string()])]);
    }

    #[test]
    fn a_full_file_checkpoints_and_the_other_file_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let small = 4 * ALIGN; // four records a file
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, small).unwrap();
        let value = "x".repeat(500);
        let mut checkpoints = 0;
        for n in 1..=40u64 {
            let writes = [write(&format!("k{n}"), &value)];
            let appended = try_append(&mut journal, &writes, || {
                checkpoints += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(appended, Appended::Durable(n));
        }
        assert!(checkpoints >= 4, "{checkpoints} checkpoints");
        drop(journal);
        // Only the newest file's records after the applied one come back;
        // the older records left in the reused file are not read as new.
        let (_, unapplied) = Journal::open(dir.path(), INSTANCE, 38, small).unwrap();
        assert_eq!(
            keys_of(&unapplied),
            vec![(39, vec!["k39".to_string()]), (40, vec!["k40".to_string()])]
        );
        for len in [0, 1].map(|i| std::fs::metadata(dir.path().join(format!("journal.{i}")))) {
            assert!(len.unwrap().len() <= small, "a file grew past its size");
        }
    }

    #[test]
    fn a_group_too_big_for_a_record_takes_a_number_and_a_checkpoint_record() {
        let dir = tempfile::tempdir().unwrap();
        let small = 4096;
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, small).unwrap();
        append(&mut journal, &[write("a", "1")]);
        let huge = [write("big", &"x".repeat(2000))];
        assert_eq!(
            try_append(&mut journal, &huge, || Ok(())).unwrap(),
            Appended::TooBig(2)
        );
        journal.checkpointed(2).unwrap();
        assert_eq!(append(&mut journal, &[write("b", "2")]), 3);
        drop(journal);
        // sled holds record 2: only record 3 is left to apply.
        let (_, unapplied) = Journal::open(dir.path(), INSTANCE, 2, small).unwrap();
        assert_eq!(keys_of(&unapplied), vec![(3, vec!["b".to_string()])]);
    }

    #[test]
    fn a_failed_record_write_breaks_the_journal_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
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
        drop(journal);
        let (_, unapplied) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        assert_eq!(keys_of(&unapplied), vec![(1, vec!["a".to_string()])]);
    }

    #[test]
    fn records_of_another_store_are_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
        append(&mut journal, &[write("a", "1")]);
        drop(journal);
        let (mut journal, unapplied) =
            Journal::open(dir.path(), INSTANCE + 1, 0, FILE_BYTES).unwrap();
        assert!(unapplied.is_empty());
        assert_eq!(append(&mut journal, &[write("b", "2")]), 1);
    }

    #[test]
    fn a_journal_that_does_not_reach_back_to_the_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 10, FILE_BYTES).unwrap();
        append(&mut journal, &[write("a", "1")]);
        drop(journal);
        // A store that says it applied only up to 5: records 6 to 10 are missing.
        let refused = Journal::open(dir.path(), INSTANCE, 5, FILE_BYTES);
        assert!(matches!(refused, Err(StoreError::Corrupt(_))));
    }
}
