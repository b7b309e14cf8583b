//! The alert API handlers: each reads the request, calls the store, maps the result.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{CanRead, CanWrite};
use super::etag;
use super::params::{encode_cursor, ChangeParams, ListParams};
use crate::alert::{AlertId, Status};
use crate::body::{read_body, require_content_type};
use crate::error::ApiError;
use crate::store::{Action, Actor, Changed, Refused, Store};
use crate::telemetry::with_outcome;
use crate::urgency::Urgency;

/// Largest body of a lifecycle request (`{"by": ..., "note": ...}`).
pub const BODY_LIMIT: usize = 16 * 1024;

/// `GET /api/v1/alerts`
pub async fn list(
    _: CanRead,
    req: HttpRequest,
    params: web::Query<ListParams>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let tag = etag::for_store(&store, &req);
    if let Some(unchanged) = etag::not_modified(&req, &tag) {
        return Ok(unchanged);
    }
    let page = store.list(params.into_inner().into_query()?).await?;
    let mut body = Vec::with_capacity(page.alerts.iter().map(|a| a.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"alerts\":[");
    for (i, alert) in page.alerts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(alert);
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    let cursor = page.next.map(encode_cursor);
    serde_json::to_writer(&mut body, &cursor)
        .map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    body.push(b'}');
    Ok(etag::cacheable(HttpResponse::Ok(), &tag)
        .content_type("application/json")
        .body(body))
}

/// `GET /api/v1/alerts/{id}`
pub async fn get(
    _: CanRead,
    req: HttpRequest,
    id: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let alert = store
        .get(parse_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("alert"))?;
    let tag = etag::for_alert(&store, alert.seq);
    if let Some(unchanged) = etag::not_modified(&req, &tag) {
        return Ok(unchanged);
    }
    Ok(etag::cacheable(HttpResponse::Ok(), &tag).json(alert))
}

/// `GET /api/v1/alerts/summary`
pub async fn summary(
    _: CanRead,
    req: HttpRequest,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let tag = etag::for_store(&store, &req);
    if let Some(unchanged) = etag::not_modified(&req, &tag) {
        return Ok(unchanged);
    }
    let counts = store.counts().await?;
    let mut by_status = Map::new();
    let mut by_urgency = Map::new();
    let mut matrix = Map::new();
    for s in Status::ALL {
        let row: Map<String, Value> = Urgency::ALL
            .iter()
            .map(|&u| (u.to_string(), counts.get(s, u).into()))
            .collect();
        by_status.insert(
            s.as_str().into(),
            Urgency::ALL
                .iter()
                .map(|&u| counts.get(s, u))
                .sum::<u64>()
                .into(),
        );
        matrix.insert(s.as_str().into(), row.into());
    }
    for u in Urgency::ALL {
        by_urgency.insert(
            u.to_string(),
            Status::ALL
                .iter()
                .map(|&s| counts.get(s, u))
                .sum::<u64>()
                .into(),
        );
    }
    let total: u64 = Status::ALL
        .iter()
        .flat_map(|&s| Urgency::ALL.map(|u| counts.get(s, u)))
        .sum();
    let body = json!({ "total": total, "by_status": by_status, "by_urgency": by_urgency, "by_status_and_urgency": matrix });
    Ok(etag::cacheable(HttpResponse::Ok(), &tag).json(body))
}

/// `GET /api/v1/changes?after=<seq>&limit=N`
pub async fn changes(
    _: CanRead,
    params: web::Query<ChangeParams>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = params.into_inner().parse()?;
    let page = store.changes(after, limit).await?;
    let mut body = b"{\"alerts\":[".to_vec();
    for (i, alert) in page.alerts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(alert);
    }
    body.extend_from_slice(format!("],\"next_after\":{}}}", page.next_after).as_bytes());
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(body))
}

/// Optional body of the lifecycle routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorBody {
    pub by: Option<String>,
    pub note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/acknowledge`
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
    match store.change(id, action, actor).await? {
        Ok(Changed::Yes(alert)) => {
            let outcome = format!("alert {} now {}", alert.id, alert.status.as_str());
            Ok(with_outcome(
                etag::cacheable(HttpResponse::Ok(), &etag::for_alert(&store, alert.seq))
                    .json(alert),
                outcome,
            ))
        }
        Ok(Changed::AlreadyDone(alert)) => {
            let outcome = format!("alert {} already {}", alert.id, alert.status.as_str());
            Ok(with_outcome(
                etag::cacheable(HttpResponse::Ok(), &etag::for_alert(&store, alert.seq))
                    .json(alert),
                outcome,
            ))
        }
        Err(refused) => Err(refused_error(refused)),
    }
}

/// `POST /api/v1/alerts/{id}/notes` with `{"by": ..., "note": ...}`
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
    serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedBody(e.to_string()))
}

/// An id that cannot parse names no alert.
fn parse_id(raw: &str) -> Result<AlertId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("alert"))
}
