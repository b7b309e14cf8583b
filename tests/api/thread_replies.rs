use serde_json::Value;

use crate::helpers::{
    alert_id_in_reply, assert_error, event_fixture, fixture, reply, spawn_app, TestApp,
};

async fn alert_from_fixture(app: &TestApp) -> String {
    let created: Value = app
        .post_event(&event_fixture("message"))
        .await
        .json()
        .await
        .unwrap();
    created["alert_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_thread_reply_ack_acknowledges_the_alert_as_the_slack_user() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;

    let res = app
        .post_event(&reply("<@U0KLAXON1> ACK", "1732358800.000900", "EvREPLY1"))
        .await;

    assert_eq!(res.status(), 200);
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
    assert_eq!(
        app.all_alerts().await.len(),
        1,
        "a reply is not a new alert"
    );

    app.post_event(&reply("resolved", "1732358801.000900", "EvREPLY2"))
        .await;
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolved_by"], "U0ONCALL1");

    // A resolved alert refuses an ack until someone reopens it, from Slack too.
    app.post_event(&reply("reopen", "1732358802.000900", "EvREPLY3"))
        .await;
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "open");
}

/// Slack delivers a message it could not deliver (klaxon restarting) again a
/// minute later; an `ack` posted meanwhile can come first.
#[tokio::test]
async fn a_reply_before_its_thread_s_first_message_acts_once_that_is_an_alert() {
    let app = spawn_app().await;
    let early: Value = app
        .post_event(&reply("ack", "1732358800.000960", "EvEARLY"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(early["held"], true, "{early}");
    assert!(app.all_alerts().await.is_empty());

    let id = alert_from_fixture(&app).await;

    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
    // Slack's retry of the reply finds it done.
    let retried: Value = app
        .post_event(&reply("ack", "1732358800.000960", "EvEARLY"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retried["duplicate"], true, "{retried}");
}

/// In a channel shared with a workspace that has its own klaxon
/// installation, `@klaxon ack` there mentions a bot user Slack does not
/// name to this one. The `message` copy reads it as someone else's mention
/// (a note); the `app_mention` copy, whichever comes second, still acks.
#[tokio::test]
async fn an_app_mention_of_the_other_installation_acks_after_its_message_copy() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let message = reply("<@U0THEIRS1> ack", "1732358800.000970", "EvCOPY1");
    let mention = mention_copy(&message, "EvCOPY2");

    app.post_event(&message).await;
    let noted: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(noted["status"], "open");
    let res: Value = app.post_event(&mention).await.json().await.unwrap();

    assert_eq!(res["status"], "acknowledged", "{res}");
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
}

/// The `app_mention` copy of `message`, under its own event id.
fn mention_copy(message: &Value, event_id: &str) -> Value {
    let mut mention = message.clone();
    mention["event"]["type"] = "app_mention".into();
    mention["event_id"] = event_id.into();
    mention
}

/// Acks with `mention`, reopens through the API, then sends Slack's retry of
/// `mention`: it must change nothing.
async fn assert_a_retry_does_not_act_again(app: &TestApp, id: &str, mention: &Value) {
    let acked: Value = app.post_event(mention).await.json().await.unwrap();
    assert_eq!(acked["status"], "acknowledged", "{acked}");
    assert_eq!(app.act(id, "reopen", None).await.status(), 200);
    let retried = serde_json::to_vec(mention).unwrap();
    let res: Value = app
        .post_event_raw(retried, &[("x-slack-retry-num", "1")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["duplicate"], true, "{res}");
    let alert: Value = app.get_alert(id).await.json().await.unwrap();
    assert_eq!(alert["status"], "open", "the retry acted again");
}

/// An app mention's command acts once: Slack's retry of it, after someone
/// changed the alert since, changes nothing, whichever copy came first.
#[tokio::test]
async fn a_retried_app_mention_does_not_act_again_after_a_later_change() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    // Alone.
    let alone = reply("<@U0KLAXON1> ack", "1732358800.000971", "EvONCE1");
    assert_a_retry_does_not_act_again(&app, &id, &mention_copy(&alone, "EvONCE1")).await;
    // After its `message` copy, kept as a note.
    let message = reply("<@U0THEIRS1> ack", "1732358800.000972", "EvONCE2");
    app.post_event(&message).await;
    assert_a_retry_does_not_act_again(&app, &id, &mention_copy(&message, "EvONCE3")).await;
}

/// Both copies of a shared channel's `@klaxon ack` held before the thread's
/// first message is an alert: the mention's command is not lost.
#[tokio::test]
async fn a_held_reply_takes_the_command_of_its_app_mention_copy() {
    let app = spawn_app().await;
    let message = reply("<@U0THEIRS1> ack", "1732358800.000973", "EvHELD1");
    let mention = mention_copy(&message, "EvHELD2");
    for copy in [&message, &mention] {
        let held: Value = app.post_event(copy).await.json().await.unwrap();
        assert_eq!(held["held"], true, "{held}");
    }

    let id = alert_from_fixture(&app).await;

    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "acknowledged", "{alert}");
    assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
}

#[tokio::test]
async fn a_reply_addressed_to_someone_else_is_a_note_not_a_command() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;

    let res: Value = app
        .post_event(&reply("<@U0BOB> resolve", "1732358800.000950", "EvBOB"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(res["status"], "open", "{res}");
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["notes"][0]["text"], "<@U0BOB> resolve");
}

#[tokio::test]
async fn a_reply_also_sent_to_the_channel_acts_on_the_alert_and_is_no_new_alert() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let res = app.post_event(&event_fixture("thread_broadcast")).await;
    assert_eq!(res.status(), 200);
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolved_by"], "U0ONCALL1");
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn any_other_thread_reply_becomes_a_note_once() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let note = event_fixture("thread_reply");

    app.post_event(&note).await;
    // Slack retries, and the same reply under another event id, change nothing twice.
    let body = serde_json::to_vec(&note).unwrap();
    app.post_event_raw(body, &[("x-slack-retry-num", "1")])
        .await;
    let mut again = note.clone();
    again["event_id"] = "EvSAMEMSG".into();
    let res: Value = app.post_event(&again).await.json().await.unwrap();
    assert_eq!(res["duplicate"], true);

    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    let notes = alert["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0]["text"],
        "looking into it, rolled back the deploy (high)"
    );
    assert_eq!(notes[0]["user"], "U0ONCALL1");
    assert_eq!(notes[0]["ts"], "1732358800.000700");
    assert_eq!(alert["status"], "open");
}

