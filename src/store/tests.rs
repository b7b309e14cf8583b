//! Store-level tests: the async API over a real store, records, and what
//! survives a crash or a power cut.

use super::*;
use crate::alert::Status;
use crate::urgency::Urgency;

/// Open, high alerts `ids`, each at the ordinal of its number.
fn open_alerts(ids: std::ops::Range<u64>) -> Vec<(u64, Alert)> {
    ids.map(|i| (i, testing::alert(i, Urgency::High, Status::Open)))
        .collect()
}

/// Open alerts `ids` of 30 KB each: 100 of them make a group of about 3 MB,
/// more than a journal record may hold.
fn too_big_for_a_record(ids: std::ops::Range<u64>) -> Vec<(u64, Alert)> {
    let mut alerts = open_alerts(ids);
    for (_, a) in &mut alerts {
        a.text = "x".repeat(30_000);
    }
    alerts
}

/// Imports open, high alerts `ids` into `store` as one group; returns once it is answered.
fn import_open(store: &Store, ids: std::ops::Range<u64>) {
    let group = open_alerts(ids);
    store.write_blocking(move |l| l.import(group)).unwrap();
}

/// The tree of the store under `data_dir`, opened by sled alone, with no
/// background flusher: nothing of sled outlives what a test writes here.
/// (Through open_sled, which waits out the lock of a store just closed.)
fn raw_tree(data_dir: &Path) -> (sled::Db, sled::Tree) {
    let db = open_sled(&store_dir(data_dir), &StoreOptions::default()).unwrap();
    let tree = db.open_tree("klaxon").unwrap();
    (db, tree)
}

/// Opens the store under `data_dir` as a restart would, and checks that it
/// holds `alerts` alerts and passes the store check.
fn reopen_clean(data_dir: &Path, alerts: u64) -> Store {
    let reopened = Store::open(data_dir, &StoreOptions::default()).unwrap();
    let report = reopened.check().unwrap();
    assert_eq!(report.alerts, alerts);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    reopened
}

#[tokio::test]
async fn a_commit_slower_than_the_timeout_is_answered_with_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        commit_timeout: Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    // A stalled disk, as the writer sees it: the group takes longer than the timeout.
    let slow = store
        .write(|ledger| {
            std::thread::sleep(Duration::from_millis(600));
            ledger.probe()
        })
        .await;
    assert!(matches!(slow, Err(StoreError::Timeout(_))), "{slow:?}");
    // The writer carries on: once the slow group is done, changes commit normally.
    tokio::time::sleep(Duration::from_millis(600)).await;
    store.probe().await.unwrap();
    store.close();
}

#[tokio::test]
async fn probes_within_a_second_of_one_that_passed_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let written = || store.inner.tree.get(keys::meta("probe")).unwrap();
    store.probe().await.unwrap();
    let first = written();
    assert!(first.is_some());
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        store.probe().await.unwrap();
    }
    // Each probe writes the time in ms: 5 more writes would have changed it.
    assert_eq!(written(), first);
    tokio::time::sleep(PROBE_FRESH).await;
    store.probe().await.unwrap();
    assert_ne!(written(), first, "a probe after a second writes again");
    store.close();
}

