use serde_json::{json, Value};

use crate::helpers::{assert_error, event_fixture, fixture, spawn_app};

#[tokio::test]
async fn url_verification_echoes_the_challenge() {
    let app = spawn_app().await;
    let res = app.post_event(&event_fixture("url_verification")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn message_event_creates_an_alert_with_its_slack_details() {
    let app = spawn_app().await;

    let res = app.post_event(&event_fixture("message")).await;

    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(body["alert_id"], alert["id"]);
    assert_eq!(alert["source"], "events_api");
    assert_eq!(alert["urgency"], "critical");
    assert_eq!(alert["urgency_source"], "message");
    assert_eq!(alert["status"], "open");
    assert_eq!(
        alert["title"],
        "CRITICAL: checkout API returning 502s for all EU customers"
    );
    assert!(alert["text"].as_str().unwrap().ends_with("see grafana"));
    let slack = &alert["slack"];
    assert_eq!(slack["event_id"], "Ev08MFMKH6");
    assert_eq!(slack["team_id"], "T061EG9R6");
    assert_eq!(slack["channel_id"], "C024BE91L");
    assert_eq!(slack["user_id"], "U061F7AUR");
    assert_eq!(slack["ts"], "1732358500.000100");
    // created_at is RFC 3339 UTC and ids sort by creation.
    let created = alert["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");

    // An empty thread_ts or envelope team_id is a missing one: a new alert,
    // in the event's team, not a reply to a thread called "".
    let mut event = event_fixture("message");
    event["event"]["ts"] = Value::from("1732358501.000100");
    event["event"]["thread_ts"] = Value::from("");
    event["event"]["team"] = Value::from("T061EG9R6");
    event["team_id"] = Value::from("");
    let res = app.post_event(&event).await;
    let body: Value = res.json().await.unwrap();
    assert!(body["alert_id"].is_string(), "{body}");
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["slack"]["thread_ts"], Value::Null);
    assert_eq!(alerts[0]["slack"]["team_id"], "T061EG9R6");
}

#[tokio::test]
async fn app_mention_creates_an_alert_titled_without_the_mention() {
    let app = spawn_app().await;
    let res = app.post_event(&event_fixture("app_mention")).await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["title"], "db replica lag 40 min, high");
    assert_eq!(alerts[0]["urgency"], "high");
    assert_eq!(alerts[0]["slack"]["event_id"], "Ev08MG2P4T");
}

#[tokio::test]
async fn a_message_with_a_file_attached_creates_an_alert() {
    let app = spawn_app().await;
    let res = app.post_event(&event_fixture("file_share")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(body["alert_id"], alerts[0]["id"]);
    assert_eq!(alerts[0]["urgency"], "critical");
    assert_eq!(alerts[0]["slack"]["user_id"], "U061F7AUR");
    assert_eq!(alerts[0]["slack"]["ts"], "1732359100.000200");
}

/// A monitoring bot's post shared into the channel without a comment: the
/// message's own text is empty, the shared post is an attachment.
#[tokio::test]
async fn a_message_shared_without_a_comment_is_read_from_its_attachment() {
    let app = spawn_app().await;
    let res = app.post_event(&event_fixture("shared_message")).await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["title"], "CRITICAL: payments API error rate 45%");
    assert_eq!(alerts[0]["text"], "CRITICAL: payments API error rate 45%");
    assert_eq!(
        (&alerts[0]["urgency"], &alerts[0]["urgency_source"]),
        (&Value::from("critical"), &Value::from("message"))
    );
}

