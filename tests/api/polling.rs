use reqwest::Response;

use crate::helpers::{spawn_app, TestApp, READ_TOKEN};

async fn poll(app: &TestApp, path: &str, tag: Option<&str>) -> Response {
    let mut req = app.client.get(app.url(path)).bearer_auth(READ_TOKEN);
    if let Some(tag) = tag {
        req = req.header("if-none-match", tag);
    }
    req.send().await.unwrap()
}

fn tag_of(res: &Response) -> String {
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-cache");
    res.headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

/// 304 with no body and the same tag.
async fn assert_unchanged(app: &TestApp, path: &str, tag: &str) {
    assert_unchanged_for(app, path, tag, tag).await;
}

async fn assert_unchanged_for(app: &TestApp, path: &str, if_none_match: &str, tag: &str) {
    let res = poll(app, path, Some(if_none_match)).await;
    assert_eq!(res.status(), 304, "{path}");
    assert_eq!(tag_of(&res), tag);
    assert!(res.bytes().await.unwrap().is_empty());
}

/// 200 with a new tag; returns it.
async fn assert_changed(app: &TestApp, path: &str, old: &str) -> String {
    let res = poll(app, path, Some(old)).await;
    assert_eq!(res.status(), 200, "{path} should have changed");
    let tag = tag_of(&res);
    assert_ne!(tag, old);
    tag
}

#[tokio::test]
async fn listing_answers_304_until_anything_changes() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: queue backlog", "1732400000.000001")
        .await;
    let list = "/api/v1/alerts?status=open,acknowledged";
    let summary = "/api/v1/alerts/summary";
    let mut list_tag = tag_of(&poll(&app, list, None).await);
    let mut summary_tag = tag_of(&poll(&app, summary, None).await);
    assert_unchanged(&app, list, &list_tag).await;
    assert_unchanged(&app, summary, &summary_tag).await;

    app.create_alert("another", "1732400000.000002").await;
    list_tag = assert_changed(&app, list, &list_tag).await;
    summary_tag = assert_changed(&app, summary, &summary_tag).await;
    assert_unchanged(&app, list, &list_tag).await;

    for (action, body) in [
        ("acknowledge", None),
        ("notes", Some(serde_json::json!({"note": "rolling back"}))),
        ("resolve", None),
        ("reopen", None),
    ] {
        let res = app.act(&id, action, body).await;
        assert!(res.status().is_success(), "{action}");
        list_tag = assert_changed(&app, list, &list_tag).await;
        summary_tag = assert_changed(&app, summary, &summary_tag).await;
        assert_unchanged(&app, list, &list_tag).await;
    }
}

#[tokio::test]
async fn any_tag_matches_a_star_and_a_weak_one_its_strong_self() {
    let app = spawn_app().await;
    let list = "/api/v1/alerts";
    let tag = tag_of(&poll(&app, list, None).await);
    assert_unchanged_for(&app, list, "*", &tag).await;
    assert_unchanged_for(&app, list, &format!("\"other\", W/{tag}"), &tag).await;
    let res = poll(&app, list, Some("\"other\"")).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_tag_from_another_query_does_not_match() {
    let app = spawn_app().await;
    app.create_alert("x", "1732400000.000001").await;
    let tag = tag_of(&poll(&app, "/api/v1/alerts?status=open", None).await);
    let res = poll(&app, "/api/v1/alerts?status=resolved", Some(&tag)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn one_alert_answers_304_until_it_changes() {
    let app = spawn_app().await;
    let id = app
        .create_alert("critical: payments", "1732400000.000001")
        .await;
    let path = format!("/api/v1/alerts/{id}");
    let tag = tag_of(&poll(&app, &path, None).await);
    assert_unchanged(&app, &path, &tag).await;
    // Another alert changing does not touch this one's tag.
    app.create_alert("unrelated", "1732400000.000002").await;
    assert_unchanged(&app, &path, &tag).await;
    // Weak and list forms of If-None-Match match too.
    assert_unchanged_for(&app, &path, &format!("\"other\", W/{tag}"), &tag).await;

    app.act(&id, "acknowledge", None).await;
    let tag = assert_changed(&app, &path, &tag).await;
    app.act(
        &id,
        "notes",
        Some(serde_json::json!({"note": "x", "by": "ana"})),
    )
    .await;
    assert_changed(&app, &path, &tag).await;
}

#[tokio::test]
async fn the_change_feed_answers_304_until_anything_changes() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: queue backlog", "1732400000.000001")
        .await;
    let feed = "/api/v1/changes?after=0";
    let res = poll(&app, feed, None).await;
    let tag = tag_of(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_unchanged(&app, feed, &tag).await;
    // The tag is the query's: a feed read from elsewhere is not unchanged.
    let res = poll(&app, "/api/v1/changes?after=1", Some(&tag)).await;
    assert_eq!(res.status(), 200);

    let res = app.act(&id, "acknowledge", None).await;
    assert!(res.status().is_success());
    let res = poll(&app, feed, Some(&tag)).await;
    assert_eq!(res.status(), 200, "the feed should have changed");
    let new_tag = tag_of(&res);
    assert_ne!(new_tag, tag);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["alerts"][0]["status"], "acknowledged");
    assert_unchanged(&app, feed, &new_tag).await;
}
