//! Events API envelopes: parsing and deciding any body never panics; an alert
//! title is at most 120 chars and taken from the text; a thread reply is never
//! a reply to itself, has text, and a command it has is `reply_command` of its
//! words after a leading mention (of the app) at most.
#![no_main]

use klaxon::alert::{TITLE_MAX_CHARS, UNTITLED};
use klaxon::slack::events::{leading_mention, reply_command, Decision, Envelope};
use klaxon::urgency::{self, Urgency};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = reply_command(&String::from_utf8_lossy(data));
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    match envelope.decide(Urgency::Medium) {
        Decision::Alert(alert) => {
            assert!(alert.title.chars().count() <= TITLE_MAX_CHARS);
            assert!(alert.title == UNTITLED || alert.text.contains(&alert.title));
            let read = urgency::read(&alert.text, Urgency::Medium);
            assert_eq!((alert.urgency, alert.urgency_source), read);
        }
        Decision::Reply(reply) => {
            assert_ne!(reply.thread_ts, reply.ts);
            assert!(!reply.text.trim().is_empty());
            // A command is the reply's words after a leading mention (of the
            // app), or none (someone else's mention, a shared post's words).
            let words = leading_mention(&reply.text).1;
            assert!(reply.command.is_none() || reply.command == reply_command(words));
            // Only a command can be one another copy missed.
            assert!(reply.missed.is_none() || reply.missed == reply.command);
        }
        _ => {}
    }
});
