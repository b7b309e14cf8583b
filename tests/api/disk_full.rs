use std::process::Command;

use reqwest::Client;
use serde_json::Value;

use crate::helpers::{event_fixture, send_event, TestApp};
use crate::process::{assert_store_clean, serve_after, server_env, start, start_server};

/// Unmounts on drop, even when the test fails.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// After `what`: the store check is clean, and the restarted server holds
/// every alert in `answered` (each was answered 200).
async fn assert_restart_holds(
    dir: &std::path::Path,
    env: &[(&str, String)],
    answered: &[String],
    what: &str,
) {
    assert_store_clean(dir, &format!("after {what}"));
    let server = start_server(env);
    let app = TestApp::at(&server.address);
    for id in answered {
        assert_eq!(
            app.get_alert(id).await.status(),
            200,
            "alert {id} answered 200 before {what} is gone"
        );
    }
}

/// A full disk answers 503 with Retry-After, never a 2xx for an alert that
/// is not stored; every alert answered 200 is still there afterwards.
#[tokio::test]
async fn a_full_disk_answers_503_and_loses_nothing_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(dir.path())
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let _mount = Tmpfs(dir.path().to_owned());
    let mut env = server_env(dir.path());
    env.push(("KLAXON_MIN_FREE_MB", "1".into()));
    let mut server = start_server(&env);
    let client = Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let app = TestApp {
        address: server.address.clone(),
        client,
        _data_dir: tempfile::tempdir().unwrap(),
    };

    let mut answered = Vec::new();
    let mut unavailable = 0;
    for i in 0..400 {
        let mut event = event_fixture("message");
        event["event"]["ts"] = format!("1733200000.{i:06}").into();
        event["event_id"] = format!("EvFULL{i}").into();
        event["event"]["text"] = format!("critical: disk test {i} {}", "x".repeat(60_000)).into();
        let res = app.post_event(&event).await;
        match res.status().as_u16() {
            200 => answered.push(
                res.json::<Value>().await.unwrap()["alert_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => {
                assert_eq!(res.headers().get("retry-after").unwrap(), "1");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["code"], "store-unavailable");
                unavailable += 1;
                if unavailable >= 5 {
                    break;
                }
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        unavailable > 0,
        "the disk never filled ({} alerts stored)",
        answered.len()
    );
    assert!(!answered.is_empty());
    assert_eq!(
        app.get_with("/readyz", None).await.status(),
        503,
        "not ready while the disk is full"
    );
    server.kill_hard();

    // Room again: the store opens, passes its check, and holds every answered alert.
    assert!(Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(dir.path())
        .status()
        .unwrap()
        .success());
    assert_restart_holds(dir.path(), &env, &answered, "the disk had room again").await;
    eprintln!(
        "disk full: {} alerts stored, then {unavailable} answered 503",
        answered.len()
    );
}

/// A write the disk refuses stops the store, and klaxon exits with code 1
/// (a supervisor restarts a process that exits, not one that answers 503 for
/// ever). The restart recovers every alert answered 200 from the journal.
/// The refused write: one beyond the process's file-size limit (EFBIG, with
/// SIGXFSZ ignored), which sled's files grow past; the journal's two files
/// are written in place, within their 8 MiB.
#[tokio::test]
async fn a_refused_disk_write_stops_klaxon_and_the_restart_recovers_every_answered_alert() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(dir.path());
    // Hundreds of posts, then each answered alert read back.
    env.push(("KLAXON_SLACK_RATE_PER_SEC", "0".into()));
    env.push(("KLAXON_API_RATE_PER_SEC", "0".into()));
    env.push(("KLAXON_SHUTDOWN_GRACE_SECS", "5".into()));
    let mut server = start(serve_after("trap '' XFSZ; ulimit -f 10240", &env));
    let app = TestApp::at(&server.address);

    let mut answered = Vec::new();
    let mut exit = None;
    for i in 0..2_000 {
        let mut event = event_fixture("message");
        event["event"]["ts"] = format!("1733400000.{i:06}").into();
        event["event_id"] = format!("EvEFBIG{i}").into();
        event["event"]["text"] = format!("critical: big disk {i} {}", "y".repeat(30_000)).into();
        let body = serde_json::to_vec(&event).unwrap();
        match send_event(&app.client, &app.address, body, &[]).await {
            Ok(res) if res.status() == 200 => answered.push(
                res.json::<Value>().await.unwrap()["alert_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            Ok(res) => assert_eq!(res.status(), 503, "{:?}", res.text().await),
            // Refused or dropped: the server is stopping.
            Err(_) => {
                exit = server.wait_for_exit(std::time::Duration::from_secs(30));
                break;
            }
        }
    }
    let output = server.output.lock().unwrap().clone();
    let exit = exit.unwrap_or_else(|| panic!("klaxon did not exit: {output}"));
    assert_eq!(exit.code(), Some(1), "{output}");
    assert!(output.contains("File too large"), "{output}");
    assert!(output.contains("the store has stopped"), "{output}");
    assert!(!answered.is_empty());

    assert_restart_holds(dir.path(), &env, &answered, "the refused write").await;
    eprintln!(
        "refused write: {} alerts answered, then klaxon exited 1",
        answered.len()
    );
}

/// Refused writes publish nothing: the list's ETag and the change feed stay
/// where they were, so no sequence number is shown for a change that was
/// never made (after a restart it would be used again, and a poller holding
/// that tag or cursor would miss the changes that then take it).
#[tokio::test]
async fn refused_writes_leave_the_etag_and_the_change_feed_as_they_were() {
    let app = crate::helpers::spawn_app_with(|s| s.min_free_bytes = u64::MAX / 2).await;
    let before = app
        .get_with("/api/v1/alerts", Some(crate::helpers::READ_TOKEN))
        .await;
    let tag = before.headers()["etag"].to_str().unwrap().to_owned();
    for i in 0..3 {
        let mut event = event_fixture("message");
        event["event"]["ts"] = format!("1733300000.{i:06}").into();
        event["event_id"] = format!("EvREFUSED{i}").into();
        assert_eq!(app.post_event(&event).await.status(), 503);
    }
    let after = app
        .get_with("/api/v1/alerts", Some(crate::helpers::READ_TOKEN))
        .await;
    assert_eq!(after.headers()["etag"].to_str().unwrap(), tag);
    let changes: Value = app
        .get_with("/api/v1/changes?after=0", Some(crate::helpers::READ_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changes["next_after"], 0, "{changes}");
    // No number was taken: a cursor at 1 is beyond the latest change.
    let res = app
        .get_with("/api/v1/changes?after=1", Some(crate::helpers::READ_TOKEN))
        .await;
    crate::helpers::assert_error(res, 409, "conflict").await;
}

/// With too little free space, only writes stop: a Slack retry of a message
/// already stored is answered 200 as the duplicate it is (Slack stops
/// retrying), reads and `/healthz` answer, and `/readyz` says writes cannot
/// be taken.
#[tokio::test]
async fn too_little_free_space_stops_new_alerts_but_not_retries_reads_or_health() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    let stored = event_fixture("message");
    let id = {
        let server = start_server(&env);
        let app = TestApp::at(&server.address);
        let res = app.post_event(&stored).await;
        assert_eq!(res.status(), 200);
        let created: Value = res.json().await.unwrap();
        created["alert_id"].as_str().unwrap().to_owned()
    };
    // More free space than any disk has.
    crate::process::set_env(&mut env, "KLAXON_MIN_FREE_MB", &(1u64 << 40).to_string());
    let server = start_server(&env);
    let app = TestApp::at(&server.address);

    let mut new = event_fixture("message");
    new["event"]["ts"] = "1733400000.000001".into();
    new["event_id"] = "EvNEWLOWDISK".into();
    let res = app.post_event(&new).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    let res = app
        .post_event_raw(
            serde_json::to_vec(&stored).unwrap(),
            &[("x-slack-retry-num", "1")],
        )
        .await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(
        (&answer["alert_id"], &answer["duplicate"]),
        (&id.clone().into(), &true.into())
    );

    assert_eq!(app.get_alert(&id).await.status(), 200);
    assert_eq!(app.all_alerts().await.len(), 1);
    assert_eq!(app.get_with("/healthz", None).await.status(), 200);
    assert_eq!(app.get_with("/readyz", None).await.status(), 503);
}
