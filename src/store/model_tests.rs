//! A model-based property test of the store: random sequences of changes go
//! to a real store (sled in a temp dir, closed and opened again now and then)
//! and to a plain in-memory model of README's rules, and every read the
//! dashboards and sync consumers make must agree with the model.
//!
//! 64 cases by default; for more, `PROPTEST_CASES=1000 cargo test --lib store::model_tests`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::ledger::{MAX_NOTES, MAX_NOTE_BYTES};
use super::{
    Action, Actor, Changed, Inserted, ListQuery, Refused, ReplyOutcome, Store, StoreOptions,
    ThreadReply,
};
use crate::alert::{Alert, AlertId, NewAlert, SlackRef, Source, Status};
use crate::urgency::{Urgency, UrgencySource};

const TEAMS: u8 = 2;
const CHANNELS: u8 = 3;
/// Message ts 0..8 are top-level messages (alerts, or thread parents); 8..14
/// are messages in threads. Slack never starts a thread under a reply, so a
/// `thread_ts` is always below 8, while a new alert can take any ts (the
/// outgoing webhook opens one from a post in a thread whose parent is not an
/// alert).
const TOP_LEVEL: u8 = 8;
const ALL_TS: u8 = 14;
/// A note this long: three of them do not fit in one alert.
const BIG_NOTE: usize = MAX_NOTE_BYTES / 3 + 1;

fn team(i: u8) -> String {
    format!("T{i}")
}

fn channel(i: u8) -> String {
    format!("C{i}")
}

fn ts(i: u8) -> String {
    format!("1732358400.{i:06}")
}

fn user(i: u8) -> String {
    format!("U{i}")
}

/// The text of a note, drawn small so that generated sequences print short.
#[derive(Clone, Debug)]
enum Text {
    Short(u8),
    /// Only whitespace: a change keeps no such note.
    Blank,
    /// [`BIG_NOTE`] bytes.
    Big,
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Short(i) => format!("note {i}"),
            Text::Blank => "  ".into(),
            Text::Big => "x".repeat(BIG_NOTE),
        }
    }
}

/// An alert a change is about: one the model holds (by position, modulo how
/// many there are), or an id no alert may have.
#[derive(Clone, Debug)]
enum Target {
    Existing(usize),
    Missing(u64),
}

/// The message a thread reply is under.
#[derive(Clone, Debug)]
enum Parent {
    /// The message of an alert the model holds (by position).
    Alert(usize),
    /// Any top-level message, an alert or not.
    Message { channel: u8, ts: u8 },
}

#[derive(Clone, Debug)]
enum Op {
    New {
        team: u8,
        channel: u8,
        ts: u8,
        urgency: Urgency,
    },
    Change {
        target: Target,
        action: Action,
        by: Option<u8>,
        note: Option<Text>,
    },
    Note {
        target: Target,
        by: Option<u8>,
        text: Text,
    },
    Reply {
        parent: Parent,
        ts: u8,
        user: u8,
        /// `None`: the reply is a note.
        command: Option<Action>,
        /// The command is one another copy may have read as a note.
        missed: bool,
        text: Text,
    },
    Reopen,
    /// Operations sent together: the writer commits them in one group.
    Burst(Vec<Op>),
}

fn urgency() -> impl Strategy<Value = Urgency> {
    prop::sample::select(Urgency::ALL.to_vec())
}

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        8 => (0..4u8).prop_map(Text::Short),
        1 => Just(Text::Blank),
        1 => Just(Text::Big),
    ]
}

