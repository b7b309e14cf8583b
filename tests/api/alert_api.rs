use serde_json::Value;

use crate::helpers::{
    assert_error, event_fixture, spawn_app, spawn_app_with, READ_TOKEN, WRITE_TOKEN,
};

#[tokio::test]
async fn an_alert_reads_back_by_id_with_a_read_or_write_token() {
    let app = spawn_app().await;
    let created: Value = app
        .post_event(&event_fixture("message"))
        .await
        .json()
        .await
        .unwrap();
    let id = created["alert_id"].as_str().unwrap();

    for token in [READ_TOKEN, WRITE_TOKEN] {
        let res = app
            .get_with(&format!("/api/v1/alerts/{id}"), Some(token))
            .await;
        assert_eq!(res.status(), 200);
        let alert: Value = res.json().await.unwrap();
        assert_eq!(alert["id"], id);
        assert_eq!(alert["slack"]["event_id"], "Ev08MFMKH6");
        for field in [
            "created_at",
            "status",
            "urgency",
            "urgency_source",
            "title",
            "text",
            "source",
            "slack",
        ] {
            assert!(!alert[field].is_null(), "{field} missing: {alert}");
        }
    }
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    assert_eq!(app.get_alert(&id).await.status(), 200);
    // A well-formed id next to the real one names no alert.
    let last = if id.ends_with('0') { "1" } else { "0" };
    let neighbour = format!("{}{last}", &id[..id.len() - 1]);
    assert_error(app.get_alert(&neighbour).await, 404, "not-found").await;
    assert_error(app.get_alert("0000000000000").await, 404, "not-found").await;
    assert_error(app.get_alert("not-an-id").await, 404, "not-found").await;
}

#[tokio::test]
async fn reading_without_a_valid_token_is_401_with_www_authenticate() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some("")] {
        let res = app.get_with("/api/v1/alerts/0000000000000", token).await;
        assert_eq!(
            res.headers().get("www-authenticate").unwrap(),
            "Bearer realm=\"klaxon\""
        );
        assert_error(res, 401, "unauthenticated").await;
    }
    let res = app
        .client
        .get(app.url("/api/v1/alerts"))
        .header("authorization", format!("Basic {READ_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
    // Two Authorization headers, the first valid: which one counts would be a guess.
    let res = app
        .client
        .get(app.url("/api/v1/alerts"))
        .header("authorization", format!("Bearer {READ_TOKEN}"))
        .header("authorization", "Bearer wrong")
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn the_api_is_closed_when_no_token_is_configured() {
    let app = spawn_app_with(|s| {
        s.read_tokens = None;
        s.write_tokens = None;
    })
    .await;
    assert_error(
        app.get_with("/api/v1/alerts", Some(READ_TOKEN)).await,
        401,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.get_with("/api/v1/alerts", Some("")).await,
        401,
        "unauthenticated",
    )
    .await;
}
