use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::{
    alert_id_in_reply, assert_error, event_fixture, fixture, spawn_app, TestApp, READ_TOKEN,
    WRITE_TOKEN,
};
use crate::process::{
    assert_store_clean, command, serve_refused, server_env, start_server, Process,
};

/// A store with every kind of state: open, acknowledged, resolved, notes, both surfaces.
async fn populate(app: &TestApp) -> Vec<Value> {
    let acked = app
        .create_alert("critical: db down", "1732400000.000001")
        .await;
    let resolved = app.create_alert("low: cert", "1732400000.000002").await;
    let replied = app.create_alert("high: api", "1732400000.000003").await;
    let res = app
        .post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
        .await;
    assert_eq!(res.status(), 200);
    let outgoing = alert_id_in_reply(res.json::<Value>().await.unwrap()["text"].as_str().unwrap());
    let res = app
        .act(
            &acked,
            "acknowledge",
            Some(json!({"by": "ana", "note": "on it"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .act(&resolved, "resolve", Some(json!({"by": "bo"})))
        .await;
    assert_eq!(res.status(), 200);
    let res: Value = app.post_event(&thread_reply()).await.json().await.unwrap();
    assert_eq!(res["alert_id"], replied.as_str(), "{res}");

    let alerts = app.all_alerts().await;
    let state = |id: &str| {
        let alert = alerts.iter().find(|a| a["id"] == id).unwrap();
        (
            alert["status"].clone(),
            alert["notes"].as_array().unwrap().len(),
        )
    };
    assert_eq!(alerts.len(), 4);
    assert_eq!(state(&acked), (json!("acknowledged"), 1));
    assert_eq!(state(&resolved), (json!("resolved"), 0));
    assert_eq!(state(&replied), (json!("open"), 1), "the reply is a note");
    assert_eq!(state(&outgoing), (json!("open"), 0));
    alerts
}

/// A note in the thread of `populate`'s open Events API alert.
fn thread_reply() -> Value {
    let mut reply = event_fixture("thread_reply");
    reply["event"]["thread_ts"] = "1732400000.000003".into();
    reply
}

/// A backup taken through the API.
async fn backup_of(app: &TestApp) -> String {
    let res = app
        .client
        .get(app.url("/api/v1/backup"))
        .bearer_auth(WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// `klaxon backup --to file --data-dir data_dir`.
fn offline_backup(file: &Path, data_dir: &Path) -> std::process::Output {
    let to = file.display().to_string();
    let dir = data_dir.display().to_string();
    command(&["backup", "--to", &to, "--data-dir", &dir], &[])
        .output()
        .unwrap()
}

fn restore(file: &Path, data_dir: &Path) -> std::process::Output {
    let from = file.display().to_string();
    let dir = data_dir.display().to_string();
    command(&["restore", "--from", &from, "--data-dir", &dir], &[])
        .output()
        .unwrap()
}

async fn all_alerts_at(address: &str) -> Vec<Value> {
    let app = TestApp::at(address);
    app.all_alerts().await
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_every_alert_note_and_status() {
    let app = spawn_app().await;
    let original = populate(&app).await;
    assert_eq!(original.len(), 4);

    let backup = backup_of(&app).await;
    // A change feed consumer reads on past the backup.
    app.create_alert("after the backup (low)", "1732400000.000009")
        .await;
    let feed: Value = app
        .get_with("/api/v1/changes?after=0", Some(WRITE_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    let consumer_cursor = feed["next_after"].as_u64().unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("backup.jsonl");
    std::fs::write(&file, &backup).unwrap();

    let restored_dir = work.path().join("restored");
    let out = restore(&file, &restored_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restore leaves sled's snapshot behind, so the first start does not
    // read the whole log.
    let snapshots =
        std::fs::read_dir(restored_dir.join(format!("v{}", klaxon::store::SCHEMA_VERSION)))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("snap.")
            })
            .count();
    assert_eq!(snapshots, 1, "restore should leave one sled snapshot");
    // Indexes, ordinals, the change feed and counts are rebuilt exactly.
    assert_store_clean(&restored_dir, "after restore");

    let server = start_server(&server_env(&restored_dir));
    let restored = all_alerts_at(&server.address).await;
    assert_eq!(restored, original);

    // Dedup keys came back: the same Slack message is still one alert.
    let again = TestApp::at(&server.address);
    let mut event = event_fixture("message");
    event["event"]["ts"] = "1732400000.000001".into();
    event["event_id"] = "EvAFTERRESTORE".into();
    let res: Value = again.post_event(&event).await.json().await.unwrap();
    assert_eq!(res["duplicate"], true);
    // So did the thread reply's: Slack's retry of it adds no second note.
    let res: Value = again
        .post_event(&thread_reply())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["duplicate"], true, "{res}");
    let replied = original
        .iter()
        .find(|a| a["slack"]["ts"] == "1732400000.000003")
        .unwrap();
    let alert: Value = again
        .get_alert(replied["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alert["notes"].as_array().unwrap().len(), 1, "{alert}");
    // The change sequence continues after the restored one.
    let max_seq = original
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .max()
        .unwrap();
    let acked = original
        .iter()
        .find(|a| a["status"] == "acknowledged")
        .unwrap();
    let id = acked["id"].as_str().unwrap();
    let changed: Value = again.act(id, "reopen", None).await.json().await.unwrap();
    assert!(changed["seq"].as_u64().unwrap() > max_seq);
    // A consumer that had read the original up to the backup goes on
    // without a gap; one that read past it (a change this store does not
    // have) is told to read the feed again.
    let path = format!("/api/v1/changes?after={max_seq}");
    let feed: Value = again
        .get_with(&path, Some(WRITE_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["alerts"][0]["id"], id, "{feed}");
    assert!(consumer_cursor > max_seq);
    let path = format!("/api/v1/changes?after={consumer_cursor}");
    crate::helpers::assert_error(
        again.get_with(&path, Some(WRITE_TOKEN)).await,
        409,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn backups_need_a_write_token() {
    let app = spawn_app().await;
    assert_error(
        app.get_with("/api/v1/backup", Some(READ_TOKEN)).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.get_with("/api/v1/backup", None).await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn an_offline_backup_of_a_data_dir_round_trips() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut server = start_server(&server_env(&data_dir));
    let original = populate(&TestApp::at(&server.address)).await;
    server.kill_hard();

    let file = work.path().join("offline.jsonl");
    let out = offline_backup(&file, &data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text
        .lines()
        .last()
        .unwrap()
        .starts_with("{\"klaxon_backup_end\""));

    let restored_dir = work.path().join("restored");
    assert!(restore(&file, &restored_dir).status.success());
    let server = start_server(&server_env(&restored_dir));
    assert_eq!(all_alerts_at(&server.address).await, original);
}

#[tokio::test]
async fn restore_refuses_truncated_backups_and_non_empty_dirs() {
    let app = spawn_app().await;
    populate(&app).await;
    let backup = backup_of(&app).await;
    let work = tempfile::tempdir().unwrap();
    let truncated = work.path().join("truncated.jsonl");
    let cut: Vec<&str> = backup.lines().collect();
    std::fs::write(&truncated, cut[..cut.len() - 1].join("\n")).unwrap();

    let out = restore(&truncated, &work.path().join("t"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));

    let full = work.path().join("full.jsonl");
    std::fs::write(&full, &backup).unwrap();
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("something"), "x").unwrap();
    let out = restore(&full, &busy);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    // A freshly formatted volume holds only lost+found: that is empty enough.
    let volume = work.path().join("volume");
    std::fs::create_dir_all(volume.join("lost+found")).unwrap();
    let out = restore(&full, &volume);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(volume.join("lost+found").is_dir());
    assert_store_clean(&volume, "restored beside lost+found");
}

#[tokio::test]
async fn restore_refuses_a_backup_with_lines_cut_out_or_read_from_a_pipe() {
    let app = spawn_app().await;
    populate(&app).await;
    let backup = backup_of(&app).await;
    let work = tempfile::tempdir().unwrap();
    // The second alert line cut out, the trailer kept: the count gives it away.
    let mut lines: Vec<&str> = backup.lines().collect();
    lines.remove(2);
    let cut = work.path().join("cut.jsonl");
    std::fs::write(&cut, lines.join("\n") + "\n").unwrap();
    let out = restore(&cut, &work.path().join("c"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lines were cut out or added"), "{stderr}");

    // A pipe cannot be read twice: refused up front, without waiting for a writer.
    let pipe = work.path().join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .unwrap()
        .success());
    let out = restore(&pipe, &work.path().join("p"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
}

#[tokio::test]
async fn backup_and_check_store_need_an_existing_store_and_backup_replaces_only_files() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("typo");
    let dir = missing.display().to_string();
    for args in [
        vec!["check-store", "--data-dir", &dir],
        vec!["backup", "--to", "x.jsonl", "--data-dir", &dir],
    ] {
        let out = command(&args, &[])
            .current_dir(work.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("holds no klaxon store"));
        assert!(!missing.exists(), "{args:?} created the data dir");
    }
    // An empty v2/ is no store either, and stays empty.
    std::fs::create_dir_all(missing.join("v2")).unwrap();
    let out = command(&["check-store", "--data-dir", &dir], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(missing.join("v2")).unwrap().count(), 0);

    let data = work.path().join("data");
    let server = start_server(&server_env(&data));
    drop(server);
    let link = work.path().join("link.jsonl");
    std::os::unix::fs::symlink(work.path().join("real.jsonl"), &link).unwrap();
    let out = offline_backup(&link, &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());

    // Nor is the backup written through a symlink at FILE.tmp.
    let file = work.path().join("backup.jsonl");
    let elsewhere = work.path().join("elsewhere");
    std::fs::write(&elsewhere, "precious").unwrap();
    let tmp = work.path().join("backup.jsonl.tmp");
    std::os::unix::fs::symlink(&elsewhere, &tmp).unwrap();
    let out = offline_backup(&file, &data);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("backup.jsonl.tmp exists and is not a regular file"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "precious");
    assert!(!file.exists());

    // A regular FILE.tmp is an earlier run's leftover: replaced.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::write(&tmp, "half a backup").unwrap();
    std::fs::write(&file, "old").unwrap();
    // A file that only shares the stem is someone else's: left alone.
    let neighbour = work.path().join("backup.tmp");
    std::fs::write(&neighbour, "not klaxon's").unwrap();
    let out = offline_backup(&file, &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .starts_with("{\"klaxon_backup\""));
    assert_eq!(std::fs::read_to_string(&neighbour).unwrap(), "not klaxon's");
    assert!(!tmp.exists());

    // A data dir that cannot be read is not a missing store.
    let not_a_dir = work.path().join("elsewhere").display().to_string();
    let file = file.display().to_string();
    for args in [
        vec!["check-store", "--data-dir", &not_a_dir],
        vec!["restore", "--from", &file, "--data-dir", &not_a_dir],
    ] {
        let out = command(&args, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot read"), "{stderr}");
    }
}

#[test]
fn offline_commands_say_why_a_store_cannot_be_opened() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let dir = data.display().to_string();
    let to = work.path().join("b.jsonl").display().to_string();
    let backup = ["backup", "--to", to.as_str(), "--data-dir", dir.as_str()];
    let check = ["check-store", "--data-dir", dir.as_str()];

    // In use by a server: exit 3, and the way to back it up anyway.
    let server = start_server(&server_env(&data));
    for args in [&backup[..], &check[..]] {
        let out = command(args, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("another process is using it"), "{stderr}");
    }
    drop(server);

    // A newer klaxon's store: its schema is named, not "no store here", and
    // the in-use hint stays out of it.
    let future = work.path().join("future");
    let future_schema = klaxon::store::SCHEMA_VERSION + 1;
    std::fs::create_dir_all(future.join(format!("v{future_schema}"))).unwrap();
    let future = future.display().to_string();
    let out = command(&["check-store", "--data-dir", &future], &[])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("schema version {future_schema}")),
        "{stderr}"
    );
    assert!(!stderr.contains("another process"), "{stderr}");
}

/// A store an earlier klaxon wrote (tree schema 3) is the server's to
/// upgrade: the offline commands refuse it and leave it as it was, so that
/// the server that wrote it still opens it.
#[test]
fn offline_commands_leave_an_earlier_klaxon_s_store_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let store = klaxon::store::Store::open(&data, &Default::default()).unwrap();
    store.close();
    drop(store);
    let schema_key = b"Zschema";
    let tree_schema = |set: Option<u64>| {
        let v2 = data.join(format!("v{}", klaxon::store::SCHEMA_VERSION));
        // sled lets go of a store's lock a moment after it is closed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let db = loop {
            match sled::Config::new().path(&v2).open() {
                Ok(db) => break db,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let tree = db.open_tree("klaxon").unwrap();
        if let Some(schema) = set {
            tree.insert(schema_key, &schema.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let value = tree.get(schema_key).unwrap().unwrap();
        u64::from_be_bytes(value.as_ref().try_into().unwrap())
    };
    assert_eq!(tree_schema(Some(3)), 3);

    let dir = data.display().to_string();
    let file = work.path().join("b.jsonl").display().to_string();
    for args in [
        vec!["check-store", "--data-dir", &dir],
        vec!["backup", "--data-dir", &dir, "--to", &file],
    ] {
        let out = command(&args, &[]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("`klaxon serve` upgrades it"), "{stderr}");
    }
    assert_eq!(tree_schema(None), 3, "left as the earlier klaxon wrote it");
}

/// Restore is all or nothing on disk: a bad line far into the backup, a
/// byte order mark, or a restore killed midway leave no store for `serve`
/// to open, and nothing in the way of the next restore.
#[tokio::test]
async fn a_failed_or_killed_restore_leaves_no_store_and_the_next_one_succeeds() {
    let app = spawn_app().await;
    for i in 0..250 {
        app.create_alert(&format!("low: disk {i}"), &format!("1732400000.{i:06}"))
            .await;
    }
    let backup = backup_of(&app).await;
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good.jsonl");
    std::fs::write(&good, &backup).unwrap();
    // Line 200: two batches of 100 would already be written.
    let mut lines: Vec<String> = backup.lines().map(String::from).collect();
    lines[199] = lines[199].replace("\"status\":\"open\"", "\"status\":\"snoozed\"");
    assert!(lines[199].contains("snoozed"));
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let bom = work.path().join("bom.jsonl");
    std::fs::write(&bom, [&b"\xEF\xBB\xBF"[..], backup.as_bytes()].concat()).unwrap();
    let data = work.path().join("data");
    let dir = data.display().to_string();

    for (file, line) in [(&bad, "line 200"), (&bom, "line 1")] {
        let out = restore(file, &data);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(line), "{stderr}");
        let check = command(&["check-store", "--data-dir", &dir], &[])
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(2), "{file:?} left a store");
    }
    // What a restore killed midway leaves: its staging directory, with a
    // store in it. The server neither opens it nor starts an empty store
    // beside it (a retried restore would then be refused), and it does not
    // block a retry.
    let staging = data.join(".restoring");
    assert!(restore(&good, &staging).status.success());
    let refused = serve_refused(&server_env(&data));
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("restore that did not finish"), "{stderr}");
    assert!(!data
        .join(format!("v{}", klaxon::store::SCHEMA_VERSION))
        .exists());

    let out = restore(&good, &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!staging.exists());
    assert_store_clean(&data, "restored after a failed and a killed restore");
    let server = start_server(&server_env(&data));
    assert_eq!(all_alerts_at(&server.address).await.len(), 250);
    drop(server);
    // A real store is still refused.
    let out = restore(&good, &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

/// The change feed's `next_after` for a consumer that reads all of it.
async fn feed_end(app: &TestApp) -> u64 {
    let feed: Value = app
        .get_with("/api/v1/changes?after=0&limit=1000", Some(READ_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    feed["next_after"].as_u64().unwrap()
}

/// Restores `file` into `dir` and serves it: the server (running while held) and a client.
fn serve_restored(file: &Path, dir: &Path) -> (Process, TestApp) {
    let out = restore(file, dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = start_server(&server_env(dir));
    let app = TestApp::at(&server.address);
    (server, app)
}

/// Asserts that a change feed consumer at `cursor` is told to read the feed again.
async fn assert_foreign(app: &TestApp, cursor: u64) {
    let path = format!("/api/v1/changes?after={cursor}");
    assert_error(app.get_with(&path, Some(READ_TOKEN)).await, 409, "conflict").await;
}

#[tokio::test]
async fn a_feed_cursor_from_another_history_is_refused_however_the_store_was_restored() {
    let app = spawn_app().await;
    populate(&app).await;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first.jsonl");
    std::fs::write(&first, backup_of(&app).await).unwrap();
    app.create_alert("high: after the backup", "1732400000.000009")
        .await;
    let original = feed_end(&app).await;

    // Restored, changed, backed up and changed again; then that backup restored.
    let (_once_server, once) = serve_restored(&first, &work.path().join("once"));
    once.create_alert("high: in the restore", "1732400000.000010")
        .await;
    let second = work.path().join("second.jsonl");
    std::fs::write(&second, backup_of(&once).await).unwrap();
    once.create_alert("high: after its backup", "1732400000.000011")
        .await;
    let once_end = feed_end(&once).await;

    let (_twice_server, twice) = serve_restored(&second, &work.path().join("twice"));
    assert_foreign(&twice, original).await;
    assert_foreign(&twice, once_end).await;

    // The first backup restored again, later: the first restore's cursor
    // stays foreign after this store has made as many changes of its own.
    let (_again_server, again) = serve_restored(&first, &work.path().join("again"));
    for i in 0..3 {
        again
            .create_alert("high: another history", &format!("1732400000.00002{i}"))
            .await;
    }
    assert!(feed_end(&again).await > once_end);
    assert_foreign(&again, once_end).await;
    assert_foreign(&again, original).await;
}