#[tokio::test]
async fn a_damaged_record_is_left_out_of_listings_and_the_change_feed_but_fails_a_backup() {
    let metrics = crate::metrics::handle();
    let counted = || {
        let rendered = metrics.render();
        let line = rendered
            .lines()
            .find_map(|l| l.strip_prefix("klaxon_store_damaged_records_total "));
        line.map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    let counted_before = counted();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let alerts = open_alerts(0..4);
    let imported = alerts.clone();
    store.write(move |l| l.import(imported)).await.unwrap();
    store.settled_seq().await.unwrap();
    // One record of an unknown format, one cut short from before the
    // binary format (a JSON record).
    let damaged = [alerts[1].1.id, alerts[2].1.id];
    let tree = &store.inner.tree;
    tree.insert(keys::alert(damaged[0]), &[0xff, 1, 2][..])
        .unwrap();
    tree.insert(keys::alert(damaged[1]), &br#"{"id":"#[..])
        .unwrap();
    let ids = |jsons: &[sled::IVec]| -> Vec<AlertId> {
        jsons
            .iter()
            .map(|j| serde_json::from_slice::<Alert>(j).unwrap().id)
            .collect()
    };
    let (newest, oldest) = (alerts[3].1.id, alerts[0].1.id);

    // Pages of one: the cursor goes past the damaged record.
    let mut listed = Vec::new();
    let mut before = None;
    for _ in 0..4 {
        let query = ListQuery {
            limit: 1,
            before,
            ..ListQuery::default()
        };
        let page = store.list(query).await.unwrap();
        listed.extend(ids(&page.alerts));
        before = page.next;
        if before.is_none() {
            break;
        }
    }
    assert_eq!(listed, vec![newest, oldest]);
    // Each was skipped by the listing and by the feed: counted each time
    // (other tests may count more meanwhile, never less).
    assert!(counted() >= counted_before + 2, "{}", metrics.render());
    let after_listing = counted();
    let feed = store.changes(0, 10).await.unwrap();
    assert_eq!(ids(&feed.alerts), vec![oldest, newest]);
    assert_eq!(feed.next_after, 4);
    assert!(counted() >= after_listing + 2, "{}", metrics.render());
    // A backup must be whole: it fails instead.
    let backup = store.clone();
    let backed_up = tokio::task::spawn_blocking(move || backup.backup(&mut Vec::new()));
    assert!(backed_up.await.unwrap().is_err());
    // The store check names both.
    let checked = store.clone();
    let report = tokio::task::spawn_blocking(move || checked.check())
        .await
        .unwrap()
        .unwrap();
    for id in damaged {
        let named = format!("record of alert {id}:");
        assert!(
            report.problems.iter().any(|p| p.starts_with(&named)),
            "{named} not in {:?}",
            report.problems
        );
    }
    store.close();
}

#[test]
fn records_written_as_json_by_earlier_versions_are_served_and_changed_as_before() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let alerts = open_alerts(0..3);
    let imported = alerts.clone();
    store.write_blocking(move |l| l.import(imported)).unwrap();
    // Answered groups go into the tree just after: wait for that.
    store.settle_blocking().unwrap();
    // Before the binary format, records were the alert's JSON.
    for (_, alert) in &alerts {
        let stored = store
            .inner
            .tree
            .get(keys::alert(alert.id))
            .unwrap()
            .unwrap();
        assert_eq!(stored[0], 1, "a new record is not in the binary format");
        let json = serde_json::to_vec(alert).unwrap();
        store
            .inner
            .tree
            .insert(keys::alert(alert.id), json)
            .unwrap();
    }
    let (_, old) = &alerts[1];
    assert_eq!(rt.block_on(store.get(old.id)).unwrap().as_ref(), Some(old));
    let listing = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
    let list = |query: ListQuery| -> Vec<Alert> {
        let page = rt.block_on(store.list(query)).unwrap();
        page.alerts
            .iter()
            .map(|json| serde_json::from_slice(json).unwrap())
            .collect()
    };
    let newest_first: Vec<_> = alerts.iter().rev().map(|(_, a)| a.clone()).collect();
    assert_eq!(list(listing.clone()), newest_first);
    let oldest_first: Vec<_> = alerts.iter().map(|(_, a)| a.clone()).collect();
    let feed = rt.block_on(store.changes(0, 10)).unwrap();
    let fed: Vec<Alert> = feed
        .alerts
        .iter()
        .map(|json| serde_json::from_slice(json).unwrap())
        .collect();
    assert_eq!(fed, oldest_first);
    let mut backup = Vec::new();
    store.backup(&mut backup).unwrap();
    let lines: Vec<&[u8]> = backup.split(|&b| b == b'\n').collect();
    let backed_up: Vec<Alert> = lines[1..=3]
        .iter()
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(backed_up, oldest_first);
    // A change writes the record anew, in the current format.
    let changed = rt
        .block_on(store.change(old.id, Action::Acknowledge, Actor::default()))
        .unwrap();
    assert!(matches!(changed, Ok(Changed::Yes(_))), "{changed:?}");
    store.settle_blocking().unwrap();
    let stored = store.inner.tree.get(keys::alert(old.id)).unwrap().unwrap();
    assert_eq!(stored[0], 1);
    let listed = list(listing);
    assert_eq!(listed[1].status, Status::Acknowledged);
    assert_eq!(
        (listed[0].id, listed[2].id),
        (alerts[2].1.id, alerts[0].1.id)
    );
    let report = store.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    store.close();
}

#[test]
fn a_store_opened_by_this_version_is_marked_so_that_older_versions_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let open = || Store::open(dir.path(), &StoreOptions::default());
    // `Z schema` as sled has it, optionally set first.
    let schema = |set: Option<u64>| {
        let (db, tree) = raw_tree(dir.path());
        if let Some(schema) = set {
            tree.insert(keys::meta("schema"), &schema.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let found = tree.get(keys::meta("schema")).unwrap();
        found.and_then(|v| keys::u64_value(&v)).unwrap()
    };
    let store = open().unwrap();
    store.close();
    drop(store);
    assert_eq!(schema(None), TREE_SCHEMA);
    // A store last written by a version that stored records as JSON.
    assert_eq!(schema(Some(2)), 2);
    // Not upgraded but by the server: the offline commands refuse it as it is.
    let as_it_is = StoreOptions {
        upgrade: false,
        ..StoreOptions::default()
    };
    assert!(matches!(
        Store::open(dir.path(), &as_it_is),
        Err(StoreError::SchemaTooOld { found: 2, .. })
    ));
    assert_eq!(schema(None), 2);
    let store = open().unwrap();
    store.close();
    drop(store);
    assert_eq!(schema(None), TREE_SCHEMA, "not marked for binary records");
    // A store marked by a later version is refused.
    schema(Some(TREE_SCHEMA + 1));
    assert!(matches!(
        open(),
        Err(StoreError::SchemaTooNew { found, .. }) if found == TREE_SCHEMA + 1
    ));
}

/// An older klaxon can still open its store after a first start of this one
/// failed on the journal it left: the store is marked only once that
/// journal is replayed.
#[test]
fn a_schema_3_store_whose_journal_cannot_be_replayed_stays_marked_3() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..1);
    store.close();
    drop(store);
    // Schema 3, with a tree that says it applied less than the journal's
    // last mark: the journal does not reach back to it.
    let (db, tree) = raw_tree(dir.path());
    tree.insert(keys::meta("schema"), &3u64.to_be_bytes())
        .unwrap();
    tree.insert(keys::meta("journal"), &0u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop((tree, db));

    let Err(StoreError::Corrupt(why)) = Store::open(dir.path(), &StoreOptions::default()) else {
        panic!("opened, or failed otherwise");
    };
    assert!(why.contains("journal"), "{why}");
    let (_db, tree) = raw_tree(dir.path());
    let schema = tree.get(keys::meta("schema")).unwrap();
    assert_eq!(schema.and_then(|v| keys::u64_value(&v)), Some(3));
    assert!(!tree.contains_key(keys::meta(migrate::REKEY)).unwrap());
}

/// Copies a data dir as a crash would leave it: what is on disk now.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_crash_while_a_group_goes_into_the_tree_keeps_every_answered_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..10);
    // The next group is journalled and answered; then the process dies
    // after three of its keys went into the tree, and sled wrote those out.
    let second = open_alerts(10..20);
    store
        .write_blocking(move |l| {
            l.stop_finish_after(3);
            l.import(second)
        })
        .unwrap();
    assert!(wait_until(|| store.stopped()), "the writer went on");
    store.inner.tree.flush().unwrap();
    let (crashed, inspected) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_dir(dir.path(), crashed.path());
    copy_dir(dir.path(), inspected.path());
    store.close();
    // What sled alone recovers (from a second copy, since opening it
    // writes): part of the answered group, under the first group's number.
    let (db, partial) = raw_tree(inspected.path());
    let before = partial.scan_prefix([keys::ALERT]).count();
    assert!(
        (11..20).contains(&before),
        "{before} alerts: not a partial group"
    );
    let applied = partial.get(keys::meta("journal")).unwrap();
    assert_eq!(applied.and_then(|v| keys::u64_value(&v)), Some(1));
    drop((partial, db));

    let reopened = reopen_clean(crashed.path(), 20);
    reopened.close();
}

