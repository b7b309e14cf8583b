//! Alerts for the store's unit tests, and a store stopped as a storage
//! failure stops it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{query, ListQuery, Store};
use crate::alert::{Alert, AlertId, NewAlert, SlackRef, Source, Status};
use crate::urgency::{Urgency, UrgencySource};

/// Alert `i`: one millisecond and one seq apart, in channel C0 or C1.
pub fn alert(i: u64, urgency: Urgency, status: Status) -> Alert {
    let mut alert = Alert::open(
        AlertId::first_at(1_700_000_000_000 + i),
        i + 1,
        message(i, urgency),
    );
    alert.status = status;
    alert
}

/// The Slack message of alert `i`.
pub fn message(i: u64, urgency: Urgency) -> NewAlert {
    NewAlert {
        urgency,
        urgency_source: UrgencySource::Message,
        title: format!("alert {i}"),
        text: format!("outage alert {i}"),
        source: Source::EventsApi,
        slack: SlackRef {
            team_id: Some("T1".into()),
            channel_id: format!("C{}", i % 2),
            ts: format!("1700000000.{i:06}"),
            ..SlackRef::default()
        },
    }
}

/// The ids a filtered listing returns, newest first.
pub fn listed(store: &Store, status: Status, urgency: Urgency) -> Vec<AlertId> {
    let filter = ListQuery {
        statuses: vec![status],
        urgencies: vec![urgency],
        limit: 100,
        ..ListQuery::default()
    };
    let page = query::list(&store.inner.tree, &filter).unwrap();
    page.alerts
        .iter()
        .map(|json| serde_json::from_slice::<Alert>(json).unwrap().id)
        .collect()
}

/// Stops `store` as a storage failure would: its next group is committed,
/// then cannot be applied to the tree (only a restart recovers).
pub async fn stop(store: &Store) {
    store
        .write(|ledger| {
            ledger.stop_finish_after(0);
            ledger.probe()
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.until_stopped())
        .await
        .expect("the writer did not stop");
}

/// Store dirs whose journal files are copied, as synced, into a dir beside.
static WATCHED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// From now on, each time a journal file of the store in `store_dir` is
/// fdatasynced, copies it into `copies` as it is then: what a power cut
/// would leave of it.
pub fn keep_synced_journal(store_dir: &Path, copies: &Path) {
    let mut watched = WATCHED.lock().unwrap();
    watched.push((store_dir.to_owned(), copies.to_owned()));
}

/// Called by the journal after each successful fdatasync of `path`.
pub fn journal_synced(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let watched = WATCHED.lock().unwrap_or_else(|e| e.into_inner());
    for (_, copies) in watched.iter().filter(|(watched, _)| watched == dir) {
        std::fs::copy(path, copies.join(name)).unwrap();
    }
}

/// Files fsynced by the checkpoint's blob pass, in every test so far.
static SYNCED_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Called by the checkpoint after each successful fdatasync of a blob file.
pub fn file_synced(path: &Path) {
    let mut synced = SYNCED_FILES.lock().unwrap_or_else(|e| e.into_inner());
    synced.push(path.to_owned());
}

/// Whether [`file_synced`] was called with `path`.
pub fn was_synced(path: &Path) -> bool {
    let synced = SYNCED_FILES.lock().unwrap_or_else(|e| e.into_inner());
    synced.iter().any(|p| p == path)
}