/// Non-blank, as the API and Slack surfaces send notes.
fn note_text() -> impl Strategy<Value = Text> {
    prop_oneof![
        8 => (0..4u8).prop_map(Text::Short),
        1 => Just(Text::Big),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        6 => any::<usize>().prop_map(Target::Existing),
        1 => any::<u64>().prop_map(Target::Missing),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(vec![Action::Acknowledge, Action::Resolve, Action::Reopen])
}

/// An operation on alerts (not a reopen, nor a burst).
fn change_op() -> impl Strategy<Value = Op> {
    let parent = prop_oneof![
        3 => any::<usize>().prop_map(Parent::Alert),
        1 => (0..CHANNELS, 0..TOP_LEVEL).prop_map(|(channel, ts)| Parent::Message { channel, ts }),
    ];
    let command = prop_oneof![
        Just(None),
        Just(Some(Action::Acknowledge)),
        Just(Some(Action::Resolve)),
        Just(Some(Action::Reopen)),
    ];
    prop_oneof![
        5 => (0..TEAMS, 0..CHANNELS, 0..ALL_TS, urgency())
            .prop_map(|(team, channel, ts, urgency)| Op::New { team, channel, ts, urgency }),
        5 => (target(), action(), prop::option::of(0..3u8), prop::option::of(text()))
            .prop_map(|(target, action, by, note)| Op::Change { target, action, by, note }),
        2 => (target(), prop::option::of(0..3u8), note_text())
            .prop_map(|(target, by, text)| Op::Note { target, by, text }),
        5 => (parent, TOP_LEVEL..ALL_TS, 0..3u8, command, any::<bool>(), note_text())
            .prop_map(|(parent, ts, user, command, missed, text)| Op::Reply { parent, ts, user, command, missed, text }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => change_op(),
        1 => Just(Op::Reopen),
        2 => prop::collection::vec(change_op(), 2..6).prop_map(Op::Burst),
    ]
}

/// What the model knows of an alert: what every read must show of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct View {
    id: AlertId,
    seq: u64,
    status: Status,
    urgency: Urgency,
    team: String,
    channel: String,
    ts: String,
    /// `Some(by)` while acknowledged_at is set.
    acknowledged: Option<Option<String>>,
    /// `Some(by)` while resolved_at is set.
    resolved: Option<Option<String>>,
    /// (user, text, Slack ts) of each note.
    notes: Vec<(Option<String>, String, Option<String>)>,
}

fn view(alert: &Alert) -> View {
    let stamped = |at: &Option<String>, by: &Option<String>| at.as_ref().map(|_| by.clone());
    View {
        id: alert.id,
        seq: alert.seq,
        status: alert.status,
        urgency: alert.urgency,
        team: alert.slack.team_id.clone().unwrap_or_default(),
        channel: alert.slack.channel_id.clone(),
        ts: alert.slack.ts.clone(),
        acknowledged: stamped(&alert.acknowledged_at, &alert.acknowledged_by),
        resolved: stamped(&alert.resolved_at, &alert.resolved_by),
        notes: alert
            .notes
            .iter()
            .map(|n| (n.user.clone(), n.text.clone(), n.ts.clone()))
            .collect(),
    }
}

/// How an operation ended, on either side.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Created(AlertId),
    Duplicate(AlertId),
    Changed(AlertId),
    AlreadyDone(AlertId),
    Conflict,
    NotFound,
    ReplyApplied(AlertId),
    ReplyDuplicate(AlertId),
    ReplyRefused(AlertId),
    NotAnAlert,
}

/// A Slack message: its channel and ts. The team of a delivery does not
/// count (a channel shared between workspaces delivers either's).
type Message = (String, String);

/// README's rules over a list of alerts in creation order.
#[derive(Default)]
struct Model {
    alerts: Vec<View>,
    /// Every Slack message handled: an alert's own, each thread reply
    /// applied, and each refused command.
    messages: HashMap<Message, usize>,
    /// Thread replies kept as a note whose command a later copy carried
    /// (applied or refused): it comes once.
    commanded: HashSet<Message>,
    seq: u64,
}

impl Model {
    fn position(&self, id: AlertId) -> Option<usize> {
        self.alerts.iter().position(|a| a.id == id)
    }

    fn target(&self, target: &Target) -> AlertId {
        match target {
            Target::Existing(i) if !self.alerts.is_empty() => self.alerts[i % self.alerts.len()].id,
            // Most ids are free; one just after an alert's may be the next one's.
            Target::Existing(i) => AlertId::from_u64(*i as u64),
            Target::Missing(raw) => AlertId::from_u64(*raw),
        }
    }

    /// `created` is the id the store gave, if it created an alert.
    fn insert(
        &mut self,
        message: Message,
        team: String,
        urgency: Urgency,
        created: Option<AlertId>,
    ) -> Outcome {
        if let Some(&i) = self.messages.get(&message) {
            return Outcome::Duplicate(self.alerts[i].id);
        }
        let id = created.unwrap_or(AlertId::MAX);
        if let Some(newest) = self.alerts.last() {
            assert!(id > newest.id, "ids must grow: {id} after {}", newest.id);
        }
        self.seq += 1;
        let (channel, ts) = message.clone();
        self.alerts.push(View {
            id,
            seq: self.seq,
            status: Status::Open,
            urgency,
            team,
            channel,
            ts,
            acknowledged: None,
            resolved: None,
            notes: Vec::new(),
        });
        self.messages.insert(message, self.alerts.len() - 1);
        Outcome::Created(id)
    }

