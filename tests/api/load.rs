//! Concurrent load on a running server: new alerts through the Events API and
//! lifecycle changes through the alert API, remembering what was answered 2xx.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::helpers::{event_fixture, send_event, WRITE_TOKEN};

/// Lifecycle changes the loaders take turns at (an acknowledgement of a
/// resolved alert answers 409, which is fine).
const ACTIONS: [&str; 4] = ["acknowledge", "notes", "resolve", "reopen"];

/// What the server answered so far.
#[derive(Clone, Debug, Default)]
pub struct Answered {
    /// Per alert answered 2xx, the highest `seq` an answer carried (0 when
    /// only its creation was answered: the Events API's answer has no `seq`).
    pub seqs: HashMap<String, u64>,
    /// Alerts created, in the order their answers came.
    pub created: Vec<String>,
    /// Lifecycle changes answered 2xx.
    pub changes: u64,
    /// Answers other than 2xx, by status.
    pub refused: HashMap<u16, u64>,
    /// Requests with no complete answer (the connection failed or was cut).
    pub unanswered: u64,
}

impl Answered {
    fn answer(&mut self, id: &str, seq: u64) {
        let known = self.seqs.entry(id.to_owned()).or_insert(seq);
        *known = (*known).max(seq);
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<Answered>>,
    loaders: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `loaders` concurrent clients against `address`. Every third
    /// request (once there is an alert) changes an alert; the others post a
    /// new Slack message whose text is `text_bytes` long.
    pub fn start(address: &str, loaders: usize, text_bytes: usize) -> Load {
        let client = Client::new();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(Mutex::new(Answered::default()));
        let counter = Arc::new(AtomicU64::new(0));
        let loaders = (0..loaders)
            .map(|_| {
                let (client, address) = (client.clone(), address.to_owned());
                let (stop, answered, counter) = (stop.clone(), answered.clone(), counter.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        one_request(&client, &address, n, text_bytes, &answered).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            answered,
            loaders,
        }
    }

    /// What was answered so far.
    pub fn answered(&self) -> Answered {
        self.answered.lock().unwrap().clone()
    }

    /// Waits until at least `created` alerts and `changes` lifecycle changes
    /// were answered 2xx; panics after 60 s.
    pub async fn wait_for(&self, created: usize, changes: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = self.answered();
            if answered.created.len() >= created && answered.changes >= changes {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "load too slow: {} created, {} changes, refused {:?}, {} unanswered",
                answered.created.len(),
                answered.changes,
                answered.refused,
                answered.unanswered
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the loaders once their requests are done; what was answered.
    pub async fn stop(self) -> Answered {
        self.stop.store(true, Ordering::SeqCst);
        for loader in self.loaders {
            loader.await.unwrap();
        }
        let answered = self.answered.lock().unwrap().clone();
        answered
    }
}

/// Request `n`: a lifecycle change of a known alert, or a new Slack message.
async fn one_request(
    client: &Client,
    address: &str,
    n: u64,
    text_bytes: usize,
    answered: &Mutex<Answered>,
) {
    let target = {
        let answered = answered.lock().unwrap();
        let created = &answered.created;
        (n.is_multiple_of(3) && !created.is_empty())
            .then(|| created[(n as usize * 7919) % created.len()].clone())
    };
    let res = match &target {
        Some(id) => {
            let action = ACTIONS[(n / 3) as usize % ACTIONS.len()];
            client
                .post(format!("{address}/api/v1/alerts/{id}/{action}"))
                .bearer_auth(WRITE_TOKEN)
                .json(&json!({"by": "load", "note": format!("note {n}")}))
                .send()
                .await
        }
        None => {
            let mut event = event_fixture("message");
            let mut text = format!("high: load {n} ");
            text.extend(std::iter::repeat_n(
                'x',
                text_bytes.saturating_sub(text.len()),
            ));
            event["event"]["text"] = text.into();
            event["event"]["ts"] = format!("1734000000.{n:06}").into();
            event["event_id"] = format!("EvLOAD{n}").into();
            send_event(client, address, serde_json::to_vec(&event).unwrap(), &[]).await
        }
    };
    let Ok(res) = res else {
        answered.lock().unwrap().unanswered += 1;
        return;
    };
    let status = res.status();
    // A body cut off (the server ended) is no answer.
    let Ok(body) = res.json::<Value>().await else {
        answered.lock().unwrap().unanswered += 1;
        return;
    };
    let mut answered = answered.lock().unwrap();
    if !status.is_success() {
        *answered.refused.entry(status.as_u16()).or_default() += 1;
        return;
    }
    match target {
        Some(id) => {
            assert_eq!(body["id"], id.as_str(), "{body}");
            let seq = body["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("no seq: {body}"));
            answered.answer(&id, seq);
            answered.changes += 1;
        }
        None => {
            assert_ne!(body["duplicate"], true, "{body}");
            let id = body["alert_id"]
                .as_str()
                .unwrap_or_else(|| panic!("2xx without an alert: {body}"));
            answered.answer(id, 0);
            answered.created.push(id.to_owned());
        }
    }
}