#[test]
fn a_power_cut_that_loses_part_of_what_sled_wrote_keeps_every_answered_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    for range in [0..10, 10..20, 20..30] {
        import_open(&store, range);
    }
    store.settle_blocking().unwrap();
    // sled wrote its log out (it does when its buffer fills) but no
    // checkpoint was made since the store opened.
    store.inner.tree.flush().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    store.close();

    // The power cut: sled's recovery kept the last group's note (`Z journal`)
    // but lost a record of an earlier group since the checkpoint, and put
    // the change feed's block back as it was before that group.
    let (db, tree) = raw_tree(crashed.path());
    let lost = testing::alert(15, Urgency::High, Status::Open).id;
    assert!(tree.remove(keys::alert(lost)).unwrap().is_some());
    let block = keys::change_block(0);
    let feed = tree.get(block).unwrap().unwrap();
    tree.insert(block, &feed[..10 * 16]).unwrap();
    let applied = tree.get(keys::meta("journal")).unwrap();
    assert_eq!(applied.and_then(|v| keys::u64_value(&v)), Some(3));
    db.flush().unwrap();
    drop((tree, db));

    let reopened = reopen_clean(crashed.path(), 30);
    let tree = &reopened.inner.tree;
    assert!(tree.get(keys::alert(lost)).unwrap().is_some());
    assert_eq!(tree.get(block).unwrap().unwrap(), feed);
    reopened.close();
}

