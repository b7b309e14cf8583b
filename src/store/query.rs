//! The read side: listing through indexes, summary counts, the change feed.

use sled::{IVec, Tree};

use super::packed::{self, Ordinals, CHANGE_ENTRIES};
use super::StoreError;
use super::{keys, record};
use crate::alert::{Alert, AlertId, Status};
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

/// One page of a listing, newest first, each alert as JSON.
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

type Newest = std::iter::Peekable<Box<dyn Iterator<Item = Result<u64, StoreError>>>>;

/// Newest first. Unfiltered, it walks the records by id. Filtered, it merges
/// the index bitmaps of every (status, urgency) combination asked for,
/// newest ordinal first, so the cost grows with `limit`, not with the store.
pub fn list(tree: &Tree, q: &ListQuery) -> Result<Page, StoreError> {
    list_within(tree, q, PAGE_BYTES)
}

/// The JSON a page of the listing or the change feed holds at most, past
/// its first alert: 1,000 alerts near their note limit would otherwise take
/// hundreds of MB per request. A page cut short still has its cursor.
pub const PAGE_BYTES: usize = 8 << 20;

/// [`list`], with a page ending once it holds `budget` bytes of JSON.
pub fn list_within(tree: &Tree, q: &ListQuery, budget: usize) -> Result<Page, StoreError> {
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
    if q.statuses.is_empty() && q.urgencies.is_empty() && q.channel.is_none() {
        let start = keys::alert(low);
        let ids = tree.range(start..keys::alert(high)).rev().map(|entry| {
            let (key, _) = entry?;
            keys::id_suffix(&key).ok_or_else(|| StoreError::Corrupt("short alert key".into()))
        });
        return page(tree, q.limit, budget, ids, |_| true);
    }
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
    let mut ordinals = Ordinals::new(super::ordinal_count(tree)?, |key: &[u8]| Ok(tree.get(key)?));
    let (low, high) = (
        ordinals.first_at_or_after(low)?,
        ordinals.first_at_or_after(high)?,
    );
    let mut sources: Vec<Newest> = Vec::new();
    for &s in statuses {
        for &u in urgencies {
            let prefix = match &q.channel {
                Some(channel) => keys::channel_prefix(channel, s, u),
                None => keys::state_prefix(s, u),
            };
            sources.push(in_bitmaps(tree, prefix, low, high).peekable());
        }
    }
    let ids = std::iter::from_fn(|| next_newest(&mut sources).transpose())
        .map(|n| n.and_then(|n| ordinals.id(n)));
    // The indexes and the record of a change go into the tree one key after
    // another: a read meanwhile can find an alert under its old state.
    let matches = |alert: &Alert| {
        statuses.contains(&alert.status)
            && urgencies.contains(&alert.urgency)
            && q.channel
                .as_ref()
                .is_none_or(|c| *c == alert.slack.channel_id)
    };
    page(tree, q.limit, budget, ids, matches)
}

/// Up to `limit` records of `ids` (newest first) that `matches`, within
/// `budget` bytes, and the cursor after them.
fn page(
    tree: &Tree,
    limit: usize,
    budget: usize,
    ids: impl Iterator<Item = Result<AlertId, StoreError>>,
    matches: impl Fn(&Alert) -> bool,
) -> Result<Page, StoreError> {
    let mut alerts: Vec<IVec> = Vec::with_capacity(limit.min(1024));
    let mut bytes = 0;
    let mut last = None;
    for id in ids {
        let id = id?;
        if alerts.len() == limit || bytes >= budget {
            return Ok(Page { alerts, next: last });
        }
        // A record missing or damaged here is skipped rather than failing the page.
        if let Some(record) = tree.get(keys::alert(id))? {
            last = Some(id);
            let json = record::decode(&record)
                .and_then(|a| matches(&a).then(|| record::to_json(&a)).transpose());
            match json {
                Ok(Some(json)) => {
                    bytes += json.len();
                    alerts.push(json.into());
                }
                Ok(None) => {}
                Err(e) => left_out(id, &e),
            }
        }
    }
    Ok(Page { alerts, next: None })
}