#[tokio::test]
async fn a_repeated_ack_reply_does_not_change_the_alert_twice() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    app.post_event(&reply("ack", "1732358800.000901", "EvACK1"))
        .await;
    let first: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(first["status"], "acknowledged", "{first}");
    assert_eq!(first["acknowledged_by"], "U0ONCALL1");
    app.post_event(&reply("ack", "1732358800.000901", "EvACK1"))
        .await;
    app.post_event(&reply("ack", "1732358802.000901", "EvACK2"))
        .await;
    let after: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(after, first);
}

#[tokio::test]
async fn replies_in_another_channel_do_not_touch_the_alert() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let mut elsewhere = reply("ack", "1732358800.000902", "EvELSE1");
    elsewhere["event"]["channel"] = "C0OTHER".into();
    let res: Value = app.post_event(&elsewhere).await.json().await.unwrap();
    assert_eq!(res["held"], true, "{res}");
    assert_eq!(
        app.get_alert(&id).await.json::<Value>().await.unwrap()["status"],
        "open"
    );
}

/// In a channel shared with another organisation (Slack Connect), a
/// delivery's `team_id` can name either workspace: the channel and ts name
/// the message.
#[tokio::test]
async fn a_shared_channel_is_one_conversation_whichever_workspace_delivers_it() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;

    let res: Value = app
        .post_event(&event_fixture("shared_channel_reply"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["status"], "acknowledged", "{res}");
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["acknowledged_by"], "U0PARTNER9");

    // The alert's message through the other workspace's outgoing webhook.
    let partner_post = fixture("outgoing/pagertree_outage_high.form")
        .replace("team_id=T061EG9R6", "team_id=T0PARTNER1")
        .replace("timestamp=1732358400.000200", "timestamp=1732358500.000100");
    let res = app.post_outgoing(&partner_post).await;
    assert_eq!(res.status(), 200);
    let text = res.json::<Value>().await.unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(crate::helpers::alert_id_in_reply(&text), id, "{text}");
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn a_reply_beyond_the_note_limit_is_answered_ignored_and_kept_nowhere() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let long = "r".repeat(40_000);
    for i in 0..3 {
        let ts = format!("1732358800.00{i}100");
        let res = app
            .post_event(&reply(&long, &ts, &format!("EvLONG{i}")))
            .await;
        assert_eq!(res.status(), 200);
    }
    let res = app
        .post_event(&reply(&long, "1732358800.009100", "EvLONG9"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["ignored"].as_str().unwrap().contains("notes"),
        "{body}"
    );
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["notes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_reply_without_text_is_ignored_not_an_empty_note() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let mut file_only = reply("", "1732358800.000904", "EvFILE1");
    file_only["event"]["subtype"] = "file_share".into();
    let mut blank = reply(" \n ", "1732358800.000905", "EvBLANK1");
    blank["event"].as_object_mut().unwrap().remove("text");
    let mut spaces = reply(" \n ", "1732358800.000906", "EvBLANK2");
    spaces["event_id"] = "EvBLANK2".into();
    for event in [file_only, blank, spaces] {
        let res: Value = app.post_event(&event).await.json().await.unwrap();
        assert_eq!(res["ignored"], "thread reply without text", "{event}");
    }
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["notes"], serde_json::json!([]));
}

