//! Logging: tracing-subscriber setup and one line per request.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use tracing_subscriber::EnvFilter;

use crate::error::ApiError;

/// What is logged without `RUST_LOG`.
const DEFAULT_FILTER: &str = "info,sled=warn";

/// The log settings from the environment: `RUST_LOG` (unset or empty:
/// [`DEFAULT_FILTER`]) and `KLAXON_LOG_FORMAT` (`json`, or `human` when
/// unset or empty).
struct LogSettings {
    directives: Option<String>,
    json: bool,
}

impl LogSettings {
    fn from_env() -> Result<Self, String> {
        use std::env::VarError::{NotPresent, NotUnicode};
        let directives = match std::env::var("RUST_LOG") {
            Ok(f) if !f.trim().is_empty() => Some(f),
            Ok(_) | Err(NotPresent) => None,
            Err(NotUnicode(_)) => return Err("RUST_LOG is not UTF-8".into()),
        };
        let json = match std::env::var("KLAXON_LOG_FORMAT") {
            Err(NotPresent) => false,
            Ok(f) if f.is_empty() || f.eq_ignore_ascii_case("human") => false,
            Ok(f) if f.eq_ignore_ascii_case("json") => true,
            Ok(_) | Err(NotUnicode(_)) => {
                return Err("KLAXON_LOG_FORMAT must be json or human".into())
            }
        };
        Ok(Self { directives, json })
    }
}

/// The log settings [`init`] reads, in words (`klaxon check-config`).
pub fn describe() -> String {
    match LogSettings::from_env() {
        Ok(s) => {
            let filter = s
                .directives
                .unwrap_or_else(|| format!("{DEFAULT_FILTER} (the default)"));
            let format = if s.json {
                "JSON lines"
            } else {
                "human-readable lines"
            };
            format!("{filter}, {format} on stderr")
        }
        Err(e) => e,
    }
}

/// Log level from `RUST_LOG` (default `info`); JSON lines when
/// `KLAXON_LOG_FORMAT=json`, human-readable when it is unset or `human`.
/// Logs go to stderr. A setting that does not parse is an error, not a
/// silent fallback: a mistyped filter would otherwise hide the logs its
/// operator asked for.
pub fn init() -> Result<(), String> {
    let LogSettings { directives, json } = LogSettings::from_env()?;
    let filter = match directives {
        Some(directives) => log_filter(&directives)?,
        None => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A failed write (stderr closed: a `| head` or a logger that died)
        // drops the line. tracing-subscriber would otherwise report it with
        // `eprintln!`, which panics on that same closed stderr.
        .log_internal_errors(false)
        .with_ansi(colour());
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

/// `RUST_LOG` as a filter. tracing-subscriber reads a bare word as a target
/// to log at every level, so a mistyped level (`wran`) would parse and
/// silently log nothing of klaxon's: a bare word must be a level or one of
/// the crates klaxon's logs come from.
fn log_filter(directives: &str) -> Result<EnvFilter, String> {
    const LEVELS: [&str; 12] = [
        "off", "error", "warn", "info", "debug", "trace", "0", "1", "2", "3", "4", "5",
    ];
    const CRATES: [&str; 8] = [
        "klaxon",
        "sled",
        "actix_web",
        "actix_server",
        "actix_http",
        "actix_cors",
        "tokio",
        "governor",
    ];
    for word in directives.split(',').map(str::trim) {
        let bare = !word.is_empty() && !word.contains(['=', '[']);
        let crate_name = word.split("::").next().unwrap_or_default();
        let known = LEVELS.iter().any(|l| l.eq_ignore_ascii_case(word))
            || CRATES.contains(&crate_name) && !word.ends_with(':');
        if bare && !known {
            return Err(format!(
                "RUST_LOG: {word:?} is neither a level (off, error, warn, info, debug, trace) nor target=level"
            ));
        }
    }
    EnvFilter::try_new(directives).map_err(|e| format!("RUST_LOG does not parse: {e}"))
}

/// Colour codes only for a person at a terminal, and not if `NO_COLOR` is set.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// What a request did (alert created, duplicate, ignored and why), for its log line.
#[derive(Clone, Debug)]
pub struct Outcome(pub String);

/// Tags `response` with the outcome its request's log line reports.
pub fn with_outcome(mut response: HttpResponse, outcome: impl Into<String>) -> HttpResponse {
    response.extensions_mut().insert(Outcome(outcome.into()));
    response
}

/// What a request's log line says of `X-Slack-Retry-Num`: the number, `-`
/// without one, `invalid` for anything else (the client's bytes stay out of
/// the log, however long).
fn slack_retry(header: Option<&actix_web::http::header::HeaderValue>) -> Cow<'static, str> {
    match header.map(|v| v.to_str().ok().and_then(|v| v.parse::<u32>().ok())) {
        None => Cow::Borrowed("-"),
        Some(Some(n)) => Cow::Owned(n.to_string()),
        Some(None) => Cow::Borrowed("invalid"),
    }
}

/// Middleware: one line when a request ends, with method, path (never the
/// query or body), client, status, latency and outcome. No span: entering
/// one on every poll cost about 7 µs a request, and an `info` span vanished
/// at `warn`, taking the client out of the lines that log refusals.
pub async fn log_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let client = req
        .app_data::<actix_web::web::Data<crate::guard::Guard>>()
        .and_then(|guard| guard.client_ip(req.request()).ok().flatten())
        .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    let retry = slack_retry(req.headers().get("x-slack-retry-num"));
    let result = next.call(req).await;
    let latency_ms = (start.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let Ok(res) = &result else {
        tracing::error!(%method, %path, %client, latency_ms, "request failed before a response");
        return result;
    };
    let status = res.status().as_u16();
    let api_error = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>());
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    crate::metrics::request(&route, &method, status, start.elapsed());
    if let Some(e) = api_error {
        crate::metrics::refused(e);
    }
    match (api_error, res.response().extensions().get::<Outcome>()) {
        (Some(ApiError::Unavailable(cause)), _) => {
            tracing::error!(%method, %path, %client, status, latency_ms, outcome = "store-unavailable", cause = %cause, "request")
        }
        (Some(e), _) => tracing::warn!(
            %method, %path, %client,
            status,
            latency_ms,
            slack_retry = &*retry,
            outcome = "rejected",
            reason = e.code(),
            "request"
        ),
        (None, Some(Outcome(outcome))) => {
            tracing::info!(%method, %path, %client, status, latency_ms, slack_retry = &*retry, outcome = %outcome, "request")
        }
        (None, None) => tracing::info!(%method, %path, %client, status, latency_ms, "request"),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn a_bare_word_in_rust_log_must_be_a_level_or_a_known_crate() {
        for good in [
            "warn",
            "INFO",
            "info,sled=warn",
            "klaxon",
            "klaxon::store",
            "actix_web=debug,warn",
            "5",
            "",
        ] {
            assert!(log_filter(good).is_ok(), "{good}");
        }
        for bad in [
            "wran",
            "info,debgu",
            "klaxon=loud",
            "klaxon:debug",
            "klaxondebug",
            "sledd",
            "tokio_wran",
            "actix_web:info",
        ] {
            let err = log_filter(bad).unwrap_err();
            assert!(err.starts_with("RUST_LOG"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_slack_retry_number_is_logged_only_as_a_number() {
        let retry = |v: &str| slack_retry(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(slack_retry(None), "-");
        assert_eq!(retry("2"), "2");
        assert_eq!(retry("xoxb-token-in-a-header"), "invalid");
        assert_eq!(retry(&"9".repeat(5000)), "invalid");
    }
}