#[test]
fn a_store_closed_cleanly_has_nothing_to_apply_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..1);
    let instance = store.instance();
    store.close();
    drop(store);
    let v2 = dir.path().join(format!("v{SCHEMA_VERSION}"));
    // The last checkpoint is marked: the next start applies nothing again.
    let (_, replay) = Journal::open(&v2, instance, 1, journal::FILE_BYTES).unwrap();
    assert_eq!(replay.len(), 0);
}

fn wait_until(done: impl Fn() -> bool) -> bool {
    (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        done()
    })
}

#[test]
fn a_crash_after_a_group_too_big_for_the_journal_keeps_every_answered_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let big = too_big_for_a_record(0..100);
    store.write_blocking(move |l| l.import(big)).unwrap();
    // Then ordinary groups: journalled, answered, applied, but not flushed by sled.
    let small = vec![(100, testing::alert(100, Urgency::Low, Status::Open))];
    store.write_blocking(move |l| l.import(small)).unwrap();
    store.write_blocking(|l| l.raise_seq(500)).unwrap();
    store.settle_blocking().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    store.close();

    let reopened = reopen_clean(crashed.path(), 101);
    let seq = reopened.inner.tree.get(keys::meta("seq")).unwrap();
    assert_eq!(seq.and_then(|v| keys::u64_value(&v)), Some(500));
    reopened.close();
}

/// Runs `change` on the writer, and `then` on the writer thread at the
/// moment the change is answered (before anything after the answer).
fn as_answered<R: Send + 'static>(
    store: &Store,
    change: impl FnOnce(&mut Ledger) -> Result<(), StoreError> + Send + 'static,
    then: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let job: writer::Job = Box::new(move |ledger| {
        let outcome = ledger.transact(change);
        Box::new(move |synced: Result<(), StoreError>| {
            synced.and(outcome).unwrap();
            tx.send(then()).unwrap();
        })
    });
    let jobs = store.inner.jobs.lock().unwrap();
    jobs.as_ref().unwrap().send(job).unwrap();
    drop(jobs);
    rx.recv().unwrap()
}

/// What a read starting as `change` is answered would see: the sequence
/// number it reads at, or `None` while it still waits for the tree to hold
/// the change.
fn read_as_answered(
    store: &Store,
    change: impl FnOnce(&mut Ledger) -> Result<(), StoreError> + Send + 'static,
) -> Option<u64> {
    let progress = store.inner.progress.clone();
    as_answered(store, change, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // A zero timeout still polls the read once.
        let read = runtime
            .block_on(async { tokio::time::timeout(Duration::ZERO, progress.settled()).await });
        read.ok().map(Result::unwrap)
    })
}

/// A power cut at the moment a group is answered keeps only what was
/// synced by then: sled as of its last checkpoint (the open's) and each
/// journal file as it was at its last fdatasync. That is enough to start
/// with every answered change.
#[test]
fn a_power_cut_as_a_group_is_answered_keeps_every_answered_change() {
    let tempdir = || tempfile::tempdir().unwrap();
    let (dir, synced, images) = (tempdir(), tempdir(), tempdir());
    testing::keep_synced_journal(&store_dir(dir.path()), synced.path());
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let checkpoint = tempdir();
    copy_dir(dir.path(), checkpoint.path());
    for n in 1..=3u64 {
        let image = images.path().join(n.to_string());
        let (checkpoint, synced) = (checkpoint.path().to_owned(), synced.path().to_owned());
        let group = open_alerts(10 * (n - 1)..10 * n);
        as_answered(
            &store,
            move |l| l.import(group),
            move || {
                copy_dir(&checkpoint, &image);
                for file in fs::read_dir(&synced).unwrap() {
                    let file = file.unwrap();
                    fs::copy(file.path(), store_dir(&image).join(file.file_name())).unwrap();
                }
            },
        );
    }
    store.close();
    for n in 1..=3u64 {
        reopen_clean(&images.path().join(n.to_string()), 10 * n).close();
    }
}