/// The outgoing-webhook post of `thread_reply.form`, and the same message
/// (same channel and ts) as the Events API sends it.
fn same_reply_through_events() -> Value {
    let mut event = reply(
        "outage still failing after the rollback, now critical",
        "1732358800.000700",
        "EvTHREADOUT",
    );
    event["event"]["user"] = "U0ONCALL1".into();
    event
}

/// `thread_reply.form` saying `text` (form-encoded) instead.
fn outgoing_reply_saying(text: &str) -> String {
    fixture("outgoing/thread_reply.form").replace(
        "text=outage+still+failing+after+the+rollback%2C+now+critical",
        &format!("text={text}"),
    )
}

#[tokio::test]
async fn an_outgoing_webhook_post_in_an_alerts_thread_is_a_reply_whichever_surface_comes_first() {
    // Outgoing webhook first, then the Events API copy.
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let res = app
        .post_outgoing(&fixture("outgoing/thread_reply.form"))
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains(&format!("added to alert {id}")), "{text}");
    let again: Value = app
        .post_event(&same_reply_through_events())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&again["alert_id"], &again["duplicate"]),
        (&id.clone().into(), &true.into())
    );
    let outgoing_first: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(app.all_alerts().await.len(), 1, "no new alert from a reply");

    // The Events API copy first, then the outgoing webhook.
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    app.post_event(&same_reply_through_events()).await;
    let body: Value = app
        .post_outgoing(&fixture("outgoing/thread_reply.form"))
        .await
        .json()
        .await
        .unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("already added to alert {id}")),
        "{text}"
    );
    let events_first: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(app.all_alerts().await.len(), 1);

    for alert in [&outgoing_first, &events_first] {
        let notes = alert["notes"].as_array().unwrap();
        assert_eq!(notes.len(), 1, "{alert}");
        assert_eq!(
            notes[0]["text"],
            "outage still failing after the rollback, now critical"
        );
        assert_eq!(notes[0]["user"], "U0ONCALL1");
        assert_eq!(alert["urgency"], "critical", "the parent's urgency is kept");
    }
}

#[tokio::test]
async fn an_outgoing_webhook_ack_in_an_alerts_thread_acknowledges_it() {
    let text = "text=outage+still+failing+after+the+rollback%2C+now+critical";
    // The trigger word itself as the command, and a command after the trigger word.
    for (said, trigger) in [
        ("text=ack", "trigger_word=ack"),
        ("text=outage+ack", "trigger_word=outage"),
    ] {
        let app = spawn_app().await;
        let id = alert_from_fixture(&app).await;
        let form = fixture("outgoing/thread_reply.form")
            .replace(text, said)
            .replace("trigger_word=outage", trigger);
        let body: Value = app.post_outgoing(&form).await.json().await.unwrap();
        assert!(
            body["text"].as_str().unwrap().contains("acknowledged"),
            "{said}: {body}"
        );
        let alert: Value = app.get_alert(&id).await.json().await.unwrap();
        assert_eq!(alert["status"], "acknowledged", "{said}");
        assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
        assert_eq!(alert["notes"], serde_json::json!([]), "{said}");
    }
}

#[tokio::test]
async fn an_outgoing_webhook_post_in_a_thread_without_text_is_ignored_as_on_events() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    for text in ["text=&", "text=+++&", ""] {
        let form = fixture("outgoing/thread_reply.form").replace(
            "text=outage+still+failing+after+the+rollback%2C+now+critical&",
            text,
        );
        let res = app.post_outgoing(&form).await;
        assert_eq!(res.status(), 200, "{form}");
        assert_eq!(res.text().await.unwrap(), "", "{form}");
    }
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["notes"], serde_json::json!([]));
    assert_eq!(app.all_alerts().await.len(), 1);
}

#[tokio::test]
async fn an_ack_after_the_trigger_word_acknowledges_even_when_the_event_came_first() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    // The Events API copy of `outage ack` comes first: to it, the text is a note.
    let mut event = same_reply_through_events();
    event["event"]["text"] = "outage ack".into();
    app.post_event(&event).await;
    let noted: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(noted["status"], "open");

    let form = outgoing_reply_saying("outage+ack");
    let body: Value = app.post_outgoing(&form).await.json().await.unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("acknowledged"),
        "{body}"
    );
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
    assert_eq!(
        alert["notes"].as_array().unwrap().len(),
        1,
        "the event's note stays"
    );
}

