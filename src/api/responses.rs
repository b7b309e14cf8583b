//! The non-2xx answers of the OpenAPI document, one type per status, so each
//! handler's `#[utoipa::path]` lists the ones it can give by name. Every error
//! body is [`ErrorBody`]; see [`ApiError`](crate::error::ApiError) for the codes.

use utoipa::IntoResponses;

use crate::error::ErrorBody;

/// `304`: the `If-None-Match` tag is current; no body.
#[derive(IntoResponses)]
#[response(
    status = 304,
    description = "Not modified: the `If-None-Match` tag is still current. No body.",
    headers(
        ("ETag" = String, description = "The current tag."),
        ("Cache-Control" = String, description = "`no-cache`.")
    )
)]
pub struct NotModified;

/// `400`.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`malformed-body`, `missing-field` or `invalid-parameter`; `cors-refused` for a CORS preflight that is not allowed."
)]
pub struct BadRequest(pub ErrorBody<'static>);

/// `401` on the alert API.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "`unauthenticated`: no bearer token, or an unknown one.",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"klaxon\"`."))
)]
pub struct Unauthenticated(pub ErrorBody<'static>);

/// `401` on `POST /slack/events`.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "The signature check failed: `missing-signature`, `malformed-signature`, \
        `missing-timestamp`, `malformed-timestamp`, `stale-timestamp`, `duplicate-header`, \
        `invalid-signature` or `signing-secret-not-configured`."
)]
pub struct BadSignature(pub ErrorBody<'static>);

/// `401` on `POST /slack/outgoing`.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "`invalid-token`: the verification token is missing or wrong, or none is configured."
)]
pub struct InvalidToken(pub ErrorBody<'static>);

/// `403` where only the network allow-list can refuse.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "`forbidden-network`: the client's network is not on this surface's allow-list; `unknown-client-address`: the trusted proxy header does not end with an address."
)]
pub struct ForbiddenNetwork(pub ErrorBody<'static>);

/// `403` on the routes that need a write token.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "`forbidden`: a read token tried to change something; or `forbidden-network`, `unknown-client-address`."
)]
pub struct Forbidden(pub ErrorBody<'static>);

/// `404`.
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "`not-found`: no such alert (or not an alert id)."
)]
pub struct NotFound(pub ErrorBody<'static>);

/// `408`.
#[derive(IntoResponses)]
#[response(
    status = 408,
    description = "`request-timeout`: the body was not received in time."
)]
pub struct RequestTimeout(pub ErrorBody<'static>);

/// `409`.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "`conflict`: the alert's status does not allow this change, or the note does not fit in the alert (at most 200 notes and 128 KiB of note text)."
)]
pub struct Conflict(pub ErrorBody<'static>);

/// `413`.
#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "`payload-too-large`: 1 MiB on the Slack routes, 16 KiB on the API."
)]
pub struct PayloadTooLarge(pub ErrorBody<'static>);

/// `415`.
#[derive(IntoResponses)]
#[response(
    status = 415,
    description = "`unsupported-media-type`: the body has the wrong content type."
)]
pub struct UnsupportedMediaType(pub ErrorBody<'static>);

/// `429`.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`rate-limited`: this client sent too many requests.",
    headers(("Retry-After" = u64, description = "Seconds to wait."))
)]
pub struct RateLimited(pub ErrorBody<'static>);

/// `431`.
#[derive(IntoResponses)]
#[response(
    status = 431,
    description = "`headers-too-large`: the request's headers are over 32 KiB."
)]
pub struct HeadersTooLarge(pub ErrorBody<'static>);

/// `503`.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "`store-unavailable`: the store could not write or read; safe to retry.",
    headers(("Retry-After" = u64, description = "Seconds to wait."))
)]
pub struct Unavailable(pub ErrorBody<'static>);
