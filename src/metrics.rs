//! Prometheus metrics: every name in one place, recorded through the
//! `metrics` facade, rendered at `GET /metrics`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::alert::Status;
use crate::error::ApiError;
use crate::store::Store;
use crate::urgency::Urgency;

/// Latency buckets in seconds, from 0.1 ms to 5 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const GROUP_SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// The process-wide recorder (installed once, shared by every server in the process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("klaxon_store_group_size".into()),
                    GROUP_SIZES,
                )
            });
        let recorder = builder
            .expect("bucket lists are valid and non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // A recorder installed earlier in this process (tests) keeps working; ours then renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        // Error counters start at 0, so that an alert on their increase sees the first one.
        for errors in [
            "klaxon_store_flush_errors_total",
            "klaxon_store_damaged_records_total",
        ] {
            counter!(errors).absolute(0);
        }
        // So are the ways Slack's own requests fail when a secret or the clock is wrong.
        for (surface, reason) in [
            ("events", "invalid_signature"),
            ("events", "stale_timestamp"),
            ("outgoing", "invalid_token"),
        ] {
            counter!("klaxon_verification_failures_total", "surface" => surface, "reason" => reason)
                .absolute(0);
        }
        // When this process started: a klaxon that keeps restarting (a disk
        // that fails, then recovers at each start) shows as changes of it.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        gauge!("klaxon_start_time_seconds").set(started);
        spawn_upkeep(handle.clone());
        handle
    })
}