#[tokio::test]
async fn a_reply_with_a_blank_ts_is_refused_or_ignored_not_kept_under_a_blank_key() {
    let app = spawn_app().await;
    let id = alert_from_fixture(&app).await;
    let form =
        fixture("outgoing/thread_reply.form").replace("timestamp=1732358800.000700", "timestamp=+");
    let res = app.post_outgoing(&form).await;
    assert_error(res, 400, "missing-field").await;
    let blank = reply("still failing", " ", "EvBLANKTS");
    let res: Value = app.post_event(&blank).await.json().await.unwrap();
    assert_eq!(res["ignored"], "event without channel or ts");
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_eq!(alert["notes"], serde_json::json!([]));
    // A blank thread_ts is none: a message of its own, stored as the
    // Events API would store it.
    let form =
        fixture("outgoing/thread_reply.form").replace("thread_ts=1732358500.000100", "thread_ts=+");
    let body: Value = app.post_outgoing(&form).await.json().await.unwrap();
    let own = alert_id_in_reply(body["text"].as_str().unwrap());
    assert_ne!(own, id);
    let own: Value = app.get_alert(&own).await.json().await.unwrap();
    assert_eq!(own["slack"]["thread_ts"], Value::Null, "{own}");
}

/// A channel-wide outgoing webhook (no trigger word) brings `@klaxon ack` as
/// a note: it does not know the app's user. The Events API copy, whichever
/// comes second, still acknowledges, once.
#[tokio::test]
async fn an_app_addressed_ack_acknowledges_whichever_surface_comes_first() {
    let said = "<@U0KLAXON1> ack";
    let form = outgoing_reply_saying("%3C%40U0KLAXON1%3E+ack").replace("&trigger_word=outage", "");
    let mut event = same_reply_through_events();
    event["event"]["text"] = said.into();

    let mut ends = Vec::new();
    for outgoing_first in [true, false] {
        let app = spawn_app().await;
        let id = alert_from_fixture(&app).await;
        if outgoing_first {
            app.post_outgoing(&form).await;
            let noted: Value = app.get_alert(&id).await.json().await.unwrap();
            assert_eq!(noted["status"], "open", "to the outgoing copy, a note");
            app.post_event(&event).await;
        } else {
            app.post_event(&event).await;
            app.post_outgoing(&form).await;
        }
        let alert: Value = app.get_alert(&id).await.json().await.unwrap();
        assert_eq!(
            alert["status"], "acknowledged",
            "outgoing first: {outgoing_first}"
        );
        assert_eq!(alert["acknowledged_by"], "U0ONCALL1");
        // A retry of the Events copy acts no more (no second change).
        let seq = alert["seq"].clone();
        let mut retry = event.clone();
        retry["event_id"] = "EvTHREADOUT2".into();
        let again: Value = app.post_event(&retry).await.json().await.unwrap();
        assert_eq!(again["duplicate"], true, "{again}");
        let after: Value = app.get_alert(&id).await.json().await.unwrap();
        assert_eq!(after["seq"], seq);
        ends.push(alert["notes"].as_array().unwrap().len());
    }
    assert_eq!(
        ends,
        [1, 0],
        "the outgoing copy's note stays; the Events copy leaves none"
    );
}

/// A channel-wide webhook (no trigger word) posts replies under a bot's post
/// too: chat, not an alert, held in case its thread's first message becomes
/// one yet. With a trigger word, a reply there opens one.
#[tokio::test]
async fn a_reply_under_a_message_that_is_no_alert_opens_one_only_with_a_trigger_word() {
    let app = spawn_app().await;
    let parent_ts = "1732358000.000900";
    let under_no_alert = outgoing_reply_saying("ack").replace(
        "thread_ts=1732358500.000100",
        &format!("thread_ts={parent_ts}"),
    );
    let channel_wide = under_no_alert.replace("&trigger_word=outage", "");
    let res = app.post_outgoing(&channel_wide).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "");
    assert!(
        app.all_alerts().await.is_empty(),
        "chat in a thread pages no one"
    );

    // Its thread's first message comes (again) and is an alert: the held
    // reply acts on it.
    let parent = fixture("outgoing/thread_reply.form")
        .replace("thread_ts=1732358500.000100&", "")
        .replace(
            "timestamp=1732358800.000700",
            &format!("timestamp={parent_ts}"),
        )
        .replace("&trigger_word=outage", "");
    let body: Value = app.post_outgoing(&parent).await.json().await.unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("opened alert"),
        "{body}"
    );
    let alerts = app.all_alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "acknowledged", "{}", alerts[0]);

    let triggered = under_no_alert
        .replace(
            &format!("thread_ts={parent_ts}"),
            "thread_ts=1732358000.000950",
        )
        .replace("timestamp=1732358800.000700", "timestamp=1732358800.000800")
        .replace("text=ack", "text=outage+checkout+down");
    let body: Value = app.post_outgoing(&triggered).await.json().await.unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("opened alert"),
        "{body}"
    );
    assert_eq!(app.all_alerts().await.len(), 2);
}
