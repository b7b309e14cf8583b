use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use klaxon::config::RateLimit;
use serde_json::Value;

use crate::helpers::{assert_error, event_fixture, fixture, spawn_app, spawn_app_with, READ_TOKEN};

#[tokio::test]
async fn api_clients_over_their_rate_get_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.api_rate = RateLimit {
            per_sec: 1,
            burst: 3,
        }
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            app.get_with("/api/v1/alerts", Some(READ_TOKEN))
                .await
                .status(),
            200
        );
    }
    let res = app.get_with("/api/v1/alerts", Some(READ_TOKEN)).await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after));
    assert_error(res, 429, "rate-limited").await;
    // /metrics on the main port takes a read token, so it shares the API's
    // budget: it must not let a client guess tokens faster than the API does.
    assert_error(
        app.get_with("/metrics", Some("not-a-token")).await,
        429,
        "rate-limited",
    )
    .await;
    // The Slack routes and health checks have their own budget.
    assert_eq!(
        app.post_event(&event_fixture("message")).await.status(),
        200
    );
    assert_eq!(app.get_with("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn slack_clients_over_their_rate_get_429_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.slack_rate = RateLimit {
            per_sec: 1,
            burst: 3,
        }
    })
    .await;
    for i in 0..3 {
        let mut event = event_fixture("message");
        event["event"]["ts"] = format!("1732400000.{i:06}").into();
        event["event_id"] = format!("EvRATE{i}").into();
        assert_eq!(app.post_event(&event).await.status(), 200);
    }
    // The outgoing webhook is the same client on the same routes.
    let res = app
        .post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
        .await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("a 429 says when to retry")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_error(res, 429, "rate-limited").await;
    // The API has its own budget; the refused post stored nothing.
    assert_eq!(app.all_alerts().await.len(), 3);
}

#[tokio::test]
async fn default_limits_never_throttle_a_slack_burst() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let mut event = event_fixture("message");
        event["event"]["ts"] = format!("1732400000.{i:06}").into();
        event["event_id"] = format!("EvBURST{i}").into();
        let client = app.client.clone();
        let address = app.address.clone();
        tasks.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&event).unwrap();
            crate::helpers::send_event(&client, &address, body, &[])
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(app.all_alerts().await.len(), 300);
}

#[tokio::test]
async fn allow_lists_are_per_surface() {
    let app = spawn_app_with(|s| s.allow_from_api = vec!["10.0.0.0/8".parse().unwrap()]).await;
    assert_error(
        app.get_with("/api/v1/alerts", Some(READ_TOKEN)).await,
        403,
        "forbidden-network",
    )
    .await;
    // /metrics on the main port takes a read token: the API's list too.
    assert_error(
        app.get_with("/metrics", Some(READ_TOKEN)).await,
        403,
        "forbidden-network",
    )
    .await;
    assert_eq!(app.get_with("/healthz", None).await.status(), 200);
    // Slack routes are not restricted by the API's list.
    assert_eq!(
        app.post_event(&event_fixture("message")).await.status(),
        200
    );

    let open = spawn_app_with(|s| s.allow_from_slack = vec!["127.0.0.0/8".parse().unwrap()]).await;
    assert_eq!(
        open.post_event(&event_fixture("message")).await.status(),
        200
    );
    let closed =
        spawn_app_with(|s| s.allow_from_slack = vec!["192.0.2.0/24".parse().unwrap()]).await;
    assert_error(
        closed.post_event(&event_fixture("message")).await,
        403,
        "forbidden-network",
    )
    .await;
    assert_error(
        closed
            .post_outgoing(&fixture("outgoing/pagertree_outage_high.form"))
            .await,
        403,
        "forbidden-network",
    )
    .await;
    assert!(closed.all_alerts().await.is_empty());
}

