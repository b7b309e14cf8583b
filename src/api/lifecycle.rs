//! The lifecycle handlers: acknowledge, resolve, reopen and notes. Each change
//! is on disk before the 2xx.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::alerts::parse_id;
use super::auth::CanWrite;
use super::etag;
use super::responses::{
    BadRequest, Conflict, Forbidden, HeadersTooLarge, NotFound, PayloadTooLarge, RateLimited,
    RequestTimeout, Unauthenticated, Unavailable, UnsupportedMediaType,
};
use crate::alert::{Alert, AlertId, MAX_ACTOR_BYTES};
use crate::body::{read_body, require_content_type};
use crate::error::ApiError;
use crate::store::{Action, Actor, Changed, Refused, Store};
use crate::telemetry::with_outcome;

/// Largest body of a lifecycle request (`{"by": ..., "note": ...}`).
pub const BODY_LIMIT: usize = 16 * 1024;

/// Optional body of the lifecycle routes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"by": "ana", "note": "rolling back"}))]
pub struct ActorBody {
    /// Who did it (recorded as `acknowledged_by`/`resolved_by` or the note's user); at most 255 bytes of UTF-8; blank is no one.
    pub by: Option<String>,
    /// A note to add with the change; required by `/notes`.
    pub note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/acknowledge`
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/acknowledge",
    tag = "alerts",
    summary = "Acknowledge an alert",
    params(("id" = AlertId, Path, description = "The alert's id.")),
    request_body(content = Option<ActorBody>, content_type = "application/json",
        description = "Optional; an empty body is no actor."),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The alert after the change (also when it was already done).",
            body = Alert, headers(
                ("ETag" = String, description = "The alert's tag."),
                ("Cache-Control" = String, description = "`no-cache`."))),
        BadRequest, Unauthenticated, Forbidden, NotFound, RequestTimeout, Conflict,
        PayloadTooLarge, UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn acknowledge(
    w: CanWrite,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    act(w, req, id, body, store, Action::Acknowledge).await
}

/// `POST /api/v1/alerts/{id}/resolve`
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/resolve",
    tag = "alerts",
    summary = "Resolve an alert",
    params(("id" = AlertId, Path, description = "The alert's id.")),
    request_body(content = Option<ActorBody>, content_type = "application/json",
        description = "Optional; an empty body is no actor."),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The alert after the change (also when it was already done).",
            body = Alert, headers(
                ("ETag" = String, description = "The alert's tag."),
                ("Cache-Control" = String, description = "`no-cache`."))),
        BadRequest, Unauthenticated, Forbidden, NotFound, RequestTimeout, Conflict,
        PayloadTooLarge, UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn resolve(
    w: CanWrite,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    act(w, req, id, body, store, Action::Resolve).await
}

/// `POST /api/v1/alerts/{id}/reopen`
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/reopen",
    tag = "alerts",
    summary = "Reopen an alert",
    params(("id" = AlertId, Path, description = "The alert's id.")),
    request_body(content = Option<ActorBody>, content_type = "application/json",
        description = "Optional; an empty body is no actor."),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The alert after the change (also when it was already done).",
            body = Alert, headers(
                ("ETag" = String, description = "The alert's tag."),
                ("Cache-Control" = String, description = "`no-cache`."))),
        BadRequest, Unauthenticated, Forbidden, NotFound, RequestTimeout, Conflict,
        PayloadTooLarge, UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn reopen(
    w: CanWrite,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    act(w, req, id, body, store, Action::Reopen).await
}

async fn act(
    _: CanWrite,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    store: web::Data<Store>,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = actor_body(&req, body).await?;
    let actor = Actor {
        by: body.by,
        note: body.note,
        ts: None,
    };
    let (alert, how) = match store.change(id, action, actor).await? {
        Ok(Changed::Yes(alert)) => (alert, "now"),
        Ok(Changed::AlreadyDone(alert)) => (alert, "already"),
        Err(refused) => return Err(refused_error(refused)),
    };
    let outcome = format!("alert {} {how} {}", alert.id, alert.status.as_str());
    Ok(with_outcome(
        etag::cacheable(HttpResponse::Ok(), &etag::for_alert(&store, alert.seq)).json(alert),
        outcome,
    ))
}

/// `POST /api/v1/alerts/{id}/notes` with `{"by": ..., "note": ...}`
#[utoipa::path(
    post,
    path = "/api/v1/alerts/{id}/notes",
    tag = "alerts",
    summary = "Add a note to an alert",
    params(("id" = AlertId, Path, description = "The alert's id.")),
    request_body(content = ActorBody, content_type = "application/json",
        description = "`note` is required."),
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The alert with the note added.", body = Alert, headers(
            ("ETag" = String, description = "The alert's tag."),
            ("Cache-Control" = String, description = "`no-cache`."))),
        BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, RequestTimeout,
        PayloadTooLarge, UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn add_note(
    _: CanWrite,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Payload,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = actor_body(&req, body).await?;
    let note = body
        .note
        .filter(|n| !n.trim().is_empty())
        .ok_or(ApiError::MissingField("note"))?;
    let actor = Actor {
        by: body.by,
        note: Some(note),
        ts: None,
    };
    let alert = store.add_note(id, actor).await?.map_err(refused_error)?;
    let outcome = format!("note added to alert {}", alert.id);
    let response = etag::cacheable(
        HttpResponse::build(StatusCode::CREATED),
        &etag::for_alert(&store, alert.seq),
    )
    .json(alert);
    Ok(with_outcome(response, outcome))
}

fn refused_error(refused: Refused) -> ApiError {
    match refused {
        Refused::NotFound => ApiError::NotFound("alert"),
        Refused::Conflict(why) => ApiError::Conflict(why.to_owned()),
    }
}

/// An empty body is no actor; anything else must be the JSON object.
async fn actor_body(req: &HttpRequest, body: web::Payload) -> Result<ActorBody, ApiError> {
    let mut payload = body.into_inner();
    let bytes = read_body(req, &mut payload, BODY_LIMIT).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActorBody::default());
    }
    require_content_type(req, "application/json")?;
    // serde would also read a struct from an array (`["ana", "note"]`).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::MalformedBody(
            "the body must be a JSON object".into(),
        ));
    }
    let mut body: ActorBody = serde_json::from_slice(&bytes).map_err(ApiError::undecodable)?;
    // A blank name is no name, as a body without `by` (not a user called "").
    body.by = body.by.filter(|by| !by.trim().is_empty());
    if body
        .by
        .as_ref()
        .is_some_and(|by| by.len() > MAX_ACTOR_BYTES)
    {
        return Err(ApiError::MalformedBody(format!(
            "field `by` is longer than {MAX_ACTOR_BYTES} bytes"
        )));
    }
    Ok(body)
}
