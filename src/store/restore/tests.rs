//! Unit tests of restore: the passes, the staging directory, what a failed
//! restore leaves.

use std::io::{Cursor, Read, SeekFrom};

use super::*;
use crate::alert::Status;
use crate::store::backup::FORMAT;
use crate::store::ledger::Inserted;
use crate::store::testing::{self, alert, listed};
use crate::store::{holds, keys, Holds};
use crate::urgency::Urgency;

/// A backup holding `alerts` in this order, as a file reads.
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

/// Alerts 0 to n-1, open.
fn alerts(n: u64) -> Vec<Alert> {
    (0..n)
        .map(|i| alert(i, Urgency::High, Status::Open))
        .collect()
}

fn restore_from(
    data_dir: &Path,
    input: &mut (impl BufRead + Seek),
) -> Result<Summary, RestoreError> {
    restore(data_dir, input, &StoreOptions::default())
}

/// Opens the store a restore left in `data_dir`, its check clean.
fn open_clean(data_dir: &Path) -> Store {
    let store = Store::open(data_dir, &StoreOptions::default()).unwrap();
    let report = store.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    store
}

/// Restores `alerts` into a new store: how many it counted over today's
/// limits, and the alerts the store then holds (its check clean).
fn restore_all(alerts: &[Alert]) -> (u64, Vec<Alert>) {
    let dir = tempfile::tempdir().unwrap();
    let summary = restore_from(dir.path(), &mut backup_of(alerts)).unwrap();
    let store = open_clean(dir.path());
    let tree = &store.inner.tree;
    let held = alerts
        .iter()
        .map(|a| crate::store::decode_alert(tree.get(keys::alert(a.id)).unwrap()))
        .map(|a| a.unwrap().unwrap())
        .collect();
    store.close();
    (summary.over_limits, held)
}

/// What a failed restore must leave: no store `klaxon serve` would open,
/// and no staging directory.
fn assert_no_store(data_dir: &Path) {
    assert_eq!(holds(data_dir).unwrap(), Holds::Nothing);
    assert!(!store_dir(data_dir).exists());
    assert!(!data_dir.join(STAGING).exists());
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
    let summary = restore_from(dir.path(), &mut backup_of(&lines)).unwrap();
    assert_eq!((summary.alerts, summary.seq), (4, 10));

    let store = open_clean(dir.path());
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
fn a_backup_that_changes_between_the_passes_is_refused_and_leaves_no_store() {
    // Past a batch, so that the second pass has written alerts when it
    // finds out.
    let before = alerts(250);
    // A later backup, equally whole: alert 3 was resolved since.
    let mut after = before.clone();
    after[3].status = Status::Resolved;
    after[3].seq = 900;
    let mut input = RewrittenOnRewind {
        now: backup_of(&before),
        then: Some(backup_of(&after)),
    };
    let dir = tempfile::tempdir().unwrap();

    let restored = restore_from(dir.path(), &mut input);

    assert!(
        matches!(
            restored,
            Err(RestoreError::Changed {
                missing: 1,
                alerts: 250
            })
        ),
        "{restored:?}"
    );
    assert_no_store(dir.path());
}

#[test]
fn a_bad_line_is_found_before_anything_is_written_and_a_retry_succeeds() {
    let good = alerts(250);
    let mut text = String::from_utf8(backup_of(&good).into_inner()).unwrap();
    // Line 200 (the header is line 1): two batches would be in the store.
    let line_200 = serde_json::to_string(&good[198]).unwrap();
    let bad = line_200.replace("\"status\":\"open\"", "\"status\":\"snoozed\"");
    assert_ne!(bad, line_200);
    text = text.replace(&line_200, &bad);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");

    let refused = restore_from(&data, &mut Cursor::new(text.into_bytes()));

    assert!(
        matches!(refused, Err(RestoreError::Format { line: 200, .. })),
        "{refused:?}"
    );
    assert!(
        !data.exists(),
        "nothing is created before every line is read"
    );
    let summary = restore_from(&data, &mut backup_of(&good)).unwrap();
    assert_eq!(summary.alerts, 250);
    let store = open_clean(&data);
    assert_eq!(store.check().unwrap().alerts, 250);
    store.close();
}

#[test]
fn a_backup_behind_a_byte_order_mark_is_refused_without_creating_a_store() {
    let mut text = b"\xEF\xBB\xBF".to_vec();
    text.extend(backup_of(&alerts(3)).into_inner());
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");

    let refused = restore_from(&data, &mut Cursor::new(text));

    assert!(
        matches!(refused, Err(RestoreError::Format { line: 1, .. })),
        "{refused:?}"
    );
    assert!(!data.exists());
    assert_eq!(
        restore_from(&data, &mut backup_of(&alerts(3)))
            .unwrap()
            .alerts,
        3
    );
    open_clean(&data).close();
}

#[test]
fn a_killed_restore_leaves_no_store_the_server_opens_and_the_next_one_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    // What a restore killed midway leaves: a store in the staging directory.
    let staging = dir.path().join(STAGING);
    restore_from(&staging, &mut backup_of(&alerts(2))).unwrap();
    assert!(store_dir(&staging).is_dir());
    assert_eq!(holds(dir.path()).unwrap(), Holds::Nothing);

    let summary = restore_from(dir.path(), &mut backup_of(&alerts(5))).unwrap();

    assert_eq!(summary.alerts, 5);
    assert!(!staging.exists());
    let store = open_clean(dir.path());
    assert_eq!(store.check().unwrap().alerts, 5);
    store.close();
}

