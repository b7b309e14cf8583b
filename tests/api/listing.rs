use std::collections::HashSet;

use serde_json::Value;

use crate::helpers::{assert_error, spawn_app, TestApp, READ_TOKEN};

fn ids(page: &Value) -> Vec<String> {
    page["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates `n` alerts; returns their ids oldest first.
async fn create(app: &TestApp, n: usize, text: &str, base: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            app.create_alert(text, &format!("1732400000.{:06}", base + i))
                .await,
        );
    }
    out
}

#[tokio::test]
async fn listing_is_newest_first_with_a_limit() {
    let app = spawn_app().await;
    let created = create(&app, 5, "disk full", 0).await;

    let page = app.list("limit=3").await;

    let newest: Vec<String> = created.iter().rev().take(3).cloned().collect();
    assert_eq!(ids(&page), newest);
    assert!(page["next_cursor"].is_string());
    let rest = app
        .list(&format!(
            "limit=3&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&rest), vec![created[1].clone(), created[0].clone()]);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn walking_cursors_returns_every_alert_once_while_new_ones_arrive() {
    let app = spawn_app().await;
    let created = create(&app, 25, "db slow", 0).await;

    let mut seen = Vec::new();
    let mut query = "limit=7".to_owned();
    let mut extra = 100;
    loop {
        let page = app.list(&query).await;
        seen.extend(ids(&page));
        // New alerts land between page reads.
        create(&app, 2, "new while paging", extra).await;
        extra += 2;
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=7&cursor={cursor}"),
            None => break,
        }
    }

    let expected: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn status_urgency_and_channel_filters_use_the_indexes() {
    let app = spawn_app().await;
    let low = create(&app, 3, "low: cert expires in 30 days", 0).await;
    let high = create(&app, 3, "high: error rate 5%", 10).await;
    let critical = create(&app, 3, "critical: site down", 20).await;
    app.act(&high[0], "acknowledge", None).await;
    app.act(&critical[0], "resolve", None).await;
    let mut other_channel = crate::helpers::event_fixture("message");
    other_channel["event"]["channel"] = "C0OTHER".into();
    other_channel["event"]["ts"] = "1732400999.000001".into();
    other_channel["event_id"] = "EvOTHER".into();
    let other: Value = app.post_event(&other_channel).await.json().await.unwrap();

    let open_urgent = app.list("status=open&urgency=high,critical").await;
    let expected = vec![
        other["alert_id"].as_str().unwrap().to_owned(),
        critical[2].clone(),
        critical[1].clone(),
        high[2].clone(),
        high[1].clone(),
    ];
    assert_eq!(ids(&open_urgent), expected);

    assert_eq!(
        ids(&app.list("status=acknowledged").await),
        vec![high[0].clone()]
    );
    assert_eq!(
        ids(&app.list("status=resolved,acknowledged").await),
        vec![critical[0].clone(), high[0].clone()]
    );
    // A word sent twice, in any case, is one filter: each alert once.
    assert_eq!(
        ids(&app
            .list("status=acknowledged,ACKNOWLEDGED&urgency=high,high")
            .await),
        vec![high[0].clone()]
    );
    let lows: Vec<String> = low.iter().rev().cloned().collect();
    assert_eq!(ids(&app.list("urgency=low").await), lows);
    assert_eq!(
        ids(&app.list("channel=C0OTHER").await),
        vec![other["alert_id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(
        ids(&app.list("channel=C024BE91L&status=resolved").await),
        vec![critical[0].clone()]
    );
    assert!(ids(&app.list("channel=C0NONE").await).is_empty());

    // Filtered pages walk too.
    let first = app.list("status=open&limit=2").await;
    let second = app
        .list(&format!(
            "status=open&limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        ))
        .await;
    let both: HashSet<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(both.len(), 4);
}

#[tokio::test]
async fn since_and_until_bound_created_at() {
    let app = spawn_app().await;
    let mut before = create(&app, 1, "old", 0).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    before.extend(create(&app, 1, "old", 1).await);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let cut = app.list("limit=1").await["alerts"][0]["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let after = create(&app, 2, "new", 10).await;

    let since = app
        .list(&format!("since={}", cut.replace('+', "%2B")))
        .await;
    let until = app.list(&format!("until={cut}")).await;

    assert_eq!(
        ids(&since),
        vec![after[1].clone(), after[0].clone(), before[1].clone()]
    );
    assert_eq!(ids(&until), vec![before[1].clone(), before[0].clone()]);
    assert!(ids(&app.list("since=2999-01-01T00:00:00Z").await).is_empty());
}

#[tokio::test]
async fn bad_listing_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "status=closed",
        "urgency=urgent",
        "limit=0",
        "limit=1001",
        "limit=x",
        "since=yesterday",
        "cursor=%00%01",
        "cursor=zzzzzzzzzzzzzz",
    ] {
        let res = app
            .get_with(&format!("/api/v1/alerts?{query}"), Some(READ_TOKEN))
            .await;
        let body = assert_error(res, 400, "invalid-parameter").await;
        for sent in ["closed", "urgent", "yesterday", "zzzz"] {
            assert!(!body.contains(sent), "the value is not echoed: {body}");
        }
        // Even when any tag would do.
        let res = app
            .client
            .get(app.url(&format!("/api/v1/alerts?{query}")))
            .bearer_auth(READ_TOKEN)
            .header("if-none-match", "*")
            .send()
            .await
            .unwrap();
        assert_error(res, 400, "invalid-parameter").await;
    }
}
