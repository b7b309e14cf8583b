use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, READ_TOKEN};

#[tokio::test]
async fn acknowledge_then_resolve_records_who_and_when() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: api latency", "1732400000.000001")
        .await;
    // The server writes milliseconds: each change a few of them apart.
    let a_few_ms = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let floor_ms = |t: time::OffsetDateTime| t.replace_millisecond(t.millisecond()).unwrap();
    a_few_ms().await;
    let before_ack = floor_ms(time::OffsetDateTime::now_utc());

    let res = app
        .act(
            &id,
            "acknowledge",
            Some(json!({"by": "ana", "note": "on it"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let acked: Value = res.json().await.unwrap();
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "ana");
    assert!(acked["acknowledged_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(acked["notes"][0]["text"], "on it");
    assert_eq!(acked["notes"][0]["user"], "ana");

    a_few_ms().await;
    let before_resolve = floor_ms(time::OffsetDateTime::now_utc());
    let resolved: Value = app
        .act(&id, "resolve", Some(json!({"by": "bo"})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_by"], "bo");
    assert_eq!(resolved["acknowledged_by"], "ana");
    // When: each at its own change, in order, and now.
    let at = |field: &str| {
        let text = resolved[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}"));
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{field}: {text}: {e}"))
    };
    let (created, acked_at, resolved_at) =
        (at("created_at"), at("acknowledged_at"), at("resolved_at"));
    assert!(created < before_ack && before_ack <= acked_at, "{resolved}");
    assert!(
        acked_at < before_resolve && before_resolve <= resolved_at,
        "{resolved}"
    );
    assert!(resolved_at <= time::OffsetDateTime::now_utc(), "{resolved}");
    assert_eq!(resolved["acknowledged_at"], acked["acknowledged_at"]);

    // What was answered is what is stored.
    let stored: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(stored, resolved);
}

#[tokio::test]
async fn a_blank_by_is_no_name() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: api latency", "1732400000.000009")
        .await;
    let acked: Value = app
        .act(
            &id,
            "acknowledge",
            Some(json!({"by": "  ", "note": "on it"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], Value::Null, "{acked}");
    assert_eq!(acked["notes"][0]["user"], Value::Null, "{acked}");
}

#[tokio::test]
async fn open_alerts_can_be_resolved_directly_with_no_body() {
    let app = spawn_app().await;
    let id = app
        .create_alert("low: flaky test", "1732400000.000001")
        .await;
    let res = app.act(&id, "resolve", None).await;
    assert_eq!(res.status(), 200);
    let alert: Value = res.json().await.unwrap();
    assert_eq!(alert["status"], "resolved");
    assert!(alert["acknowledged_at"].is_null());
}

#[tokio::test]
async fn repeating_an_action_changes_nothing() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    let first: Value = app
        .act(&id, "acknowledge", Some(json!({"by": "ana", "note": "n"})))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "acknowledged", "{first}");
    assert_eq!(first["acknowledged_by"], "ana");
    assert_eq!(first["notes"].as_array().unwrap().len(), 1, "{first}");
    let res = app
        .act(&id, "acknowledge", Some(json!({"by": "bo", "note": "n"})))
        .await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second, first);
    assert_eq!(
        app.get_alert(&id).await.json::<Value>().await.unwrap(),
        first
    );
}

#[tokio::test]
async fn bodies_over_16_kib_are_413_on_every_post_route() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    // A body of exactly `len` bytes.
    let body = |len: usize| {
        let overhead = json!({"by": "ana", "note": ""}).to_string().len();
        let body = json!({"by": "ana", "note": "n".repeat(len - overhead)});
        assert_eq!(body.to_string().len(), len);
        body
    };

    for action in ["acknowledge", "resolve", "reopen", "notes"] {
        let res = app.act(&id, action, Some(body(16 * 1024 + 1))).await;
        assert_error(res, 413, "payload-too-large").await;
    }
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["notes"], json!([]));
    // 16 KiB itself is taken.
    let res = app.act(&id, "notes", Some(body(16 * 1024))).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn acknowledging_a_resolved_alert_conflicts_until_reopened() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    app.act(&id, "resolve", None).await;

    assert_error(app.act(&id, "acknowledge", None).await, 409, "conflict").await;
    assert_eq!(
        app.get_alert(&id).await.json::<Value>().await.unwrap()["status"],
        "resolved"
    );

    let reopened: Value = app.act(&id, "reopen", None).await.json().await.unwrap();
    assert_eq!(reopened["status"], "open");
    assert!(reopened["resolved_at"].is_null());
    assert_eq!(app.act(&id, "acknowledge", None).await.status(), 200);
}

#[tokio::test]
async fn read_tokens_may_not_change_alerts() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    for action in ["acknowledge", "resolve", "reopen", "notes"] {
        assert_error(
            app.act_as(&id, action, None, READ_TOKEN).await,
            403,
            "forbidden",
        )
        .await;
        assert_error(
            app.act_as(&id, action, None, "nobody").await,
            401,
            "unauthenticated",
        )
        .await;
    }
    assert_eq!(
        app.get_alert(&id).await.json::<Value>().await.unwrap()["status"],
        "open"
    );
    let res = app
        .act(
            &id,
            "notes",
            Some(json!({"by": "b".repeat(255), "note": "n"})),
        )
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn bad_action_requests_are_clear_errors() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    assert_error(
        app.act("0000000000000", "acknowledge", None).await,
        404,
        "not-found",
    )
    .await;
    let res = app
        .client
        .post(app.url(&format!("/api/v1/alerts/{id}/acknowledge")))
        .bearer_auth(crate::helpers::WRITE_TOKEN)
        .header("content-type", "application/json")
        .body("{\"by\": ")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed-body").await;
    assert_error(
        app.act(&id, "acknowledge", Some(json!({"who": "ana"})))
            .await,
        400,
        "malformed-body",
    )
    .await;
    assert_error(
        app.act(&id, "notes", Some(json!({"by": "ana"}))).await,
        400,
        "missing-field",
    )
    .await;
    // Who did it is a name, not a document; at most 255 bytes.
    for action in ["acknowledge", "notes"] {
        let res = app
            .act(
                &id,
                action,
                Some(json!({"by": "b".repeat(256), "note": "n"})),
            )
            .await;
        let body = assert_error(res, 400, "malformed-body").await;
        assert!(
            body.contains("field `by` is longer than 255 bytes"),
            "{body}"
        );
    }
    // An unknown field's name is the client's: not echoed.
    let res = app
        .act(&id, "acknowledge", Some(json!({"xoxb-not-echoed": 1})))
        .await;
    let body = assert_error(res, 400, "malformed-body").await;
    assert!(!body.contains("xoxb"), "{body}");
    // serde reads a struct from an array too; the API does not.
    assert_error(
        app.act(&id, "notes", Some(json!(["ana", "hello"]))).await,
        400,
        "malformed-body",
    )
    .await;
    assert_eq!(
        app.get_alert(&id).await.json::<Value>().await.unwrap()["status"],
        "open"
    );
}

#[tokio::test]
async fn notes_are_added_through_the_api() {
    let app = spawn_app().await;
    let id = app.create_alert("x", "1732400000.000001").await;
    let res = app
        .act(
            &id,
            "notes",
            Some(json!({"by": "ana", "note": "customer ticket #42"})),
        )
        .await;
    assert_eq!(res.status(), 201);
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["notes"][0]["text"], "customer ticket #42");
    assert_eq!(alert["status"], "open");
}