#[test]
fn a_read_after_the_answer_sees_the_change_even_in_a_group_too_big_for_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let small = open_alerts(0..1);
    assert_eq!(read_as_answered(&store, move |l| l.import(small)), None);
    store.settle_blocking().unwrap();
    let big = too_big_for_a_record(1..101);
    let seen = read_as_answered(&store, move |l| l.import(big));
    store.close();
    assert!(matches!(seen, None | Some(101)), "read at seq {seen:?}");
}

#[test]
fn a_crash_after_an_alert_with_a_key_too_long_for_a_record_keeps_it_and_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..3);
    // A channel id longer than a journal record's key length: its index
    // keys are too, though the group is small. (Slack's routes refuse such
    // ids; a backup being restored is not checked for them.)
    let mut long = testing::alert(3, Urgency::High, Status::Open);
    long.slack.channel_id = "C".repeat(70_000);
    store
        .write_blocking(move |l| l.import(vec![(3, long)]))
        .unwrap();
    import_open(&store, 4..5);
    store.settle_blocking().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), crashed.path());
    store.close();

    let reopened = reopen_clean(crashed.path(), 5);
    reopened.close();
}

/// Queries never see a group half applied: while alerts move between open
/// and acknowledged, a listing of both holds every alert exactly once and the
/// counts always add up. (Before, an acknowledgement went into the tree key
/// by key, and a listing between its two bitmap writes showed the alert
/// twice or not at all.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_see_each_group_whole_while_alerts_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let total = 100;
    let setup = store.clone();
    tokio::task::spawn_blocking(move || import_open(&setup, 0..total))
        .await
        .unwrap();
    let both = ListQuery {
        statuses: vec![Status::Open, Status::Acknowledged],
        limit: 1000,
        ..ListQuery::default()
    };
    let ids: Vec<AlertId> = store
        .list(both.clone())
        .await
        .unwrap()
        .alerts
        .iter()
        .map(|json| serde_json::from_slice::<Alert>(json).unwrap().id)
        .collect();
    assert_eq!(ids.len(), total as usize);

    let until = std::time::Instant::now() + Duration::from_millis(1500);
    let mut togglers = Vec::new();
    for t in 0..3 {
        let (store, ids) = (store.clone(), ids.clone());
        togglers.push(tokio::spawn(async move {
            let mut i = t;
            let mut changed = 0;
            while std::time::Instant::now() < until {
                let id = ids[(i * 37) % ids.len()];
                for action in [Action::Acknowledge, Action::Reopen] {
                    let done = store.change(id, action, Actor::default()).await;
                    changed += u32::from(matches!(done, Ok(Ok(Changed::Yes(_)))));
                }
                i += 3;
            }
            changed
        }));
    }
    let mut listings = 0;
    let mut seqs = std::collections::HashSet::new();
    while std::time::Instant::now() < until {
        let page = store.list(both.clone()).await.unwrap();
        let alerts: Vec<Alert> = (page.alerts.iter())
            .map(|json| serde_json::from_slice::<Alert>(json).unwrap())
            .collect();
        // Every change is to a listed alert, so the latest is in the page:
        // the sequence number an answer is tagged with is what it shows.
        let newest = alerts.iter().map(|a| a.seq).max();
        assert_eq!(Some(page.seq), newest, "listing {listings}: seq");
        let mut seen: Vec<AlertId> = alerts.iter().map(|a| a.id).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            (page.alerts.len(), seen.len()),
            (total as usize, total as usize),
            "listing {listings}: (alerts, distinct)"
        );
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.0.iter().flatten().sum::<u64>(), total, "{counts:?}");
        seqs.insert(page.seq);
        listings += 1;
    }
    let mut changed = 0;
    for toggler in togglers {
        changed += toggler.await.unwrap();
    }
    assert!(listings > 10, "only {listings} listings ran");
    // The listings ran while alerts changed, not before or after.
    assert!(changed > 100, "only {changed} changes");
    assert!(seqs.len() > 5, "the listings saw {} states", seqs.len());
}

