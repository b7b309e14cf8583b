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

pub use auth::ApiTokens;

/// Registers the API routes. `summary` comes before `{id}` so it is not taken for an id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::startup::resource("/api/v1/alerts").get(alerts::list))
        .service(crate::startup::resource("/api/v1/alerts/summary").get(alerts::summary))
        .service(crate::startup::resource("/api/v1/alerts/{id}").get(alerts::get))
        .service(
            crate::startup::resource("/api/v1/alerts/{id}/acknowledge")
                .post(lifecycle::acknowledge),
        )
        .service(crate::startup::resource("/api/v1/alerts/{id}/resolve").post(lifecycle::resolve))
        .service(crate::startup::resource("/api/v1/alerts/{id}/reopen").post(lifecycle::reopen))
        .service(crate::startup::resource("/api/v1/alerts/{id}/notes").post(lifecycle::add_note))
        .service(crate::startup::resource("/api/v1/changes").get(alerts::changes))
        .service(crate::startup::resource("/api/v1/backup").get(backup::backup))
        .service(crate::startup::resource("/api/v1/openapi.json").get(openapi::document));
}
