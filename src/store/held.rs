//! Thread replies that came before their thread's first message became an
//! alert. Slack delivers events out of order, and delivers a message again
//! only after a minute or more when it could not be delivered the first time
//! (klaxon restarting, say): an `ack` posted meanwhile can arrive first. Such
//! a reply is held here, in memory, and applied when its thread's first
//! message makes an alert. Held replies are few and short-lived: at most
//! [`MAX_REPLIES`] and [`MAX_BYTES`] of text, each for [`HOLD_FOR`]; the
//! oldest go first. A restart loses them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::ThreadReply;

/// How long a reply waits for its thread's first message: past Slack's last
/// retry of it (about 5 minutes after the first attempt).
pub const HOLD_FOR: Duration = Duration::from_secs(10 * 60);
/// Most replies held at once.
pub const MAX_REPLIES: usize = 1_000;
/// Most text held at once, in bytes.
pub const MAX_BYTES: usize = 1 << 20;

/// Replies by the message hash of their thread's first message.
#[derive(Default)]
pub struct Held {
    by_parent: HashMap<[u8; 16], Vec<Reply>>,
    /// Every reply held, oldest first: (when, parent, number).
    order: VecDeque<(Instant, [u8; 16], u64)>,
    bytes: usize,
    next: u64,
}

struct Reply {
    number: u64,
    message: [u8; 16],
    reply: ThreadReply,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Holds `reply` (message hash `message`) for the first message
    /// `parent`; `false` when it is held already (Slack's retry of it, or
    /// another copy: a command that copy read as a note is taken from this one).
    pub fn hold(
        &mut self,
        parent: [u8; 16],
        message: [u8; 16],
        reply: ThreadReply,
        now: Instant,
    ) -> bool {
        self.expire(now);
        let waiting = self.by_parent.entry(parent).or_default();
        if let Some(held) = waiting.iter_mut().find(|r| r.message == message) {
            held.reply.command = held.reply.command.or(reply.missed);
            return false;
        }
        self.bytes += reply.text.len();
        let number = self.next;
        self.next += 1;
        waiting.push(Reply {
            number,
            message,
            reply,
        });
        self.order.push_back((now, parent, number));
        while self.order.len() > MAX_REPLIES || self.bytes > MAX_BYTES {
            self.drop_oldest();
        }
        true
    }

    /// The replies held for the first message `parent`, oldest first; they
    /// are held no longer.
    pub fn take(&mut self, parent: &[u8; 16], now: Instant) -> Vec<ThreadReply> {
        self.expire(now);
        let replies = self.by_parent.remove(parent).unwrap_or_default();
        let numbers: Vec<u64> = replies.iter().map(|r| r.number).collect();
        self.order.retain(|(_, _, n)| !numbers.contains(n));
        self.bytes -= replies.iter().map(|r| r.reply.text.len()).sum::<usize>();
        replies.into_iter().map(|r| r.reply).collect()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) >= HOLD_FOR)
        {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        let Some((_, parent, number)) = self.order.pop_front() else {
            return;
        };
        if let Some(waiting) = self.by_parent.get_mut(&parent) {
            if let Some(i) = waiting.iter().position(|r| r.number == number) {
                self.bytes -= waiting.remove(i).reply.text.len();
            }
            if waiting.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Action;

    fn reply(ts: &str, text: &str) -> ThreadReply {
        ThreadReply {
            channel: "C1".into(),
            thread_ts: "1.1".into(),
            ts: ts.into(),
            event_id: None,
            user: Some("U1".into()),
            text: text.into(),
            command: None,
            missed: None,
        }
    }

    fn texts(replies: Vec<ThreadReply>) -> Vec<String> {
        replies.into_iter().map(|r| r.text).collect()
    }

    /// The limits are README's, and README still says so: the other tests
    /// check the code against its own constants only.
    #[test]
    fn the_limits_are_the_ones_readme_promises() {
        assert_eq!(HOLD_FOR, Duration::from_secs(10 * 60));
        assert_eq!(MAX_REPLIES, 1_000);
        assert_eq!(MAX_BYTES, 1024 * 1024);
        let readme = include_str!("../../README.md");
        let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            readme.contains(
                "A reply is held for 10 minutes at most, and at most 1,000 replies or 1 MiB of their text are held"
            ),
            "README's promise changed: change the limits with it"
        );
    }

    #[test]
    fn replies_are_taken_once_in_the_order_they_came() {
        let (mut held, now) = (Held::default(), Instant::now());
        assert!(held.hold([1; 16], [10; 16], reply("1.2", "first"), now));
        assert!(held.hold([2; 16], [20; 16], reply("1.3", "other thread"), now));
        assert!(held.hold([1; 16], [11; 16], reply("1.4", "second"), now));
        // Slack's retry of a held reply is not held twice.
        assert!(!held.hold([1; 16], [10; 16], reply("1.2", "first"), now));

        assert_eq!(texts(held.take(&[1; 16], now)), ["first", "second"]);
        assert!(held.take(&[1; 16], now).is_empty());
        assert_eq!(texts(held.take(&[2; 16], now)), ["other thread"]);
        assert!(held.is_empty());
        assert_eq!(held.bytes, 0);
    }

    #[test]
    fn a_copy_with_a_command_its_held_copy_missed_gives_it() {
        let (mut held, now) = (Held::default(), Instant::now());
        held.hold([1; 16], [10; 16], reply("1.2", "<@U2> ack"), now);
        let mention = ThreadReply {
            command: Some(Action::Acknowledge),
            missed: Some(Action::Acknowledge),
            ..reply("1.2", "<@U2> ack")
        };
        assert!(!held.hold([1; 16], [10; 16], mention, now));
        let taken = held.take(&[1; 16], now);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].command, Some(Action::Acknowledge));
    }

    #[test]
    fn a_reply_held_too_long_is_let_go() {
        let (mut held, start) = (Held::default(), Instant::now());
        held.hold([1; 16], [10; 16], reply("1.2", "old"), start);
        let later = start + HOLD_FOR - Duration::from_secs(1);
        held.hold([1; 16], [11; 16], reply("1.3", "newer"), later);
        assert_eq!(texts(held.take(&[1; 16], start + HOLD_FOR)), ["newer"]);
    }

    #[test]
    fn the_oldest_go_first_when_too_many_or_too_big() {
        let (mut held, now) = (Held::default(), Instant::now());
        for i in 0..=MAX_REPLIES {
            let parent = [(i % 7) as u8; 16];
            let mut message = [0; 16];
            message[..8].copy_from_slice(&(i as u64).to_be_bytes());
            held.hold(parent, message, reply("1.2", &i.to_string()), now);
        }
        assert_eq!(held.order.len(), MAX_REPLIES);
        assert!(!texts(held.take(&[0; 16], now)).contains(&"0".to_owned()));

        let big = "x".repeat(MAX_BYTES / 2 + 1);
        held.hold([8; 16], [80; 16], reply("1.2", &big), now);
        held.hold([9; 16], [90; 16], reply("1.3", &big), now);
        assert!(held.take(&[8; 16], now).is_empty(), "pushed out");
        assert_eq!(held.take(&[9; 16], now).len(), 1);
        assert!(held.bytes <= MAX_BYTES);
    }
}
