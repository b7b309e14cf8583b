//! The alert API that dashboards poll, under `/api/v1`.

pub mod alerts;
pub mod auth;
mod backup;
mod etag;
pub mod params;

use actix_web::web;

pub use auth::ApiTokens;

/// Registers the API routes. `summary` comes before `{id}` so it is not taken for an id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::startup::resource("/api/v1/alerts").get(alerts::list))
        .service(crate::startup::resource("/api/v1/alerts/summary").get(alerts::summary))
        .service(crate::startup::resource("/api/v1/alerts/{id}").get(alerts::get))
        .service(
            crate::startup::resource("/api/v1/alerts/{id}/acknowledge").post(alerts::acknowledge),
        )
        .service(crate::startup::resource("/api/v1/alerts/{id}/resolve").post(alerts::resolve))
        .service(crate::startup::resource("/api/v1/alerts/{id}/reopen").post(alerts::reopen))
        .service(crate::startup::resource("/api/v1/alerts/{id}/notes").post(alerts::add_note))
        .service(crate::startup::resource("/api/v1/changes").get(alerts::changes))
        .service(crate::startup::resource("/api/v1/backup").get(backup::backup));
}
