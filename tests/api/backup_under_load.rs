use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{TestApp, WRITE_TOKEN};
use crate::load::Load;
use crate::process::{assert_store_clean, command, server_env, set_env, start_server};

/// Alerts in the store before the backup: with 8 KiB texts, several MiB, more
/// than the server's stream buffers, so the scan runs while writes go on.
const SEEDED: usize = 400;
const TEXT_BYTES: usize = 8 * 1024;

/// README, Backups: `GET /api/v1/backup` "is consistent without stopping
/// ingest". Taken while Slack posts and lifecycle changes run, it holds every
/// change answered before it was asked for, it is the store exactly as of its
/// trailer's `seq`, its trailer counts its lines, and it restores into a store
/// whose check is clean and which holds exactly the backup's alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_ingest_and_lifecycle_changes_is_a_consistent_snapshot() {
    // Arrange: a server under concurrent load, with SEEDED alerts already.
    let work = tempfile::tempdir().unwrap();
    let mut env = server_env(&work.path().join("data"));
    set_env(&mut env, "KLAXON_SLACK_RATE_PER_SEC", "0");
    set_env(&mut env, "KLAXON_API_RATE_PER_SEC", "0");
    let server = start_server(&env);
    let load = Load::start(&server.address, 4, TEXT_BYTES);
    load.wait_for(SEEDED, 50).await;

    // Act: a backup in the middle of it, read slowly.
    let before = load.answered();
    let started = Instant::now();
    let backup = slow_backup(&server.address).await;
    let took = started.elapsed();
    let answered = load.stop().await;
    let now = by_id(TestApp::at(&server.address).all_alerts().await);

    // Assert: a header, alert lines, and a trailer that counts them.
    let lines: Vec<Value> = backup
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let schema = klaxon::store::SCHEMA_VERSION;
    assert_eq!(lines[0], json!({"klaxon_backup": 1, "schema": schema}));
    let end = &lines[lines.len() - 1]["klaxon_backup_end"];
    let alert_lines = &lines[1..lines.len() - 1];
    assert_eq!(
        end["lines"].as_u64(),
        Some(alert_lines.len() as u64),
        "{end}"
    );
    let snapshot_seq = end["seq"].as_u64().unwrap();
    // Per alert, the line with the highest `seq` wins.
    let mut snapshot: BTreeMap<String, Value> = BTreeMap::new();
    for alert in alert_lines {
        let id = alert["id"].as_str().unwrap().to_owned();
        let seq = |a: &Value| a["seq"].as_u64().unwrap();
        if snapshot.get(&id).is_none_or(|kept| seq(kept) < seq(alert)) {
            snapshot.insert(id, alert.clone());
        }
    }
    // Every change answered before the backup was asked for is in it.
    for (id, seq) in &before.seqs {
        let kept = snapshot
            .get(id)
            .unwrap_or_else(|| panic!("alert {id} answered before the backup is not in it"));
        assert!(kept["seq"].as_u64().unwrap() >= *seq, "{id}: {kept}");
    }
    // It is the store as of `snapshot_seq`: nothing later, nothing missing.
    for (id, kept) in &snapshot {
        let seq = kept["seq"].as_u64().unwrap();
        assert!(seq <= snapshot_seq, "{id} is from after the snapshot");
        let current = now.get(id).unwrap_or_else(|| panic!("{id} is gone"));
        assert!(current["seq"].as_u64().unwrap() >= seq, "{id}");
    }
    for (id, alert) in &now {
        if alert["seq"].as_u64().unwrap() <= snapshot_seq {
            let kept = snapshot.get(id);
            assert!(
                kept == Some(alert),
                "{id}: the store has it at seq {}, the backup at {:?} (snapshot at {snapshot_seq})",
                alert["seq"],
                kept.map(|k| &k["seq"])
            );
        }
    }
    // And it did run while the store changed: alerts changed during the
    // scan appear twice, and changes committed meanwhile are in it.
    let twice = alert_lines.len() - snapshot.len();
    assert!(twice > 0, "no alert changed during the backup ({took:?})");
    let answered_seq = before.seqs.values().max().copied().unwrap();
    assert!(snapshot_seq > answered_seq, "no change committed during it");
    // Only an acknowledgement of a resolved alert (409), or a commit slower
    // than 1 s on a busy machine (503), may be refused.
    assert!(
        answered.refused.keys().all(|s| [409, 503].contains(s)),
        "{:?}",
        answered.refused
    );
    // It restores into a clean store that holds exactly that state.
    let file = work.path().join("backup.jsonl");
    std::fs::write(&file, &backup).unwrap();
    let restored_dir = work.path().join("restored");
    let out = command(
        &[
            "restore",
            "--from",
            &file.display().to_string(),
            "--data-dir",
            &restored_dir.display().to_string(),
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_store_clean(&restored_dir, "restored from a backup taken under load");
    let restored = start_server(&server_env(&restored_dir));
    let served = by_id(TestApp::at(&restored.address).all_alerts().await);
    assert!(served == snapshot, "the restored store differs");
    eprintln!(
        "backup under load: {} alert lines ({twice} twice) read in {took:?}, seq {answered_seq} \
         answered before it, {snapshot_seq} in it; {} created and {} changes answered in all, \
         refused {:?}",
        alert_lines.len(),
        answered.created.len(),
        answered.changes,
        answered.refused
    );
}

/// `GET /api/v1/backup`, read at about 2 MB/s so that writes go on while the
/// server is still scanning.
async fn slow_backup(address: &str) -> String {
    let mut res = reqwest::Client::new()
        .get(format!("{address}/api/v1/backup"))
        .bearer_auth(WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_micros(chunk.len() as u64 / 2)).await;
    }
    String::from_utf8(body).unwrap()
}

fn by_id(alerts: Vec<Value>) -> BTreeMap<String, Value> {
    alerts
        .into_iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a))
        .collect()
}
