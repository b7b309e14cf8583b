use std::collections::BTreeMap;

use crate::helpers::{event_fixture, fixture, reply, TestApp, READ_TOKEN};
use crate::process::{server_env, start_server};

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_what_happened_on_their_own_listener() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_METRICS_LISTEN", "127.0.0.1:0".into()));
    let server = start_server(&env);
    let app = TestApp::at(&server.address);

    app.post_event(&event_fixture("message")).await;
    app.post_event(&event_fixture("message")).await;
    app.post_event(&event_fixture("bot_message_bot_id")).await;
    // An ack in the thread of a resolved alert is refused, and counted.
    for (text, ts) in [
        ("resolve", "1732358800.000900"),
        ("ack", "1732358800.001900"),
    ] {
        let reply = reply(text, ts, &format!("EvMETRICS{text}"));
        let res: serde_json::Value = app.post_event(&reply).await.json().await.unwrap();
        assert!(res["alert_id"].is_string(), "{res}");
    }
    // And through the other surface: `outage ack` in the same thread.
    let ack = fixture("outgoing/thread_reply.form").replace(
        "text=outage+still+failing+after+the+rollback%2C+now+critical",
        "text=outage+ack",
    );
    let res = app.post_outgoing(&ack).await.text().await.unwrap();
    assert!(res.contains("not added"), "{res}");
    // A bot's post through the other surface is counted under the same reason.
    app.post_outgoing(&fixture("outgoing/bot_post.form")).await;
    app.post_outgoing(
        &fixture("outgoing/pagertree_outage_high.form").replace("XXXXXXXXXXXXXXXXXX", "wrong"),
    )
    .await;
    app.post_event_signed(
        b"{}".to_vec(),
        Some(&crate::helpers::now().to_string()),
        Some(&format!("v0={}", "0".repeat(64))),
    )
    .await;
    app.get_with("/api/v1/alerts", None).await;
    // Any token is a method to HTTP; each would be a new series.
    for method in ["FROBNICATE", "PURGE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, format!("{}/api/v1/alerts", app.address))
            .send()
            .await
            .unwrap();
    }

    let log = server.output.lock().unwrap().clone();
    let port = log
        .lines()
        .find(|l| l.contains("metrics listening"))
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|j| j["port"].as_u64())
        .expect("the metrics port is logged");
    let res = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();

    let has = |name: &str, labels: &[&str]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    assert_eq!(
        has(
            "klaxon_alerts_created_total",
            &["source=\"events_api\"", "urgency=\"critical\""]
        ),
        1.0
    );
    assert_eq!(
        has(
            "klaxon_duplicates_suppressed_total",
            &["source=\"events_api\""]
        ),
        1.0
    );
    assert_eq!(
        has("klaxon_events_ignored_total", &["reason=\"bot_message\""]),
        2.0
    );
    assert_eq!(
        has(
            "klaxon_events_ignored_total",
            &["reason=\"thread_reply_refused\""]
        ),
        2.0
    );
    assert_eq!(
        has(
            "klaxon_verification_failures_total",
            &["surface=\"outgoing\"", "reason=\"invalid_token\""]
        ),
        1.0
    );
    assert_eq!(
        has(
            "klaxon_verification_failures_total",
            &["surface=\"events\"", "reason=\"invalid_signature\""]
        ),
        1.0
    );
    assert_eq!(
        has(
            "klaxon_verification_failures_total",
            &["surface=\"api\"", "reason=\"unauthenticated\""]
        ),
        1.0
    );
    assert_eq!(
        has(
            "klaxon_http_requests_total",
            &["route=\"/slack/events\"", "status=\"200\""]
        ),
        5.0
    );
    assert_eq!(
        has(
            "klaxon_http_requests_total",
            &["route=\"/api/v1/alerts\"", "method=\"OTHER\""]
        ),
        2.0
    );
    assert!(!text.contains("FROBNICATE") && !text.contains("PURGE"));
    assert!(
        has(
            "klaxon_http_request_duration_seconds_count",
            &["route=\"/slack/events\""]
        ) >= 4.0
    );
    assert!(
        has(
            "klaxon_store_flush_duration_seconds_bucket",
            &["le=\"+Inf\""]
        ) >= 1.0
    );
    assert!(has("klaxon_store_group_size_count", &[]) >= 1.0);
    assert_eq!(
        has(
            "klaxon_alerts",
            &["status=\"resolved\"", "urgency=\"critical\""]
        ),
        1.0,
        "the thread reply resolved the alert"
    );
    assert!(has("klaxon_store_disk_bytes", &[]) > 0.0);
    for secret in [
        crate::helpers::SIGNING_SECRET,
        crate::helpers::VERIFICATION_TOKEN,
        READ_TOKEN,
    ] {
        assert!(!text.contains(secret));
    }
    // Not on the main port when it has its own listener.
    assert_eq!(
        app.get_with("/metrics", Some(READ_TOKEN)).await.status(),
        404
    );
}