/// Ordinals in `[low, high)` set in the bitmaps under `prefix`, largest first.
fn in_bitmaps(
    tree: &Tree,
    prefix: Vec<u8>,
    low: u64,
    high: u64,
) -> Box<dyn Iterator<Item = Result<u64, StoreError>>> {
    if low >= high {
        return Box::new(std::iter::empty());
    }
    let first = keys::bitmap(prefix.clone(), packed::bitmap_block(low));
    let last = keys::bitmap(prefix, packed::bitmap_block(high - 1));
    Box::new(tree.range(first..=last).rev().flat_map(move |entry| {
        let found = entry.map_err(StoreError::from).and_then(|(key, bitmap)| {
            let block = keys::u64_suffix(&key)
                .ok_or_else(|| StoreError::Corrupt("short index key".into()))?;
            packed::bits_desc(&bitmap, block, low, high)
                .ok_or_else(|| StoreError::Corrupt(format!("index key {key:?} is out of range")))
        });
        let (ok, err) = match found {
            Ok(ordinals) => (ordinals, None),
            Err(e) => (Vec::new(), Some(Err(e))),
        };
        ok.into_iter().map(Ok).chain(err)
    }))
}

/// Pops the largest head among the sources.
fn next_newest(sources: &mut [Newest]) -> Result<Option<u64>, StoreError> {
    let mut best: Option<(usize, u64)> = None;
    for (i, source) in sources.iter_mut().enumerate() {
        match source.peek() {
            Some(Ok(n)) if best.is_none_or(|(_, b)| *n > b) => best = Some((i, *n)),
            Some(Err(_)) => return source.next().transpose().map(|_| None),
            _ => {}
        }
    }
    Ok(best.map(|(i, n)| {
        sources[i].next();
        n
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
    changes_within(tree, after, up_to, limit, PAGE_BYTES)
}

/// [`changes`], with a page ending once it holds `budget` bytes of JSON.
pub fn changes_within(
    tree: &Tree,
    after: u64,
    up_to: u64,
    limit: usize,
    budget: usize,
) -> Result<ChangePage, StoreError> {
    let mut bytes = 0;
    let mut page = ChangePage {
        alerts: Vec::new(),
        next_after: after,
    };
    if after >= up_to {
        return Ok(page);
    }
    let blocks = tree.range(keys::change_block(after + 1)..=keys::change_block(up_to));
    for block in blocks {
        let (_, block) = block?;
        for entry in CHANGE_ENTRIES.iter(&block) {
            let seq = keys::u64_value(&entry[..8])
                .ok_or_else(|| StoreError::Corrupt("short change entry".into()))?;
            if seq <= after || seq > up_to {
                continue;
            }
            if page.alerts.len() == limit || bytes >= budget {
                return Ok(page);
            }
            page.next_after = seq;
            let Some(id) = packed::entry_id(entry) else {
                continue;
            };
            let Some(record) = tree.get(keys::alert(id))? else {
                continue;
            };
            let alert = match record::decode(&record) {
                Ok(alert) => alert,
                Err(e) => {
                    left_out(id, &e);
                    continue;
                }
            };
            // If the alert changed again meanwhile, it is listed at that later seq instead.
            if alert.seq == seq {
                let json = record::to_json(&alert)?;
                bytes += json.len();
                page.alerts.push(json.into());
            }
        }
    }
    Ok(page)
}

/// A record that cannot be read is left out of a listing or the change feed,
/// loudly: one damaged alert must not blank an on-call dashboard. Backups
/// still fail on it, and `klaxon check-store` names it.
fn left_out(id: AlertId, error: &StoreError) {
    tracing::error!(%id, %error, "a stored alert cannot be read; left out (run klaxon check-store)");
    crate::metrics::damaged_record();
}
