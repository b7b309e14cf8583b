use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Client;

use crate::helpers::{fixture, TestApp, READ_TOKEN};
use crate::load::Load;
use crate::process::{assert_store_clean, server_env, set_env, start_server};

/// SIGTERM stops accepting, lets the in-flight request finish and be stored,
/// then exits 0.
#[tokio::test]
async fn sigterm_finishes_the_in_flight_alert_and_exits_cleanly() {
    the_in_flight_alert_is_finished_on("-TERM").await;
}

/// Ctrl-C too (actix-web's own SIGINT handling dropped the request).
#[tokio::test]
async fn sigint_finishes_the_in_flight_alert_and_exits_cleanly() {
    the_in_flight_alert_is_finished_on("-INT").await;
}

async fn the_in_flight_alert_is_finished_on(signal: &'static str) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_SHUTDOWN_GRACE_SECS", "10".into()));
    let mut server = start_server(&env);
    let address = server.address.trim_start_matches("http://").to_owned();
    let pid = server.child.id().to_string();

    let form = fixture("outgoing/pagertree_outage_high.form");
    let (answer, refused) = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /slack/outgoing HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
            form.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&form.as_bytes()[..20]).unwrap();
        std::thread::sleep(Duration::from_millis(300));

        send_signal(signal, &pid);
        std::thread::sleep(Duration::from_millis(500));
        let refused = TcpStream::connect(&address).is_err();

        stream.write_all(&form.as_bytes()[20..]).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (String::from_utf8_lossy(&answer).into_owned(), refused)
    })
    .await
    .unwrap();

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(refused, "new connections are refused once shutting down");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let id = answer
        .split("opened alert ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    let server = start_server(&env);
    let res = Client::new()
        .get(format!("{}/api/v1/alerts/{id}", server.address))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the in-flight alert survived");
}

/// A journal whose files are gone (deleted, or left out of a copy of the
/// data dir) is noticed at the next start: a warning, and the alerts the
/// tree holds are all there.
#[tokio::test]
async fn a_start_without_the_journal_files_warns_and_keeps_the_alerts() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let mut server = start_server(&env);
    let client = Client::new();
    let mut ids = Vec::new();
    for n in 0..3 {
        let form = fixture("outgoing/pagertree_outage_high.form")
            .replace("timestamp=", &format!("timestamp=9{n}"));
        let res = client
            .post(format!("{}/slack/outgoing", server.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let text = res.text().await.unwrap();
        ids.push(text.split("opened alert ").nth(1).unwrap()[..13].to_owned());
    }
    let pid = server.child.id().to_string();
    send_signal("-TERM", &pid);
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
    let warning = "the journal has no record of the store's latest changes";

    // A clean restart with the journal in place does not warn.
    let mut server = start_server(&env);
    server.kill_hard();
    assert!(!server.output.lock().unwrap().contains(warning));

    for file in ["journal.0", "journal.1"] {
        std::fs::remove_file(data_dir.path().join("v2").join(file)).unwrap();
    }
    let server = start_server(&env);
    let app = TestApp::at(&server.address);
    for id in &ids {
        assert_eq!(app.get_alert(id).await.status(), 200, "{id}");
    }
    let output = server.output.lock().unwrap().clone();
    let line = output
        .lines()
        .find(|l| l.contains(warning))
        .unwrap_or_else(|| panic!("no warning in: {output}"));
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
}

/// A second signal ends the process at once, not after the grace period.
#[tokio::test]
async fn a_second_signal_stops_at_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_SHUTDOWN_GRACE_SECS", "60".into()));
    env.push(("KLAXON_CLIENT_TIMEOUT_SECS", "60".into()));
    let mut server = start_server(&env);
    let address = server.address.trim_start_matches("http://").to_owned();
    let pid = server.child.id().to_string();
    // A request that never finishes keeps a graceful stop waiting.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"POST /slack/outgoing HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ntoken=")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for signal in ["-TERM", "-INT"] {
        send_signal(signal, &pid);
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = exit_within(&mut server.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    drop(stream);
}

/// SIGQUIT ends the process at once, as actix-server's own handling did.
#[tokio::test]
async fn sigquit_stops_at_once() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    env.push(("KLAXON_SHUTDOWN_GRACE_SECS", "60".into()));
    let mut server = start_server(&env);
    let pid = server.child.id().to_string();
    send_signal("-QUIT", &pid);
    let status = exit_within(&mut server.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "exited, not killed by the signal");
}

/// README, exit codes of `klaxon serve`: SIGQUIT "ends at once; every
/// change answered 2xx is already in the journal". Sent under load from
/// Slack posts and lifecycle changes, with a stalled request that a graceful
/// stop would wait the whole 60 s grace period for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigquit_under_load_exits_1_at_once_and_keeps_every_answered_change() {
    // Arrange: a server under concurrent load, one request stalled in flight.
    let data_dir = tempfile::tempdir().unwrap();
    let mut env = server_env(data_dir.path());
    set_env(&mut env, "KLAXON_SHUTDOWN_GRACE_SECS", "60");
    set_env(&mut env, "KLAXON_CLIENT_TIMEOUT_SECS", "60");
    set_env(&mut env, "KLAXON_SLACK_RATE_PER_SEC", "0");
    set_env(&mut env, "KLAXON_API_RATE_PER_SEC", "0");
    let mut server = start_server(&env);
    let mut stalled = TcpStream::connect(server.address.trim_start_matches("http://")).unwrap();
    stalled
        .write_all(b"POST /slack/outgoing HTTP/1.1\r\nHost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ntoken=")
        .unwrap();
    let load = Load::start(&server.address, 4, 100);
    load.wait_for(1000, 400).await;

    // Act
    let pid = server.child.id().to_string();
    send_signal("-QUIT", &pid);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = sent.elapsed();
    let answered = load.stop().await;
    drop(stalled);

    // Assert: at once, with code 1, and nothing answered is lost.
    assert_eq!(status.code(), Some(1), "exited, not killed by the signal");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_store_clean(data_dir.path(), "after SIGQUIT");
    let server = start_server(&env);
    let stored: HashMap<String, u64> = TestApp::at(&server.address)
        .all_alerts()
        .await
        .into_iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    for (id, seq) in &answered.seqs {
        let kept = stored
            .get(id)
            .unwrap_or_else(|| panic!("alert {id} was answered 2xx but is gone"));
        assert!(
            kept >= seq,
            "{id}: change {seq} was answered 2xx, the store is at {kept}"
        );
    }
    eprintln!(
        "sigquit under load: exited in {took:?}; {} created and {} changes answered, \
         {} unanswered, refused {:?}, {} stored",
        answered.created.len(),
        answered.changes,
        answered.unanswered,
        answered.refused,
        stored.len()
    );
}

/// Sends `signal` (`-TERM`, ...) to the process `pid`.
fn send_signal(signal: &str, pid: &str) {
    assert!(Command::new("kill")
        .args([signal, pid])
        .status()
        .unwrap()
        .success());
}

/// The process's exit status, which must come within `limit`.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
