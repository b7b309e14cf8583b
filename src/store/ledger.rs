//! The write side: every change to the store, run one at a time on the
//! writer thread. A change's writes (the record, its index entries, dedup
//! key, change-feed entry and counts) join the commit group ([`Group`]) all
//! together or not at all; the writer journals the whole group as one record,
//! then puts it into sled, and after a crash the journal completes a group
//! sled has only part of (see [`super::group`]): a crash leaves either all of
//! a change or none of it. Reads on the writer see the group's pending writes.

use std::ops::RangeInclusive;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Instant;

use sled::{IVec, Tree};

use super::group::{Group, WriteMap, Writes};
use super::held::Held;
use super::keys;
use super::packed::{self, Ordinals, CHANGE_ENTRIES, MESSAGE_ENTRIES};
use super::StoreError;
use crate::alert::{now_ms, rfc3339_ms, Alert, AlertId, NewAlert, Note, Status};
use crate::urgency::UrgencySource;

/// How far a restored store's sequence jumps past its backup's at least (see
/// [`Ledger::skip_after_restore`]): more changes than any store makes
/// between a backup and its restore.
pub const RESTORE_GAP: u64 = 1 << 32;

/// Most notes one alert keeps, and most bytes of note text in all: each
/// change rewrites the whole record, so an alert without bounds would grow
/// every answer, listing and write that touches it.
pub const MAX_NOTES: usize = 200;
pub const MAX_NOTE_BYTES: usize = 128 * 1024;
const NOTES_FULL: &str =
    "the note does not fit: an alert keeps at most 200 notes and 128 KiB of note text";

/// An action sent with a note that does not fit is refused whole.
const NOTES_FULL_ACTION: &str = "the note does not fit: an alert keeps at most 200 notes and \
    128 KiB of note text; the action was not taken either: send it without a note";

/// The result of offering a new alert.
#[derive(Clone, Debug)]
pub enum Inserted {
    Created(Alert),
    /// The same event or message was seen before: here is its alert.
    Duplicate(Alert),
}

/// Whether `alert`'s notes are within [`MAX_NOTES`] and [`MAX_NOTE_BYTES`].
pub(super) fn notes_fit(alert: &Alert) -> bool {
    let bytes: usize = alert.notes.iter().map(|n| n.text.len()).sum();
    alert.notes.len() <= MAX_NOTES && bytes <= MAX_NOTE_BYTES
}

/// A stretch of the change feed read on the writer (see [`Ledger::changed_since`]).
pub struct Tail {
    /// The alerts, as JSON, each in its current state.
    pub records: Vec<IVec>,
    /// Where the next stretch starts: its `seq` argument.
    pub next: u64,
    /// Nothing changed after `next` (then the store's current sequence).
    pub done: bool,
}

/// A lifecycle change asked for through the API or a Slack thread reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Resolve,
    Reopen,
}

/// Who asks for a change, and an optional note to keep with it.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub by: Option<String>,
    pub note: Option<String>,
    /// Slack message ts when the change came from a thread reply.
    pub ts: Option<String>,
}

/// How a change request ended.
#[derive(Clone, Debug)]
pub enum Changed {
    /// The alert changed; this is its new state.
    Yes(Alert),
    /// The alert already was in the asked-for state (idempotent repeat).
    AlreadyDone(Alert),
}

/// Why a change request was refused.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refused {
    #[error("alert not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
}

/// A Slack thread reply under some message.
#[derive(Clone, Debug)]
pub struct ThreadReply {
    pub channel: String,
    pub thread_ts: String,
    pub ts: String,
    pub event_id: Option<String>,
    pub user: Option<String>,
    pub text: String,
    /// `Some` when the text is a command (ack, resolve), else it becomes a note.
    pub command: Option<Action>,
    /// A command another copy of this message may have read as a note: an
    /// app mention in a shared channel (its `message` copy names another
    /// workspace's bot), or the outgoing webhook's command after its trigger
    /// word. Applied once when that copy came first, never on a retry.
    pub missed: Option<Action>,
}

