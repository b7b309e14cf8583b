use super::*;
use crate::alert::{SlackRef, Source};
use crate::urgency::{Urgency, UrgencySource};

fn ledger(dir: &std::path::Path) -> Ledger {
    let db = sled::Config::new().path(dir).open().unwrap();
    let tree = db.open_tree("t").unwrap();
    Ledger::new(tree, AlertId::MIN, 0, 0, dir.to_owned(), 0)
}

fn message(ts: &str) -> NewAlert {
    NewAlert {
        urgency: Urgency::High,
        urgency_source: UrgencySource::Message,
        title: "db down".into(),
        text: "outage high db down".into(),
        source: Source::EventsApi,
        slack: SlackRef {
            team_id: Some("T1".into()),
            channel_id: "C1".into(),
            ts: ts.into(),
            event_id: Some(format!("Ev{ts}")),
            ..SlackRef::default()
        },
    }
}

/// Ends the group as the writer does, without a journal.
fn commit(ledger: &mut Ledger) -> Result<(), StoreError> {
    ledger.finish(0)
}

/// Offers the message with this ts; it must be new.
fn create(ledger: &mut Ledger, ts: &str) -> Alert {
    match ledger.insert_if_new(message(ts)).unwrap() {
        Inserted::Created(alert) => alert,
        Inserted::Duplicate(_) => panic!("{ts} must create an alert"),
    }
}

#[test]
fn a_group_sees_its_own_pending_writes_and_reaches_the_tree_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let first = create(&mut ledger, "1.1");
    // Same message again in the same group, before any commit: a duplicate.
    let again = ledger.insert_if_new(message("1.1")).unwrap();
    assert!(matches!(again, Inserted::Duplicate(a) if a.id == first.id));
    let changed = ledger
        .change(first.id, Action::Acknowledge, Actor::default())
        .unwrap();
    assert!(matches!(changed, Ok(Changed::Yes(_))));
    assert!(ledger.tree.get(keys::alert(first.id)).unwrap().is_none());

    commit(&mut ledger).unwrap();
    let stored = super::super::decode_alert(ledger.tree.get(keys::alert(first.id)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, Status::Acknowledged);
    let count = |s| {
        let key = keys::count(s, Urgency::High);
        ledger.count(&Writes::default(), &key).unwrap()
    };
    assert_eq!((count(Status::Open), count(Status::Acknowledged)), (0, 1));
}

#[test]
fn a_backup_scan_sees_the_group_without_putting_it_in_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let first = create(&mut ledger, "3.3");
    commit(&mut ledger).unwrap();
    let second = create(&mut ledger, "3.4");
    ledger
        .change(first.id, Action::Resolve, Actor::default())
        .unwrap()
        .unwrap();
    // Mid-group: the scan sees both changes, as the group will leave them.
    let Tail { next, records, .. } = ledger.changed_since(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(next, 3);
    let alerts: Vec<Alert> = records
        .iter()
        .map(|r| serde_json::from_slice(r).unwrap())
        .collect();
    let seen: Vec<_> = alerts.iter().map(|a| (a.id, a.status)).collect();
    assert_eq!(
        seen,
        vec![(second.id, Status::Open), (first.id, Status::Resolved)]
    );
    // Only the group's journal record may come before the tree has it.
    assert!(ledger.tree.get(keys::alert(second.id)).unwrap().is_none());
    let later = ledger
        .changed_since(2, usize::MAX, usize::MAX)
        .unwrap()
        .records;
    assert_eq!(later.len(), 1, "only the resolve is after seq 2");
}

#[test]
fn a_backup_scan_sees_the_change_blocks_a_group_empties_and_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let alert = create(&mut ledger, "5.1");
    commit(&mut ledger).unwrap();
    // The next change is numbered 101: its entry leaves the first block
    // (now empty, so removed) for a block only the group has.
    ledger.raise_seq(100).unwrap();
    ledger
        .change(alert.id, Action::Resolve, Actor::default())
        .unwrap()
        .unwrap();
    assert!(ledger.tree.get(keys::change_block(1)).unwrap().is_some());
    let Tail { next, records, .. } = ledger.changed_since(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(next, 101);
    assert_eq!(records.len(), 1, "the alert once, at its latest change");
    let found: Alert = serde_json::from_slice(&records[0]).unwrap();
    assert_eq!((found.id, found.status), (alert.id, Status::Resolved));
}

