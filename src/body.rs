//! Request bodies: size limits and content types, shared by every route.

use actix_web::http::header;
use actix_web::web::{Bytes, Payload};
use actix_web::{FromRequest, HttpRequest};

use crate::error::{from_payload_error, ApiError};

/// How long a client may take to send a body (app data; 10 s when absent).
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub std::time::Duration);

/// Reads the whole body, answering 413 as soon as it is known to be too large.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let stream = Payload::from_request(req, payload)
        .await
        .map_err(|_| ApiError::MalformedBody("unreadable body".into()))?;
    let timeout = req
        .app_data::<actix_web::web::Data<BodyTimeout>>()
        .map_or(std::time::Duration::from_secs(10), |t| t.0);
    let read = tokio::time::timeout(timeout, stream.to_bytes_limited(limit))
        .await
        .map_err(|_| ApiError::RequestTimeout)?;
    match read {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(from_payload_error(&e, limit)),
        Err(_) => Err(ApiError::PayloadTooLarge(limit)),
    }
}

/// 415 unless the request has one `Content-Type` whose media type is
/// `expected` (any case, with a UTF-8 charset or none) and no content
/// encoding: klaxon decodes none, so a compressed body would be read as
/// garbage, and a proxy that reads another of two types would be checking
/// another body.
pub fn require_content_type(req: &HttpRequest, expected: &'static str) -> Result<(), ApiError> {
    let refuse = |why: String| Err(ApiError::UnsupportedMediaType(why));
    let mut types = req.headers().get_all(header::CONTENT_TYPE);
    let (Some(value), None) = (types.next(), types.next()) else {
        return refuse(format!("send one Content-Type: {expected}"));
    };
    let value = value.to_str().unwrap_or_default();
    let Some(parts) = split_parameters(value) else {
        return refuse(format!(
            "the Content-Type has an unclosed quote ({expected})"
        ));
    };
    let mut parts = parts.into_iter();
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(expected) {
        return refuse(format!("content type must be {expected}"));
    }
    for param in parts {
        let (name, charset) = param.split_once('=').unwrap_or((param, ""));
        let charset = charset.trim().trim_matches('"');
        let utf8 = ["utf-8", "utf8"]
            .iter()
            .any(|u| charset.eq_ignore_ascii_case(u));
        if name.trim().eq_ignore_ascii_case("charset") && !utf8 {
            return refuse(format!("the charset must be utf-8 ({expected})"));
        }
    }
    // A list, in one header or several; empty items do not count.
    let identity = |v: &header::HeaderValue| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
        })
    };
    if !req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .all(identity)
    {
        return refuse("send the body without a Content-Encoding: klaxon decodes none".into());
    }
    Ok(())
}

/// A media type and its parameters, split at each `;` outside a quoted
/// string (RFC 9110: a quoted parameter value may hold `;` and `\"`).
/// `None` when a quote is left open: what it would hide is unknown.
fn split_parameters(value: &str) -> Option<Vec<&str>> {
    let (mut quoted, mut escaped) = (false, false);
    let parts = value
        .split(|c| {
            match (escaped, quoted, c) {
                (true, ..) => escaped = false,
                (false, true, '\\') => escaped = true,
                (false, _, '"') => quoted = !quoted,
                (false, false, ';') => return true,
                _ => {}
            }
            false
        })
        .collect();
    (!quoted).then_some(parts)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn check(headers: &[(&str, &str)]) -> Result<(), String> {
        let mut req = TestRequest::default();
        for &(name, value) in headers {
            req = req.append_header((name, value));
        }
        require_content_type(&req.to_http_request(), "application/json").map_err(|e| e.to_string())
    }

    #[test]
    fn one_json_content_type_in_utf8_without_an_encoding() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json ;charset=\"UTF-8\"",
            "application/json; charset=utf8",
            "application/json; profile=\"a;charset=latin1\"",
            "application/json;",
        ] {
            assert_eq!(check(&[("content-type", ok)]), Ok(()), "{ok}");
        }
        for identity in ["identity", "", "identity, Identity"] {
            let headers = [
                ("content-type", "application/json"),
                ("content-encoding", identity),
            ];
            assert_eq!(check(&headers), Ok(()), "{identity:?}");
        }
        for (headers, why) in [
            (
                &[("content-type", "text/plain")][..],
                "must be application/json",
            ),
            (&[][..], "one Content-Type"),
            (
                &[
                    ("content-type", "application/json"),
                    ("content-type", "text/plain"),
                ][..],
                "one Content-Type",
            ),
            (
                &[("content-type", "application/json; charset=latin1")][..],
                "utf-8",
            ),
            (
                &[(
                    "content-type",
                    "application/json; x=\"a;b\"; charset=latin1",
                )][..],
                "utf-8",
            ),
            (
                &[(
                    "content-type",
                    "application/json; x=\"a\\\";b\"; charset=latin1",
                )][..],
                "utf-8",
            ),
            (
                &[("content-type", "application/json; x=\"; charset=latin1")][..],
                "unclosed quote",
            ),
            (
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ][..],
                "Content-Encoding",
            ),
            (
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "identity, gzip"),
                ][..],
                "Content-Encoding",
            ),
        ] {
            let refused = check(headers).unwrap_err();
            assert!(refused.contains(why), "{headers:?}: {refused}");
        }
    }
}
