use serde_json::Value;

use crate::helpers::{
    event_fixture, fixture, now, TestApp, READ_TOKEN, SIGNING_SECRET, VERIFICATION_TOKEN,
    WRITE_TOKEN,
};
use crate::process::{server_env, set_env, start_server};

/// Every kind of request, good and bad, then every configured secret is
/// searched for in everything the server printed.
#[tokio::test]
async fn no_secret_or_token_ever_appears_in_the_output() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    set_env(&mut env, "RUST_LOG", "trace");
    let mut server = start_server(&env);
    let app = TestApp::at(&server.address);

    let id = app
        .create_alert("critical: leak test", "1732400000.000001")
        .await;
    app.post_event(&event_fixture("url_verification")).await;
    app.post_event(&event_fixture("thread_reply")).await;
    let body = serde_json::to_vec(&event_fixture("message")).unwrap();
    let ts = now().to_string();
    let good_sig = klaxon::slack::signature::sign(SIGNING_SECRET.as_bytes(), &ts, &body);
    app.post_event_signed(
        body.clone(),
        Some(&ts),
        Some(&klaxon::slack::signature::sign(b"x", &ts, &body)),
    )
    .await;
    app.post_event_signed(b"{}".to_vec(), Some(&ts), Some(&good_sig))
        .await;
    app.post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
        .await;
    app.post_outgoing(
        &fixture("outgoing/pagertree_outage_high.form").replace(VERIFICATION_TOKEN, "wrong-token"),
    )
    .await;
    app.post_outgoing("token=XXXXXXXXXXXXXXXXXX&text=%ZZ").await;
    app.get_alert(&id).await;
    app.get_with("/api/v1/alerts", Some("not-a-token")).await;
    app.get_with("/api/v1/alerts/summary", Some(READ_TOKEN))
        .await;
    app.act_as(&id, "acknowledge", None, READ_TOKEN).await;
    app.act(&id, "resolve", Some(serde_json::json!({"by": "ana"})))
        .await;
    let res: Value = app
        .get_with("/api/v1/changes", Some(WRITE_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert!(!res["alerts"].as_array().unwrap().is_empty());
    server.kill_hard();

    let output = server.output.lock().unwrap().clone();
    assert!(
        output.contains("\"status\":401"),
        "the session logged its requests: {output}"
    );
    for secret in [
        SIGNING_SECRET,
        VERIFICATION_TOKEN,
        READ_TOKEN,
        WRITE_TOKEN,
        &good_sig[3..],
    ] {
        assert!(
            !output.contains(secret),
            "{secret} appears in the server's output"
        );
    }
}

/// At `warn`, the level that logs refusals only, a refused request's line
/// still names its method, path and client.
#[tokio::test]
async fn a_refused_request_is_logged_with_its_client_at_warn() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    set_env(&mut env, "RUST_LOG", "warn,klaxon::startup=info");
    let mut server = start_server(&env);
    let app = TestApp::at(&server.address);
    let body = serde_json::to_vec(&event_fixture("message")).unwrap();
    let ts = now().to_string();
    let bad_sig = klaxon::slack::signature::sign(b"x", &ts, &body);
    let res = app.post_event_signed(body, Some(&ts), Some(&bad_sig)).await;
    assert_eq!(res.status(), 401);
    server.kill_hard();

    let output = server.output.lock().unwrap().clone();
    let line: Value = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["status"] == 401)
        .unwrap_or_else(|| panic!("no line for the refused request: {output}"));
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["path"], "/slack/events", "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["reason"], "invalid-signature", "{line}");
}