/// How a thread reply was handled.
#[derive(Clone, Debug)]
pub enum ReplyOutcome {
    /// The thread's parent is not an alert: nothing stored.
    NotAnAlert,
    /// This reply was handled before (Slack retry or second surface).
    Duplicate(AlertId),
    /// The command or note was applied to this alert.
    Applied(Box<Alert>),
    /// The command does not fit the alert's status (e.g. ack after resolve).
    Refused(AlertId, &'static str),
    /// The thread's parent is not an alert yet: held until it is (see
    /// [`super::held`]).
    Held,
}

/// Writer-side state: the tree, the commit group, the id, sequence and
/// ordinal counters, and whether the disk has room for more.
pub struct Ledger {
    tree: Tree,
    group: Group,
    counters: Counters,
    /// The counters as of the last group put into the tree: what it holds.
    committed: Counters,
    room: Room,
    held: Held,
    /// Held replies this group applied: held again if it is discarded.
    taken: Vec<ThreadReply>,
}

/// What a change takes from: a refused change gives back what it took, so
/// that no sequence number is published (in an ETag or the change feed)
/// without its change, and none is used twice.
#[derive(Clone, Copy)]
struct Counters {
    last_id: AlertId,
    seq: u64,
    /// Alerts stored, which is the next alert's ordinal.
    ordinals: u64,
}

/// Free space is checked once per commit group. sled 0.34 does not fail
/// cleanly when the disk fills (its flush can wait forever), so klaxon stops
/// writing while it still has room to spare.
struct Room {
    data_dir: PathBuf,
    min_free_bytes: u64,
    free_bytes: u64,
}

impl Ledger {
    pub fn new(
        tree: Tree,
        last_id: AlertId,
        seq: u64,
        ordinals: u64,
        data_dir: PathBuf,
        min_free_bytes: u64,
    ) -> Self {
        let room = Room {
            data_dir,
            min_free_bytes,
            free_bytes: u64::MAX,
        };
        let counters = Counters {
            last_id,
            seq,
            ordinals,
        };
        Self {
            group: Group::new(tree.clone()),
            tree,
            counters,
            committed: counters,
            room,
            held: Held::default(),
            taken: Vec::new(),
        }
    }

    /// Reads the free space of the data dir's file system; called before each commit group.
    pub fn measure_room(&mut self) {
        self.room.free_bytes = fs4::available_space(&self.room.data_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read free disk space; refusing writes");
            0
        });
    }

    fn ensure_room(&self) -> Result<(), StoreError> {
        if self.room.free_bytes < self.room.min_free_bytes {
            return Err(StoreError::DiskFull {
                free: self.room.free_bytes,
                min: self.room.min_free_bytes,
            });
        }
        Ok(())
    }