#[tokio::test]
async fn metrics_on_the_main_port_need_a_read_token() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_server(&server_env(data_dir.path()));
    let app = TestApp::at(&server.address);
    assert_eq!(app.get_with("/metrics", None).await.status(), 401);
    let res = app.get_with("/metrics", Some(READ_TOKEN)).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("klaxon_http_requests_total"));
    // Error counters are there at 0 before any error, so that an alert on
    // their increase sees the first one.
    for errors in [
        "klaxon_store_flush_errors_total 0",
        "klaxon_store_damaged_records_total 0",
        "klaxon_verification_failures_total{surface=\"events\",reason=\"invalid_signature\"} 0",
        "klaxon_verification_failures_total{surface=\"outgoing\",reason=\"invalid_token\"} 0",
    ] {
        assert!(text.contains(errors), "{errors} missing: {text}");
    }
}

/// What the shipped alert rules watch without traffic: when klaxon started
/// (a restart loop), and the data dir's free space against the floor. A
/// group that wrote nothing (a Slack retry) is no flush.
#[tokio::test]
async fn metrics_tell_restarts_and_free_space_and_count_only_real_flushes() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_MIN_FREE_MB", "3".into()));
    let server = start_server(&env);
    let app = TestApp::at(&server.address);
    let scrape = || async {
        let res = app.get_with("/metrics", Some(READ_TOKEN)).await;
        res.text().await.unwrap()
    };
    let value = |text: &str, name: &str| {
        sample(text, name, &[]).unwrap_or_else(|| panic!("{name} missing: {text}"))
    };

    let text = scrape().await;
    let started = value(&text, "klaxon_start_time_seconds");
    let now = crate::helpers::now() as f64;
    assert!(
        (now - 600.0..=now + 1.0).contains(&started),
        "{started} vs {now}"
    );
    assert_eq!(value(&text, "klaxon_store_min_free_bytes"), 3.0 * 1048576.0);
    // The test server has both Slack secrets.
    for surface in ["events", "outgoing"] {
        let label = format!("surface=\"{surface}\"");
        let configured = sample(&text, "klaxon_slack_surface_configured", &[&label]);
        assert_eq!(configured, Some(1.0), "{surface}");
    }
    assert!(value(&text, "klaxon_store_free_bytes") > 3.0 * 1048576.0);

    app.post_event(&event_fixture("message")).await;
    let flushes = |text: &str| value(text, "klaxon_store_flush_duration_seconds_count");
    let before = flushes(&scrape().await);
    let retry: serde_json::Value = app
        .post_event(&event_fixture("message"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(flushes(&scrape().await), before, "a retry wrote nothing");

    // Set once, at start: a value set again at each scrape would read as a restart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = value(&scrape().await, "klaxon_start_time_seconds");
    assert_eq!(later, started, "a scrape changed the start time");
}

/// A Slack surface without its secret is shown as not set up: its
/// verification failures are then anyone's requests, not Slack's.
#[tokio::test]
async fn a_slack_surface_without_its_secret_is_not_configured() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.retain(|(name, _)| *name != "SLACK_VERIFICATION_TOKEN");
    let server = start_server(&env);
    let app = TestApp::at(&server.address);

    let res = app.get_with("/metrics", Some(READ_TOKEN)).await;

    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let configured = |surface: &str| {
        let label = format!("surface=\"{surface}\"");
        sample(&text, "klaxon_slack_surface_configured", &[&label])
    };
    assert_eq!(configured("outgoing"), Some(0.0), "{text}");
    assert_eq!(configured("events"), Some(1.0), "{text}");
}

