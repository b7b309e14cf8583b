use crate::helpers::{assert_error, spawn_app, READ_TOKEN};

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
    for (method, path, allow) in [
        ("GET", "/slack/events", "POST"),
        ("PUT", "/slack/outgoing", "POST"),
        ("DELETE", "/api/v1/alerts", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("GET", "/api/v1/alerts/01jd3k5m8q000/resolve", "POST"),
    ] {
        let res = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_error(res, 405, "method-not-allowed").await;
    }
}

#[tokio::test]
async fn head_answers_wherever_get_does_without_a_body() {
    let app = spawn_app().await;
    app.create_alert("disk full on db-1 (high)", "1732358400.000100")
        .await;
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/alerts",
        "/api/v1/alerts/summary",
    ] {
        let get = app.get_with(path, Some(READ_TOKEN)).await;
        assert_eq!(get.status(), 200, "{path}");
        let get_type = get.headers()["content-type"].clone();
        let get_tag = get.headers().get("etag").cloned();
        assert!(!get.bytes().await.unwrap().is_empty(), "{path}");
        let head = app
            .client
            .head(app.url(path))
            .bearer_auth(READ_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.headers()["content-type"], get_type, "{path}");
        assert_eq!(head.headers().get("etag").cloned(), get_tag, "{path}");
        assert!(head.bytes().await.unwrap().is_empty(), "{path}");
    }
    // The backup's HEAD has GET's headers, without its scan: no length, as
    // GET streams without one.
    let head = app
        .client
        .head(app.url("/api/v1/backup"))
        .bearer_auth(crate::helpers::WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/x-ndjson");
    assert!(
        head.headers().get("content-length").is_none(),
        "{:?}",
        head.headers()
    );
    // HEAD needs the same token as GET.
    let res = app
        .client
        .head(app.url("/api/v1/alerts"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