    fn change(
        &mut self,
        i: usize,
        action: Action,
        by: Option<String>,
        note: Option<Note>,
    ) -> Outcome {
        let before = &self.alerts[i];
        let mut after = before.clone();
        match (action, before.status) {
            (Action::Acknowledge, Status::Acknowledged)
            | (Action::Resolve, Status::Resolved)
            | (Action::Reopen, Status::Open) => return Outcome::AlreadyDone(before.id),
            (Action::Acknowledge, Status::Resolved) => return Outcome::Conflict,
            (Action::Acknowledge, _) => {
                after.status = Status::Acknowledged;
                after.acknowledged = Some(by);
            }
            (Action::Resolve, _) => {
                after.status = Status::Resolved;
                after.resolved = Some(by);
            }
            (Action::Reopen, _) => {
                after.status = Status::Open;
                after.acknowledged = None;
                after.resolved = None;
            }
        }
        if let Some(note) = note.filter(|n| !n.1.trim().is_empty()) {
            after.notes.push(note);
            if !fits(&after) {
                return Outcome::Conflict;
            }
        }
        self.commit(i, after)
    }

    fn note(&mut self, i: usize, note: Note) -> Outcome {
        let mut after = self.alerts[i].clone();
        after.notes.push(note);
        if !fits(&after) {
            return Outcome::Conflict;
        }
        self.commit(i, after)
    }

    fn commit(&mut self, i: usize, mut after: View) -> Outcome {
        self.seq += 1;
        after.seq = self.seq;
        self.alerts[i] = after;
        Outcome::Changed(self.alerts[i].id)
    }

    fn reply(
        &mut self,
        parent: Message,
        ts: String,
        user: String,
        command: Option<Action>,
        missed: Option<Action>,
        text: String,
    ) -> Outcome {
        let message = (parent.0.clone(), ts.clone());
        if let Some(&i) = self.messages.get(&message) {
            // A command another copy kept as a note applies once.
            let id = self.alerts[i].id;
            let noted = self.alerts[i]
                .notes
                .iter()
                .any(|n| n.2.as_ref() == Some(&ts));
            return match missed {
                Some(action) if noted && !self.commanded.contains(&message) => {
                    self.commanded.insert(message);
                    match self.change(i, action, Some(user), None) {
                        Outcome::Conflict => Outcome::ReplyRefused(id),
                        _ => Outcome::ReplyApplied(id),
                    }
                }
                _ => Outcome::ReplyDuplicate(id),
            };
        }
        let Some(&i) = self.messages.get(&parent) else {
            return Outcome::NotAnAlert;
        };
        let done = match command {
            Some(action) => self.change(i, action, Some(user), None),
            None => self.note(i, (Some(user), text, Some(ts))),
        };
        let id = self.alerts[i].id;
        // A command is handled either way: a later copy of a refused one is
        // a duplicate. A refused note is not (another copy may carry a command).
        if command.is_some() || done != Outcome::Conflict {
            self.messages.insert(message, i);
        }
        match done {
            Outcome::Conflict => Outcome::ReplyRefused(id),
            _ => Outcome::ReplyApplied(id),
        }
    }

    fn counts(&self) -> [[u64; 4]; 3] {
        let mut counts = [[0; 4]; 3];
        for a in &self.alerts {
            counts[usize::from(a.status.code())][usize::from(a.urgency.code())] += 1;
        }
        counts
    }
}

/// (user, text, Slack ts).
type Note = (Option<String>, String, Option<String>);

fn fits(alert: &View) -> bool {
    let bytes: usize = alert.notes.iter().map(|n| n.1.len()).sum();
    alert.notes.len() <= MAX_NOTES && bytes <= MAX_NOTE_BYTES
}

/// The parent message a generated reply is under.
fn parent_message(model: &Model, parent: &Parent) -> Message {
    match parent {
        Parent::Alert(i) if !model.alerts.is_empty() => {
            let a = &model.alerts[i % model.alerts.len()];
            (a.channel.clone(), a.ts.clone())
        }
        Parent::Alert(i) => (channel(0), ts((i % usize::from(TOP_LEVEL)) as u8)),
        Parent::Message { channel: c, ts: m } => (channel(*c), ts(*m)),
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        min_free_bytes: 0,
        // A shared, busy machine must not turn a slow fsync into a failure.
        commit_timeout: Duration::from_secs(30),
        ..StoreOptions::default()
    }
}