#[test]
fn a_restore_still_running_keeps_its_staging_directory() {
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join(STAGING);
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join("half"), "x").unwrap();
    let _running = lock(&staging).unwrap();

    let refused = restore_from(dir.path(), &mut backup_of(&alerts(1)));

    assert!(matches!(refused, Err(RestoreError::Busy(_))), "{refused:?}");
    assert!(staging.join("half").exists());
    assert!(!store_dir(dir.path()).exists());
}

#[test]
fn skipped_ranges_in_the_trailer_carry_over_and_bad_ones_are_refused() {
    let text = String::from_utf8(backup_of(&alerts(3)).into_inner()).unwrap();
    let seq = alerts(3).iter().map(|a| a.seq).max().unwrap();
    assert!(seq >= 2, "room for a range below the backup's seq");
    let with = |skipped: &str| {
        let end = format!("\"seq\":{seq}}}}}");
        let text = text.replace(&end, &format!("\"seq\":{seq},\"skipped\":{skipped}}}}}"));
        assert_ne!(
            text,
            String::from_utf8(backup_of(&alerts(3)).into_inner()).unwrap()
        );
        Cursor::new(text.into_bytes())
    };
    let work = tempfile::tempdir().unwrap();
    for bad in ["[[0,1]]", "[[2,1]]", &format!("[[1,{}]]", seq + 1)] {
        let data = work.path().join(bad);
        let refused = restore_from(&data, &mut with(bad));
        assert!(
            matches!(refused, Err(RestoreError::Format { line: 5, .. })),
            "{bad}: {refused:?}"
        );
        assert!(!data.exists(), "{bad}");
    }

    let data = work.path().join("good");
    restore_from(&data, &mut with(&format!("[[1,{}]]", seq - 1))).unwrap();
    let store = open_clean(&data);
    let skipped = &store.inner.skipped;
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0], 1..=seq - 1);
    assert_eq!(*skipped[1].start(), seq + 1);
    store.close();
}

#[test]
fn ids_and_sequence_numbers_klaxon_never_makes_are_refused_by_line() {
    let work = tempfile::tempdir().unwrap();
    let good = alerts(3);
    let mut cases = Vec::new();
    for id in [AlertId::MIN, LATEST_ID, AlertId::MAX] {
        let mut bad = good.clone();
        bad[1].id = id;
        cases.push((format!("id {id}"), backup_of(&bad), 3));
    }
    let mut late = good.clone();
    late[1].seq = MAX_SEQ + 1;
    cases.push(("an alert's seq".into(), backup_of(&late), 3));
    let text = String::from_utf8(backup_of(&good).into_inner()).unwrap();
    let seq = good.iter().map(|a| a.seq).max().unwrap();
    let trailer = text.replace(
        &format!("\"seq\":{seq}}}"),
        &format!("\"seq\":{}}}", u64::MAX),
    );
    assert_ne!(trailer, text);
    cases.push((
        "the trailer's seq".into(),
        Cursor::new(trailer.into_bytes()),
        5,
    ));
    for (what, mut backup, line) in cases {
        let data = work.path().join(what.replace(' ', "-"));
        let refused = restore_from(&data, &mut backup);
        assert!(
            matches!(&refused, Err(RestoreError::Format { line: l, .. }) if *l == line),
            "{what}: {refused:?}"
        );
        assert!(!data.exists(), "{what}");
    }
    // The largest of each that is kept: new alerts and changes go on past them.
    let mut highest = good.clone();
    highest[2].seq = MAX_SEQ;
    highest[2].id = AlertId::from_u64(LATEST_ID.as_u64() - 1);
    let data = work.path().join("highest");
    restore_from(&data, &mut backup_of(&highest)).unwrap();
    let store = open_clean(&data);
    assert_eq!(listed(&store, Status::Open, Urgency::High).len(), 3);
    let new = testing::message(3, Urgency::High);
    let inserted = store.write_blocking(move |l| l.insert_if_new(new)).unwrap();
    let Inserted::Created(new) = inserted else {
        panic!("{inserted:?}")
    };
    assert!(new.id > highest[2].id && new.seq > MAX_SEQ, "{new:?}");
    store.settle_blocking().unwrap();
    assert_eq!(listed(&store, Status::Open, Urgency::High).len(), 4);
    store.close();
}
