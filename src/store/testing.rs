//! Alerts for the store's unit tests.

use super::{query, ListQuery, Store};
use crate::alert::{Alert, AlertId, NewAlert, SlackRef, Source, Status};
use crate::urgency::{Urgency, UrgencySource};

/// Alert `i`: one millisecond and one seq apart, in channel C0 or C1.
pub fn alert(i: u64, urgency: Urgency, status: Status) -> Alert {
    let mut alert = Alert::open(
        AlertId::first_at(1_700_000_000_000 + i),
        i + 1,
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
        },
    );
    alert.status = status;
    alert
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
