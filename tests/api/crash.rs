use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Client;
use serde_json::Value;

use crate::helpers::{event_fixture, fixture, send_event, send_outgoing, TestApp};
use crate::process::{assert_store_clean, server_env, start_server};

const CYCLES: u64 = 20;
const LOADERS: u64 = 6;

/// One request through a surface chosen by `n`; the alert id when answered 200.
async fn post_one(client: &Client, address: &str, n: u64) -> Option<String> {
    let ts = format!("1733000000.{n:06}");
    let res = if n.is_multiple_of(2) {
        let mut event = event_fixture("message");
        event["event"]["ts"] = ts.into();
        event["event_id"] = format!("EvCRASH{n}").into();
        send_event(client, address, serde_json::to_vec(&event).unwrap(), &[]).await
    } else {
        let form = fixture("outgoing/pagertree_outage_high.form")
            .replace("timestamp=1732358400.000200", &format!("timestamp={ts}"));
        send_outgoing(client, address, form).await
    };
    let res = res.ok()?;
    if res.status() != 200 {
        return None;
    }
    let json: Value = res.json().await.ok()?;
    match json["alert_id"].as_str() {
        Some(id) => Some(id.to_owned()),
        None => json["text"].as_str().map(crate::helpers::alert_id_in_reply),
    }
}

fn pseudo_random(seed: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (seed ^ nanos)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33
}

/// The real binary under concurrent load from both surfaces, killed with
/// SIGKILL at random moments. After every kill the store must pass its
/// integrity check, and after every restart each alert that was answered
/// 200 must be there, exactly once per Slack message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_that_was_answered() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let client = Client::new();
    let counter = Arc::new(AtomicU64::new(0));
    let answered: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let mut in_flight_at_kill = 0;

    for cycle in 0..CYCLES {
        let mut server = start_server(&env);
        let stop = Arc::new(AtomicBool::new(false));
        let mut loaders = Vec::new();
        for _ in 0..LOADERS {
            let (client, address) = (client.clone(), server.address.clone());
            let (counter, answered, stop) = (counter.clone(), answered.clone(), stop.clone());
            loaders.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = post_one(&client, &address, n).await {
                        answered.lock().unwrap().insert(id, n);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + pseudo_random(cycle) % 400)).await;
        let sent_before_kill = counter.load(Ordering::Relaxed);
        server.kill_hard();
        stop.store(true, Ordering::Relaxed);
        for loader in loaders {
            loader.await.unwrap();
        }
        in_flight_at_kill += counter.load(Ordering::Relaxed) - sent_before_kill;

        assert_store_clean(data_dir.path(), &format!("cycle {cycle}"));
    }

    let server = start_server(&env);
    let app = TestApp {
        address: server.address.clone(),
        client,
        _data_dir: tempfile::tempdir().unwrap(),
    };
    let stored = app.all_alerts().await;
    let stored_ids: HashSet<&str> = stored.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let answered = answered.lock().unwrap();
    for id in answered.keys() {
        assert!(
            stored_ids.contains(id.as_str()),
            "alert {id} was answered 200 but is gone"
        );
    }
    let mut per_message = HashMap::new();
    for alert in &stored {
        *per_message
            .entry(alert["slack"]["ts"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        per_message.values().all(|&n| n == 1),
        "a Slack message became two alerts"
    );
    eprintln!(
        "crash test: {CYCLES} SIGKILL cycles, {} requests sent, {} answered 200 and all present, {} stored, {} unanswered at kill",
        counter.load(Ordering::Relaxed),
        answered.len(),
        stored.len(),
        in_flight_at_kill
    );
}