#[tokio::test]
async fn bot_messages_subtypes_other_events_and_stray_thread_replies_store_nothing() {
    let app = spawn_app().await;
    for name in [
        "bot_message_bot_id",
        "bot_message_subtype",
        "slackbot_reminder",
        "message_changed",
        "message_deleted",
        "channel_join",
        "reaction_added",
        "team_join",
        "channel_created",
    ] {
        let res = app.post_event(&event_fixture(name)).await;
        assert_eq!(res.status(), 200, "{name}");
        let body: Value = res.json().await.unwrap();
        assert!(body["ignored"].is_string(), "{name}: {body}");
    }
    // A reply in a thread that is no alert (yet) is held, and stores nothing.
    let res = app.post_event(&event_fixture("thread_reply")).await;
    assert_eq!(res.json::<Value>().await.unwrap()["held"], true);
    // Fields of another shape or length in an event klaxon does not handle
    // (team_join's user and channel_created's channel are objects) are not
    // its business: ignored, never a 400 that Slack would retry.
    for (name, field, value) in [
        ("team_join", "user", json!({"id": "U1"})),
        ("channel_created", "channel", json!({"id": "C1"})),
        ("reaction_added", "user", Value::from("U".repeat(300))),
    ] {
        let mut event = event_fixture(name);
        event["event"][field] = value;
        let res = app.post_event(&event).await;
        assert_eq!(res.status(), 200, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["ignored"], "event type not handled", "{name}");
    }
    // A message is klaxon's business: the same shape there is malformed.
    let mut message = event_fixture("message");
    message["event"]["user"] = json!({"id": "U1"});
    let res = app.post_event(&message).await;
    let error = assert_error(res, 400, "malformed-body").await;
    assert!(error.contains("in `event`"), "{error}");
    // Whatever the client wrote there is not echoed back.
    for (field, value) in [
        ("text", json!(12345678)),
        ("ts", json!("x".repeat(3) + "\"secret")),
    ] {
        let mut message = event_fixture("message");
        message["event"][field] = value;
        message["event"]["user"] = json!(["sekrit-value"]);
        let error = assert_error(app.post_event(&message).await, 400, "malformed-body").await;
        assert!(error.contains("in `event`: invalid type"), "{error}");
        assert!(
            !error.contains("12345678") && !error.contains("sekrit"),
            "{error}"
        );
    }
    let mut not_an_object = event_fixture("message");
    not_an_object["event"] = json!("xyz-secret");
    let error = assert_error(app.post_event(&not_an_object).await, 400, "malformed-body").await;
    assert!(!error.contains("xyz-secret"), "{error}");
    // An empty channel or ts is no channel or ts: such messages would all be one.
    for field in ["channel", "ts"] {
        let mut event = event_fixture("message");
        event["event"][field] = Value::from("");
        let res = app.post_event(&event).await;
        assert_eq!(res.status(), 200, "{field}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["ignored"], "event without channel or ts",
            "{field}: {body}"
        );
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn app_rate_limited_is_acknowledged() {
    let app = spawn_app().await;
    let res = app.post_event(&event_fixture("app_rate_limited")).await;
    assert_eq!(res.status(), 200);
    // Known and taken (Slack stops retrying it), not an envelope ignored.
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "ok": true }));
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn slack_retries_with_the_same_event_id_create_nothing_new() {
    let app = spawn_app().await;
    let event = event_fixture("message");
    let body = serde_json::to_vec(&event).unwrap();
    let first: Value = app.post_event(&event).await.json().await.unwrap();
    for retry in ["1", "2", "3"] {
        let res = app
            .post_event_raw(
                body.clone(),
                &[
                    ("x-slack-retry-num", retry),
                    ("x-slack-retry-reason", "http_timeout"),
                ],
            )
            .await;
        assert_eq!(res.status(), 200);
        let again: Value = res.json().await.unwrap();
        assert_eq!(again["alert_id"], first["alert_id"]);
        assert_eq!(again["duplicate"], true);
    }
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn the_same_message_under_another_event_id_is_one_alert() {
    let app = spawn_app().await;
    let message = event_fixture("message");
    let mut mention = message.clone();
    mention["event_id"] = "Ev0DIFFERENT".into();
    mention["event"]["type"] = "app_mention".into();
    app.post_event(&message).await;
    let res: Value = app.post_event(&mention).await.json().await.unwrap();
    assert_eq!(res["duplicate"], true);
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn the_same_message_through_both_surfaces_is_one_alert() {
    let app = spawn_app().await;
    // The outgoing-webhook post of the very message the Events API delivers.
    let form = fixture("outgoing/pagertree_outage_high.form");
    let mut event = event_fixture("message");
    event["event"]["ts"] = "1732358400.000200".into();
    event["event"]["text"] = "outage check servers high".into();

    app.post_outgoing(&form).await;
    let res: Value = app.post_event(&event).await.json().await.unwrap();

    assert_eq!(res["duplicate"], true);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["source"], "outgoing_webhook");
}

#[tokio::test]
async fn malformed_envelopes_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let mut no_event = event_fixture("message");
    no_event.as_object_mut().unwrap().remove("event");
    let mut no_type = event_fixture("message");
    no_type.as_object_mut().unwrap().remove("type");
    for body in [
        b"{not json".to_vec(),
        b"[]".to_vec(),
        serde_json::to_vec(&no_event).unwrap(),
        serde_json::to_vec(&no_type).unwrap(),
        br#"{"type":"url_verification"}"#.to_vec(),
        b"{\"type\":\"event_callback\",\"event\":{\"type\":\"message\",\"text\":\"\xff\"}}"
            .to_vec(),
    ] {
        assert_error(app.post_event_raw(body, &[]).await, 400, "malformed-body").await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn identifiers_longer_than_255_bytes_are_400_naming_the_field() {
    let app = spawn_app().await;
    let long = "C".repeat(256);
    for (field, pointer) in [
        ("event.channel", "/event/channel"),
        ("event.ts", "/event/ts"),
        ("event.user", "/event/user"),
        ("team_id", "/team_id"),
        ("event_id", "/event_id"),
    ] {
        let mut body = event_fixture("message");
        *body.pointer_mut(pointer).unwrap() = Value::from(long.clone());
        let res = app.post_event(&body).await;
        assert_eq!(res.status(), 400, "{field}");
        let error: Value = res.json().await.unwrap();
        assert_eq!(error["code"], "malformed-body");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{message}");
        assert!(!message.contains(&long), "the value was echoed");
    }
    let mut limited = event_fixture("app_rate_limited");
    limited["team_id"] = Value::from(long.clone());
    assert_error(app.post_event(&limited).await, 400, "malformed-body").await;
    assert!(app.all_alerts().await.is_empty());
    // 255 bytes is still an identifier.
    let mut body = event_fixture("message");
    body["event"]["channel"] = Value::from("C".repeat(255));
    assert_eq!(app.post_event(&body).await.status(), 200);
    assert_eq!(
        app.all_alerts().await[0]["slack"]["channel_id"],
        "C".repeat(255)
    );
}

#[tokio::test]
async fn wrong_content_type_is_415_even_when_signed() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&event_fixture("message")).unwrap();
    // A second type a proxy might read, a charset klaxon would misread, an
    // encoding it would not undo.
    for headers in [
        &[("content-type", "text/plain")][..],
        &[
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
        ],
        &[("content-type", "application/json; charset=latin1")],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
    ] {
        let ts = crate::helpers::now().to_string();
        let sig =
            klaxon::slack::signature::sign(crate::helpers::SIGNING_SECRET.as_bytes(), &ts, &body);
        let mut req = app
            .client
            .post(app.url("/slack/events"))
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body.clone());
        for &(name, value) in headers {
            req = req.header(name, value);
        }
        let res = req.send().await.unwrap();
        assert_error(res, 415, "unsupported-media-type").await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn the_longest_slack_message_escaped_creates_an_alert_with_all_its_text() {
    let app = spawn_app().await;
    let text = "\u{969c}".repeat(40_000);
    let mut event = event_fixture("message");
    event["event"]["text"] = text.clone().into();
    event["event"]["blocks"][0]["elements"][0]["elements"][0]["text"] = text.clone().into();
    // Escaped as \uXXXX, as a JSON encoder may: 6 bytes a character, twice.
    let body = serde_json::to_string(&event)
        .unwrap()
        .replace('\u{969c}', "\\u969c");
    assert!(body.len() > 480_000, "{}", body.len());
    let res = app.post_event_raw(body.into_bytes(), &[]).await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["text"], text.as_str());
}

#[tokio::test]
async fn oversized_event_is_413() {
    let app = spawn_app().await;
    let mut event = event_fixture("message");
    event["event"]["text"] = "x".repeat(1100 * 1024).into();
    assert_error(app.post_event(&event).await, 413, "payload-too-large").await;
    assert!(app.all_alerts().await.is_empty());
}
