use std::process::Command;

use reqwest::Client;
use serde_json::Value;

use crate::helpers::{event_fixture, TestApp};
use crate::process::{assert_store_clean, server_env, start_server};

/// Unmounts on drop, even when the test fails.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
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
    assert_store_clean(dir.path(), "after the disk had room again");
    let server = start_server(&env);
    let app = TestApp::at(&server.address);
    for id in &answered {
        assert_eq!(
            app.get_alert(id).await.status(),
            200,
            "alert {id} answered 200 before the disk filled"
        );
    }
    eprintln!(
        "disk full: {} alerts stored, then {unavailable} answered 503",
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