#[tokio::test]
async fn the_client_address_comes_from_the_trusted_header_only_when_configured() {
    let behind_proxy = spawn_app_with(|s| {
        s.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        s.allow_from_api = vec!["203.0.113.0/24".parse().unwrap()];
    })
    .await;
    let get = |app: &crate::helpers::TestApp, forwarded: Option<&'static str>| {
        let mut req = app
            .client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(READ_TOKEN);
        if let Some(value) = forwarded {
            req = req.header("x-forwarded-for", value);
        }
        req.send()
    };
    assert_eq!(
        get(&behind_proxy, Some("198.51.100.7, 203.0.113.9"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(&behind_proxy, Some("203.0.113.9, 198.51.100.7"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(get(&behind_proxy, None).await.unwrap().status(), 403);

    // Without the setting, the header is just a header: it cannot fake an address.
    let direct =
        spawn_app_with(|s| s.allow_from_api = vec!["203.0.113.0/24".parse().unwrap()]).await;
    assert_eq!(
        get(&direct, Some("203.0.113.9")).await.unwrap().status(),
        403
    );
}

/// RFC 7239 `Forwarded`, set through the environment as an operator would:
/// the `for=` of the last element is the client.
#[tokio::test]
async fn behind_a_proxy_that_sets_forwarded_its_for_is_the_client() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = crate::process::server_env(data_dir.path());
    env.push(("KLAXON_CLIENT_IP_HEADER", "Forwarded".into()));
    env.push(("KLAXON_ALLOW_FROM_API", "10.0.0.0/8".into()));
    let server = crate::process::start_server(&env);
    let app = crate::helpers::TestApp::at(&server.address);
    let get = |name: &'static str, value: &'static str| {
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(READ_TOKEN)
            .header(name, value)
            .send()
    };

    assert_eq!(
        get("forwarded", "for=10.0.0.7").await.unwrap().status(),
        200
    );
    for (name, value) in [
        ("forwarded", "for=192.0.2.1"),
        // A client's forged element comes before the proxy's.
        ("forwarded", "for=10.0.0.7, for=192.0.2.1"),
        // Another proxy header is just a header.
        ("x-forwarded-for", "10.0.0.7"),
    ] {
        let res = get(name, value).await.unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
        assert_error(res, 403, "forbidden-network").await;
    }
}

/// Any IPv6 client holds a /64: its addresses share one rate.
#[tokio::test]
async fn an_ipv6_client_s_addresses_share_one_rate() {
    let app = spawn_app_with(|s| {
        s.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        s.api_rate = RateLimit {
            per_sec: 1,
            burst: 1,
        };
    })
    .await;
    let get = |forwarded: &'static str| {
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(READ_TOKEN)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    assert_eq!(get("2001:db8:7:1::1").await.unwrap().status(), 200);
    assert_error(get("2001:db8:7:1::2").await.unwrap(), 429, "rate-limited").await;
    // Another /64 is another client.
    assert_eq!(get("2001:db8:7:2::1").await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_percent_encoded_path_meets_the_policy_of_the_route_it_reaches() {
    let app = spawn_app_with(|s| {
        s.allow_from_slack = vec!["192.0.2.0/24".parse().unwrap()];
        s.allow_from_api = vec!["192.0.2.0/24".parse().unwrap()];
    })
    .await;
    for path in ["/%73lack/events", "/sl%61ck/events", "/slack/%65vents"] {
        let body = serde_json::to_vec(&event_fixture("url_verification")).unwrap();
        let res = crate::helpers::send_event_to(&app.client, &app.url(path), body, &[])
            .await
            .unwrap();
        assert_error(res, 403, "forbidden-network").await;
    }
    for path in ["/%61pi/v1/alerts", "/api/v1/%61lerts", "/%61pi/v1/backup"] {
        let res = app.get_with(path, Some(READ_TOKEN)).await;
        assert_error(res, 403, "forbidden-network").await;
    }
}

#[tokio::test]
async fn behind_a_proxy_the_last_address_it_added_counts_in_any_spelling() {
    let app = spawn_app_with(|s| {
        s.client_ip_header = Some("x-forwarded-for".parse().unwrap());
        s.allow_from_api = vec![
            "203.0.113.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
    })
    .await;
    let get = |lines: &[&str]| {
        let mut headers = reqwest::header::HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        app.client
            .get(app.url("/api/v1/alerts"))
            .bearer_auth(READ_TOKEN)
            .headers(headers)
            .send()
    };
    // A proxy that adds its own line: the client's forged line comes first.
    let res = get(&["203.0.113.9", "198.51.100.7"]).await.unwrap();
    assert_error(res, 403, "forbidden-network").await;
    assert_eq!(
        get(&["198.51.100.7", "203.0.113.9"])
            .await
            .unwrap()
            .status(),
        200
    );
    // Proxies that write the port, with or without brackets.
    for allowed in [
        "203.0.113.9:4444",
        "[2001:db8::1]:4444",
        "[2001:db8::1]",
        "::ffff:203.0.113.9",
    ] {
        assert_eq!(get(&[allowed]).await.unwrap().status(), 200, "{allowed}");
    }
    assert_error(
        get(&["198.51.100.7:4444"]).await.unwrap(),
        403,
        "forbidden-network",
    )
    .await;
    // Not an address: the proxy's own (the peer) must not stand in for it.
    for unreadable in ["unknown", "203.0.113.9, garbage", ""] {
        let res = get(&[unreadable]).await.unwrap();
        assert_error(res, 403, "unknown-client-address").await;
    }
}

#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_meet_ipv4_allow_lists() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(data_dir.path());
    settings.listen = "[::]:0".parse().unwrap();
    settings.allow_from_slack = vec!["127.0.0.0/8".parse().unwrap()];
    let v6_only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only");
    let Ok(server) = klaxon::startup::Application::build(&settings) else {
        eprintln!("no IPv6 on this machine: dual-stack listener not tested");
        return;
    };
    if v6_only.is_ok_and(|v| v.trim() == "1") {
        eprintln!("net.ipv6.bindv6only=1: [::] takes no IPv4 clients here, not tested");
        return;
    }
    let app = crate::helpers::TestApp {
        address: format!("http://127.0.0.1:{}", server.port()),
        client: reqwest::Client::new(),
        _data_dir: data_dir,
    };
    tokio::spawn(server.run_until_stopped());
    assert_eq!(
        app.post_event(&event_fixture("message")).await.status(),
        200
    );
}

/// A Slack route answers 413 on the head of a request whose
/// `Content-Length` is over the limit: it does not wait for (or read) the
/// megabytes that would follow. A chunked body is read up to the limit only.
#[tokio::test]
async fn several_mib_get_413_without_being_read_and_the_server_stays_healthy() {
    // Were the body awaited, the answer would come after this timeout, long
    // after `slow_client` has stopped listening (5 s).
    let app = spawn_app_with(|s| s.client_timeout = Duration::from_secs(60)).await;
    // Signature headers that pass the checks made before the body is read.
    let signed = format!(
        "x-slack-request-timestamp: {}\r\nx-slack-signature: v0={}\r\n",
        crate::helpers::now(),
        "0".repeat(64)
    );
    let over_the_limit = klaxon::slack::BODY_LIMIT + 1;
    let chunk = format!("{over_the_limit:x}\r\n{}", "a".repeat(over_the_limit));
    for (what, request) in [
        (
            "outgoing, declared",
            "POST /slack/outgoing HTTP/1.1\r\nHost: x\r\n\
             content-type: application/x-www-form-urlencoded\r\n\
             content-length: 8000000\r\n\r\n"
                .to_owned(),
        ),
        (
            "events, declared",
            format!(
                "POST /slack/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                 {signed}content-length: 8000000\r\n\r\n"
            ),
        ),
        // No Content-Length: a chunk one byte over the limit, and no end.
        (
            "events, chunked",
            format!(
                "POST /slack/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                 {signed}transfer-encoding: chunked\r\n\r\n{chunk}"
            ),
        ),
    ] {
        let address = app.address.clone();
        let answer = tokio::task::spawn_blocking(move || {
            slow_client(&address, request.as_bytes(), b"", Duration::ZERO)
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{what}: {answer:?}");
        assert!(answer.contains("payload-too-large"), "{what}: {answer}");
    }
    assert_eq!(app.get_with("/healthz", None).await.status(), 200);
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", "a".repeat(64 * 1024))
        .send()
        .await
        .unwrap();
    assert_error(res, 431, "headers-too-large").await;
    assert_eq!(app.get_with("/healthz", None).await.status(), 200);
}

/// Writes raw bytes, waits, then returns whatever the server answered.
pub fn slow_client(address: &str, first: &[u8], rest: &[u8], pause: Duration) -> String {
    let mut stream = TcpStream::connect(address.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(first).unwrap();
    std::thread::sleep(pause);
    let _ = stream.write_all(rest);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let app = spawn_app_with(|s| s.client_timeout = Duration::from_millis(1000)).await;
    let address = app.address.clone();
    let (head_answer, body_answer) = tokio::task::spawn_blocking(move || {
        let head = slow_client(&address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"\r\n", Duration::from_millis(2500));
        let form = fixture("outgoing/pagertree_outage_high.form");
        let request = format!(
            "POST /slack/outgoing HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{}",
            form.len(),
            &form[..10]
        );
        let body = slow_client(&address, request.as_bytes(), &form.as_bytes()[10..], Duration::from_millis(2500));
        (head, body)
    })
    .await
    .unwrap();
    assert!(
        head_answer.is_empty() || head_answer.starts_with("HTTP/1.1 408"),
        "{head_answer}"
    );
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    assert!(body_answer.contains("request-timeout"), "{body_answer}");
    assert!(app.all_alerts().await.is_empty());
    let health: Value = app.get_with("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
}
