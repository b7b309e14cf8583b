//! Request bodies: size limits and content types, shared by every route.

use actix_web::http::header;
use actix_web::web::{Bytes, Payload};
use actix_web::{FromRequest, HttpMessage, HttpRequest};

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

/// 415 unless the request's media type is `expected` (parameters such as charset allowed).
pub fn require_content_type(req: &HttpRequest, expected: &'static str) -> Result<(), ApiError> {
    match req.mime_type() {
        Ok(Some(mime)) if mime.essence_str().eq_ignore_ascii_case(expected) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(expected)),
    }
}