#[tokio::test]
async fn an_alert_keeps_at_most_200_notes_and_128_kib_of_note_text() {
    let app = spawn_app().await;
    let many = app.create_alert("many notes", "1732400000.000001").await;
    for i in 0..200 {
        let res = app
            .act(&many, "notes", Some(json!({"note": format!("note {i}")})))
            .await;
        assert_eq!(res.status(), 201, "note {i}");
    }
    let res = app
        .act(&many, "notes", Some(json!({"note": "one more"})))
        .await;
    assert_error(res, 409, "conflict").await;
    // An action carrying a note is refused whole, not done without it.
    let res = app
        .act(&many, "acknowledge", Some(json!({"note": "ack note"})))
        .await;
    let body = assert_error(res, 409, "conflict").await;
    assert!(body.contains("the action was not taken"), "{body}");
    let alert: Value = app.get_alert(&many).await.json().await.unwrap();
    assert_eq!(alert["notes"].as_array().unwrap().len(), 200);
    assert_eq!(alert["status"], "open");
    assert_eq!(app.act(&many, "acknowledge", None).await.status(), 200);

    let long = app.create_alert("long notes", "1732400000.000002").await;
    let text = "n".repeat(16_000);
    for i in 0..8 {
        let res = app.act(&long, "notes", Some(json!({"note": text}))).await;
        assert_eq!(res.status(), 201, "note {i}");
    }
    let res = app.act(&long, "notes", Some(json!({"note": text}))).await;
    assert_error(res, 409, "conflict").await;
}