#[test]
fn only_a_sled_store_counts_as_one_for_the_offline_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(holds(&data).unwrap(), Holds::Nothing, "missing");
    fs::create_dir_all(data.join("v2")).unwrap();
    assert_eq!(holds(&data).unwrap(), Holds::Nothing, "an empty v2/");

    let v1 = sled::Config::new().path(data.join("v1")).open().unwrap();
    drop(v1);
    assert!(
        matches!(holds(&data).unwrap(), Holds::EarlierSchemaBlocked(why) if why.contains("move")),
        "v1/ beside an empty v2/"
    );
    // Opened with that empty v2/ in place, the schema 1 alerts would be gone.
    let err = Store::open(&data, &StoreOptions::default()).err().unwrap();
    assert!(err.to_string().contains("move"), "{err}");
    assert!(
        !data.join("v2").join("db").exists(),
        "nothing written into v2/"
    );

    fs::remove_dir(data.join("v2")).unwrap();
    assert_eq!(holds(&data).unwrap(), Holds::EarlierSchema);
    drop(Store::open(&data, &StoreOptions::default()).unwrap());
    assert!(data.join("v1.migrated").is_dir());
    assert_eq!(holds(&data).unwrap(), Holds::Store, "migrated");

    let odd = dir.path().join("odd");
    fs::create_dir_all(odd.join("v02")).unwrap();
    fs::write(odd.join("v02").join("db"), "x").unwrap();
    fs::create_dir_all(odd.join("v2")).unwrap();
    fs::write(odd.join("v2").join("db"), "").unwrap();
    assert_eq!(
        holds(&odd).unwrap(),
        Holds::Nothing,
        "v02/, and an empty db"
    );

    let newer = dir.path().join("newer");
    fs::create_dir_all(newer.join("v3")).unwrap();
    assert_eq!(
        holds(&newer).unwrap(),
        Holds::Store,
        "open names the newer schema"
    );
}

#[test]
fn an_action_repeated_on_a_full_disk_answers_and_a_change_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..1);
    store.close();
    drop(store);
    let full = StoreOptions {
        min_free_bytes: u64::MAX / 2,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &full).unwrap();
    let id = testing::alert(0, Urgency::High, Status::Open).id;
    let again = store.write_blocking(move |l| l.change(id, Action::Reopen, Actor::default()));
    assert!(
        matches!(again, Ok(Ok(Changed::AlreadyDone(_)))),
        "{again:?}"
    );
    let ack = store.write_blocking(move |l| l.change(id, Action::Acknowledge, Actor::default()));
    assert!(matches!(ack, Err(StoreError::DiskFull { .. })), "{ack:?}");
    store.close();
}

/// A message's hash as tree schema 3 and before made it: the team too.
fn hash_with_team(team: &str, channel: &str, ts: &str) -> [u8; 16] {
    use sha2::Digest;
    let mut parts = Vec::new();
    for part in [team, channel, ts] {
        parts.extend((part.len() as u32).to_be_bytes());
        parts.extend(part.as_bytes());
    }
    let mut hash = [0; 16];
    hash.copy_from_slice(&sha2::Sha256::digest(&parts)[..16]);
    hash
}

/// Offers the message `slack` names again; the alert it is a duplicate of.
fn offered_again(store: &Store, slack: crate::alert::SlackRef) -> AlertId {
    let again = NewAlert {
        urgency: Urgency::High,
        urgency_source: crate::urgency::UrgencySource::Message,
        title: "again".into(),
        text: "outage again".into(),
        source: crate::alert::Source::EventsApi,
        slack,
    };
    match store
        .write_blocking(move |l| l.insert_if_new(again))
        .unwrap()
    {
        Inserted::Duplicate(alert) => alert.id,
        Inserted::Created(alert) => panic!("a second alert {}", alert.id),
    }
}