/// An operation made concrete against the model's state before it runs: the
/// id or parent message a generated one names.
#[derive(Clone, Debug)]
enum Call {
    Insert(NewAlert),
    Change(AlertId, Action, Actor),
    Note(AlertId, Actor),
    Reply(ThreadReply),
}

fn call_of(model: &Model, op: &Op) -> Call {
    match op {
        Op::New {
            team: t,
            channel: c,
            ts: m,
            urgency,
        } => Call::Insert(NewAlert {
            urgency: *urgency,
            urgency_source: UrgencySource::Message,
            title: "outage".into(),
            text: format!("outage {}", urgency.as_str()),
            source: Source::EventsApi,
            slack: SlackRef {
                team_id: Some(team(*t)),
                channel_id: channel(*c),
                ts: ts(*m),
                ..SlackRef::default()
            },
        }),
        Op::Change {
            target,
            action,
            by,
            note,
        } => {
            let actor = Actor {
                by: by.map(user),
                note: note.as_ref().map(Text::render),
                ts: None,
            };
            Call::Change(model.target(target), *action, actor)
        }
        Op::Note { target, by, text } => {
            let actor = Actor {
                by: by.map(user),
                note: Some(text.render()),
                ts: None,
            };
            Call::Note(model.target(target), actor)
        }
        Op::Reply {
            parent,
            ts: m,
            user: u,
            command,
            missed,
            text,
        } => {
            let (channel, thread_ts) = parent_message(model, parent);
            Call::Reply(ThreadReply {
                channel,
                thread_ts,
                ts: ts(*m),
                event_id: None,
                user: Some(user(*u)),
                text: text.render(),
                command: *command,
                missed: command.filter(|_| *missed),
            })
        }
        Op::Reopen | Op::Burst(_) => unreachable!("run() takes these apart"),
    }
}

/// How the store ends `call`, and the alert it answers with, if any.
async fn send(store: &Store, call: Call) -> (Outcome, Option<Alert>) {
    match call {
        Call::Insert(new) => match store.insert_if_new(new).await.unwrap() {
            Inserted::Created(a) => (Outcome::Created(a.id), Some(a)),
            Inserted::Duplicate(a) => (Outcome::Duplicate(a.id), Some(a)),
        },
        Call::Change(id, action, actor) => match store.change(id, action, actor).await.unwrap() {
            Ok(Changed::Yes(a)) => (Outcome::Changed(a.id), Some(a)),
            Ok(Changed::AlreadyDone(a)) => (Outcome::AlreadyDone(a.id), Some(a)),
            Err(Refused::Conflict(_)) => (Outcome::Conflict, None),
            Err(Refused::NotFound) => (Outcome::NotFound, None),
        },
        Call::Note(id, actor) => match store.add_note(id, actor).await.unwrap() {
            Ok(a) => (Outcome::Changed(a.id), Some(a)),
            Err(Refused::Conflict(_)) => (Outcome::Conflict, None),
            Err(Refused::NotFound) => (Outcome::NotFound, None),
        },
        Call::Reply(reply) => match store.thread_reply(reply).await.unwrap() {
            ReplyOutcome::Applied(a) => (Outcome::ReplyApplied(a.id), Some(*a)),
            ReplyOutcome::Duplicate(id) => (Outcome::ReplyDuplicate(id), None),
            ReplyOutcome::Refused(id, _) => (Outcome::ReplyRefused(id), None),
            ReplyOutcome::NotAnAlert => (Outcome::NotAnAlert, None),
            ReplyOutcome::Held => panic!("thread_reply holds nothing"),
        },
    }
}

/// How the model ends `call`; `created` is the id the store gave, if it
/// created an alert.
fn expect(model: &mut Model, call: &Call, created: Option<AlertId>) -> Outcome {
    match call {
        Call::Insert(new) => {
            let slack = &new.slack;
            let message = (slack.channel_id.clone(), slack.ts.clone());
            let team = slack.team_id.clone().unwrap_or_default();
            model.insert(message, team, new.urgency, created)
        }
        Call::Change(id, action, actor) => match model.position(*id) {
            None => Outcome::NotFound,
            Some(i) => {
                let note = actor
                    .note
                    .clone()
                    .map(|text| (actor.by.clone(), text, None));
                model.change(i, *action, actor.by.clone(), note)
            }
        },
        Call::Note(id, actor) => match model.position(*id) {
            None => Outcome::NotFound,
            Some(i) => {
                let text = actor.note.clone().unwrap_or_default();
                model.note(i, (actor.by.clone(), text, None))
            }
        },
        Call::Reply(r) => {
            let parent = (r.channel.clone(), r.thread_ts.clone());
            let user = r.user.clone().unwrap_or_default();
            model.reply(
                parent,
                r.ts.clone(),
                user,
                r.command,
                r.missed,
                r.text.clone(),
            )
        }
    }
}

