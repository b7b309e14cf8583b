//! The alert API that dashboards poll, under `/api/v1`.

pub mod alerts;
pub mod auth;
mod backup;
mod etag;
pub mod lifecycle;
pub mod openapi;
pub mod params;
pub mod responses;
pub mod schemas;

use actix_web::web;

use crate::startup::{get, post};

pub use auth::ApiTokens;

/// Registers the API routes. `summary` comes before `{id}` so it is not taken for an id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get("/api/v1/alerts", alerts::list))
        .service(get("/api/v1/alerts/summary", alerts::summary))
        .service(get("/api/v1/alerts/{id}", alerts::get))
        .service(post(
            "/api/v1/alerts/{id}/acknowledge",
            lifecycle::acknowledge,
        ))
        .service(post("/api/v1/alerts/{id}/resolve", lifecycle::resolve))
        .service(post("/api/v1/alerts/{id}/reopen", lifecycle::reopen))
        .service(post("/api/v1/alerts/{id}/notes", lifecycle::add_note))
        .service(get("/api/v1/changes", alerts::changes))
        .service(get("/api/v1/backup", backup::backup))
        .service(get("/api/v1/openapi.json", openapi::document));
}
