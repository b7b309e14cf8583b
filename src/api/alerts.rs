//! The alert API's read handlers: list, get, summary, changes. Each reads the
//! request, calls the store, maps the result. Changes are in `lifecycle`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::auth::CanRead;
use super::etag;
use super::params::{encode_cursor, ChangeParams, ListParams};
use super::responses::{
    BadRequest, ForbiddenNetwork, HeadersTooLarge, NotFound, NotModified, RateLimited,
    Unauthenticated, Unavailable,
};
use super::schemas::{AlertList, ChangeFeed, IfNoneMatch, Summary};
use crate::alert::{Alert, AlertId, Status};
use crate::error::{ApiError, ErrorBody};
use crate::store::Store;
use crate::urgency::Urgency;

/// `GET /api/v1/alerts`
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    operation_id = "list_alerts",
    tag = "alerts",
    summary = "List alerts, newest first",
    params(ListParams, IfNoneMatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of alerts.", body = AlertList, headers(
            ("ETag" = String, description = "Changes with any change to the store."),
            ("Cache-Control" = String, description = "`no-cache`."))),
        NotModified, BadRequest, Unauthenticated, ForbiddenNetwork, RateLimited,
        HeadersTooLarge, Unavailable
    )
)]
pub async fn list(
    _: CanRead,
    req: HttpRequest,
    params: web::Query<ListParams>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    // Bad parameters are 400 even when the tag matches.
    let query = params.into_inner().into_query()?;
    let tag = etag::for_store(&store, &req).await?;
    if let Some(unchanged) = etag::not_modified(&req, &tag) {
        return Ok(unchanged);
    }
    let page = store.list(query).await?;
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
    let tag = etag::at_seq(&store, &req, page.seq);
    Ok(etag::cacheable(HttpResponse::Ok(), &tag)
        .content_type("application/json")
        .body(body))
}

/// `GET /api/v1/alerts/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/alerts/{id}",
    operation_id = "get_alert",
    tag = "alerts",
    summary = "One alert",
    params(("id" = AlertId, Path, description = "The alert's id."), IfNoneMatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The alert.", body = Alert, headers(
            ("ETag" = String, description = "Changes only when this alert changes."),
            ("Cache-Control" = String, description = "`no-cache`."))),
        NotModified, Unauthenticated, ForbiddenNetwork, NotFound, RateLimited, HeadersTooLarge,
        Unavailable
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/alerts/summary",
    tag = "alerts",
    summary = "Alert counts for dashboard tiles",
    params(IfNoneMatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Counts by status, by urgency, and both.", body = Summary, headers(
            ("ETag" = String, description = "Changes with any change to the store."),
            ("Cache-Control" = String, description = "`no-cache`."))),
        NotModified, Unauthenticated, ForbiddenNetwork, RateLimited, HeadersTooLarge,
        Unavailable
    )
)]
pub async fn summary(
    _: CanRead,
    req: HttpRequest,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let tag = etag::for_store(&store, &req).await?;
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
    let tag = etag::at_seq(&store, &req, counts.seq);
    Ok(etag::cacheable(HttpResponse::Ok(), &tag).json(body))
}

/// `GET /api/v1/changes?after=<seq>&limit=N`
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    tag = "alerts",
    summary = "The change feed, oldest change first",
    description = "Each alert changed after `after` appears once, in its current state, \
        with its `seq`. Only changes already on disk are shown. An `after` beyond the \
        store's latest change, or one the original store may have made after the backup this \
        one was restored from, is refused with 409: read the feed again from `after=0`.",
    params(ChangeParams, IfNoneMatch),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Changed alerts and the next `after`.", body = ChangeFeed,
            headers(
                ("ETag" = String, description = "Changes with any change to the store."),
                ("Cache-Control" = String, description = "`no-cache`."))),
        NotModified,
        (status = 409, description = "`conflict`: `after` is not a change of this store.",
            body = ErrorBody),
        BadRequest, Unauthenticated, ForbiddenNetwork, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn changes(
    _: CanRead,
    req: HttpRequest,
    params: web::Query<ChangeParams>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = params.into_inner().parse()?;
    // The tag names the store instance: one restored or replaced since the
    // tag was made never matches, and gets its 409 below.
    let tag = etag::for_store(&store, &req).await?;
    if let Some(unchanged) = etag::not_modified(&req, &tag) {
        return Ok(unchanged);
    }
    if store.foreign_cursor(after).await? {
        return Err(ApiError::Conflict(format!(
            "`after` {after} is not a change of this store: it was restored from a \
             backup or replaced; read the feed again from after=0"
        )));
    }
    let page = store.changes(after, limit).await?;
    let mut body = b"{\"alerts\":[".to_vec();
    for (i, alert) in page.alerts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(alert);
    }
    body.extend_from_slice(format!("],\"next_after\":{}}}", page.next_after).as_bytes());
    let tag = etag::at_seq(&store, &req, page.seq);
    Ok(etag::cacheable(HttpResponse::Ok(), &tag)
        .content_type("application/json")
        .body(body))
}

/// An id that cannot parse names no alert.
pub(super) fn parse_id(raw: &str) -> Result<AlertId, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("alert"))
}
