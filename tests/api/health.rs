use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let res = app.get_with("/healthz", None).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn readyz_answers_ok_when_the_store_writes_and_reads() {
    let app = spawn_app().await;
    let res = app.get_with("/readyz", None).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    assert_error(app.get_with("/nope", None).await, 404, "not-found").await;
    assert_error(
        app.get_with("/slack/events", None).await,
        405,
        "method-not-allowed",
    )
    .await;
}