#[test]
fn a_backup_tail_comes_in_stretches_and_jumps_over_the_numbers_a_restore_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let first: Vec<Alert> = (1..=3)
        .map(|i| create(&mut ledger, &format!("6.{i}")))
        .collect();
    commit(&mut ledger).unwrap();
    let before = now_ms() * 1000;
    ledger.skip_after_restore(3, &[]).unwrap();
    let later = create(&mut ledger, "6.9");
    assert!(later.seq > (3 + RESTORE_GAP).max(before), "{}", later.seq);
    commit(&mut ledger).unwrap();
    let skipped = ledger.tree.get(keys::meta("skipped")).unwrap().unwrap();
    assert_eq!(keys::skipped_ranges(&skipped), [4..=later.seq - 1]);
    let mut seen = Vec::new();
    let mut stretches = 0;
    let mut seq = 0;
    loop {
        let tail = ledger.changed_since(seq, 2, usize::MAX).unwrap();
        stretches += 1;
        for record in &tail.records {
            seen.push(serde_json::from_slice::<Alert>(record).unwrap().id);
        }
        seq = tail.next;
        if tail.done {
            break;
        }
        assert_eq!(tail.records.len(), 2);
    }
    assert_eq!(seq, later.seq, "the last stretch reaches the latest change");
    // A byte budget ends a stretch early, after one alert at least.
    let small = ledger.changed_since(0, usize::MAX, 1).unwrap();
    assert_eq!((small.records.len(), small.done), (1, false));
    assert_eq!(stretches, 2);
    let expected: Vec<_> = first.iter().chain([&later]).map(|a| a.id).collect();
    assert_eq!(seen, expected, "each alert once, in change order");
}

#[test]
fn a_discarded_group_gives_back_the_numbers_it_took() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let first = create(&mut ledger, "7.1");
    commit(&mut ledger).unwrap();
    let dropped = create(&mut ledger, "7.2");
    ledger.discard();
    let again = create(&mut ledger, "7.3");
    assert_eq!(again.seq, first.seq + 1);
    assert_eq!(dropped.seq, again.seq, "the number went back, unpublished");
    assert_eq!(ledger.counters.ordinals, 2, "ordinals stay dense");
}

#[test]
fn a_change_that_panics_gives_back_the_numbers_it_took() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        ledger.transact(|l| -> Result<(), StoreError> {
            l.next_seq()?;
            panic!("a bug in a change");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(ledger.seq(), 0);
}

#[test]
fn a_listing_read_while_a_group_goes_in_shows_no_alert_under_its_old_state() {
    use super::super::query::{list, ListQuery};
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let alert = create(&mut ledger, "8.1");
    commit(&mut ledger).unwrap();
    ledger
        .change(alert.id, Action::Resolve, Actor::default())
        .unwrap()
        .unwrap();
    // Halfway into the tree: the record (`A` sorts first), not yet the indexes.
    ledger.stop_finish_after(1);
    assert!(commit(&mut ledger).is_err());
    let open = ListQuery {
        statuses: vec![Status::Open],
        limit: 50,
        ..ListQuery::default()
    };
    let page = list(&ledger.tree, &open).unwrap();
    assert!(page.alerts.is_empty(), "a resolved alert listed as open");
    let all = ListQuery {
        limit: 50,
        ..ListQuery::default()
    };
    assert_eq!(list(&ledger.tree, &all).unwrap().alerts.len(), 1);
}

#[test]
fn a_discarded_group_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let alert = create(&mut ledger, "2.2");
    ledger.discard();
    commit(&mut ledger).unwrap();
    assert!(ledger.tree.scan_prefix([keys::ALERT]).next().is_none());
    assert!(ledger.tree.scan_prefix([keys::MESSAGE]).next().is_none());
    assert!(ledger.get(alert.id).unwrap().is_none());
}

fn reply_to(thread_ts: &str, ts: &str, text: &str, command: Option<Action>) -> ThreadReply {
    ThreadReply {
        channel: "C1".into(),
        thread_ts: thread_ts.into(),
        ts: ts.into(),
        event_id: None,
        user: Some("U0ANA".into()),
        text: text.into(),
        command,
        missed: None,
    }
}