    /// Adds one change's writes to the group. A change that writes nothing
    /// (an action repeated) needs no room: it answers even on a full disk.
    fn apply(&mut self, writes: Writes) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.ensure_room()?;
        self.group.add(writes);
        Ok(())
    }

    fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut writes = Writes::default();
        writes.insert(key, value);
        self.apply(writes)
    }

    /// The commit group's writes, for its journal record.
    pub fn writes(&self) -> &WriteMap {
        self.group.writes()
    }

    /// The lock queries take so as not to see a group half applied.
    pub fn applying(&self) -> super::group::Applying {
        self.group.applying()
    }

    /// Applies the group, whose journal record is durable, to the tree (see
    /// [`Group::finish`]).
    pub fn finish(&mut self, record: u64) -> Result<(), StoreError> {
        self.group.finish(record)?;
        self.committed = self.counters;
        self.taken.clear();
        Ok(())
    }

    /// Tests: the next group's apply stops after `keys` keys, as a crash would.
    #[cfg(test)]
    pub fn stop_finish_after(&mut self, keys: usize) {
        self.group.stop_finish_after = Some(keys);
    }

    /// Applies the group, which has no journal record, to the tree as one
    /// atomic batch, made durable by `durable` (see [`Group::finish_atomically`]).
    pub fn finish_atomically(
        &mut self,
        record: u64,
        durable: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.group.finish_atomically(record, durable)?;
        self.committed = self.counters;
        self.taken.clear();
        Ok(())
    }

    /// Runs one change; if it fails, nothing of it stays, the counters it
    /// took from included.
    pub fn transact<T>(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let before = self.counters;
        match catch_unwind(AssertUnwindSafe(|| change(self))) {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => {
                self.counters = before;
                Err(e)
            }
            Err(panic) => {
                // A bug: the writer fails this request and goes on.
                self.counters = before;
                resume_unwind(panic)
            }
        }
    }

    /// Drops the group's pending writes (its commit failed), and gives back
    /// the ids, sequence numbers and ordinals it took: ordinals stay dense.
    pub fn discard(&mut self) {
        self.group.discard();
        self.counters = self.committed;
        // The alerts they acted on are gone with the group: Slack sends the
        // first message again, and they wait for it again.
        let now = Instant::now();
        for reply in self.taken.drain(..) {
            let parent = keys::message_hash(&reply.channel, &reply.thread_ts);
            let message = keys::message_hash(&reply.channel, &reply.ts);
            self.held.hold(parent, message, reply, now);
        }
    }

    /// The sequence number of the latest change.
    pub fn seq(&self) -> u64 {
        self.counters.seq
    }

    pub fn insert_if_new(&mut self, new: NewAlert) -> Result<Inserted, StoreError> {
        // Slack's retries, a message's `message` and `app_mention` events and
        // the same message through the other surface all name one message.
        let message = keys::message_hash(&new.slack.channel_id, &new.slack.ts);
        let mut batch = Writes::default();
        let bucket = self.bucket(&batch, &message)?;
        if let Some(id) = bucket.find(&message) {
            let found = self.load(id)?;
            if found.text.trim().is_empty() && !new.text.trim().is_empty() {
                return self.fill_in(found, new).map(Inserted::Duplicate);
            }
            return Ok(Inserted::Duplicate(found));
        }
        let id = self.next_id()?;
        let alert = Alert::open(id, self.next_seq()?, new);
        let n = self.counters.ordinals;
        bucket.add(&mut batch, &message, id);
        self.add_ordinal(&mut batch, n, id)?;
        self.put(&mut batch, None, &alert, Some(n))?;
        self.apply(batch)?;
        self.counters.ordinals = n + 1; // add_ordinal checked that it fits
        if !self.held.is_empty() {
            for reply in self.held.take(&message, Instant::now()) {
                self.taken.push(reply.clone());
                self.apply_held(reply, alert.id);
            }
        }
        Ok(Inserted::Created(alert))
    }

    /// Applies a held reply to the alert just made of its thread's first
    /// message. The alert is in the group already, so nothing the reply does
    /// may undo it: a reply that fails, or panics (a bug), gives back what it
    /// took and is lost, logged.
    fn apply_held(&mut self, reply: ThreadReply, alert: AlertId) {
        let before = self.counters;
        match catch_unwind(AssertUnwindSafe(|| self.thread_reply(reply))) {
            Ok(Ok(ReplyOutcome::Refused(_, why))) => {
                crate::metrics::event_ignored("thread reply refused");
                tracing::info!(%alert, why, "a held thread reply was refused");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                self.counters = before;
                tracing::warn!(error = %e, %alert, "a held thread reply could not be applied");
            }
            Err(_) => {
                self.counters = before;
                tracing::error!(%alert, "applying a held thread reply panicked");
            }
        }
    }

    /// The same message again, with text where the alert has none: the
    /// outgoing webhook brings a post shared without a comment with its text
    /// empty, the Events API with the shared post's text. The alert takes the
    /// text, title and (when the text names one) urgency.
    fn fill_in(&mut self, before: Alert, new: NewAlert) -> Result<Alert, StoreError> {
        let mut after = before.clone();
        after.text = new.text;
        after.title = new.title;
        if new.urgency_source == UrgencySource::Message {
            (after.urgency, after.urgency_source) = (new.urgency, new.urgency_source);
        }
        after.seq = self.next_seq()?;
        let mut batch = Writes::default();
        self.put(&mut batch, Some(&before), &after, None)?;
        self.apply(batch)?;
        Ok(after)
    }

    /// Acknowledge, resolve or reopen an alert.
    pub fn change(
        &mut self,
        id: AlertId,
        action: Action,
        actor: Actor,
    ) -> Result<Result<Changed, Refused>, StoreError> {
        let Some(before) = self.get(id)? else {
            return Ok(Err(Refused::NotFound));
        };
        self.change_with(before, action, actor, Writes::default())
    }

    /// Adds a note to an alert.
    pub fn add_note(
        &mut self,
        id: AlertId,
        actor: Actor,
    ) -> Result<Result<Alert, Refused>, StoreError> {
        let Some(before) = self.get(id)? else {
            return Ok(Err(Refused::NotFound));
        };
        self.note_with(before, actor, Writes::default())
    }

    /// Applies a Slack thread reply to the alert its thread starts with.
    pub fn thread_reply(&mut self, reply: ThreadReply) -> Result<ReplyOutcome, StoreError> {
        self.thread_reply_with(reply, false)
    }

    /// [`Ledger::thread_reply`], holding a reply whose thread's first
    /// message is no alert yet until it becomes one (the Events API: Slack
    /// can deliver a reply before its thread's first message).
    pub fn thread_reply_or_hold(&mut self, reply: ThreadReply) -> Result<ReplyOutcome, StoreError> {
        self.thread_reply_with(reply, true)
    }

    fn thread_reply_with(
        &mut self,
        reply: ThreadReply,
        hold: bool,
    ) -> Result<ReplyOutcome, StoreError> {
        let message = keys::message_hash(&reply.channel, &reply.ts);
        let mut batch = Writes::default();
        let bucket = self.bucket(&batch, &message)?;
        if let Some(id) = bucket.find(&message) {
            return self.reply_again(reply, id);
        }
        let parent_message = keys::message_hash(&reply.channel, &reply.thread_ts);
        let Some(parent) = self.bucket(&batch, &parent_message)?.find(&parent_message) else {
            if hold {
                self.held
                    .hold(parent_message, message, reply, Instant::now());
                return Ok(ReplyOutcome::Held);
            }
            return Ok(ReplyOutcome::NotAnAlert);
        };
        let before = self.load(parent)?;
        // The dedup entry goes in with the change (or alone, if the change is
        // refused): a retry changes nothing twice, nor later.
        bucket.add(&mut batch, &message, parent);
        let actor = Actor {
            by: reply.user,
            note: None,
            ts: Some(reply.ts),
        };
        match reply.command {
            Some(action) => self.reply_command(before, action, actor, batch),
            None => {
                let actor = Actor {
                    note: Some(reply.text),
                    ..actor
                };
                Ok(match self.note_with(before, actor, batch)? {
                    Ok(alert) => ReplyOutcome::Applied(Box::new(alert)),
                    Err(Refused::Conflict(why)) => ReplyOutcome::Refused(parent, why),
                    Err(Refused::NotFound) => ReplyOutcome::NotAnAlert,
                })
            }
        }
    }

    /// A reply handled before (Slack's retry, the other surface's copy):
    /// nothing, unless it carries a command its first copy kept as a note
    /// (the alert has a note with its ts). That command applies once, and a
    /// key beside the reply's own records that it did.
    fn reply_again(&mut self, reply: ThreadReply, id: AlertId) -> Result<ReplyOutcome, StoreError> {
        let duplicate = Ok(ReplyOutcome::Duplicate(id));
        let Some(action) = reply.missed else {
            return duplicate;
        };
        let mut batch = Writes::default();
        let applied = keys::message_hash(&reply.channel, &format!("{}/command", reply.ts));
        let bucket = self.bucket(&batch, &applied)?;
        if bucket.find(&applied).is_some() {
            return duplicate;
        }
        let Some(before) = self.get(id)? else {
            return duplicate;
        };
        if !before
            .notes
            .iter()
            .any(|n| n.ts.as_ref() == Some(&reply.ts))
        {
            return duplicate;
        }
        bucket.add(&mut batch, &applied, id);
        let actor = Actor {
            by: reply.user,
            note: None,
            ts: Some(reply.ts),
        };
        self.reply_command(before, action, actor, batch)
    }

    /// A thread reply's command on the alert `before`, with `batch`'s dedup keys.
    fn reply_command(
        &mut self,
        before: Alert,
        action: Action,
        actor: Actor,
        batch: Writes,
    ) -> Result<ReplyOutcome, StoreError> {
        let id = before.id;
        Ok(match self.change_with(before, action, actor, batch)? {
            Ok(Changed::Yes(alert) | Changed::AlreadyDone(alert)) => {
                ReplyOutcome::Applied(Box::new(alert))
            }
            Err(Refused::Conflict(why)) => ReplyOutcome::Refused(id, why),
            Err(Refused::NotFound) => ReplyOutcome::NotAnAlert,
        })
    }

    /// Writes and reads back a probe key in the tree, and puts it in the
    /// group so that the journal is written too: the store is usable. The
    /// probe key alone reaches the tree ahead of its journal record; nothing
    /// reads it but the probe.
    pub fn probe(&mut self) -> Result<(), StoreError> {
        let value = now_ms().to_be_bytes();
        let key = keys::meta("probe");
        self.insert(&key, &value)?;
        self.tree.insert(&key, &value)?;
        match self.tree.get(&key)? {
            Some(read) if read == value => Ok(()),
            _ => Err(StoreError::Corrupt("probe key did not read back".into())),
        }
    }

    /// Up to `limit` alerts (as JSON) whose latest change is after `seq`, in
    /// change order, stopping early once they take `max_bytes`: run on the
    /// writer, so nothing changes meanwhile. Block by block, jumping over
    /// numbers never used (a restored store skips many).
    pub fn changed_since(
        &self,
        seq: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Tail, StoreError> {
        let mut records = Vec::new();
        let mut bytes = 0;
        let after = seq.saturating_add(1);
        let last = keys::change_block(u64::MAX).to_vec();
        let mut from = keys::change_block(after).to_vec();
        while let Some(key) = self.group.first_key(from.clone()..=last.clone())? {
            for entry in CHANGE_ENTRIES.iter(&self.group.read(&key)?.unwrap_or_default()) {
                let Some(changed) = keys::u64_value(&entry[..8]).filter(|&s| s >= after) else {
                    continue;
                };
                if records.len() == limit || bytes >= max_bytes {
                    return Ok(Tail {
                        records,
                        next: changed - 1,
                        done: false,
                    });
                }
                let id = packed::entry_id(entry)
                    .ok_or_else(|| StoreError::Corrupt("short change entry".into()))?;
                if let Some(record) = self.group.read(&keys::alert(id))? {
                    let json = super::record::json(record)?;
                    bytes += json.len();
                    records.push(json);
                }
            }
            from = key;
            from.push(0); // the next key after this block's
        }
        Ok(Tail {
            records,
            next: self.counters.seq,
            done: true,
        })
    }

    /// Writes restored alerts, each at its ordinal (its rank by id among all
    /// the restored alerts), with their indexes, dedup entries and counts, as
    /// one change (all or nothing). The store must not already hold these ids.
    pub fn import(&mut self, alerts: Vec<(u64, Alert)>) -> Result<(), StoreError> {
        let mut batch = Writes::default();
        for (n, alert) in &alerts {
            for message in messages_of(alert) {
                let bucket = self.bucket(&batch, &message)?;
                // The first alert of a message keeps it (two could share one
                // when they were stored by a klaxon that told workspaces
                // apart), whatever order the backup lists them in.
                if bucket.find(&message).is_none_or(|kept| kept > alert.id) {
                    bucket.add(&mut batch, &message, alert.id);
                }
            }
            self.add_ordinal(&mut batch, *n, alert.id)?;
            self.put(&mut batch, None, alert, Some(*n))?;
            self.counters.last_id = self.counters.last_id.max(alert.id);
            self.counters.seq = self.counters.seq.max(alert.seq);
            self.counters.ordinals = self.counters.ordinals.max(n + 1);
        }
        batch.insert(keys::meta("seq"), self.counters.seq.to_be_bytes());
        batch.insert(keys::meta("ordinals"), self.counters.ordinals.to_be_bytes());
        self.apply(batch)?;
        Ok(())
    }

    /// After a restore from a backup taken at `seq`: the next change's
    /// number jumps past it, by [`RESTORE_GAP`] at least and to the time of
    /// the restore in microseconds, and the numbers skipped are recorded
    /// beside those the backup's store had skipped (`earlier`). The original
    /// store may have used them after the backup, and so may another restore
    /// of the same backup, made earlier: a change feed cursor among them
    /// comes from another history. The time makes each restore skip to its
    /// own numbers (no store makes a change every microsecond).
    pub fn skip_after_restore(
        &mut self,
        seq: u64,
        earlier: &[RangeInclusive<u64>],
    ) -> Result<(), StoreError> {
        let resumed = seq
            .saturating_add(RESTORE_GAP)
            .max(now_ms().saturating_mul(1000))
            .max(self.counters.seq);
        self.counters.seq = resumed;
        let mut skipped = earlier.to_vec();
        skipped.push(seq.saturating_add(1)..=resumed);
        let mut writes = Writes::default();
        writes.insert(keys::meta("seq"), resumed.to_be_bytes());
        writes.insert(keys::meta("skipped"), keys::skipped_value(&skipped));
        self.apply(writes)
    }

    /// Makes the next change's sequence number follow `seq` at least.
    pub fn raise_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.counters.seq = self.counters.seq.max(seq);
        self.insert(&keys::meta("seq"), &self.counters.seq.to_be_bytes())
    }

    fn change_with(
        &mut self,
        before: Alert,
        action: Action,
        actor: Actor,
        mut batch: Writes,
    ) -> Result<Result<Changed, Refused>, StoreError> {
        let mut after = before.clone();
        let now = rfc3339_ms(now_ms());
        match (action, before.status) {
            (Action::Acknowledge, Status::Acknowledged)
            | (Action::Resolve, Status::Resolved)
            | (Action::Reopen, Status::Open) => {
                // Still record the dedup keys of a Slack reply, so it is not re-applied.
                self.apply(batch)?;
                return Ok(Ok(Changed::AlreadyDone(before)));
            }
            (Action::Acknowledge, Status::Resolved) => {
                return self.refuse(batch, "alert is resolved: reopen it before acknowledging");
            }
            (Action::Acknowledge, _) => {
                after.status = Status::Acknowledged;
                after.acknowledged_at = Some(now.clone());
                after.acknowledged_by = actor.by.clone();
            }
            (Action::Resolve, _) => {
                after.status = Status::Resolved;
                after.resolved_at = Some(now.clone());
                after.resolved_by = actor.by.clone();
            }
            (Action::Reopen, _) => {
                after.status = Status::Open;
                after.acknowledged_at = None;
                after.acknowledged_by = None;
                after.resolved_at = None;
                after.resolved_by = None;
            }
        }
        if let Some(text) = actor.note.filter(|t| !t.trim().is_empty()) {
            after.notes.push(Note {
                user: actor.by,
                text,
                ts: actor.ts,
                at: now,
            });
            if !notes_fit(&after) {
                return self.refuse(batch, NOTES_FULL_ACTION);
            }
        }
        after.seq = self.next_seq()?;
        self.put(&mut batch, Some(&before), &after, None)?;
        self.apply(batch)?;
        Ok(Ok(Changed::Yes(after)))
    }

    fn note_with(
        &mut self,
        before: Alert,
        actor: Actor,
        mut batch: Writes,
    ) -> Result<Result<Alert, Refused>, StoreError> {
        let mut after = before.clone();
        after.notes.push(Note {
            user: actor.by,
            text: actor.note.unwrap_or_default(),
            ts: actor.ts,
            at: rfc3339_ms(now_ms()),
        });
        if !notes_fit(&after) {
            // No dedup key: a full alert refuses this note for good, and
            // another copy of the reply may carry a command, which needs
            // no room for a note.
            return Ok(Err(Refused::Conflict(NOTES_FULL)));
        }
        after.seq = self.next_seq()?;
        self.put(&mut batch, Some(&before), &after, None)?;
        self.apply(batch)?;
        Ok(Ok(after))
    }

    /// Refuses a change, keeping the dedup keys of a Slack reply's command
    /// in `batch` (an API change has none): a later copy of the refused
    /// command is a duplicate, and cannot act after the alert has changed.
    /// On a disk low on space the refusal is still answered, without them.
    fn refuse<T>(
        &mut self,
        batch: Writes,
        why: &'static str,
    ) -> Result<Result<T, Refused>, StoreError> {
        if self.ensure_room().is_ok() {
            self.apply(batch)?;
        }
        Ok(Err(Refused::Conflict(why)))
    }

    /// Adds to `batch` the record `after` with its index bits, change-feed
    /// entry and counts, replacing those of `before`. `ordinal` is given for
    /// a new alert and looked up otherwise.
    fn put(
        &self,
        batch: &mut Writes,
        before: Option<&Alert>,
        after: &Alert,
        ordinal: Option<u64>,
    ) -> Result<(), StoreError> {
        batch.insert(keys::alert(after.id), super::record::encode(after)?);
        let state = |a: &Alert| (a.status, a.urgency);
        if before.map(state) != Some(state(after)) {
            let n = match ordinal {
                Some(n) => n,
                None => self.ordinals().of(after.id)?,
            };
            let block = packed::bitmap_block(n);
            for prefix in before.map(keys::index_prefixes).into_iter().flatten() {
                self.group
                    .update(batch, &keys::bitmap(prefix, block), |b| {
                        packed::clear_bit(b, n)
                    })?;
            }
            for prefix in keys::index_prefixes(after) {
                self.group
                    .update(batch, &keys::bitmap(prefix, block), |b| {
                        packed::set_bit(b, n)
                    })?;
            }
        }
        if let Some(old) = before {
            let seq = old.seq.to_be_bytes();
            self.group
                .update(batch, &keys::change_block(old.seq), |b| {
                    CHANGE_ENTRIES.remove(b, &seq)
                })?;
        }
        let entry = packed::entry(&after.seq.to_be_bytes(), after.id);
        self.group
            .update(batch, &keys::change_block(after.seq), |b| {
                CHANGE_ENTRIES.insert(b, &entry)
            })?;
        batch.insert(
            keys::meta("seq"),
            self.counters.seq.max(after.seq).to_be_bytes(),
        );
        let counted = |a: &Alert| keys::count(a.status, a.urgency);
        if before.map(counted) != Some(counted(after)) {
            if let Some(old) = before {
                let key = counted(old);
                let n = self.count(batch, &key)?.saturating_sub(1);
                batch.insert(key, n.to_be_bytes());
            }
            let key = counted(after);
            // A damaged count stays wrong (`klaxon check-store` names it)
            // rather than stop the alerts it counts.
            let n = self.count(batch, &key)?.saturating_add(1);
            batch.insert(key, n.to_be_bytes());
        }
        Ok(())
    }

    /// Records `id` as ordinal `n`, and the new ordinal count.
    fn add_ordinal(&self, batch: &mut Writes, n: u64, id: AlertId) -> Result<(), StoreError> {
        let after = n
            .checked_add(1)
            .ok_or_else(|| damaged("ordinal count", n))?;
        self.group
            .update(batch, &keys::ordinal_block(n), |b| packed::set_id(b, n, id))?;
        let count = self.counters.ordinals.max(after);
        batch.insert(keys::meta("ordinals"), count.to_be_bytes());
        Ok(())
    }

    /// The ordinal ↔ id mapping as the group sees it.
    fn ordinals(&self) -> Ordinals<impl Fn(&[u8]) -> Result<Option<IVec>, StoreError> + '_> {
        Ordinals::new(self.counters.ordinals, |key| self.group.read(key))
    }

    /// The message bucket `message` falls in, as this change sees it.
    fn bucket(&self, batch: &Writes, message: &[u8; 16]) -> Result<Bucket, StoreError> {
        let key = keys::message_bucket(message);
        let value = self.group.read_through(batch, &key)?;
        Ok(Bucket {
            key,
            value: value.map(|v| v.to_vec()).unwrap_or_default(),
        })
    }

    fn count(&self, batch: &Writes, key: &[u8]) -> Result<u64, StoreError> {
        Ok(self
            .group
            .read_through(batch, key)?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0))
    }

    fn get(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        super::decode_alert(self.group.read(&keys::alert(id))?)
    }

    fn load(&self, id: AlertId) -> Result<Alert, StoreError> {
        self.get(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("index points at missing alert {id}")))
    }

    /// Ids follow the clock but never repeat or go backwards, even if it does.
    fn next_id(&mut self) -> Result<AlertId, StoreError> {
        let last = self.counters.last_id.as_u64();
        let after = last
            .checked_add(1)
            .ok_or_else(|| damaged("last alert id", last))?;
        let id = AlertId::first_at(now_ms()).max(AlertId::from_u64(after));
        self.counters.last_id = id;
        Ok(id)
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        let seq = self.counters.seq;
        self.counters.seq = seq.checked_add(1).ok_or_else(|| damaged("sequence", seq))?;
        Ok(self.counters.seq)
    }
}