#[test]
fn a_schema_3_store_has_its_messages_keyed_by_channel_and_ts_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..6);
    // Alert 0's message again, as an older klaxon stored it when a partner
    // workspace of a shared channel delivered it.
    let first = testing::alert(0, Urgency::High, Status::Open);
    let mut partner = testing::alert(6, Urgency::High, Status::Open);
    partner.slack.team_id = Some("T2".into());
    partner.slack.channel_id = first.slack.channel_id.clone();
    partner.slack.ts = first.slack.ts.clone();
    store
        .write_blocking(move |l| l.import(vec![(6, partner)]))
        .unwrap();
    // A thread reply kept as a note of alert 1.
    let second = testing::alert(1, Urgency::High, Status::Open);
    let reply = ThreadReply {
        channel: second.slack.channel_id.clone(),
        thread_ts: second.slack.ts.clone(),
        ts: "1700000100.000001".into(),
        event_id: None,
        user: Some("U1".into()),
        text: "looking".into(),
        command: None,
        missed: None,
    };
    let note = reply.clone();
    store.write_blocking(move |l| l.thread_reply(note)).unwrap();
    store.close();
    drop(store);

    // The message buckets as schema 3 wrote them.
    let (db, tree) = raw_tree(dir.path());
    let mut buckets = std::collections::BTreeMap::<[u8; 3], Vec<u8>>::new();
    for record in tree.scan_prefix([keys::ALERT]).values() {
        let alert = decode_alert(Some(record.unwrap())).unwrap().unwrap();
        let team = alert.slack.team_id.clone().unwrap_or_default();
        let replies = alert.notes.iter().filter_map(|n| n.ts.clone());
        for ts in std::iter::once(alert.slack.ts.clone()).chain(replies) {
            let hash = hash_with_team(&team, &alert.slack.channel_id, &ts);
            let bucket = buckets.entry(keys::message_bucket(&hash)).or_default();
            packed::MESSAGE_ENTRIES.insert(bucket, &packed::entry(&hash, alert.id));
        }
    }
    for key in tree.scan_prefix([keys::MESSAGE]).keys() {
        tree.remove(key.unwrap()).unwrap();
    }
    for (key, value) in buckets {
        tree.insert(key, value).unwrap();
    }
    tree.insert(keys::meta("schema"), &3u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop((tree, db));

    let store = reopen_clean(dir.path(), 7);
    let tree = &store.inner.tree;
    let entries: usize = (tree.scan_prefix([keys::MESSAGE]).values())
        .map(|bucket| bucket.unwrap().len() / packed::MESSAGE_ENTRIES.size)
        .sum();
    assert_eq!(entries, 7, "six messages of alerts and one reply");
    assert!(!tree.contains_key(keys::meta(migrate::REKEY)).unwrap());
    // Alert 0's message, from a third workspace: alert 0's.
    let mut slack = first.slack.clone();
    slack.team_id = Some("T3".into());
    assert_eq!(offered_again(&store, slack), first.id);
    // Slack's retry of the reply is known still.
    match store
        .write_blocking(move |l| l.thread_reply(reply))
        .unwrap()
    {
        ReplyOutcome::Duplicate(id) => assert_eq!(id, second.id),
        other => panic!("{other:?}"),
    }
    store.close();
}

/// Two alerts an earlier klaxon made of one message (a shared channel's two
/// workspaces), and an alert made of what is a thread reply noted on another:
/// whatever order a backup lists them in, the first alert keeps the message,
/// and the store check agrees.
#[test]
fn restored_alerts_that_share_a_message_leave_it_to_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut first = testing::alert(0, Urgency::High, Status::Open);
    first.notes.push(crate::alert::Note {
        user: Some("U1".into()),
        text: "looking".into(),
        ts: Some("1700000100.000001".into()),
        at: "2023-11-14T22:13:20.000Z".into(),
    });
    let mut twin = testing::alert(1, Urgency::High, Status::Open);
    twin.slack.team_id = Some("T2".into());
    (twin.slack.channel_id, twin.slack.ts) =
        (first.slack.channel_id.clone(), first.slack.ts.clone());
    let mut reply_alert = testing::alert(2, Urgency::High, Status::Open);
    reply_alert.slack.channel_id = first.slack.channel_id.clone();
    reply_alert.slack.ts = "1700000100.000001".into();
    // Later alerts first, as a backup lists an alert changed while it ran.
    for (n, alert) in [(2, reply_alert), (1, twin), (0, first.clone())] {
        store
            .write_blocking(move |l| l.import(vec![(n, alert)]))
            .unwrap();
    }
    let report = store.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    for ts in [first.slack.ts.clone(), "1700000100.000001".into()] {
        let mut slack = first.slack.clone();
        slack.ts = ts;
        assert_eq!(offered_again(&store, slack), first.id);
    }
    store.close();
}

/// A record no klaxon can read does not stop the upgrade: the store opens,
/// and the store check names that record.
#[test]
fn a_damaged_record_does_not_stop_a_schema_3_store_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..3);
    store.close();
    drop(store);
    let damaged = testing::alert(1, Urgency::High, Status::Open).id;
    let (db, tree) = raw_tree(dir.path());
    tree.insert(keys::alert(damaged), &[0xff, 1, 2][..])
        .unwrap();
    tree.insert(keys::meta("schema"), &3u64.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
    drop((tree, db));

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let problems = store.check().unwrap().problems;
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| p.contains(&damaged.to_string())
            || p.contains("ordinal count")
            || p.contains("index entry")
            || p.contains("count of")),
        "{problems:?}"
    );
    let survivor = testing::alert(2, Urgency::High, Status::Open);
    assert_eq!(offered_again(&store, survivor.slack.clone()), survivor.id);
    store.close();
}

