//! Who may call, checked before any handler: per-surface network
//! allow-lists and per-client rate limits. The client address is the peer's,
//! or, behind a reverse proxy, the one in the configured trusted header only.

mod forwarded;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::{RateLimit, Settings};
use crate::error::ApiError;
use forwarded::forwarded_ip;

/// Largest request head accepted, all headers together. Slack and browsers
/// send a few KiB; actix itself only refuses at about 128 KiB.
pub const HEADER_LIMIT: usize = 32 * 1024;

/// Forget idle clients every this many checks, so the limiter's memory stays flat.
const PRUNE_EVERY: u64 = 10_000;

/// Keyed by client address, on `std::time::Instant`: the default TSC clock
/// was seen to disagree between worker threads on a VM and refuse a burst.
type Limiter = RateLimiter<
    IpAddr,
    DefaultKeyedStateStore<IpAddr>,
    MonotonicClock,
    NoOpMiddleware<<MonotonicClock as Clock>::Instant>,
>;

/// The policy of one group of routes.
struct Policy {
    allow: Vec<IpNet>,
    limiter: Option<Limiter>,
}

/// Network policy of the whole service.
pub struct Guard {
    slack: Policy,
    api: Policy,
    client_ip_header: Option<HeaderName>,
    checks: AtomicU64,
}

impl Guard {
    pub fn new(settings: &Settings) -> Self {
        Self {
            slack: Policy::new(&settings.allow_from_slack, settings.slack_rate),
            api: Policy::new(&settings.allow_from_api, settings.api_rate),
            client_ip_header: settings.client_ip_header.clone(),
            checks: AtomicU64::new(0),
        }
    }

    /// The client's address: from the trusted proxy header when one is
    /// configured and present (the last entry of its last line: the one the
    /// proxy added), else the peer's. IPv4 peers of a dual-stack listener
    /// count as IPv4. `Err` when the header is there but does not end with an
    /// address (`ip` or `ip:port`): the proxy's own address must not stand in.
    pub fn client_ip(&self, req: &HttpRequest) -> Result<Option<IpAddr>, ApiError> {
        let header = self.client_ip_header.as_ref();
        let last_line = header.and_then(|name| req.headers().get_all(name).last());
        let rfc7239 = header.is_some_and(|name| name == header::FORWARDED);
        let ip = match last_line {
            Some(value) => {
                Some(forwarded_ip(value.as_bytes(), rfc7239).ok_or(ApiError::UnknownClient)?)
            }
            None => req.peer_addr().map(|a| a.ip()),
        };
        Ok(ip.map(|ip| ip.to_canonical()))
    }

    /// The network check for `req`: its headers' size, and its client's
    /// address against the allow-list of the routes it asks for.
    fn check_network(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > HEADER_LIMIT {
            return Err(ApiError::HeadersTooLarge(HEADER_LIMIT));
        }
        let Some(policy) = self.policy(req).filter(|p| !p.allow.is_empty()) else {
            return Ok(());
        };
        match self.client_ip(req)? {
            Some(ip) if !policy.allow.iter().any(|net| net.contains(&ip)) => {
                Err(ApiError::ForbiddenNetwork)
            }
            _ => Ok(()),
        }
    }

    /// The rate check for `req`: its client's rate on the routes it asks for.
    fn check_rate(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(limiter) = self.policy(req).and_then(|p| p.limiter.as_ref()) else {
            return Ok(());
        };
        let Some(ip) = self.client_ip(req)? else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&rate_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(MonotonicClock.now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// The policy of the routes `req` asks for, by the path as the router
    /// sees it, percent-escapes decoded: `/%73lack/` reaches the Slack
    /// routes, so it must meet their policy. `/metrics` on the main port
    /// takes a read token, so it meets the API's.
    fn policy(&self, req: &HttpRequest) -> Option<&Policy> {
        let path = req.match_info().as_str();
        if path.starts_with("/slack/") {
            Some(&self.slack)
        } else if path.starts_with("/api/") || path == "/metrics" {
            Some(&self.api)
        } else {
            None
        }
    }
}

/// Whose rate a request counts against: an IPv4 address, or an IPv6
/// address's /64 (the least any IPv6 client is given, so one client cannot
/// take a fresh limit from each of its addresses).
fn rate_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(network.into())
            }
        },
        v4 => v4,
    }
}

