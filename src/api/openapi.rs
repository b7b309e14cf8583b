//! The OpenAPI 3.1 description of every route, generated from the handlers'
//! `#[utoipa::path]` annotations and the types' `ToSchema` derives, and served
//! at `GET /api/v1/openapi.json`. The integration tests check that every route
//! is documented and that real answers validate against it.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use super::lifecycle::ActorBody;
use super::responses::{ForbiddenNetwork, HeadersTooLarge, RateLimited};
use super::schemas::{
    AlertList, Challenge, ChangeFeed, EventAck, EventAnswer, EventEnvelope, Health, OutgoingReply,
    StatusCounts, StatusUrgencyCounts, Summary, UrgencyCounts,
};
use crate::alert::{Alert, AlertId, Note, SlackRef, Source, Status};
use crate::error::ErrorBody;
use crate::slack::events::Event;
use crate::slack::outgoing::OutgoingForm;
use crate::urgency::{Urgency, UrgencySource};

/// The document. `ApiDoc::openapi()` builds it; [`document`] serves it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "klaxon",
        version = env!("CARGO_PKG_VERSION"),
        description = "Turns Slack messages into on-call alerts and serves them to dashboards. \
            Every error is JSON (`ErrorBody`) with a stable `code`. Any route answers 405 \
            `method-not-allowed` to a method it does not serve, and an unknown path answers \
            404 `not-found`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::slack::outgoing::receive,
        crate::slack::events::receive,
        super::alerts::list,
        super::alerts::summary,
        super::alerts::get,
        super::lifecycle::acknowledge,
        super::lifecycle::resolve,
        super::lifecycle::reopen,
        super::lifecycle::add_note,
        super::alerts::changes,
        super::backup::backup,
        document,
        crate::metrics::guarded_endpoint,
    ),
    components(schemas(
        Alert, AlertId, Status, Urgency, UrgencySource, Source, SlackRef, Note, AlertList,
        ChangeFeed, Summary, StatusCounts, UrgencyCounts, StatusUrgencyCounts, ActorBody,
        ErrorBody, Health, OutgoingForm, OutgoingReply, EventEnvelope, Event, EventAnswer,
        Challenge, EventAck
    )),
    modifiers(&BearerAuth, &OptionalBodies),
    tags(
        (name = "health", description = "Liveness and readiness probes."),
        (name = "slack", description = "What Slack posts: outgoing webhooks and the Events API."),
        (name = "alerts", description = "The alert API that dashboards poll and people act on."),
        (name = "admin", description = "Backups."),
        (name = "meta", description = "This document."),
        (name = "metrics", description = "Prometheus metrics.")
    )
)]
pub struct ApiDoc;

/// Adds the `bearerAuth` scheme that the alert API and `/metrics` name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token from KLAXON_READ_TOKENS (read) or KLAXON_WRITE_TOKENS (read and change).",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// An `Option<T>` request body may be left out; it may not be `null`. utoipa
/// writes it as `oneOf: [null, T]` (and not required): keep just `T`.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.put, &mut item.patch];
            let bodies = operations
                .into_iter()
                .flatten()
                .flat_map(|o| &mut o.request_body);
            for content in bodies.flat_map(|b| b.content.values_mut()) {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                    let mut rest = one_of.items.iter().filter(|s| !is_null(s));
                    if let (Some(only), None) = (rest.next(), rest.next()) {
                        content.schema = Some(only.clone());
                    }
                }
            }
        }
    }
}

/// The document as JSON, built once.
pub fn json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| {
        serde_json::to_vec(&ApiDoc::openapi()).expect("the OpenAPI document is plain JSON")
    })
}

/// `GET /api/v1/openapi.json`: no auth, as it holds no data.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    responses(
        (status = 200, description = "The document.", body = Object),
        ForbiddenNetwork, RateLimited, HeadersTooLarge
    )
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}