/// A page of the listing or the change feed ends once it holds its byte
/// budget of JSON (here 1 byte: its first alert), and its cursor goes on
/// from there: a walk still sees every alert once.
#[test]
fn a_page_past_its_byte_budget_ends_early_and_its_cursor_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..5);
    store.settle_blocking().unwrap();
    let tree = &store.inner.tree;
    let id_of = |json: &sled::IVec| serde_json::from_slice::<Alert>(json).unwrap().id;
    let expected: Vec<AlertId> = (0..5)
        .rev()
        .map(|i| testing::alert(i, Urgency::High, Status::Open).id)
        .collect();
    for statuses in [vec![], vec![Status::Open]] {
        let mut query = ListQuery {
            statuses,
            limit: 50,
            ..ListQuery::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = query::list_within(tree, &query, 1).unwrap();
            assert_eq!(page.alerts.len(), 1, "{query:?}");
            seen.push(id_of(&page.alerts[0]));
            match page.next {
                Some(cursor) => query.before = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{query:?}");
    }
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let page = query::changes_within(tree, after, 5, 50, 1).unwrap();
        if page.alerts.is_empty() {
            break;
        }
        assert_eq!(page.alerts.len(), 1);
        seen.push(id_of(&page.alerts[0]));
        after = page.next_after;
    }
    assert_eq!(seen, expected.into_iter().rev().collect::<Vec<_>>());
}

/// A filtered listing reads the index bitmaps, not every record: with the
/// bitmaps of (open, high) gone from the tree, records that match are not
/// found, while the unfiltered listing (by id) still has them all.
#[test]
fn filtered_listings_read_the_indexes_not_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    import_open(&store, 0..4);
    store.settle_blocking().unwrap();
    let tree = &store.inner.tree;
    let listed = |query: ListQuery| {
        query::list(tree, &ListQuery { limit: 50, ..query })
            .unwrap()
            .alerts
            .len()
    };
    let by_status = || ListQuery {
        statuses: vec![Status::Open],
        ..ListQuery::default()
    };
    let by_channel = |c: &str| ListQuery {
        channel: Some(c.into()),
        ..ListQuery::default()
    };
    assert_eq!(listed(by_status()), 4);
    assert_eq!((listed(by_channel("C0")), listed(by_channel("C1"))), (2, 2));

    let drop_prefix = |prefix: Vec<u8>| {
        let keys: Vec<_> = tree
            .scan_prefix(prefix)
            .keys()
            .map(Result::unwrap)
            .collect();
        assert!(!keys.is_empty());
        for key in keys {
            tree.remove(key).unwrap();
        }
    };
    drop_prefix(keys::channel_prefix("C1", Status::Open, Urgency::High));
    assert_eq!((listed(by_channel("C0")), listed(by_channel("C1"))), (2, 0));
    assert_eq!(listed(by_status()), 4, "the state bitmaps are still there");
    drop_prefix(keys::state_prefix(Status::Open, Urgency::High));
    assert_eq!(listed(by_status()), 0);
    assert_eq!(listed(ListQuery::default()), 4);
}

/// The listing and the change feed end a page once it holds 8 MiB of JSON
/// (README, "The alert API"), with a cursor that goes on.
#[test]
fn a_page_ends_once_it_holds_8_mib_of_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    // Twelve alerts of 1 MiB, a group each.
    for i in 0..12 {
        let mut alerts = open_alerts(i..i + 1);
        alerts[0].1.text = "x".repeat(1 << 20);
        store.write_blocking(move |l| l.import(alerts)).unwrap();
    }
    store.settle_blocking().unwrap();
    let tree = &store.inner.tree;
    let size = |alerts: &[sled::IVec]| alerts.iter().map(|a| a.len()).sum::<usize>();
    for statuses in [vec![], vec![Status::Open]] {
        let query = ListQuery {
            statuses,
            limit: 50,
            ..ListQuery::default()
        };
        let page = query::list(tree, &query).unwrap();
        assert!(
            (7..12).contains(&page.alerts.len()),
            "{}",
            page.alerts.len()
        );
        assert!(size(&page.alerts) <= (8 << 20) + (1 << 20) + 4096);
        let rest = query::list(
            tree,
            &ListQuery {
                before: page.next,
                ..query.clone()
            },
        )
        .unwrap();
        assert_eq!(page.alerts.len() + rest.alerts.len(), 12, "{query:?}");
    }
    let page = query::changes(tree, 0, 12, 50).unwrap();
    assert!(
        (7..12).contains(&page.alerts.len()),
        "{}",
        page.alerts.len()
    );
    assert!(size(&page.alerts) <= (8 << 20) + (1 << 20) + 4096);
    let rest = query::changes(tree, page.next_after, 12, 50).unwrap();
    assert_eq!(page.alerts.len() + rest.alerts.len(), 12);
}