impl Policy {
    fn new(allow: &[IpNet], rate: RateLimit) -> Self {
        let limiter = NonZeroU32::new(rate.per_sec).map(|per_sec| {
            let burst = NonZeroU32::new(rate.burst).unwrap_or(per_sec);
            Limiter::dashmap_with_clock(
                Quota::per_second(per_sec).allow_burst(burst),
                MonotonicClock,
            )
        });
        Self {
            allow: allow.to_vec(),
            limiter,
        }
    }
}

/// Middleware, outside actix-cors: refuses a client whose network is not
/// allowed (403) or whose headers are too large (431), preflights too, and
/// without CORS headers: a network that may not call learns nothing, not
/// even which origins are allowed.
pub async fn enforce_network(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    refuse_unless(req, next, Guard::check_network).await
}

/// Middleware, inside actix-cors: refuses a client over its rate (429), with
/// CORS headers so that a browser dashboard can read `Retry-After`.
/// actix-cors answers preflights before this: they spend no rate.
pub async fn enforce_rate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    refuse_unless(req, next, Guard::check_rate).await
}

/// Answers the refusal `check` gives, or passes the request on.
async fn refuse_unless<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
    check: fn(&Guard, &HttpRequest) -> Result<(), ApiError>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let verdict = req
        .app_data::<web::Data<Guard>>()
        .map_or(Ok(()), |g| check(g, req.request()));
    if let Err(refused) = verdict {
        return Ok(req.error_response(refused).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Middleware, outside actix-cors: its refusals become klaxon's JSON 400.
pub async fn cors_refusals(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await.map_err(|e| match cors_refusal(&e) {
        Some(refused) => refused.into(),
        None => e,
    })?;
    match res.response().error().and_then(cors_refusal) {
        Some(refused) => {
            let (req, _) = res.into_parts();
            let mut res = ServiceResponse::from_err(refused, req);
            // Another origin, method or header list may be allowed: caches
            // must not hand this refusal to them.
            res.headers_mut().insert(
                header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            );
            Ok(res.map_into_right_body())
        }
        None => Ok(res.map_into_left_body()),
    }
}

/// actix-cors refuses a preflight with a plain-text 400; klaxon's refusals
/// are JSON with a code, like every other error.
fn cors_refusal(e: &actix_web::Error) -> Option<ApiError> {
    e.as_error::<actix_cors::CorsError>()
        .map(|e| ApiError::CorsRefused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_the_rate_applies() {
        let policy = Policy::new(
            &[],
            RateLimit {
                per_sec: 1,
                burst: 3,
            },
        );
        let limiter = policy.limiter.unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let outcomes: Vec<bool> = (0..4).map(|_| limiter.check_key(&ip).is_ok()).collect();
        assert_eq!(outcomes, [true, true, true, false]);
    }

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_ipv4_by_its_address() {
        let key = |s: &str| rate_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn headers_of_up_to_32_kib_together_pass_and_one_byte_more_is_too_large() {
        let guard = Guard::new(&Settings::new("unused"));
        // Each header counts its name, its value and 4 bytes (": " and CRLF).
        let with_headers_of = |total: usize| {
            actix_web::test::TestRequest::default()
                .insert_header(("x-padding", "a".repeat(total - "x-padding".len() - 4)))
                .to_http_request()
        };
        assert!(guard.check_network(&with_headers_of(32 * 1024)).is_ok());
        assert!(matches!(
            guard.check_network(&with_headers_of(32 * 1024 + 1)),
            Err(ApiError::HeadersTooLarge(limit)) if limit == 32 * 1024
        ));
    }
}