/// Refusals of a client's request are counted by reason.
#[tokio::test]
async fn refused_requests_are_counted_by_reason() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_SLACK_RATE_PER_SEC", "1".into()));
    env.push(("KLAXON_SLACK_RATE_BURST", "1".into()));
    let server = start_server(&env);
    let app = TestApp::at(&server.address);
    let rejected = || async {
        let res = app.get_with("/metrics", Some(READ_TOKEN)).await;
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        let count = |reason: &str| {
            let label = format!("reason=\"{reason}\"");
            sample(&text, "klaxon_requests_rejected_total", &[&label]).unwrap_or(0.0)
        };
        (count("payload_too_large"), count("rate_limited"))
    };
    let before = rejected().await;

    // The first Slack request spends the burst; the next, right after, is over the rate.
    let id = app.create_alert("x", "1732400000.000001").await;
    let form = fixture("outgoing/pagertree_outage_high.form");
    assert_eq!(app.post_outgoing(&form).await.status(), 429);
    let big = serde_json::json!({"note": "n".repeat(20 * 1024)});
    assert_eq!(app.act(&id, "notes", Some(big)).await.status(), 413);

    assert_eq!(rejected().await, (before.0 + 1.0, before.1 + 1.0));
}

/// `GET /metrics` on the main port, with the read token.
async fn scrape(app: &TestApp) -> String {
    let res = app.get_with("/metrics", Some(READ_TOKEN)).await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Every sample of `name`: its labels and its value.
fn series(text: &str, name: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with(['{', ' ']))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A 503 for too little free space is the server's state, not a refusal of
/// the client's request: it is counted by status only.
#[tokio::test]
async fn a_503_for_too_little_free_space_is_counted_by_status_not_as_a_rejection() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    // More free space than any disk has.
    env.push(("KLAXON_MIN_FREE_MB", (1u64 << 40).to_string()));
    let server = start_server(&env);
    let app = TestApp::at(&server.address);
    let unavailable = |text: &str| {
        let labels = ["route=\"/slack/events\"", "status=\"503\""];
        sample(text, "klaxon_http_requests_total", &labels).unwrap_or(0.0)
    };
    let before = scrape(&app).await;

    let res = app.post_event(&event_fixture("message")).await;

    assert_eq!(res.status(), 503);
    let after = scrape(&app).await;
    assert_eq!(unavailable(&after), unavailable(&before) + 1.0, "{after}");
    assert_eq!(
        series(&after, "klaxon_requests_rejected_total"),
        series(&before, "klaxon_requests_rejected_total"),
        "a 503 was counted as a rejection"
    );
}

/// Paths no route matches are counted as `route="unmatched"`: a client
/// walking random paths makes no series of each.
#[tokio::test]
async fn requests_no_route_matches_are_counted_as_unmatched_not_by_path() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_server(&server_env(data_dir.path()));
    let app = TestApp::at(&server.address);
    let unmatched = |text: &str| {
        let labels = ["route=\"unmatched\"", "method=\"GET\"", "status=\"404\""];
        sample(text, "klaxon_http_requests_total", &labels).unwrap_or(0.0)
    };
    let random = format!("/wp-{}/{}", std::process::id(), "q7z".repeat(100));
    let before = scrape(&app).await;

    for path in ["/nope", random.as_str()] {
        assert_eq!(app.get_with(path, None).await.status(), 404, "{path}");
    }

    let after = scrape(&app).await;
    assert_eq!(unmatched(&after), unmatched(&before) + 2.0, "{after}");
    assert!(
        !after.contains("nope") && !after.contains(&random[1..]),
        "{after}"
    );
}

/// Held replies apply once their thread's first message is an alert; one
/// whose command that alert refuses (an ack of a resolved alert) is counted
/// as refused, as it would be arriving after the message.
#[tokio::test]
async fn a_held_reply_the_alert_refuses_is_counted_as_refused() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = start_server(&server_env(data_dir.path()));
    let app = TestApp::at(&server.address);
    let refused = |text: &str| {
        let labels = ["reason=\"thread_reply_refused\""];
        sample(text, "klaxon_events_ignored_total", &labels).unwrap_or(0.0)
    };
    let before = refused(&scrape(&app).await);
    for (text, ts) in [
        ("resolve", "1732358800.000900"),
        ("ack", "1732358800.001900"),
    ] {
        let held = reply(text, ts, &format!("EvHELD{text}"));
        let res: serde_json::Value = app.post_event(&held).await.json().await.unwrap();
        assert_eq!(res["held"], true, "{res}");
    }
    assert_eq!(refused(&scrape(&app).await), before, "nothing applied yet");

    let created: serde_json::Value = app
        .post_event(&event_fixture("message"))
        .await
        .json()
        .await
        .unwrap();
    let id = created["alert_id"].as_str().expect("an alert was created");

    let alert: serde_json::Value = app.get_alert(id).await.json().await.unwrap();
    assert_eq!(alert["status"], "resolved", "{alert}");
    assert_eq!(refused(&scrape(&app).await), before + 1.0);
}