/// Histogram samples pile up in the recorder until they are folded into
/// their buckets: by a scrape, or here every few seconds, so that memory
/// stays flat when nothing scrapes `/metrics` (8 bytes per request otherwise).
fn spawn_upkeep(handle: PrometheusHandle) {
    let upkeep = move || loop {
        std::thread::sleep(UPKEEP_EVERY);
        handle.run_upkeep();
    };
    if let Err(e) = std::thread::Builder::new()
        .name("klaxon-metrics".into())
        .spawn(upkeep)
    {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// One request: by route pattern, method and status. Each thread keeps the
/// handles it has used, so a request costs no label allocations and no
/// registry lookup; the labels are bounded (route patterns, "unmatched",
/// the standard methods or "OTHER", status codes), and so are the handles.
pub fn request(route: &str, method: &Method, status: u16, elapsed: Duration) {
    type Handles = (Histogram, Vec<(&'static str, u16, Counter)>);
    thread_local! {
        static SEEN: RefCell<HashMap<String, Handles>> = RefCell::default();
    }
    let method = method_label(method);
    SEEN.with_borrow_mut(|seen| {
        if !seen.contains_key(route) {
            let latency =
                histogram!("klaxon_http_request_duration_seconds", "route" => route.to_owned());
            seen.insert(route.to_owned(), (latency, Vec::new()));
        }
        let (latency, counters) = seen.get_mut(route).expect("inserted above");
        latency.record(elapsed.as_secs_f64());
        let at = match counters
            .iter()
            .position(|(m, s, _)| *m == method && *s == status)
        {
            Some(at) => at,
            None => {
                let labels = [
                    ("route", route.to_owned()),
                    ("method", method.to_owned()),
                    ("status", status.to_string()),
                ];
                counters.push((
                    method,
                    status,
                    counter!("klaxon_http_requests_total", &labels),
                ));
                counters.len() - 1
            }
        };
        counters[at].2.increment(1);
    });
}

/// A method as a label: clients can send any token as a method, and each
/// new label value would be a new series kept forever.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("OTHER")
}

/// A refused request: authentication failures by surface, other refusals by reason.
pub fn refused(error: &ApiError) {
    let reason = error.code().replace('-', "_");
    let surface = match error {
        ApiError::Signature(_) => Some("events"),
        ApiError::InvalidToken => Some("outgoing"),
        ApiError::Unauthenticated | ApiError::Forbidden => Some("api"),
        _ => None,
    };
    match surface {
        Some(surface) => {
            counter!("klaxon_verification_failures_total", "surface" => surface, "reason" => reason)
                .increment(1)
        }
        None if !matches!(error, ApiError::Unavailable(_)) => {
            counter!("klaxon_requests_rejected_total", "reason" => reason).increment(1)
        }
        None => {}
    }
}

/// Which Slack surfaces have their secret: failures on a surface set up
/// mean Slack's own requests are refused, on one that is not, anyone's.
pub fn slack_surfaces(events: bool, outgoing: bool) {
    for (surface, configured) in [("events", events), ("outgoing", outgoing)] {
        gauge!("klaxon_slack_surface_configured", "surface" => surface)
            .set(f64::from(u8::from(configured)));
    }
}

pub fn alert_created(source: &'static str, urgency: Urgency) {
    counter!("klaxon_alerts_created_total", "source" => source, "urgency" => urgency.as_str())
        .increment(1);
}

pub fn duplicate_suppressed(source: &'static str) {
    counter!("klaxon_duplicates_suppressed_total", "source" => source).increment(1);
}

pub fn event_ignored(reason: &str) {
    counter!("klaxon_events_ignored_total", "reason" => reason.replace([' ', '-'], "_"))
        .increment(1);
}

/// One group commit: how long its journal write and fsync took and how many changes it covered.
pub fn flushed(elapsed: Duration, group: usize) {
    histogram!("klaxon_store_flush_duration_seconds").record(elapsed.as_secs_f64());
    histogram!("klaxon_store_group_size").record(group as f64);
}

pub fn flush_failed() {
    counter!("klaxon_store_flush_errors_total").increment(1);
}

/// A read met a stored alert that could not be decoded, and left it out.
pub fn damaged_record() {
    counter!("klaxon_store_damaged_records_total").increment(1);
}

/// Where `GET /metrics` finds the store's size and free space.
pub struct MetricsSource {
    pub data_dir: PathBuf,
    /// Below this much free space the store takes no writes (`KLAXON_MIN_FREE_MB`).
    pub min_free_bytes: u64,
}

/// `GET /metrics`: Prometheus text format. The gauges are read at scrape time.
/// A store that cannot be read (stalled, or stopped) leaves out only the
/// alert counts: the error counters are what says why, so the scrape must
/// go on working.
pub async fn endpoint(
    store: web::Data<Store>,
    source: web::Data<MetricsSource>,
) -> Result<HttpResponse, ApiError> {
    let counted = match store.counts().await {
        Ok(counts) => {
            for s in Status::ALL {
                for u in Urgency::ALL {
                    gauge!(ALERTS, "status" => s.as_str(), "urgency" => u.as_str())
                        .set(counts.get(s, u) as f64);
                }
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the alert counts are left out, the store cannot be read");
            false
        }
    };
    let dir = source.data_dir.clone();
    // Measured at each scrape, traffic or not: a disk filling up alerts
    // before the store refuses its first write.
    if let Ok((bytes, free)) =
        web::block(move || (dir_size(&dir), fs4::available_space(&dir))).await
    {
        gauge!("klaxon_store_disk_bytes").set(bytes as f64);
        // Free space that cannot be read is none, as the store takes it.
        let free = free.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "metrics: cannot read the data dir's free space");
            0
        });
        gauge!("klaxon_store_free_bytes").set(free as f64);
    }
    gauge!("klaxon_store_min_free_bytes").set(source.min_free_bytes as f64);
    let mut text = handle().render();
    if !counted {
        text = without_metric(&text, ALERTS);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

/// The gauge of alerts by status and urgency.
const ALERTS: &str = "klaxon_alerts";

/// Prometheus text without the samples and comments of metric `name` (a
/// stale value would pass for a current one).
fn without_metric(text: &str, name: &str) -> String {
    let names = |line: &str| {
        let line = line
            .strip_prefix("# TYPE ")
            .or_else(|| line.strip_prefix("# HELP "))
            .unwrap_or(line);
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(['{', ' ']))
    };
    text.lines()
        .filter(|line| !names(line))
        .flat_map(|line| [line, "\n"])
        .collect()
}

/// `GET /metrics` on the main port: behind a read token.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "metrics",
    summary = "Prometheus metrics",
    description = "Behind a read token on the main port. With `KLAXON_METRICS_LISTEN` it is \
        served on that listener instead, without auth.",
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4.", body = String,
            content_type = "text/plain"),
        crate::api::responses::Unauthenticated,
        crate::api::responses::ForbiddenNetwork,
        crate::api::responses::RateLimited,
        crate::api::responses::HeadersTooLarge
    )
)]
pub async fn guarded_endpoint(
    _: crate::api::auth::CanRead,
    store: web::Data<Store>,
    source: web::Data<MetricsSource>,
) -> Result<HttpResponse, ApiError> {
    endpoint(store, source).await
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{testing, StoreOptions};

    /// The alert counts of a store that cannot be read would be the last
    /// ones read, passing for current: they are left out, the rest is not.
    #[actix_web::test]
    async fn a_scrape_leaves_out_the_alert_counts_while_the_store_cannot_be_read() {
        // The recorder, installed at start-up as the server does.
        handle();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let source = web::Data::new(MetricsSource {
            data_dir: dir.path().to_owned(),
            min_free_bytes: 1,
        });
        let scrape = || async {
            let res = endpoint(web::Data::new(store.clone()), source.clone())
                .await
                .unwrap();
            let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        };
        let counts = |text: &str| {
            text.lines()
                .any(|l| l.starts_with("klaxon_alerts{") || l.starts_with("klaxon_alerts "))
        };
        assert!(
            counts(&scrape().await),
            "no alert counts while the store reads"
        );

        testing::stop(&store).await;

        let text = scrape().await;
        assert!(!counts(&text), "{text}");
        assert!(text.contains("klaxon_store_min_free_bytes 1"), "{text}");
        store.close();
    }

    #[test]
    fn without_metric_leaves_out_that_metric_only() {
        let text = "# TYPE klaxon_alerts gauge\n\
            klaxon_alerts{status=\"open\",urgency=\"high\"} 3\n\
            # TYPE klaxon_alerts_created_total counter\n\
            klaxon_alerts_created_total{source=\"events_api\"} 7\n\
            # TYPE klaxon_store_disk_bytes gauge\n\
            klaxon_store_disk_bytes 4096\n";
        assert_eq!(
            without_metric(text, "klaxon_alerts"),
            "# TYPE klaxon_alerts_created_total counter\n\
             klaxon_alerts_created_total{source=\"events_api\"} 7\n\
             # TYPE klaxon_store_disk_bytes gauge\n\
             klaxon_store_disk_bytes 4096\n"
        );
    }
}
