//! Listing and change-feed query strings: decoding and parsing any query never
//! panics and a parsed limit is 1..=1000; alert ids and cursors round-trip
//! (`encode_cursor` comes back as `before`) and parsing any id text never panics.
//!
//! Input: a query string; its first 8 bytes also make the id to round-trip.
#![no_main]

use klaxon::alert::AlertId;
use klaxon::api::params::{encode_cursor, ChangeParams, ListParams, MAX_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = serde_urlencoded::from_bytes::<ListParams>(data) {
        if let Ok(q) = params.into_query() {
            assert!((1..=MAX_LIMIT).contains(&q.limit));
        }
    }
    if let Ok(params) = serde_urlencoded::from_bytes::<ChangeParams>(data) {
        if let Ok((_, limit)) = params.parse() {
            assert!((1..=MAX_LIMIT).contains(&limit));
        }
    }

    let text = String::from_utf8_lossy(data);
    if let Ok(id) = text.parse::<AlertId>() {
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
    }

    let mut raw = [0u8; 8];
    let n = data.len().min(8);
    raw[..n].copy_from_slice(&data[..n]);
    let id = AlertId::from_u64(u64::from_be_bytes(raw));
    assert_eq!(id.to_string().parse::<AlertId>().ok(), Some(id));
    let q = ListParams {
        cursor: Some(encode_cursor(id)),
        ..ListParams::default()
    }
    .into_query()
    .expect("a cursor the server made is accepted");
    assert_eq!(q.before, Some(id));
});
