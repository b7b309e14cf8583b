use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{event_fixture, fixture, send_event, send_outgoing, spawn_app};

/// Slack's retries arrive up to four times, concurrently and out of order,
/// and the same message may also come through the outgoing webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_makes_exactly_one_alert_per_message() {
    let app = spawn_app().await;
    const MESSAGES: usize = 40;
    let mut deliveries = Vec::new();
    for m in 0..MESSAGES {
        let ts = format!("1733100000.{m:06}");
        let mut event = event_fixture("message");
        event["event"]["ts"] = ts.clone().into();
        event["event_id"] = format!("EvSTORM{m}").into();
        for retry in [None, Some("1"), Some("2"), Some("3")] {
            deliveries.push((m, Some((serde_json::to_vec(&event).unwrap(), retry)), None));
        }
        let form = fixture("outgoing/pagertree_outage_high.form")
            .replace("timestamp=1732358400.000200", &format!("timestamp={ts}"));
        deliveries.push((m, None, Some(form)));
    }
    // Out of order: a fixed shuffle, so a failure can be replayed.
    let mut order: Vec<usize> = (0..deliveries.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (i * 7919 + 13) % (i + 1));
    }

    let mut tasks = Vec::new();
    for i in order {
        let (m, event, form) = deliveries[i].clone();
        let (client, address) = (app.client.clone(), app.address.clone());
        tasks.push(tokio::spawn(async move {
            let res = if let Some((body, retry)) = event {
                let retry_headers = match retry {
                    Some(n) => vec![
                        ("x-slack-retry-num", n),
                        ("x-slack-retry-reason", "http_timeout"),
                    ],
                    None => Vec::new(),
                };
                send_event(&client, &address, body, &retry_headers)
                    .await
                    .unwrap()
            } else {
                send_outgoing(&client, &address, form.unwrap())
                    .await
                    .unwrap()
            };
            assert_eq!(res.status(), 200);
            let json: Value = res.json().await.unwrap();
            let id = json["alert_id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    crate::helpers::alert_id_in_reply(json["text"].as_str().unwrap())
                });
            (m, id)
        }));
    }
    let mut ids_per_message: HashMap<usize, Vec<String>> = HashMap::new();
    for task in tasks {
        let (m, id) = task.await.unwrap();
        ids_per_message.entry(m).or_default().push(id);
    }

    // Every delivery of a message was answered with the same alert.
    for (m, ids) in &ids_per_message {
        assert_eq!(ids.len(), 5);
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "message {m} got several alerts: {ids:?}"
        );
    }
    assert_eq!(app.all_alerts().await.len(), MESSAGES);
}
