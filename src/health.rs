//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::store::Store;

/// `GET /healthz`: the process is up and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store can be written (durably) and read back.
pub async fn readyz(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    store.probe().await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}