#[test]
fn replies_before_their_thread_s_first_message_act_once_it_is_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let ack = reply_to("5.1", "5.2", "ack", Some(Action::Acknowledge));
    let note = reply_to("5.1", "5.3", "looking", None);
    for reply in [ack.clone(), note, ack.clone()] {
        let outcome = ledger.thread_reply_or_hold(reply).unwrap();
        assert!(matches!(outcome, ReplyOutcome::Held), "{outcome:?}");
    }
    // Only the Events API surface holds; without holding, nothing is kept.
    let other = reply_to("6.1", "6.2", "ack", Some(Action::Acknowledge));
    assert!(matches!(
        ledger.thread_reply(other).unwrap(),
        ReplyOutcome::NotAnAlert
    ));
    commit(&mut ledger).unwrap();

    let alert = create(&mut ledger, "5.1");
    commit(&mut ledger).unwrap();
    let stored = ledger.load(alert.id).unwrap();
    assert_eq!(stored.status, Status::Acknowledged);
    assert_eq!(stored.acknowledged_by.as_deref(), Some("U0ANA"));
    let notes: Vec<&str> = stored.notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["looking"], "the ack once, the note once");
    assert_eq!(stored.seq, alert.seq + 2, "two changes after the alert");
    // Slack's retry of a reply now finds it done.
    assert!(matches!(
        ledger.thread_reply_or_hold(ack).unwrap(),
        ReplyOutcome::Duplicate(id) if id == alert.id
    ));
    // The other thread's first message was never held for.
    let other_parent = create(&mut ledger, "6.1");
    assert_eq!(ledger.load(other_parent.id).unwrap().status, Status::Open);
}

#[test]
fn held_replies_wait_again_when_the_group_that_applied_them_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let ack = reply_to("7.1", "7.2", "ack", Some(Action::Acknowledge));
    ledger.thread_reply_or_hold(ack).unwrap();
    commit(&mut ledger).unwrap();
    let lost = create(&mut ledger, "7.1");
    assert_eq!(ledger.load(lost.id).unwrap().status, Status::Acknowledged);
    // The group's commit failed: the alert is gone, and Slack sends its
    // message again.
    ledger.discard();

    let alert = create(&mut ledger, "7.1");
    commit(&mut ledger).unwrap();
    let stored = ledger.load(alert.id).unwrap();
    assert_eq!(stored.status, Status::Acknowledged);
    assert_eq!(stored.acknowledged_by.as_deref(), Some("U0ANA"));
}

#[test]
fn a_message_without_text_takes_the_text_of_another_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let untitled = NewAlert {
        urgency: Urgency::Medium,
        urgency_source: UrgencySource::Default,
        title: crate::alert::UNTITLED.into(),
        text: String::new(),
        source: Source::OutgoingWebhook,
        ..message("8.1")
    };
    let first = match ledger.insert_if_new(untitled).unwrap() {
        Inserted::Created(alert) => alert,
        Inserted::Duplicate(_) => panic!("new"),
    };
    commit(&mut ledger).unwrap();

    let filled = match ledger.insert_if_new(message("8.1")).unwrap() {
        Inserted::Duplicate(alert) => alert,
        Inserted::Created(alert) => panic!("a second alert {}", alert.id),
    };
    commit(&mut ledger).unwrap();
    assert_eq!(filled.id, first.id);
    assert_eq!(
        (filled.urgency, filled.title.as_str()),
        (Urgency::High, "db down")
    );
    assert_eq!(filled.seq, first.seq + 1);
    let count = |u| {
        let key = keys::count(Status::Open, u);
        ledger.count(&Writes::default(), &key).unwrap()
    };
    assert_eq!((count(Urgency::Medium), count(Urgency::High)), (0, 1));
    // A copy once it has text changes nothing.
    let mut other = message("8.1");
    other.text = "outage low other words".into();
    match ledger.insert_if_new(other).unwrap() {
        Inserted::Duplicate(alert) => assert_eq!(alert, filled),
        Inserted::Created(_) => panic!("new"),
    }
}

