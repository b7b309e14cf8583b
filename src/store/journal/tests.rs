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
fn a_failed_checkpoint_breaks_the_journal_and_the_restart_applies_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let small = 4 * ALIGN; // four records a file
    let mut journal = open_marked(dir.path(), 0, small);
    let value = "x".repeat(500);
    let mut n = 0;
    let refused = loop {
        n += 1;
        let writes = [write(&format!("k{n}"), &value)];
        // sled's flush fails at the first checkpoint: the file is full.
        match try_append(&mut journal, &writes, || {
            Err(StoreError::Corrupt("flush".into()))
        }) {
            Ok(_) => assert!(n < 10, "no checkpoint in {n} groups"),
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, StoreError::Corrupt(m) if m == "flush"));
    assert!(journal.is_broken());
    // A checkpoint that would pass now is not tried: the store has stopped.
    let writes = [write("later", "1")];
    assert!(try_append(&mut journal, &writes, || Ok(())).is_err());
    assert!(journal.mark_checkpoint().is_err());
    drop(journal);
    // No mark says sled holds them: every group journalled comes back.
    let (_, replay) = Journal::open(dir.path(), INSTANCE, 0, small).unwrap();
    let expected: Vec<Vec<String>> = (1..n).map(|i| vec![format!("k{i}")]).collect();
    assert_eq!(keys_only(&replay), expected);
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

#[test]
fn record_numbers_at_the_top_of_the_range_are_damage_not_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), INSTANCE, 0, FILE_BYTES).unwrap();
    // Intact records, damaged numbers: a mark at the top of the range, then
    // a group numbered as if the numbering wrapped after it.
    for (number, kind) in [(u64::MAX, MARK), (0, GROUP)] {
        assert!(encode(
            &mut journal.buf,
            INSTANCE,
            number,
            kind,
            std::iter::empty()
        ));
        journal.write_record().unwrap();
    }
    drop(journal);
    for applied in [5, u64::MAX] {
        let opened = Journal::open(dir.path(), INSTANCE, applied, FILE_BYTES);
        assert!(
            matches!(opened, Err(StoreError::Corrupt(_))),
            "applied {applied}"
        );
    }

    // A store whose note of the last group applied is one short of the top:
    // the group numbered u64::MAX would leave no number for the next.
    let other = tempfile::tempdir().unwrap();
    let mut journal = open_marked(other.path(), u64::MAX - 1, FILE_BYTES);
    let refused = try_append(&mut journal, &[write("a", "1")], || Ok(()));
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
    assert!(!journal.is_broken(), "nothing was written");

    // A payload length field at its largest reads as a torn record.
    let mut header = vec![0; HEADER];
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[8..16].copy_from_slice(&INSTANCE.to_le_bytes());
    header[25..29].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(read_record(&header, INSTANCE).is_none());
}
