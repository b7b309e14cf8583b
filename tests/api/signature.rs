use klaxon::slack::signature::sign;

use crate::helpers::{assert_error, event_fixture, now, spawn_app, spawn_app_with, SIGNING_SECRET};
use crate::limits::slow_client;

fn body() -> Vec<u8> {
    serde_json::to_vec(&event_fixture("message")).unwrap()
}

#[tokio::test]
async fn unsigned_or_half_signed_requests_are_401() {
    let app = spawn_app().await;
    let ts = now().to_string();
    let sig = sign(SIGNING_SECRET.as_bytes(), &ts, &body());
    assert_error(
        app.post_event_signed(body(), None, None).await,
        401,
        "missing-timestamp",
    )
    .await;
    assert_error(
        app.post_event_signed(body(), None, Some(&sig)).await,
        401,
        "missing-timestamp",
    )
    .await;
    assert_error(
        app.post_event_signed(body(), Some(&ts), None).await,
        401,
        "missing-signature",
    )
    .await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn stale_timestamps_are_rejected_both_ways() {
    let app = spawn_app().await;
    for skew in [-400, 400, -3600] {
        let ts = (now() + skew).to_string();
        let sig = sign(SIGNING_SECRET.as_bytes(), &ts, &body());
        assert_error(
            app.post_event_signed(body(), Some(&ts), Some(&sig)).await,
            401,
            "stale-timestamp",
        )
        .await;
    }
    assert!(app.all_alerts().await.is_empty());
}

/// A stale or malformed signature is refused on its headers: klaxon does not
/// wait for (or read) the megabyte the request says follows.
#[tokio::test]
async fn bad_signature_headers_are_refused_before_the_body_is_read() {
    let app = spawn_app_with(|s| s.client_timeout = std::time::Duration::from_secs(60)).await;
    let fresh = now().to_string();
    let stale = (now() - 3600).to_string();
    let well_formed = format!("v0={}", "0".repeat(64));
    for (ts, sig, code) in [
        (stale.as_str(), well_formed.as_str(), "stale-timestamp"),
        ("1000", well_formed.as_str(), "stale-timestamp"),
        (fresh.as_str(), "v0=not-hex", "malformed-signature"),
    ] {
        let head = format!(
            "POST /slack/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
             x-slack-request-timestamp: {ts}\r\nx-slack-signature: {sig}\r\n\
             content-length: 1000000\r\n\r\n"
        );
        let address = app.address.clone();
        let answer = tokio::task::spawn_blocking(move || {
            slow_client(&address, head.as_bytes(), b"", std::time::Duration::ZERO)
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{ts} {sig}: {answer:?}");
        assert!(answer.contains(code), "{answer}");
    }
}

#[tokio::test]
async fn wrong_secret_and_tampered_body_are_rejected() {
    let app = spawn_app().await;
    let ts = now().to_string();
    let wrong = sign(b"not-the-secret", &ts, &body());
    assert_error(
        app.post_event_signed(body(), Some(&ts), Some(&wrong)).await,
        401,
        "invalid-signature",
    )
    .await;

    let good = sign(SIGNING_SECRET.as_bytes(), &ts, &body());
    let mut tampered = body();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x20;
    assert_error(
        app.post_event_signed(tampered, Some(&ts), Some(&good))
            .await,
        401,
        "invalid-signature",
    )
    .await;

    let other_ts = (now() - 1).to_string();
    assert_error(
        app.post_event_signed(body(), Some(&other_ts), Some(&good))
            .await,
        401,
        "invalid-signature",
    )
    .await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn malformed_signatures_and_timestamps_are_rejected() {
    let app = spawn_app().await;
    let ts = now().to_string();
    let good = sign(SIGNING_SECRET.as_bytes(), &ts, &body());
    for sig in [
        String::new(),
        "v0=".into(),
        good[..20].to_owned(),
        format!("{good}ab"),
        good.replacen("v0=", "v1=", 1),
    ] {
        assert_error(
            app.post_event_signed(body(), Some(&ts), Some(&sig)).await,
            401,
            "malformed-signature",
        )
        .await;
    }
    for bad_ts in ["soon", "-5", "99999999999999999999999999", "1e9"] {
        let sig = sign(SIGNING_SECRET.as_bytes(), bad_ts, &body());
        assert_error(
            app.post_event_signed(body(), Some(bad_ts), Some(&sig))
                .await,
            401,
            "malformed-timestamp",
        )
        .await;
    }
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn duplicated_signature_headers_are_rejected() {
    let app = spawn_app().await;
    let ts = now().to_string();
    let good = sign(SIGNING_SECRET.as_bytes(), &ts, &body());
    let res = app
        .client
        .post(app.url("/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", &good)
        .header(
            "x-slack-signature",
            "v0=0000000000000000000000000000000000000000000000000000000000000000",
        )
        .body(body())
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "duplicate-header").await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn url_verification_needs_a_valid_signature_too() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&event_fixture("url_verification")).unwrap();
    let ts = now().to_string();
    let res = app
        .post_event_signed(body, Some(&ts), Some(&sign(b"wrong", &ts, b"x")))
        .await;
    assert_error(res, 401, "invalid-signature").await;
}

#[tokio::test]
async fn events_surface_fails_closed_without_a_signing_secret() {
    let app = spawn_app_with(|s| s.signing_secrets = None).await;
    let res = app.post_event(&event_fixture("message")).await;
    assert_error(res, 401, "signing-secret-not-configured").await;
    assert!(app.all_alerts().await.is_empty());
}

#[tokio::test]
async fn any_of_several_rotated_secrets_verifies() {
    // The secret the requests are signed with: first, then last in the list.
    for (place, list) in [
        ("first", format!("{SIGNING_SECRET},new-secret")),
        ("last", format!("old-secret,{SIGNING_SECRET}")),
    ] {
        let app = spawn_app_with(|s| {
            s.signing_secrets = Some(klaxon::secret::SecretList::parse(&list).unwrap())
        })
        .await;
        let res = app.post_event(&event_fixture("message")).await;
        assert_eq!(res.status(), 200, "signed with the {place} secret");
        assert_eq!(app.all_alerts().await.len(), 1);
    }
}
