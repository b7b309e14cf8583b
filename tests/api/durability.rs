use reqwest::Client;
use serde_json::Value;

use crate::helpers::{event_fixture, fixture, send_event, send_outgoing, TestApp, READ_TOKEN};
use crate::process::{serve_refused, server_env, set_env, start_server};

/// Posts one alert through each surface per round, concurrently; returns the
/// ids of every alert that was answered 200.
async fn post_alerts(client: &Client, address: &str, rounds: usize) -> Vec<String> {
    let mut tasks = Vec::new();
    for i in 0..rounds {
        let client = client.clone();
        let address = address.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut event = event_fixture("message");
            event["event"]["ts"] = format!("1732400000.{i:06}").into();
            event["event_id"] = format!("EvDURABLE{i}").into();
            let body = serde_json::to_vec(&event).unwrap();
            let res = send_event(&client, &address, body, &[]).await.unwrap();
            assert_eq!(res.status(), 200);
            let json: Value = res.json().await.unwrap();
            let event_id = json["alert_id"].as_str().unwrap().to_owned();

            let form = fixture("outgoing/pagertree_outage_high.form").replace(
                "timestamp=1732358400.000200",
                &format!("timestamp=1732500000.{i:06}"),
            );
            let res = send_outgoing(&client, &address, form).await.unwrap();
            assert_eq!(res.status(), 200);
            let text: Value = res.json().await.unwrap();
            let reply = text["text"].as_str().unwrap();
            let outgoing_id = crate::helpers::alert_id_in_reply(reply);
            vec![event_id, outgoing_id]
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids
}

#[tokio::test]
async fn alerts_answered_200_survive_sigkill() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let client = Client::new();

    let mut server = start_server(&env);
    let ids = post_alerts(&client, &server.address, 25).await;
    server.kill_hard();

    let server = start_server(&env);
    assert_eq!(ids.len(), 50);
    let app = TestApp::at(&server.address);
    for id in &ids {
        let status = app.get_alert(id).await.status();
        assert_eq!(status, 200, "alert {id} lost after SIGKILL");
    }
    let listing: Value = client
        .get(format!("{}/api/v1/alerts?limit=1000", server.address))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["alerts"].as_array().unwrap().len(), 50);
}

#[test]
fn serve_refuses_to_start_without_any_slack_secret() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("KLAXON_DATA_DIR", dir.path().display().to_string()),
        ("KLAXON_LISTEN", "127.0.0.1:0".into()),
    ];
    let out = serve_refused(&env);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SLACK_SIGNING_SECRET") && stderr.contains("SLACK_VERIFICATION_TOKEN"),
        "{stderr}"
    );
}

#[test]
fn a_store_from_a_future_schema_stops_startup_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let future = klaxon::store::SCHEMA_VERSION + 1;
    std::fs::create_dir(dir.path().join(format!("v{future}"))).unwrap();
    let out = serve_refused(&server_env(dir.path()));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("schema version {future}")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_empty_secret_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(dir.path());
    set_env(&mut env, "SLACK_SIGNING_SECRET", "");
    let out = serve_refused(&env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty secret"));
}
