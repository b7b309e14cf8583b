//! Slack signature check: `verify` never panics on any secret, headers, body
//! or clock; it accepts only what `sign` produces for a configured secret
//! inside the ±300 s window, and `sign`'s own output fails after any one-byte
//! change to the body.
//!
//! Input: `secrets\ntimestamp\nsignature\nnow_unix\nbody`. A missing line is
//! a missing header; the body is everything after the fourth newline.
#![no_main]

use klaxon::secret::SecretList;
use klaxon::slack::signature::{sign, verify, SignatureError, MAX_SKEW_SECS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |&b| b == b'\n');
    let secrets = parts.next().map(text).unwrap_or_default();
    let timestamp = parts.next().map(text);
    let signature = parts.next().map(text);
    // Any clock, even one near i64::MIN (regressions/signature/
    // verify-now-near-i64-min once overflowed in the skew check).
    let now = parts
        .next()
        .and_then(|n| text(n).parse::<i64>().ok())
        .unwrap_or(0);
    let body = parts.next().unwrap_or_default();
    let list = SecretList::parse(&secrets).ok();

    let result = verify(
        list.as_ref(),
        timestamp.as_deref(),
        signature.as_deref(),
        body,
        now,
    );
    if let (Ok(()), Some(list), Some(ts), Some(sig)) = (result, &list, &timestamp, &signature) {
        let within =
            plain_digits(ts).is_some_and(|t| now.abs_diff(t) <= MAX_SKEW_SECS.unsigned_abs());
        assert!(within, "accepted timestamp {ts:?} at now={now}");
        assert!(
            list.iter()
                .any(|s| sign(s.expose().as_bytes(), ts, body) == *sig),
            "accepted a signature no configured secret makes"
        );
    }

    // Round trip: what `sign` makes verifies, for every configured secret.
    let (Some(list), Some(ts)) = (list, timestamp) else {
        return;
    };
    let Some(sent_at) = plain_digits(&ts) else {
        return;
    };
    let skew = (body.len() as i64 % (2 * MAX_SKEW_SECS + 1)) - MAX_SKEW_SECS;
    let at = sent_at + skew;
    for secret in list.iter() {
        let sig = sign(secret.expose().as_bytes(), &ts, body);
        assert_eq!(verify(Some(&list), Some(&ts), Some(&sig), body, at), Ok(()));
        let late = sent_at + MAX_SKEW_SECS + 1;
        assert_eq!(
            verify(Some(&list), Some(&ts), Some(&sig), body, late),
            Err(SignatureError::StaleTimestamp)
        );
        if !body.is_empty() {
            let mut tampered = body.to_vec();
            let i = usize::from(data[0]) % tampered.len();
            tampered[i] ^= data[data.len() - 1] | 1;
            assert_eq!(
                verify(Some(&list), Some(&ts), Some(&sig), &tampered, at),
                Err(SignatureError::Mismatch)
            );
        }
    }
});

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The timestamps `verify` accepts: 1 to 12 ASCII digits.
fn plain_digits(ts: &str) -> Option<i64> {
    let ok = (1..=12).contains(&ts.len()) && ts.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| ts.parse().ok()).flatten()
}