/// A counter read from the store (a key, `Z seq`, `Z ordinals`) at the top
/// of its range: only damage puts it there, and counting on would wrap.
fn damaged(what: &str, value: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "the store's {what} is {value}, with no number after it"
    ))
}

/// The messages an alert stands for: its own, and the thread replies kept
/// as its notes (so that they stay deduplicated after a restore).
pub(super) fn messages_of(alert: &Alert) -> impl Iterator<Item = [u8; 16]> + '_ {
    let replies = alert.notes.iter().filter_map(|n| n.ts.as_deref());
    std::iter::once(alert.slack.ts.as_str())
        .chain(replies)
        .map(|ts| keys::message_hash(&alert.slack.channel_id, ts))
}

/// A message bucket read once: to find a message and then add one.
struct Bucket {
    key: [u8; 3],
    value: Vec<u8>,
}

impl Bucket {
    /// The alert of `message`, if it was handled before.
    fn find(&self, message: &[u8; 16]) -> Option<AlertId> {
        MESSAGE_ENTRIES
            .find(&self.value, message)
            .and_then(packed::entry_id)
    }

    /// Remembers that `message` belongs to alert `id`.
    fn add(mut self, batch: &mut Writes, message: &[u8; 16], id: AlertId) {
        MESSAGE_ENTRIES.insert(&mut self.value, &packed::entry(message, id));
        batch.insert(self.key, self.value);
    }
}

#[cfg(test)]
mod tests;
