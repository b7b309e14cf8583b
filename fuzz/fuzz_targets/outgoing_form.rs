//! Outgoing-webhook forms: strict decoding, the bot check and the alert built
//! from any body never panic; a built alert's title is at most 120 chars and
//! its urgency is the one read from its text; the channel reply never starts
//! with the trigger word (which would fire the webhook again); a post read as
//! a thread reply is never a reply to itself and has text, and reads the
//! command the Events API reads from the same text (and may read one more,
//! after the trigger word).
#![no_main]

use klaxon::alert::{TITLE_MAX_CHARS, UNTITLED};
use klaxon::slack::events::reply_command;
use klaxon::slack::outgoing::{reply_text, OutgoingForm};
use klaxon::urgency::{self, Urgency};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(form) = OutgoingForm::parse(data) else {
        return;
    };
    let _ = form.is_from_bot();
    let _ = form.check_ids();
    if let Some(reply) = form.as_thread_reply() {
        assert_ne!(reply.thread_ts, reply.ts);
        assert!(!reply.text.trim().is_empty());
        if let Some(events) = reply_command(&reply.text) {
            assert_eq!(reply.command, Some(events), "{:?}", reply.text);
        }
    }
    let trigger = form.trigger_word.clone().unwrap_or_default();
    if let Ok(alert) = form.into_new_alert(Urgency::Medium) {
        assert!(alert.title.chars().count() <= TITLE_MAX_CHARS);
        assert!(alert.title == UNTITLED || alert.text.contains(&alert.title));
        let (u, source) = urgency::read(&alert.text, Urgency::Medium);
        assert_eq!((alert.urgency, alert.urgency_source), (u, source));
        let reply = reply_text(&alert.title, &trigger);
        let t = trigger.trim();
        let head = reply.get(..t.len()).unwrap_or("");
        assert!(t.is_empty() || !head.eq_ignore_ascii_case(t), "{reply:?}");
    }
});