/// Runs `ops` on the store all at once (so that the writer commits them
/// together, as it does concurrent requests), then on the model in the same
/// order; each must end the same way on both, and an alert the store answers
/// with must be as the model had it right after that operation.
fn step(rt: &tokio::runtime::Runtime, store: &Store, model: &mut Model, ops: &[Op]) {
    let calls: Vec<Call> = ops.iter().map(|op| call_of(model, op)).collect();
    let answers = rt.block_on(async {
        let sent = calls.iter().map(|call| Box::pin(send(store, call.clone())));
        // Polled once each, in order, every change is on the writer's queue
        // before the first is answered (one that writes nothing may be
        // answered at once).
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let polled: Vec<_> = sent
            .map(|mut future| match future.as_mut().poll(&mut cx) {
                Poll::Ready(answer) => Err(Box::new(answer)),
                Poll::Pending => Ok(future),
            })
            .collect();
        let mut answers = Vec::new();
        for future in polled {
            answers.push(match future {
                Ok(pending) => pending.await,
                Err(answer) => *answer,
            });
        }
        answers
    });
    for (call, (got, answered)) in calls.iter().zip(answers) {
        let created = match got {
            Outcome::Created(id) => Some(id),
            _ => None,
        };
        assert_eq!(got, expect(model, call, created), "{call:?}");
        if let Some(alert) = answered {
            let i = model
                .position(alert.id)
                .expect("answered with an alert the model lacks");
            assert_eq!(view(&alert), model.alerts[i], "answer to {call:?}");
        }
    }
}

/// Which listings [`check`] compares.
#[derive(Clone, Copy)]
enum Nth {
    /// The four that filter by channel alone (after each change).
    ChannelOnly,
    /// Every `step`th combination of filters, from the `from`th: 1 for all
    /// 512. The cases start from different places, so that together they
    /// check every combination.
    Every { step: usize, from: usize },
}

async fn all_pages(store: &Store, query: ListQuery) -> Vec<Vec<Alert>> {
    let mut pages = Vec::new();
    let mut query = query;
    loop {
        let page = store.list(query.clone()).await.unwrap();
        let alerts: Vec<Alert> = page
            .alerts
            .iter()
            .map(|json| serde_json::from_slice(json).unwrap())
            .collect();
        pages.push(alerts);
        match page.next {
            Some(next) => {
                assert!(pages.len() <= 1000, "a cursor walk does not end: {query:?}");
                query.before = Some(next);
            }
            None => return pages,
        }
    }
}

/// Every filter a listing takes but time: a set of statuses (empty: all), a
/// set of urgencies (empty: all), and a channel (one no alert is in included).
/// The first four filter by channel alone.
fn filters() -> Vec<ListQuery> {
    let mut queries = Vec::new();
    let channels = [None, Some(channel(0)), Some(channel(1)), Some(channel(9))];
    for bits in 0..8 * 16 {
        let statuses = Status::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, s)| s)
            .collect();
        let urgencies = Urgency::ALL
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (bits >> 3) & (1 << i) != 0)
            .map(|(_, u)| u)
            .collect();
        for channel in &channels {
            queries.push(ListQuery {
                statuses: Vec::clone(&statuses),
                urgencies: Vec::clone(&urgencies),
                channel: channel.clone(),
                ..ListQuery::default()
            });
        }
    }
    queries
}

fn expected_listing(model: &Model, q: &ListQuery) -> Vec<View> {
    model
        .alerts
        .iter()
        .rev()
        .filter(|a| q.statuses.is_empty() || q.statuses.contains(&a.status))
        .filter(|a| q.urgencies.is_empty() || q.urgencies.contains(&a.urgency))
        .filter(|a| q.channel.as_ref().is_none_or(|c| *c == a.channel))
        .cloned()
        .collect()
}

