//! The one error type clients see, always as `{"error": "...", "code": "..."}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::slack::signature::SignatureError;
use crate::store::StoreError;

/// Every failure a client can be told about. Each variant's doc says its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body could not be decoded.
    #[error("malformed body: {0}")]
    MalformedBody(String),
    /// 400: a required field is absent or empty.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// 400: a query string or path parameter is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// 400: a CORS preflight from an origin, or for a method or header, that is not allowed.
    #[error("CORS: {0}")]
    CorsRefused(String),
    /// 401: a Slack signature check failed.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// 401: the outgoing-webhook token is missing or wrong, or none is configured.
    #[error("verification token is missing or wrong")]
    InvalidToken,
    /// 401: no or an unknown bearer token on the alert API (answers `WWW-Authenticate`).
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// 403: a read token tried to change something.
    #[error("this token may only read")]
    Forbidden,
    /// 403: the client's network is not on this route's allow-list.
    #[error("requests from this network are not allowed")]
    ForbiddenNetwork,
    /// 403: the trusted proxy header does not end with a client address,
    /// so the allow-list and rate limit cannot apply.
    #[error("the client address header does not end with an IP address")]
    UnknownClient,
    /// 408: the client was too slow sending its request.
    #[error("request not received in time")]
    RequestTimeout,
    /// 431: the request's headers are larger than the limit.
    #[error("request headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// 429: this client sent too many requests (answers `Retry-After`).
    #[error("too many requests, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// 404: no such alert, or no such route.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 405: the route exists but not with this method; answers `Allow`
    /// with the methods it takes.
    #[error("method not allowed: use {0}")]
    MethodNotAllowed(&'static str),
    /// 409: the alert's status does not allow this change.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the route's limit.
    #[error("body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 415: the body has the wrong content type, a charset other than
    /// UTF-8, or a content encoding (klaxon decodes none).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: the store could not write or read; safe to retry.
    #[error("alert store is unavailable, retry later")]
    Unavailable(#[source] StoreError),
}

impl ApiError {
    /// 400 for a body that did not decode: what was wrong and where, but not
    /// the offending value, which serde's messages quote (a body is never echoed).
    pub fn undecodable(error: impl std::fmt::Display) -> Self {
        Self::MalformedBody(without_client_text(&error.to_string()))
    }

    /// [`ApiError::undecodable`] for a part of the body, named first.
    pub fn undecodable_in(part: &str, error: impl std::fmt::Display) -> Self {
        let message = without_client_text(&error.to_string());
        Self::MalformedBody(format!("in `{part}`: {message}"))
    }

    /// Stable kebab-case code, for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedBody(_) => "malformed-body",
            Self::MissingField(_) => "missing-field",
            Self::InvalidParameter(_) => "invalid-parameter",
            Self::CorsRefused(_) => "cors-refused",
            Self::Signature(e) => e.code(),
            Self::InvalidToken => "invalid-token",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::ForbiddenNetwork => "forbidden-network",
            Self::UnknownClient => "unknown-client-address",
            Self::RequestTimeout => "request-timeout",
            Self::RateLimited { .. } => "rate-limited",
            Self::HeadersTooLarge(_) => "headers-too-large",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::Unavailable(_) => "store-unavailable",
        }
    }
}

/// The body of every error answer; also its schema in the OpenAPI document.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "signature does not match", "code": "invalid-signature"}))]
pub struct ErrorBody<'a> {
    /// What went wrong, for people.
    pub error: String,
    /// Stable kebab-case code, for programs (see README's list).
    pub code: &'a str,
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "1";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedBody(_)
            | Self::MissingField(_)
            | Self::InvalidParameter(_)
            | Self::CorsRefused(_) => StatusCode::BAD_REQUEST,
            Self::Signature(_) | Self::InvalidToken | Self::Unauthenticated => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden | Self::ForbiddenNetwork | Self::UnknownClient => StatusCode::FORBIDDEN,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthenticated => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"klaxon\""));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            Self::MethodNotAllowed(allow) => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
            code: self.code(),
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e)
    }
}

/// A serde error message without the value it quotes:
/// `invalid type: string "x", expected u64 at line 1 column 9` becomes
/// `invalid type, expected u64 at line 1 column 9`. The last `, expected`
/// is the one serde wrote; an earlier one belongs to the value.
pub fn without_value(message: &str) -> String {
    for prefix in ["invalid type", "invalid value", "unknown variant"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(expected) = rest.rfind(", expected") {
                return format!("{prefix}{}", &rest[expected..]);
            }
        }
    }
    message.to_owned()
}

/// For a client's body: also without an unknown field's name, which the
/// client wrote (`unknown field \`x\`, expected ...`). A configuration
/// error keeps it: the operator needs to see the key they mistyped.
fn without_client_text(message: &str) -> String {
    const PREFIX: &str = "unknown field";
    let Some(rest) = message.strip_prefix(PREFIX) else {
        return without_value(message);
    };
    // serde's own words come last; anything before them is the name.
    let tail = [", expected", ", there are no "]
        .into_iter()
        .filter_map(|t| rest.rfind(t))
        .max();
    match tail {
        Some(at) => format!("{PREFIX}{}", &rest[at..]),
        None => PREFIX.to_owned(),
    }
}

/// Maps a failure to read the body into [`ApiError`]: too large is 413,
/// anything else (a broken or truncated upload) is 400.
pub fn from_payload_error(err: &actix_web::Error, limit: usize) -> ApiError {
    use actix_web::error::PayloadError;
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
        _ => ApiError::MalformedBody(format!("body could not be read: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_say_what_and_where_but_not_the_value() {
        let bad: Result<u64, _> = serde_json::from_str("\"secret-ish, expected x\"");
        let message = ApiError::undecodable(bad.unwrap_err()).to_string();
        assert_eq!(
            message,
            "malformed body: invalid type, expected u64 at line 1 column 24"
        );
        #[derive(Debug, serde::Deserialize)]
        enum Kind {
            #[allow(dead_code)]
            Open,
        }
        let bad: Result<Kind, _> = serde_json::from_str("\"secret-ish\"");
        let message = ApiError::undecodable(bad.unwrap_err()).to_string();
        assert!(!message.contains("secret-ish"), "{message}");
        assert!(
            message.starts_with("malformed body: unknown variant, expected"),
            "{message}"
        );
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[allow(dead_code)]
            by: Option<String>,
        }
        let bad: Result<Body, _> = serde_json::from_str(r#"{"xoxb-secret, expected":1}"#);
        let message = ApiError::undecodable(bad.unwrap_err()).to_string();
        assert_eq!(
            message,
            "malformed body: unknown field, expected `by` at line 1 column 24"
        );
        // Messages without a value pass unchanged.
        let bad: Result<Vec<u64>, _> = serde_json::from_str("[1");
        let message = ApiError::undecodable(bad.unwrap_err()).to_string();
        assert_eq!(
            message,
            "malformed body: EOF while parsing a list at line 1 column 2"
        );
    }
}
