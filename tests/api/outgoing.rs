use serde_json::Value;

use crate::helpers::{
    assert_error, event_fixture, fixture, spawn_app, spawn_app_with, VERIFICATION_TOKEN,
};

#[tokio::test]
async fn pagertree_style_post_creates_a_high_alert_and_replies_in_channel() {
    let app = spawn_app().await;

    let res = app
        .post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
        .await;

    assert_eq!(res.status(), 200);
    let reply: Value = res.json().await.unwrap();
    let text = reply["text"].as_str().unwrap();
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    let id = alert["id"].as_str().unwrap();
    assert!(text.contains(id) && text.contains("high"), "{text}");
    assert!(!text.to_lowercase().starts_with("outage"), "{text}");
    assert_eq!(alert["urgency"], "high");
    assert_eq!(alert["urgency_source"], "message");
    assert_eq!(alert["title"], "check servers high");
    assert_eq!(alert["text"], "outage check servers high");
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["source"], "outgoing_webhook");
    let slack = &alert["slack"];
    assert_eq!(slack["team_id"], "T061EG9R6");
    assert_eq!(slack["team_domain"], "acme-ops");
    assert_eq!(slack["channel_id"], "C024BE91L");
    assert_eq!(slack["channel_name"], "ops-alerts");
    assert_eq!(slack["user_name"], "jdoe");
    assert_eq!(slack["ts"], "1732358400.000200");
    assert_eq!(slack["trigger_word"], "outage");
}

#[tokio::test]
async fn slack_documented_sample_is_stored_with_the_default_urgency() {
    let app = spawn_app_with(|s| s.default_urgency = klaxon::urgency::Urgency::Low).await;

    let res = app
        .post_outgoing(&fixture("outgoing/slack_docs_sample.form"))
        .await;

    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["urgency"], "low");
    assert_eq!(alerts[0]["urgency_source"], "default");
    assert_eq!(
        alerts[0]["title"],
        "What is the air-speed velocity of an unladen swallow?"
    );
    assert_eq!(alerts[0]["slack"]["thread_ts"], "1504640714.003543");
    assert_eq!(alerts[0]["slack"]["channel_id"], "C2147483705");
}

#[tokio::test]
async fn unicode_text_is_kept_and_its_urgency_read() {
    let app = spawn_app().await;
    let res = app
        .post_outgoing(&fixture("outgoing/unicode_critical.form"))
        .await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts[0]["urgency"], "critical");
    assert_eq!(alerts[0]["title"], "支払い障害 CRITICAL: payments ✅ down");
}

