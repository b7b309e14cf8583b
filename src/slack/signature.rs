//! Slack's v0 request signature: HMAC-SHA256 over `v0:{timestamp}:{body}`,
//! with the timestamp inside a ±5 minute window.

use std::future::Future;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::web::{self, Bytes};
use actix_web::{dev, FromRequest, HttpRequest};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::{SlackSettings, BODY_LIMIT};
use crate::body::read_body;
use crate::error::ApiError;
use crate::secret::SecretList;

/// How far a request timestamp may be from now, either way.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a signed request was refused. Every variant answers 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Slack-Request-Timestamp header is missing")]
    MissingTimestamp,
    #[error("X-Slack-Request-Timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error("X-Slack-Request-Timestamp is more than 5 minutes from now")]
    StaleTimestamp,
    #[error("X-Slack-Signature header is missing")]
    MissingSignature,
    #[error("X-Slack-Signature is not v0= followed by 64 lowercase hex digits")]
    MalformedSignature,
    #[error("a Slack signature header was sent more than once")]
    DuplicateHeader,
    #[error("signature does not match")]
    Mismatch,
    #[error("no Slack signing secret is configured")]
    NotConfigured,
}

impl SignatureError {
    /// Stable kebab-case code for the JSON error body and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingTimestamp => "missing-timestamp",
            Self::MalformedTimestamp => "malformed-timestamp",
            Self::StaleTimestamp => "stale-timestamp",
            Self::MissingSignature => "missing-signature",
            Self::MalformedSignature => "malformed-signature",
            Self::DuplicateHeader => "duplicate-header",
            Self::Mismatch => "invalid-signature",
            Self::NotConfigured => "signing-secret-not-configured",
        }
    }
}

/// Checks a request's `timestamp` and `signature` headers against `body`.
/// Every configured secret is tried, in constant time and without early exit.
pub fn verify(
    secrets: Option<&SecretList>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let secrets = secrets.ok_or(SignatureError::NotConfigured)?;
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    let signature = signature.ok_or(SignatureError::MissingSignature)?;
    let given = check_headers(timestamp, signature, now_unix)?;
    check_mac(secrets, timestamp, &given, body)
}

/// What can be checked before the body is read: the timestamp is a Unix
/// time in the window, and the signature is well-formed (returned as bytes).
fn check_headers(
    timestamp: &str,
    signature: &str,
    now_unix: i64,
) -> Result<[u8; 32], SignatureError> {
    let sent_at = parse_timestamp(timestamp)?;
    if now_unix.abs_diff(sent_at) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    parse_signature(signature)
}

/// The signature `given` against every secret, in constant time and without early exit.
fn check_mac(
    secrets: &SecretList,
    timestamp: &str,
    given: &[u8; 32],
    body: &[u8],
) -> Result<(), SignatureError> {
    let mut matched = Choice::from(0);
    for secret in secrets.iter() {
        matched |= expected(secret.expose().as_bytes(), timestamp, body).ct_eq(given);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A request body whose Slack signature was verified: taking one as a
/// handler argument makes the handler authenticated by construction.
pub struct SignedBody(Bytes);

impl SignedBody {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromRequest for SignedBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            // The shared settings, not a copy of the secrets, per request.
            let settings = req.app_data::<web::Data<SlackSettings>>().cloned();
            let secrets = settings
                .as_deref()
                .and_then(|s| s.signing_secrets.as_ref())
                .ok_or(SignatureError::NotConfigured)?;
            // Header checks first: an unsigned or stale request costs no body read.
            let timestamp = single_header(
                &req,
                "x-slack-request-timestamp",
                SignatureError::MalformedTimestamp,
            )?
            .ok_or(SignatureError::MissingTimestamp)?;
            let signature = single_header(
                &req,
                "x-slack-signature",
                SignatureError::MalformedSignature,
            )?
            .ok_or(SignatureError::MissingSignature)?;
            let given = check_headers(&timestamp, &signature, unix_now())?;
            let body = read_body(&req, &mut payload, BODY_LIMIT).await?;
            check_mac(secrets, &timestamp, &given, &body)?;
            Ok(SignedBody(body))
        })
    }
}

/// The header's value; sent twice or not text is refused.
fn single_header(
    req: &HttpRequest,
    name: &str,
    malformed: SignatureError,
) -> Result<Option<String>, SignatureError> {
    let mut values = req.headers().get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SignatureError::DuplicateHeader);
    }
    first
        .to_str()
        .map(|v| Some(v.to_owned()))
        .map_err(|_| malformed)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The signature Slack would send for `body` at `timestamp` under `secret`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("v0={}", hex::encode(expected(secret, timestamp, body)))
}

