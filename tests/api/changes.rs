use reqwest::Client;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp, READ_TOKEN, WRITE_TOKEN};
use crate::process::{server_env, start_server};

async fn changes(app: &TestApp, after: u64) -> Value {
    let res = app
        .get_with(
            &format!("/api/v1/changes?after={after}&limit=100"),
            Some(READ_TOKEN),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn seqs(page: &Value) -> Vec<(String, u64)> {
    page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_change_feed_lists_each_change_once_oldest_first() {
    let app = spawn_app().await;
    let a = app.create_alert("a", "1732400000.000001").await;
    let b = app.create_alert("b", "1732400000.000002").await;

    let first = changes(&app, 0).await;
    assert_eq!(seqs(&first), vec![(a.clone(), 1), (b.clone(), 2)]);
    let cursor = first["next_after"].as_u64().unwrap();
    assert_eq!(cursor, 2);
    assert!(seqs(&changes(&app, cursor).await).is_empty());

    app.act(&a, "acknowledge", None).await;
    app.act(&b, "notes", Some(serde_json::json!({"note": "x"})))
        .await;
    let next = changes(&app, cursor).await;
    assert_eq!(seqs(&next), vec![(a.clone(), 3), (b.clone(), 4)]);
    assert_eq!(next["alerts"][0]["status"], "acknowledged");
    // A consumer starting over sees each alert once, at its latest change.
    assert_eq!(seqs(&changes(&app, 0).await), vec![(a, 3), (b, 4)]);
}

#[tokio::test]
async fn bad_change_feed_parameters_are_400() {
    let app = spawn_app().await;
    for query in ["after=-1", "after=x", "limit=0", "limit=5000"] {
        let res = app
            .get_with(&format!("/api/v1/changes?{query}"), Some(READ_TOKEN))
            .await;
        crate::helpers::assert_error(res, 400, "invalid-parameter").await;
    }
}

#[tokio::test]
async fn the_change_feed_continues_across_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let client = Client::new();
    let feed = |address: &str, after: u64| {
        let req = client
            .get(format!("{address}/api/v1/changes?after={after}"))
            .bearer_auth(READ_TOKEN);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let mut server = start_server(&env);
    let app = TestApp {
        address: server.address.clone(),
        client: client.clone(),
        _data_dir: tempfile::tempdir().unwrap(),
    };
    let id = app
        .create_alert("before restart", "1732400000.000001")
        .await;
    let seen = feed(&server.address, 0).await;
    let stored_seq = seen["next_after"].as_u64().unwrap();
    server.kill_hard();

    let server = start_server(&env);
    let res = client
        .post(format!("{}/api/v1/alerts/{id}/resolve", server.address))
        .bearer_auth(WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after = feed(&server.address, stored_seq).await;
    let alerts = after["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["id"], id.as_str());
    assert_eq!(alerts[0]["status"], "resolved");
    assert!(alerts[0]["seq"].as_u64().unwrap() > stored_seq);
}

#[tokio::test]
async fn a_cursor_beyond_the_latest_change_is_refused_not_answered_empty() {
    let app = spawn_app().await;
    app.create_alert("a", "1732400000.000001").await;
    assert!(seqs(&changes(&app, 1).await).is_empty());
    let res = app
        .get_with("/api/v1/changes?after=2", Some(READ_TOKEN))
        .await;
    crate::helpers::assert_error(res, 409, "conflict").await;
}
