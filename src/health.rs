//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::api::responses::{HeadersTooLarge, Unavailable};
use crate::api::schemas::Health;
use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// `GET /healthz`: the process is up and answering, and its store has not
/// stopped on a storage failure (only a restart recovers from that).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    summary = "Liveness: the process is up and answering; its store has not stopped on a storage failure",
    responses(
        (status = 200, description = "Up.", body = Health, example = json!({"status": "ok"})),
        HeadersTooLarge, Unavailable
    )
)]
pub async fn healthz(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    if store.stopped() {
        return Err(StoreError::Closed.into());
    }
    Ok(HttpResponse::Ok().json(json!({"status": "ok"})))
}

/// `GET /readyz`: the store can be written (durably) and read back.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    summary = "Readiness: the store can be written (durably) and read back",
    responses(
        (status = 200, description = "Ready.", body = Health, example = json!({"status": "ready"})),
        HeadersTooLarge, Unavailable
    )
)]
pub async fn readyz(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    store.probe().await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready"})))
}

#[cfg(test)]
mod tests {
    use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
    use actix_web::{web, App};

    use crate::store::{testing, Store, StoreOptions};

    #[actix_web::test]
    async fn healthz_answers_503_once_the_store_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let app = init_service(
            App::new()
                .app_data(web::Data::new(store.clone()))
                .configure(crate::startup::routes),
        )
        .await;
        let healthz = || TestRequest::get().uri("/healthz").to_request();
        assert_eq!(call_service(&app, healthz()).await.status(), 200);

        testing::stop(&store).await;

        let res = call_service(&app, healthz()).await;
        assert_eq!(res.status(), 503);
        let body: serde_json::Value = read_body_json(res).await;
        assert_eq!(body["code"], "store-unavailable", "{body}");
        store.close();
    }
}