fn expected(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Plain decimal digits only: no sign, no spaces, no overflow.
fn parse_timestamp(raw: &str) -> Result<i64, SignatureError> {
    if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    raw.parse().map_err(|_| SignatureError::MalformedTimestamp)
}

fn parse_signature(raw: &str) -> Result<[u8; 32], SignatureError> {
    let hex_digits = raw
        .strip_prefix("v0=")
        .ok_or(SignatureError::MalformedSignature)?;
    let lowercase_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex_digits.len() != 64 || !hex_digits.bytes().all(lowercase_hex) {
        return Err(SignatureError::MalformedSignature);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut out).map_err(|_| SignatureError::MalformedSignature)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from Slack's "Verifying requests from Slack" page.
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TIMESTAMP: &str = "1531420618";
    const SLACK_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const SLACK_BODY: &str = include_str!("../../fixtures/slack/signing_example.form");

    fn secrets(raw: &str) -> SecretList {
        SecretList::parse(raw).unwrap()
    }

    fn check(
        list: &SecretList,
        ts: &str,
        sig: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        verify(Some(list), Some(ts), Some(sig), body, now)
    }

    #[test]
    fn slack_published_example_verifies() {
        let body = SLACK_BODY.trim_end_matches('\n').as_bytes();
        assert_eq!(body.len(), 362);
        assert_eq!(
            sign(SLACK_SECRET.as_bytes(), SLACK_TIMESTAMP, body),
            SLACK_SIGNATURE
        );
        let now = 1_531_420_618 + 10;
        assert_eq!(
            check(
                &secrets(SLACK_SECRET),
                SLACK_TIMESTAMP,
                SLACK_SIGNATURE,
                body,
                now
            ),
            Ok(())
        );
        // Any of several configured secrets verifies (rotation), wherever it
        // stands in the list.
        for list in [
            format!("old-secret,{SLACK_SECRET}"),
            format!("{SLACK_SECRET},new-secret"),
            format!("a,{SLACK_SECRET},b"),
        ] {
            assert_eq!(
                check(&secrets(&list), SLACK_TIMESTAMP, SLACK_SIGNATURE, body, now),
                Ok(()),
                "the secret among {} others",
                list.split(',').count() - 1
            );
        }
        let others = secrets("old-secret,new-secret");
        assert!(check(&others, SLACK_TIMESTAMP, SLACK_SIGNATURE, body, now).is_err());
    }

    #[test]
    fn window_is_five_minutes_both_ways() {
        let list = secrets("s");
        let body = b"{}";
        let at = |ts: i64| {
            let ts = ts.to_string();
            let sig = sign(b"s", &ts, body);
            check(&list, &ts, &sig, body, 10_000)
        };
        assert_eq!(at(10_000 - 300), Ok(()));
        assert_eq!(at(10_000 + 300), Ok(()));
        assert_eq!(at(10_000 - 301), Err(SignatureError::StaleTimestamp));
        assert_eq!(at(10_000 + 301), Err(SignatureError::StaleTimestamp));
    }

    #[test]
    fn adversarial_signatures_are_refused() {
        let list = secrets("s");
        let body = br#"{"type":"event_callback"}"#;
        let good = sign(b"s", "1000", body);
        let cases = [
            ("", SignatureError::MalformedSignature),
            ("v0=", SignatureError::MalformedSignature),
            (&good[..good.len() - 1], SignatureError::MalformedSignature),
            (&format!("{good}0"), SignatureError::MalformedSignature),
            (
                &good.replacen("v0=", "v1=", 1),
                SignatureError::MalformedSignature,
            ),
            (
                &good.to_uppercase().replacen("V0=", "v0=", 1),
                SignatureError::MalformedSignature,
            ),
            (&sign(b"s", "1001", body), SignatureError::Mismatch),
            (&sign(b"other", "1000", body), SignatureError::Mismatch),
        ];
        for (sig, want) in cases {
            assert_eq!(check(&list, "1000", sig, body, 1000), Err(want), "{sig:?}");
        }
        assert_eq!(check(&list, "1000", &good, body, 1000), Ok(()));
    }

    #[test]
    fn every_tampered_byte_is_detected() {
        let list = secrets("s");
        let body = br#"{"event":{"text":"db down critical"}}"#.to_vec();
        let sig = sign(b"s", "1000", &body);
        for i in 0..body.len() {
            let mut tampered = body.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                check(&list, "1000", &sig, &tampered, 1000),
                Err(SignatureError::Mismatch)
            );
        }
    }

    /// Found by the fuzzer (fuzz/regressions/signature): a clock near
    /// i64::MIN made the skew computation overflow instead of refusing.
    #[test]
    fn extreme_clocks_are_stale_not_a_panic() {
        let list = secrets("s");
        let sig = sign(b"s", "1", b"{}");
        for now in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert_eq!(
                check(&list, "1", &sig, b"{}", now),
                Err(SignatureError::StaleTimestamp)
            );
        }
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        let list = secrets("s");
        for ts in [
            "",
            "abc",
            "-1000",
            "+1000",
            " 1000",
            "1000.5",
            "99999999999999999999999",
        ] {
            let sig = sign(b"s", ts, b"{}");
            assert_eq!(
                check(&list, ts, &sig, b"{}", 1000),
                Err(SignatureError::MalformedTimestamp),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn timestamps_of_twelve_digits_are_read_and_longer_ones_are_malformed() {
        let list = secrets("s");
        let at_now = |ts: &str| {
            let sig = sign(b"s", ts, b"{}");
            check(&list, ts, &sig, b"{}", ts.parse().unwrap())
        };
        assert_eq!(at_now("999999999999"), Ok(()));
        // Thirteen digits fit an i64 but are refused before parsing.
        assert_eq!(
            at_now("1000000000000"),
            Err(SignatureError::MalformedTimestamp)
        );
        assert_eq!(
            at_now("0000001531420"),
            Err(SignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn missing_parts_and_missing_configuration_fail_closed() {
        let list = secrets("s");
        let sig = sign(b"s", "1000", b"{}");
        assert_eq!(
            verify(None, Some("1000"), Some(&sig), b"{}", 1000),
            Err(SignatureError::NotConfigured)
        );
        assert_eq!(
            verify(Some(&list), None, Some(&sig), b"{}", 1000),
            Err(SignatureError::MissingTimestamp)
        );
        assert_eq!(
            verify(Some(&list), Some("1000"), None, b"{}", 1000),
            Err(SignatureError::MissingSignature)
        );
    }
}