#[test]
fn a_refused_thread_reply_is_a_duplicate_when_it_comes_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = ledger(dir.path());
    let api = Actor::default;
    let alert = create(&mut ledger, "9.1");
    ledger
        .change(alert.id, Action::Resolve, api())
        .unwrap()
        .unwrap();
    let ack = reply_to("9.1", "9.2", "ack", Some(Action::Acknowledge));
    let refused = ledger.thread_reply(ack.clone()).unwrap();
    assert!(matches!(refused, ReplyOutcome::Refused(..)), "{refused:?}");
    commit(&mut ledger).unwrap();
    ledger
        .change(alert.id, Action::Reopen, api())
        .unwrap()
        .unwrap();
    // Slack's retry comes after the reopen: it must not acknowledge.
    let again = ledger.thread_reply(ack).unwrap();
    assert!(
        matches!(again, ReplyOutcome::Duplicate(id) if id == alert.id),
        "{again:?}"
    );
    assert_eq!(ledger.load(alert.id).unwrap().status, Status::Open);

    // A note refused on a full alert keeps no key: the copy of the same
    // reply that carries its command still acts (a command adds no note).
    let full = Actor {
        note: Some("x".repeat(MAX_NOTE_BYTES)),
        ..api()
    };
    ledger.add_note(alert.id, full).unwrap().unwrap();
    let note = reply_to("9.1", "9.3", "<@U0KLAXON> ack", None);
    let refused = ledger.thread_reply(note.clone()).unwrap();
    assert!(matches!(refused, ReplyOutcome::Refused(..)), "{refused:?}");
    let again = ledger.thread_reply(note).unwrap();
    assert!(matches!(again, ReplyOutcome::Refused(..)), "{again:?}");
    let command = ThreadReply {
        missed: Some(Action::Acknowledge),
        ..reply_to("9.1", "9.3", "ack", Some(Action::Acknowledge))
    };
    let acted = ledger.thread_reply(command).unwrap();
    assert!(matches!(acted, ReplyOutcome::Applied(..)), "{acted:?}");
    assert_eq!(ledger.load(alert.id).unwrap().status, Status::Acknowledged);

    // A command the first copy kept as a note, refused when the other copy
    // brings it: Slack's retry of that copy after a reopen does nothing.
    let other = create(&mut ledger, "9.4");
    let noted = reply_to("9.4", "9.5", "@klaxon ack", None);
    ledger.thread_reply(noted).unwrap();
    ledger
        .change(other.id, Action::Resolve, api())
        .unwrap()
        .unwrap();
    let mention = ThreadReply {
        missed: Some(Action::Acknowledge),
        ..reply_to("9.4", "9.5", "ack", Some(Action::Acknowledge))
    };
    let refused = ledger.thread_reply(mention.clone()).unwrap();
    assert!(matches!(refused, ReplyOutcome::Refused(..)), "{refused:?}");
    ledger
        .change(other.id, Action::Reopen, api())
        .unwrap()
        .unwrap();
    let again = ledger.thread_reply(mention).unwrap();
    assert!(matches!(again, ReplyOutcome::Duplicate(_)), "{again:?}");
    assert_eq!(ledger.load(other.id).unwrap().status, Status::Open);

    // On a disk low on space a refusal is still answered, without its key.
    ledger
        .change(other.id, Action::Resolve, api())
        .unwrap()
        .unwrap();
    commit(&mut ledger).unwrap();
    ledger.room.free_bytes = 0;
    ledger.room.min_free_bytes = 1;
    let late = reply_to("9.4", "9.6", "ack", Some(Action::Acknowledge));
    let refused = ledger.thread_reply(late).unwrap();
    assert!(matches!(refused, ReplyOutcome::Refused(..)), "{refused:?}");
    assert!(ledger.writes().is_empty());
}

#[test]
fn counters_read_at_the_top_of_their_range_are_damage_not_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).open().unwrap();
    let tree = db.open_tree("t").unwrap();
    let top = u64::MAX;
    // (last id, seq, ordinal count) as a damaged store could hold them.
    for (last_id, seq, ordinals) in [(top, 0, 0), (0, top, 0), (0, 0, top)] {
        let last_id = AlertId::from_u64(last_id);
        let mut ledger = Ledger::new(tree.clone(), last_id, seq, ordinals, dir.path().into(), 0);
        let offered = ledger.insert_if_new(message("4.1"));
        assert!(
            matches!(offered, Err(StoreError::Corrupt(_))),
            "{last_id:?} {seq} {ordinals}: {offered:?}"
        );
    }
    // A damaged count stays at its largest; the alert is stored.
    let key = keys::count(Status::Open, Urgency::High);
    tree.insert(key, &top.to_be_bytes()).unwrap();
    let mut ledger = Ledger::new(tree, AlertId::MIN, 0, 0, dir.path().into(), 0);
    create(&mut ledger, "4.2");
    assert_eq!(ledger.count(&Writes::default(), &key).unwrap(), top);
}
