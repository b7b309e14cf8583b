//! Real answers of every JSON route, validated against the document.

use klaxon::config::RateLimit;
use reqwest::Response;
use serde_json::json;

use super::validate::assert_documented;
use crate::helpers::{event_fixture, fixture, spawn_app, spawn_app_with, TestApp};
use crate::helpers::{READ_TOKEN, WRITE_TOKEN};

/// Asserts each answer's status, then that it is as documented.
async fn check(answers: Vec<(&str, &str, Response, u16)>) {
    for (method, template, res, status) in answers {
        assert_eq!(res.status(), status, "{method} {template}");
        assert_documented(method, template, res).await;
    }
}

async fn post(app: &TestApp, path: &str, token: &str, body: Option<(&str, &str)>) -> Response {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some((content_type, body)) = body {
        req = req
            .header("content-type", content_type)
            .body(body.to_owned());
    }
    req.send().await.unwrap()
}

async fn get_if_none_match(app: &TestApp, path: &str, tag: &str) -> Response {
    let req = app.client.get(app.url(path)).bearer_auth(READ_TOKEN);
    req.header("if-none-match", tag).send().await.unwrap()
}

#[tokio::test]
async fn slack_answers_match_the_document() {
    let app = spawn_app().await;
    let (ev, out) = ("/slack/events", "/slack/outgoing");
    let form = fixture("outgoing/pagertree_outage_high.form");
    let bad_token = form.replace("token=X", "token=Y");
    let wrong_type = post(&app, out, "-", Some(("text/plain", "token=x"))).await;
    let mut reply = event_fixture("thread_reply");
    reply["event"]["text"] = "ack".into();
    check(vec![
        ("POST", out, app.post_outgoing(&form).await, 200),
        ("POST", out, app.post_outgoing(&form).await, 200),
        ("POST", out, app.post_outgoing(&bad_token).await, 401),
        (
            "POST",
            out,
            app.post_outgoing("token=XXXXXXXXXXXXXXXXXX").await,
            400,
        ),
        ("POST", out, wrong_type, 415),
        (
            "POST",
            ev,
            app.post_event(&event_fixture("url_verification")).await,
            200,
        ),
        (
            "POST",
            ev,
            app.post_event(&event_fixture("message")).await,
            200,
        ),
        (
            "POST",
            ev,
            app.post_event(&event_fixture("message")).await,
            200,
        ),
        ("POST", ev, app.post_event(&reply).await, 200),
        (
            "POST",
            ev,
            app.post_event(&event_fixture("bot_message_subtype")).await,
            200,
        ),
        (
            "POST",
            ev,
            app.post_event(&event_fixture("app_rate_limited")).await,
            200,
        ),
        (
            "POST",
            ev,
            app.post_event_signed(b"{}".to_vec(), None, None).await,
            401,
        ),
        (
            "POST",
            ev,
            app.post_event_raw(b"not json".to_vec(), &[]).await,
            400,
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_thread_reply_answers_the_alert_status() {
    let app = spawn_app().await;
    app.post_event(&event_fixture("message")).await;
    let mut reply = event_fixture("thread_reply");
    reply["event"]["text"] = "resolved".into();
    let res = app.post_event(&reply).await;
    let body = assert_documented("POST", "/slack/events", res).await;
    assert_eq!(body["status"], "resolved", "{body}");
}

#[tokio::test]
async fn alert_reads_match_the_document() {
    let app = spawn_app().await;
    let id = app
        .create_alert("CRITICAL: checkout down", "1732358500.000100")
        .await;
    app.create_alert("slow queries (low)", "1732358501.000100")
        .await;
    let (list, one) = ("/api/v1/alerts", "/api/v1/alerts/{id}");
    let page = app
        .get_with("/api/v1/alerts?limit=1", Some(READ_TOKEN))
        .await;
    let list_tag = page.headers()["etag"].to_str().unwrap().to_owned();
    let alert = app.get_alert(&id).await;
    let alert_tag = alert.headers()["etag"].to_str().unwrap().to_owned();
    check(vec![
        ("GET", list, page, 200),
        (
            "GET",
            list,
            app.get_with("/api/v1/alerts?status=open,resolved", Some(READ_TOKEN))
                .await,
            200,
        ),
        (
            "GET",
            list,
            get_if_none_match(&app, "/api/v1/alerts?limit=1", &list_tag).await,
            304,
        ),
        (
            "GET",
            list,
            app.get_with("/api/v1/alerts?limit=0", Some(READ_TOKEN))
                .await,
            400,
        ),
        ("GET", list, app.get_with("/api/v1/alerts", None).await, 401),
        (
            "GET",
            list,
            app.get_with("/api/v1/alerts", Some("wrong")).await,
            401,
        ),
        ("GET", one, alert, 200),
        (
            "GET",
            one,
            get_if_none_match(&app, &format!("/api/v1/alerts/{id}"), &alert_tag).await,
            304,
        ),
        ("GET", one, app.get_alert("0000000000000").await, 404),
        (
            "GET",
            "/api/v1/alerts/summary",
            app.get_with("/api/v1/alerts/summary", Some(READ_TOKEN))
                .await,
            200,
        ),
        (
            "GET",
            "/api/v1/changes",
            app.get_with("/api/v1/changes?after=0", Some(READ_TOKEN))
                .await,
            200,
        ),
        (
            "GET",
            "/api/v1/changes",
            app.get_with("/api/v1/changes?after=x", Some(READ_TOKEN))
                .await,
            400,
        ),
        (
            "GET",
            "/api/v1/backup",
            app.get_with("/api/v1/backup", Some(WRITE_TOKEN)).await,
            200,
        ),
        (
            "GET",
            "/api/v1/backup",
            app.get_with("/api/v1/backup", Some(READ_TOKEN)).await,
            403,
        ),
    ])
    .await;
}

#[tokio::test]
async fn alert_changes_match_the_document() {
    let app = spawn_app().await;
    let id = app
        .create_alert("CRITICAL: checkout down", "1732358500.000100")
        .await;
    let path = |action: &str| format!("/api/v1/alerts/{id}/{action}");
    let template = |action: &str| format!("/api/v1/alerts/{{id}}/{action}");
    let actor = Some(("application/json", r#"{"by":"ana","note":"rolling back"}"#));
    let mut answers = Vec::new();
    for (action, token, body, status) in [
        ("acknowledge", WRITE_TOKEN, actor, 200),
        ("acknowledge", WRITE_TOKEN, None, 200),
        ("resolve", WRITE_TOKEN, None, 200),
        ("acknowledge", WRITE_TOKEN, None, 409),
        ("reopen", WRITE_TOKEN, None, 200),
        ("notes", WRITE_TOKEN, actor, 201),
        ("notes", WRITE_TOKEN, None, 400),
        (
            "notes",
            WRITE_TOKEN,
            Some(("application/json", r#"{"nope":1}"#)),
            400,
        ),
        ("notes", WRITE_TOKEN, Some(("text/plain", "hello")), 415),
        ("notes", READ_TOKEN, actor, 403),
        ("resolve", "wrong", None, 401),
    ] {
        let res = post(&app, &path(action), token, body).await;
        answers.push((action, res, status));
    }
    for (action, res, status) in answers {
        check(vec![("POST", template(action).as_str(), res, status)]).await;
    }
    let big = json!({"note": "x".repeat(20_000)}).to_string();
    let res = post(
        &app,
        &path("notes"),
        WRITE_TOKEN,
        Some(("application/json", &big)),
    )
    .await;
    check(vec![("POST", "/api/v1/alerts/{id}/notes", res, 413)]).await;
    let res = post(
        &app,
        "/api/v1/alerts/0000000000000/resolve",
        WRITE_TOKEN,
        None,
    )
    .await;
    check(vec![("POST", "/api/v1/alerts/{id}/resolve", res, 404)]).await;

    // Notes full (128 KiB of text): resolving or reopening with a note that
    // does not fit is a 409.
    let long = json!({"note": "n".repeat(15_000)}).to_string();
    let mut added = 0;
    while post(
        &app,
        &path("notes"),
        WRITE_TOKEN,
        Some(("application/json", &long)),
    )
    .await
    .status()
        == 201
    {
        added += 1;
        assert!(
            added < 20,
            "128 KiB of notes should be full after 9 notes of 15,000"
        );
    }
    let with_note = Some(("application/json", long.as_str()));
    let full = post(&app, &path("resolve"), WRITE_TOKEN, with_note).await;
    check(vec![("POST", "/api/v1/alerts/{id}/resolve", full, 409)]).await;
    assert_eq!(
        post(&app, &path("resolve"), WRITE_TOKEN, None)
            .await
            .status(),
        200
    );
    let full = post(&app, &path("reopen"), WRITE_TOKEN, with_note).await;
    check(vec![("POST", "/api/v1/alerts/{id}/reopen", full, 409)]).await;
}

#[tokio::test]
async fn health_metrics_and_guard_answers_match_the_document() {
    let app = spawn_app().await;
    let huge = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(64 * 1024));
    check(vec![
        ("GET", "/healthz", app.get_with("/healthz", None).await, 200),
        ("GET", "/readyz", app.get_with("/readyz", None).await, 200),
        (
            "GET",
            "/metrics",
            app.get_with("/metrics", Some(READ_TOKEN)).await,
            200,
        ),
        ("GET", "/metrics", app.get_with("/metrics", None).await, 401),
        ("GET", "/healthz", huge.send().await.unwrap(), 431),
    ])
    .await;

    let fenced = spawn_app_with(|s| s.allow_from_api = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let res = fenced.get_with("/api/v1/alerts", Some(READ_TOKEN)).await;
    let metrics = fenced.get_with("/metrics", Some(READ_TOKEN)).await;
    check(vec![
        ("GET", "/api/v1/alerts", res, 403),
        ("GET", "/metrics", metrics, 403),
    ])
    .await;

    let limited = spawn_app_with(|s| {
        s.api_rate = RateLimit {
            per_sec: 1,
            burst: 1,
        }
    })
    .await;
    let first = limited.get_with("/api/v1/openapi.json", None).await;
    let second = limited.get_with("/api/v1/openapi.json", None).await;
    check(vec![
        ("GET", "/api/v1/openapi.json", first, 200),
        ("GET", "/api/v1/openapi.json", second, 429),
    ])
    .await;
}