#[tokio::test]
async fn wrong_or_missing_token_is_rejected_and_nothing_stored() {
    let app = spawn_app().await;
    let good = fixture("outgoing/pagertree_outage_high.form");
    for form in [
        good.replace(VERIFICATION_TOKEN, "XXXXXXXXXXXXXXXXXY"),
        good.replace(VERIFICATION_TOKEN, "X"),
        good.replace(VERIFICATION_TOKEN, ""),
        good.replace(&format!("token={VERIFICATION_TOKEN}&"), ""),
        // The token is checked first: a form without the one right token is
        // 401 whatever else is wrong with it (a probe is a verification failure).
        good.replace(VERIFICATION_TOKEN, "X")
            .replace("text=outage", "text=%ZZoutage"),
        format!("{good}&token=again"),
    ] {
        assert_error(app.post_outgoing(&form).await, 401, "invalid-token").await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn outgoing_surface_fails_closed_without_a_configured_token() {
    let app = spawn_app_with(|s| s.verification_tokens = None).await;
    let res = app
        .post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
        .await;
    assert_error(res, 401, "invalid-token").await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn bot_posts_get_an_empty_answer_and_page_nobody() {
    let app = spawn_app().await;
    for name in ["outgoing/slackbot_post.form", "outgoing/bot_post.form"] {
        let res = app.post_outgoing(&fixture(name)).await;
        assert_eq!(res.status(), 200, "{name}");
        assert!(res.bytes().await.unwrap().is_empty(), "{name}");
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn the_same_post_twice_is_one_alert() {
    let app = spawn_app().await;
    let form = fixture("outgoing/pagertree_outage_high.form");
    let first: Value = app.post_outgoing(&form).await.json().await.unwrap();
    let second: Value = app.post_outgoing(&form).await.json().await.unwrap();
    assert_eq!(app.all_alerts().await.len(), 1);
    let id = app.all_alerts().await[0]["id"].as_str().unwrap().to_owned();
    assert!(first["text"].as_str().unwrap().contains(&id));
    assert!(second["text"].as_str().unwrap().contains(&id));
    assert!(second["text"].as_str().unwrap().contains("already"));
}

#[tokio::test]
async fn malformed_forms_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let good = fixture("outgoing/pagertree_outage_high.form");
    let cases = [
        (
            good.replace("text=outage", "text=%ZZoutage"),
            "malformed-body",
        ),
        (
            good.replace("text=outage", "text=%C3%28outage"),
            "malformed-body",
        ),
        (format!("{good}&channel_id=C2"), "malformed-body"),
        (good.replace("channel_id=C024BE91L&", ""), "missing-field"),
        (
            good.replace("timestamp=1732358400.000200&", ""),
            "missing-field",
        ),
        (
            good.replace("text=outage+check+servers+high&", ""),
            "missing-field",
        ),
    ];
    for (form, code) in cases {
        assert_error(app.post_outgoing(&form).await, 400, code).await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn identifiers_longer_than_255_bytes_are_400_and_store_nothing() {
    let app = spawn_app().await;
    let good = fixture("outgoing/pagertree_outage_high.form");
    let long = "C".repeat(256);
    for (field, value) in [
        ("channel_id", "C024BE91L"),
        ("timestamp", "1732358400.000200"),
        ("user_name", "jdoe"),
    ] {
        let form = good.replace(&format!("{field}={value}&"), &format!("{field}={long}&"));
        assert_ne!(form, good, "{field} is not in the fixture");
        let res = app.post_outgoing(&form).await;
        assert_eq!(res.status(), 400, "{field}");
        let error: Value = res.json().await.unwrap();
        assert_eq!(error["code"], "malformed-body");
        assert!(error["error"]
            .as_str()
            .unwrap()
            .contains(&format!("`{field}`")));
    }
    assert!(app.all_alerts().await.is_empty());
    let form = good.replace(
        "channel_id=C024BE91L&",
        &format!("channel_id={}&", "C".repeat(255)),
    );
    assert_eq!(app.post_outgoing(&form).await.status(), 200);
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn raw_invalid_utf8_is_400() {
    let app = spawn_app().await;
    let mut body = fixture("outgoing/pagertree_outage_high.form").into_bytes();
    body.extend_from_slice(b"&extra=\xff\xfe");
    let res = app
        .client
        .post(app.url("/slack/outgoing"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "malformed-body").await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let mut req = app
            .client
            .post(app.url("/slack/outgoing"))
            .body(fixture("outgoing/pagertree_outage_high.form"));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        assert_error(req.send().await.unwrap(), 415, "unsupported-media-type").await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn the_longest_slack_message_percent_encoded_creates_an_alert_with_all_its_text() {
    let app = spawn_app().await;
    let text = format!("outage {}", "\u{969c}".repeat(40_000));
    let encoded = serde_urlencoded::to_string([("text", text.as_str())]).unwrap();
    let form = fixture("outgoing/unicode_critical.form").replace(
        "text=outage+%E6%94%AF%E6%89%95%E3%81%84%E9%9A%9C%E5%AE%B3+CRITICAL%3A+payments+%E2%9C%85+down",
        &encoded,
    );
    assert!(form.len() > 360_000, "{}", form.len());
    let res = app.post_outgoing(&form).await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["text"], text.as_str());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let form = format!(
        "{}&padding={}",
        fixture("outgoing/pagertree_outage_high.form"),
        "a".repeat(1100 * 1024)
    );
    assert_error(app.post_outgoing(&form).await, 413, "payload-too-large").await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn the_reply_repeats_no_live_mention_or_link_and_markup_names_no_urgency() {
    let app = spawn_app().await;
    let form = fixture("outgoing/pagertree_outage_high.form").replace(
        "text=outage+check+servers+high",
        // outage <!channel> db down <@U999> <https://grafana.example/d/high-cpu|graph>
        "text=outage+%3C%21channel%3E+db+down+%3C%40U999%3E+%3Chttps%3A%2F%2Fgrafana.example%2Fd%2Fhigh-cpu%7Cgraph%3E",
    );
    let reply: Value = app.post_outgoing(&form).await.json().await.unwrap();
    let text = reply["text"].as_str().unwrap();
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    assert!(
        text.contains("&lt;!channel&gt; db down &lt;@U999&gt;"),
        "{text}"
    );
    let alert = &app.all_alerts().await[0];
    // Stored as Slack sent it; the address's "high" is not the author's word.
    assert_eq!(
        alert["title"],
        "<!channel> db down <@U999> <https://grafana.example/d/high-cpu|graph>"
    );
    assert_eq!(alert["urgency_source"], "default");
}

/// A webhook set up for a channel without trigger words is sent every
/// message, a post shared without a comment among them (its text empty):
/// never a 400 that Slack would retry, but an untitled alert, which the
/// Events API's copy of the message fills in with the shared post's text.
#[tokio::test]
async fn a_post_with_empty_text_is_untitled_until_the_events_api_fills_it_in() {
    let app = spawn_app().await;
    let form = fixture("outgoing/pagertree_outage_high.form")
        .replace("text=outage+check+servers+high", "text=")
        .replace("trigger_word=outage", "trigger_word=")
        .replace("timestamp=1732358400.000200", "timestamp=1732526500.000300");

    let res = app.post_outgoing(&form).await;
    assert_eq!(res.status(), 200);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["title"], "(no text)");
    assert_eq!(alerts[0]["urgency_source"], "default");

    // The Events API's copy: the same message, with the shared post.
    let res = app.post_event(&event_fixture("shared_message")).await;
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["title"], "CRITICAL: payments API error rate 45%");
    assert_eq!(
        (&alerts[0]["urgency"], &alerts[0]["urgency_source"]),
        (&Value::from("critical"), &Value::from("message"))
    );
}

#[tokio::test]
async fn a_post_of_only_the_trigger_word_is_untitled_and_a_longer_word_is_kept() {
    let app = spawn_app().await;
    let base = fixture("outgoing/pagertree_outage_high.form");
    let only = base.replace("text=outage+check+servers+high", "text=outage");
    let reply: Value = app.post_outgoing(&only).await.json().await.unwrap();
    assert!(
        reply["text"].as_str().unwrap().ends_with("(no text)"),
        "{reply}"
    );
    let longer = base
        .replace("text=outage+check+servers+high", "text=outages+in+eu")
        .replace("timestamp=1732358400.000200", "timestamp=1732358400.000300");
    app.post_outgoing(&longer).await;
    let titles: Vec<Value> = app
        .all_alerts()
        .await
        .iter()
        .map(|a| a["title"].clone())
        .collect();
    assert_eq!(titles, ["outages in eu", "(no text)"]);
}
