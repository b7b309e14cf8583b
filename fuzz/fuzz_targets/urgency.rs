//! Urgency extraction and titles: never panic on any text; an urgency found
//! in a message is spelled there (in any case); `read` agrees with `named_in`;
//! a title is at most 120 chars, one line, and a piece of the text (or
//! `UNTITLED` when the text has none).
//!
//! Input: `trigger_word\ntext` (no newline: the whole input is the text).
#![no_main]

use klaxon::alert::{title_of, TITLE_MAX_CHARS, UNTITLED};
use klaxon::urgency::{named_in, read, Urgency, UrgencySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (trigger, text) = input.split_once('\n').unwrap_or(("", &input));

    let named = named_in(text);
    if let Some(u) = named {
        assert!(spelled_in(text, u.as_str()), "{u} not in {text:?}");
    }
    for default in Urgency::ALL {
        let want = match named {
            Some(u) => (u, UrgencySource::Message),
            None => (default, UrgencySource::Default),
        };
        assert_eq!(read(text, default), want);
    }
    if let Ok(u) = text.parse::<Urgency>() {
        assert!(text.trim().eq_ignore_ascii_case(u.as_str()));
    }

    for title in [title_of(text, Some(trigger)), title_of(text, None)] {
        assert!(title.chars().count() <= TITLE_MAX_CHARS);
        assert!(!title.contains('\n'));
        assert!(
            title == UNTITLED || text.contains(&title),
            "{title:?} not in {text:?}"
        );
    }
});

/// `word` occurs in `text`, ASCII case ignored.
fn spelled_in(text: &str, word: &str) -> bool {
    text.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}