/// Every read agrees with the model: one alert, the summary, the change feed,
/// and listings under every `nth` of [`filters`], whole and walked with cursors
/// in small pages.
async fn check(store: &Store, model: &Model, nth: Nth) {
    for a in &model.alerts {
        let got = store.get(a.id).await.unwrap().map(|a| view(&a));
        assert_eq!(got.as_ref(), Some(a), "get({})", a.id);
    }
    let free = model
        .alerts
        .last()
        .map_or(AlertId::MIN, |a| AlertId::from_u64(a.id.as_u64() + 1));
    if model.position(free).is_none() {
        assert_eq!(
            store.get(free).await.unwrap(),
            None,
            "get({free}) of no alert"
        );
    }
    assert_eq!(store.counts().await.unwrap().0, model.counts(), "summary");

    let mut by_seq = model.alerts.clone();
    by_seq.sort_by_key(|a| a.seq);
    let feed = store.changes(0, 1000).await.unwrap();
    let fed: Vec<View> = feed
        .alerts
        .iter()
        .map(|json| view(&serde_json::from_slice(json).unwrap()))
        .collect();
    assert_eq!(fed, by_seq, "change feed from 0");
    assert!(fed.windows(2).all(|w| w[0].seq < w[1].seq), "feed order");
    assert_eq!(feed.next_after, model.seq, "next_after");
    // In pages of 2, from next_after each time: the same alerts, once each.
    let mut walked = Vec::new();
    let mut after = 0;
    loop {
        let page = store.changes(after, 2).await.unwrap();
        if page.alerts.is_empty() {
            assert_eq!(page.next_after, after, "an empty page keeps its place");
            break;
        }
        assert!(page.next_after > after, "the feed moves on");
        walked.extend(
            page.alerts
                .iter()
                .map(|j| view(&serde_json::from_slice(j).unwrap())),
        );
        after = page.next_after;
    }
    assert_eq!(walked, by_seq, "change feed in pages of 2");

    let filters = filters().into_iter().enumerate();
    let filters: Vec<_> = match nth {
        Nth::ChannelOnly => filters.take(4).collect(),
        Nth::Every { step, from } => filters.skip(from % step).step_by(step).collect(),
    };
    for (n, filter) in filters {
        let expected = expected_listing(model, &filter);
        let whole = all_pages(
            store,
            ListQuery {
                limit: 1000,
                ..filter.clone()
            },
        )
        .await;
        assert_eq!(whole.len(), 1, "one page holds all: {filter:?}");
        let listed: Vec<View> = whole[0].iter().map(view).collect();
        assert_eq!(listed, expected, "listing {filter:?}");
        let limit = 1 + n % 3;
        let pages = all_pages(
            store,
            ListQuery {
                limit,
                ..filter.clone()
            },
        )
        .await;
        // Full pages, then the rest: the last page has no cursor.
        let full = expected.len().div_ceil(limit).max(1);
        assert_eq!(pages.len(), full, "pages of {limit}: {filter:?}");
        for page in &pages {
            assert!(page.len() <= limit, "a page over its limit: {filter:?}");
        }
        let walked: Vec<View> = pages.iter().flatten().map(view).collect();
        assert_eq!(walked, expected, "cursor walk, limit {limit}: {filter:?}");
    }
}

/// Applies `ops` to a new store and the model, checking reads after each.
fn run(ops: &[Op]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), &options()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Reopen => {
                // Every handle must be gone before the open: they hold sled's lock.
                store.close();
                drop(store);
                store = Store::open(dir.path(), &options()).unwrap();
                integrity(&store);
                let some = Nth::Every {
                    step: 8,
                    from: ops.len(),
                };
                rt.block_on(check(&store, &model, some));
            }
            Op::Burst(together) => step(&rt, &store, &mut model, together),
            single => step(&rt, &store, &mut model, std::slice::from_ref(single)),
        }
        if !matches!(op, Op::Reopen) {
            rt.block_on(check(&store, &model, Nth::ChannelOnly));
        }
    }
    rt.block_on(check(
        &store,
        &model,
        Nth::Every {
            step: 3,
            from: ops.len(),
        },
    ));
    integrity(&store);
    store.close();
}

/// What `klaxon check-store` checks: indexes, feed and counts as the records say.
fn integrity(store: &Store) {
    let report = store.check().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// 64 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> Config {
    match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default(),
        None => Config::with_cases(64),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_read_agrees_with_a_model_of_the_rules(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops);
    }
}
