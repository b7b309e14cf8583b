use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Client;
use serde_json::Value;

use crate::helpers::{event_fixture, fixture, send_event, send_outgoing, TestApp};
use crate::process::{assert_store_clean, server_env, start_server};

const CYCLES: u64 = 20;
const LOADERS: u64 = 6;

/// What became of one request.
enum Outcome {
    /// Answered 200: the id of the alert it made.
    Answered(String),
    /// Answered with another status.
    Refused(u16),
    /// No answer: the connection failed or was cut (the server was killed).
    Unanswered,
}

/// One request through a surface chosen by `n`.
async fn post_one(client: &Client, address: &str, n: u64) -> Outcome {
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
    let Ok(res) = res else {
        return Outcome::Unanswered;
    };
    if res.status() != 200 {
        return Outcome::Refused(res.status().as_u16());
    }
    // A body cut off by the kill is no answer.
    let Ok(json) = res.json::<Value>().await else {
        return Outcome::Unanswered;
    };
    match json["alert_id"].as_str() {
        Some(id) => Outcome::Answered(id.to_owned()),
        None => Outcome::Answered(crate::helpers::alert_id_in_reply(
            json["text"]
                .as_str()
                .unwrap_or_else(|| panic!("200 without an alert: {json}")),
        )),
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
/// SIGKILL at random moments once it has answered. After every kill the
/// store must pass its integrity check, and after every restart each alert
/// that was answered 200 must be there, exactly once per Slack message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_that_was_answered() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let client = Client::new();
    let counter = Arc::new(AtomicU64::new(0));
    let answered: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    // Answers other than 200, by status.
    let refused: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    // Requests sent before a kill and left unanswered by it.
    let cut_off = Arc::new(AtomicU64::new(0));

    for cycle in 0..CYCLES {
        let mut server = start_server(&env);
        let answered_before = answered.lock().unwrap().len();
        let (stop, killed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut loaders = Vec::new();
        for _ in 0..LOADERS {
            let (client, address) = (client.clone(), server.address.clone());
            let (counter, answered, refused, cut_off) = (
                counter.clone(),
                answered.clone(),
                refused.clone(),
                cut_off.clone(),
            );
            let (stop, killed) = (stop.clone(), killed.clone());
            loaders.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let before_kill = !killed.load(Ordering::SeqCst);
                    match post_one(&client, &address, n).await {
                        Outcome::Answered(id) => {
                            answered.lock().unwrap().insert(id, n);
                        }
                        Outcome::Refused(status) => {
                            *refused.lock().unwrap().entry(status).or_default() += 1;
                        }
                        Outcome::Unanswered if before_kill => {
                            cut_off.fetch_add(1, Ordering::Relaxed);
                        }
                        Outcome::Unanswered => {}
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + pseudo_random(cycle) % 400)).await;
        // A cycle in which nothing was answered would prove nothing: the
        // kill waits for this server's first 200.
        let deadline = Instant::now() + Duration::from_secs(20);
        while answered.lock().unwrap().len() == answered_before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            answered.lock().unwrap().len() > answered_before,
            "cycle {cycle}: nothing answered 200 in 20 s; other answers: {:?}",
            refused.lock().unwrap()
        );
        killed.store(true, Ordering::SeqCst);
        server.kill_hard();
        stop.store(true, Ordering::SeqCst);
        for loader in loaders {
            loader.await.unwrap();
        }

        assert_store_clean(data_dir.path(), &format!("cycle {cycle}"));
    }
    // Only the server's documented states may refuse a request here: its
    // rate limit (all loaders are one client) and a commit slower than 1 s.
    let refused = refused.lock().unwrap().clone();
    assert!(
        refused.keys().all(|status| [429, 503].contains(status)),
        "answers other than 200: {refused:?}"
    );
    let cut_off = cut_off.load(Ordering::Relaxed);
    assert!(cut_off > 0, "no kill came while a request was in flight");

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
        "crash test: {CYCLES} SIGKILL cycles, {} requests sent, {} answered 200 and all present, {} stored, {cut_off} cut off by a kill, refused: {refused:?}",
        counter.load(Ordering::Relaxed),
        answered.len(),
        stored.len(),
    );
}
