//! The read side: listing through indexes, summary counts, the change feed.

use sled::{IVec, Tree};

use super::keys;
use super::StoreError;
use crate::alert::{AlertId, Status};
use crate::urgency::Urgency;

/// What to list. Empty `statuses` or `urgencies` means all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub statuses: Vec<Status>,
    pub urgencies: Vec<Urgency>,
    pub channel: Option<String>,
    /// Created at or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Created at or before (Unix ms).
    pub until_ms: Option<u64>,
    /// Only alerts older than this one (the cursor).
    pub before: Option<AlertId>,
    pub limit: usize,
}

/// One page of a listing, newest first, as stored JSON.
pub struct Page {
    pub alerts: Vec<IVec>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next: Option<AlertId>,
}

/// Counts by status and urgency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub [[u64; 4]; 3]);

impl Counts {
    pub fn get(&self, status: Status, urgency: Urgency) -> u64 {
        self.0[usize::from(status.code())][usize::from(urgency.code())]
    }
}

/// Alerts changed after some sequence number, oldest change first.
pub struct ChangePage {
    pub alerts: Vec<IVec>,
    /// The `after` to ask with next time.
    pub next_after: u64,
}

type IdIter = Box<dyn Iterator<Item = Result<AlertId, StoreError>>>;

/// Newest first: a k-way merge of one index range per (status, urgency)
/// combination, so the cost grows with `limit`, not with the store.
pub fn list(tree: &Tree, q: &ListQuery) -> Result<Page, StoreError> {
    let low = AlertId::first_at(q.since_ms.unwrap_or(0));
    let mut high = q
        .until_ms
        .map_or(AlertId::MAX, |ms| AlertId::first_at(ms.saturating_add(1)));
    if let Some(cursor) = q.before {
        high = high.min(cursor);
    }
    if low >= high {
        return Ok(Page {
            alerts: Vec::new(),
            next: None,
        });
    }
    let all_states = q.statuses.is_empty() && q.urgencies.is_empty();
    let mut sources: Vec<std::iter::Peekable<IdIter>> = Vec::new();
    if all_states && q.channel.is_none() {
        sources.push(ids_in(tree, vec![keys::ALERT], low, high).peekable());
    } else {
        let statuses = if q.statuses.is_empty() {
            &Status::ALL[..]
        } else {
            &q.statuses
        };
        let urgencies = if q.urgencies.is_empty() {
            &Urgency::ALL[..]
        } else {
            &q.urgencies
        };
        for &s in statuses {
            for &u in urgencies {
                let prefix = match &q.channel {
                    Some(channel) => keys::channel_prefix(channel, s, u),
                    None => keys::state_prefix(s, u),
                };
                sources.push(ids_in(tree, prefix, low, high).peekable());
            }
        }
    }
    let mut alerts = Vec::with_capacity(q.limit.min(1024));
    let mut last = None;
    while let Some(id) = next_newest(&mut sources)? {
        if alerts.len() == q.limit {
            return Ok(Page { alerts, next: last });
        }
        // An index entry can outlive its record by a moment while a change is applied.
        if let Some(json) = tree.get(keys::alert(id))? {
            alerts.push(json);
            last = Some(id);
        }
    }
    Ok(Page { alerts, next: None })
}

/// Ids under `prefix` in `[low, high)`, newest first.
fn ids_in(tree: &Tree, prefix: Vec<u8>, low: AlertId, high: AlertId) -> IdIter {
    let start = keys::with_id(prefix.clone(), low);
    let end = keys::with_id(prefix, high);
    Box::new(tree.range(start..end).rev().map(|entry| {
        let (key, _) = entry?;
        keys::id_suffix(&key).ok_or_else(|| StoreError::Corrupt("short index key".into()))
    }))
}

/// Pops the largest head among the sources.
fn next_newest(sources: &mut [std::iter::Peekable<IdIter>]) -> Result<Option<AlertId>, StoreError> {
    let mut best: Option<(usize, AlertId)> = None;
    for (i, source) in sources.iter_mut().enumerate() {
        match source.peek() {
            Some(Ok(id)) if best.is_none_or(|(_, b)| *id > b) => best = Some((i, *id)),
            Some(Err(_)) => return source.next().transpose().map(|_| None),
            _ => {}
        }
    }
    Ok(best.map(|(i, id)| {
        sources[i].next();
        id
    }))
}

pub fn counts(tree: &Tree) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    for entry in tree.scan_prefix([keys::COUNT]) {
        let (key, value) = entry?;
        if let (Some(s), Some(u), Some(n)) = (
            key.get(1).and_then(|&c| Status::from_code(c)),
            key.get(2).and_then(|&c| Urgency::from_code(c)),
            keys::u64_value(&value),
        ) {
            counts.0[usize::from(s.code())][usize::from(u.code())] = n;
        }
    }
    Ok(counts)
}

/// Alerts whose latest change is in `(after, up_to]`, oldest change first.
pub fn changes(
    tree: &Tree,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<ChangePage, StoreError> {
    let mut page = ChangePage {
        alerts: Vec::new(),
        next_after: after,
    };
    if after >= up_to {
        return Ok(page);
    }
    for entry in tree.range(keys::change(after + 1)..=keys::change(up_to)) {
        if page.alerts.len() == limit {
            break;
        }
        let (key, value) = entry?;
        let seq = keys::seq_of_change(&key)
            .ok_or_else(|| StoreError::Corrupt("short change key".into()))?;
        page.next_after = seq;
        let Some(id) = keys::id_from_value(&value) else {
            continue;
        };
        let Some(json) = tree.get(keys::alert(id))? else {
            continue;
        };
        // If the alert changed again meanwhile, it is listed at that later seq instead.
        if super::decode_alert(Some(json.clone()))?.is_some_and(|a| a.seq == seq) {
            page.alerts.push(json);
        }
    }
    Ok(page)
}
