use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, spawn_app_with, TestApp, READ_TOKEN};

/// `GET /api/v1/alerts` as a browser dashboard at https://dash.example.com sends it.
async fn dashboard_get(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/alerts"))
        .bearer_auth(READ_TOKEN)
        .header("origin", "https://dash.example.com")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn summary_counts_by_status_and_urgency() {
    let app = spawn_app().await;
    let a = app.create_alert("critical: db", "1732400000.000001").await;
    app.create_alert("critical: api", "1732400000.000002").await;
    app.create_alert("low: cert", "1732400000.000003").await;
    app.act(&a, "acknowledge", None).await;

    let summary: Value = app
        .get_with("/api/v1/alerts/summary", Some(READ_TOKEN))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(summary["total"], 3);
    assert_eq!(summary["by_status"]["open"], 2);
    assert_eq!(summary["by_status"]["acknowledged"], 1);
    assert_eq!(summary["by_status"]["resolved"], 0);
    assert_eq!(summary["by_urgency"]["critical"], 2);
    assert_eq!(summary["by_urgency"]["low"], 1);
    assert_eq!(summary["by_status_and_urgency"]["open"]["critical"], 1);
    assert_eq!(
        summary["by_status_and_urgency"]["acknowledged"]["critical"],
        1
    );
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = spawn_app_with(|s| s.cors_origins = vec!["https://dash.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/alerts"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://dash.example.com").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://dash.example.com"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let vary = other.headers().get("vary").map(|v| v.to_str().unwrap());
    assert!(
        vary.is_some_and(|v| v.contains("Origin")),
        "a refusal varies by origin: {vary:?}"
    );
    let body = assert_error(other, 400, "cors-refused").await;
    assert!(body.contains("Origin is not allowed"), "{body}");
    let method = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/alerts"))
        .header("origin", "https://dash.example.com")
        .header("access-control-request-method", "BREW")
        .send()
        .await
        .unwrap();
    assert_error(method, 400, "cors-refused").await;

    let res = dashboard_get(&app).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "https://dash.example.com"
    );
    assert!(res
        .headers()
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase()
        .contains("etag"));
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = spawn_app().await;
    let res = dashboard_get(&app).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_browser_can_read_a_429_and_preflights_spend_no_rate() {
    let app = spawn_app_with(|s| {
        s.cors_origins = vec!["https://dash.example.com".into()];
        s.api_rate = klaxon::config::RateLimit {
            per_sec: 1,
            burst: 2,
        };
    })
    .await;
    for _ in 0..5 {
        let preflight = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/alerts"))
            .header("origin", "https://dash.example.com")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(dashboard_get(&app).await.status(), 200);
    }
    let limited = dashboard_get(&app).await;
    let header = |name: &str| {
        limited
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_lowercase())
            .unwrap_or_default()
    };
    assert_eq!(
        header("access-control-allow-origin"),
        "https://dash.example.com"
    );
    assert!(header("access-control-expose-headers").contains("retry-after"));
    assert!(!header("retry-after").is_empty());
    assert_error(limited, 429, "rate-limited").await;
}

#[tokio::test]
async fn a_network_not_allowed_is_refused_without_cors_headers_preflight_or_not() {
    let preflight = |app: &TestApp| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/alerts"))
            .header("origin", "https://dash.example.com")
            .header("access-control-request-method", "GET")
            .send()
    };
    let closed = spawn_app_with(|s| {
        s.cors_origins = vec!["https://dash.example.com".into()];
        s.allow_from_api = vec!["203.0.113.0/24".parse().unwrap()];
    })
    .await;
    let res = preflight(&closed).await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_error(res, 403, "forbidden-network").await;
    // Nor does a plain request tell which origins are allowed.
    let res = dashboard_get(&closed).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_error(res, 403, "forbidden-network").await;

    let open = spawn_app_with(|s| {
        s.cors_origins = vec!["https://dash.example.com".into()];
        s.allow_from_api = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let res = preflight(&open).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://dash.example.com"
    );
}
