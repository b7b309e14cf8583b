//! `klaxon alerts`: the built binary against a real server, as an on-call
//! person at a terminal would run it.

use std::process::Output;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, READ_TOKEN, WRITE_TOKEN};
use crate::process::command;

/// What one run of the binary printed, and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `klaxon alerts <args>` against `app` with `env`, off the runtime so the
/// in-process server keeps answering. Every run checks that no token was printed.
async fn run_env(app: &TestApp, args: &[&str], env: &[(&'static str, String)]) -> Run {
    let mut full = vec![
        "alerts".to_owned(),
        "--server".to_owned(),
        app.address.clone(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let env = env.to_vec();
    let output: Output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = full.iter().map(String::as_str).collect();
        command(&args, &env).output().unwrap()
    })
    .await
    .unwrap();
    let run = Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for token in [READ_TOKEN, WRITE_TOKEN] {
        assert!(
            !run.stdout.contains(token) && !run.stderr.contains(token),
            "a token was printed:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

/// Runs `klaxon alerts --token <token> <args>`.
async fn run(app: &TestApp, token: &str, args: &[&str]) -> Run {
    let mut with_token = vec!["--token", token];
    with_token.extend_from_slice(args);
    run_env(app, &with_token, &[]).await
}

/// The ids of a listing's JSON, in order.
fn ids(page: &Value) -> Vec<&str> {
    let alerts = page["alerts"].as_array().expect("a listing");
    alerts.iter().map(|a| a["id"].as_str().unwrap()).collect()
}

/// The alert as the API serves it now.
async fn stored(app: &TestApp, id: &str) -> Value {
    let res = app.get_alert(id).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn list_shows_alerts_newest_first_as_a_table_and_as_json() {
    let app = spawn_app().await;
    let older = app
        .create_alert("low: disk almost full on db-2", "1732400000.000001")
        .await;
    let newer = app
        .create_alert("CRITICAL: checkout down", "1732400001.000001")
        .await;

    let table = run(&app, READ_TOKEN, &["list"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    for column in ["ID", "CREATED", "STATUS", "URGENCY", "CHANNEL", "TITLE"] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    assert!(lines[1].starts_with(&newer) && lines[1].contains("CRITICAL: checkout down"));
    assert!(lines[1].contains("critical") && lines[1].contains("open"));
    assert!(lines[2].starts_with(&older) && lines[2].contains("disk almost full"));
    // Columns line up: every title starts where the header's TITLE does.
    let title_at = lines[0].find("TITLE").unwrap();
    assert_eq!(lines[1].find("CRITICAL").unwrap(), title_at);

    let json = run(&app, READ_TOKEN, &["list", "--json"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let page: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(ids(&page), [newer.as_str(), older.as_str()]);
    assert!(page["next_cursor"].is_null());

    let critical = run(&app, READ_TOKEN, &["list", "--urgency", "critical"]).await;
    assert!(critical.stdout.contains(&newer) && !critical.stdout.contains(&older));
}

#[tokio::test]
async fn list_all_follows_the_cursor_to_the_last_page() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(
            app.create_alert("high: a", &format!("17324000{i}0.000001"))
                .await,
        );
    }
    created.reverse();

    let first = run(&app, READ_TOKEN, &["list", "--limit", "1"]).await;
    assert_eq!(first.stdout.lines().count(), 2, "{}", first.stdout);
    assert!(first.stderr.contains("--all"), "{}", first.stderr);

    let all = run(
        &app,
        READ_TOKEN,
        &["list", "--all", "--limit", "1", "--json"],
    )
    .await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    let page: Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(ids(&page), created);

    let table = run(&app, READ_TOKEN, &["list", "--all", "--limit", "2"]).await;
    assert_eq!(table.stdout.lines().count(), 4, "{}", table.stdout);
}

#[tokio::test]
async fn show_prints_every_field_with_the_text_and_notes() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: api latency\nstarted 09:41 UTC", "1732400000.000001")
        .await;
    let note = json!({"by": "ana", "note": "rolled back the deploy"});
    assert_eq!(app.act(&id, "notes", Some(note)).await.status(), 201);

    let shown = run(&app, READ_TOKEN, &["show", &id]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    for expected in [
        id.as_str(),
        "high: api latency",
        "started 09:41 UTC",
        "open",
        "notes: 1",
        "ana",
        "rolled back the deploy",
    ] {
        assert!(
            shown.stdout.contains(expected),
            "{expected}:\n{}",
            shown.stdout
        );
    }

    let json = run(&app, READ_TOKEN, &["show", &id, "--json"]).await;
    let alert: klaxon::alert::Alert = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        serde_json::to_value(alert).unwrap(),
        stored(&app, &id).await
    );

    let missing = run(&app, READ_TOKEN, &["show", "0000000000000"]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("404 not-found"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn a_write_token_moves_an_alert_through_its_lifecycle() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: api latency", "1732400000.000001")
        .await;
    let env = [("KLAXON_TOKEN", WRITE_TOKEN.to_owned())];

    let ack = run_env(&app, &["ack", &id, "--by", "ana", "--note", "on it"], &env).await;
    assert_eq!(ack.code, 0, "{}", ack.stderr);
    assert!(ack.stdout.contains("acknowledged by ana"), "{}", ack.stdout);
    let alert = stored(&app, &id).await;
    assert_eq!(alert["status"], "acknowledged");
    assert_eq!(alert["acknowledged_by"], "ana");
    assert_eq!(alert["notes"][0]["text"], "on it");

    let note = run_env(&app, &["note", &id, "--note", "db failover"], &env).await;
    assert_eq!(note.code, 0, "{}", note.stderr);
    assert_eq!(stored(&app, &id).await["notes"][1]["text"], "db failover");

    let resolve = run_env(&app, &["resolve", &id, "--json"], &env).await;
    assert_eq!(resolve.code, 0, "{}", resolve.stderr);
    let answered: Value = serde_json::from_str(&resolve.stdout).unwrap();
    assert_eq!(answered["status"], "resolved");
    assert_eq!(stored(&app, &id).await["status"], "resolved");

    let again = run_env(&app, &["ack", &id], &env).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("409 conflict"), "{}", again.stderr);

    let reopen = run_env(&app, &["reopen", &id], &env).await;
    assert_eq!(reopen.code, 0, "{}", reopen.stderr);
    assert_eq!(stored(&app, &id).await["status"], "open");
}

#[tokio::test]
async fn a_read_token_cannot_change_alerts() {
    let app = spawn_app().await;
    let id = app
        .create_alert("high: api latency", "1732400000.000001")
        .await;

    let ack = run(&app, READ_TOKEN, &["ack", &id]).await;
    assert_eq!(ack.code, 1);
    assert!(ack.stdout.is_empty(), "{}", ack.stdout);
    assert!(ack.stderr.contains("403 forbidden"), "{}", ack.stderr);
    assert_eq!(stored(&app, &id).await["status"], "open");
}

#[tokio::test]
async fn token_problems_are_reported_without_the_token() {
    let app = spawn_app().await;

    let wrong = run(&app, "not-a-token-of-this-server", &["list"]).await;
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("401 unauthenticated"),
        "{}",
        wrong.stderr
    );
    assert!(!wrong.stderr.contains("not-a-token-of-this-server"));

    let none = run_env(&app, &["list"], &[]).await;
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no token"), "{}", none.stderr);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{READ_TOKEN}\n")).unwrap();
    let file = file.display().to_string();
    let from_file = run_env(&app, &["summary", "--token-file", &file], &[]).await;
    assert_eq!(from_file.code, 0, "{}", from_file.stderr);
    // A flag beats the other form in the environment; both flags are a guess.
    let exported = [("KLAXON_TOKEN", "stale-token".to_owned())];
    let flag_wins = run_env(&app, &["summary", "--token-file", &file], &exported).await;
    assert_eq!(flag_wins.code, 0, "{}", flag_wins.stderr);
    let both = ["summary", "--token-file", &file, "--token", READ_TOKEN];
    assert_eq!(run_env(&app, &both, &[]).await.code, 2);

    // The environment's value stays out of the help, too.
    let env = [("KLAXON_TOKEN", WRITE_TOKEN.to_owned())];
    let help = run_env(&app, &["list", "--help"], &env).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("KLAXON_TOKEN"), "{}", help.stdout);
}

#[tokio::test]
async fn an_unreachable_server_exits_2() {
    let app = spawn_app().await;
    // A port that was free a moment ago: nothing listens there.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let out = run(&app, READ_TOKEN, &["list", "--server", &server]).await;
    assert_eq!(out.code, 2);
    let expected = format!("cannot reach {server}");
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
}

#[tokio::test]
async fn summary_counts_by_status_and_urgency() {
    let app = spawn_app().await;
    let id = app.create_alert("critical: a", "1732400000.000001").await;
    app.create_alert("low: b", "1732400001.000001").await;
    assert_eq!(app.act(&id, "acknowledge", None).await.status(), 200);

    let table = run(&app, READ_TOKEN, &["summary"]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let row = |name: &str| -> Vec<String> {
        let line = table.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        row("STATUS"),
        ["STATUS", "LOW", "MEDIUM", "HIGH", "CRITICAL", "TOTAL"]
    );
    assert_eq!(row("open"), ["open", "1", "0", "0", "0", "1"]);
    assert_eq!(
        row("acknowledged"),
        ["acknowledged", "0", "0", "0", "1", "1"]
    );
    assert_eq!(row("total"), ["total", "1", "0", "0", "1", "2"]);

    let json = run(&app, READ_TOKEN, &["summary", "--json"]).await;
    let counts: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(counts["total"], 2);
}

#[tokio::test]
async fn list_all_waits_out_the_rate_limit_instead_of_failing() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.api_rate = klaxon::config::RateLimit {
            per_sec: 2,
            burst: 2,
        }
    })
    .await;
    for i in 0..12 {
        app.create_alert(&format!("high: {i}"), &format!("1732400100.{i:06}"))
            .await;
    }
    // 6 pages of 2 against a burst of 2 at 2 per second.
    let all = run(
        &app,
        READ_TOKEN,
        &["list", "--all", "--limit", "2", "--json"],
    )
    .await;
    assert_eq!(all.code, 0, "{}", all.stderr);
    let page: Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(ids(&page).len(), 12);
}

/// Serves `answers` (content type, body) to successive requests on `listener`, each on its own
/// connection: a server that is not this klaxon. Returns the request lines it was sent.
fn serve_answers(listener: std::net::TcpListener, answers: Vec<(&str, String)>) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut requests = Vec::new();
    for (content_type, body) in answers {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        requests.push(line.trim_end().to_owned());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" || header.is_empty() {
                break;
            }
        }
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    requests
}

/// `list --all --json` against `server` (not `app`, whose tokens it uses).
async fn list_all_json_from(app: &TestApp, server: &str) -> Run {
    run(
        app,
        READ_TOKEN,
        &["list", "--all", "--json", "--server", server],
    )
    .await
}

/// [`serve_answers`] of JSON pages, on a thread; the server's address.
fn serve_pages(pages: Vec<Value>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let answers = pages
        .iter()
        .map(|p| ("application/json", p.to_string()))
        .collect();
    (
        server,
        std::thread::spawn(move || serve_answers(listener, answers)),
    )
}

#[tokio::test]
async fn list_all_json_keeps_fields_this_client_does_not_know() {
    // A newer server's alerts: real ones, with a field this client's `Alert` lacks.
    let app = spawn_app().await;
    let mut newer = Vec::new();
    for ts in ["1732400200.000001", "1732400200.000002"] {
        let id = app.create_alert("high: disk", ts).await;
        let mut alert = stored(&app, &id).await;
        alert["escalation"] = json!({"level": 2, "policy": "db-primary"});
        newer.push(alert);
    }
    let pages = vec![
        json!({"alerts": [newer[0]], "next_cursor": newer[0]["id"]}),
        json!({"alerts": [newer[1]], "next_cursor": null}),
    ];
    let (server, fake) = serve_pages(pages);

    let all = list_all_json_from(&app, &server).await;

    assert_eq!(all.code, 0, "{}", all.stderr);
    let printed: Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(printed, json!({"alerts": newer, "next_cursor": null}));
    let requests = fake.join().unwrap();
    let cursor = format!("cursor={}", newer[0]["id"].as_str().unwrap());
    assert!(requests[1].contains(&cursor), "{requests:?}");
}

#[tokio::test]
async fn json_output_is_checked_to_be_klaxons_answer() {
    // Something else answers 200 at --server: a login page, say.
    let app = spawn_app().await;
    let login = "<html><body>sign in</body></html>".to_owned();
    let commands: [&[&str]; 4] = [
        &["show", "038ghtk7y2000", "--json"],
        &["list", "--json"],
        &["resolve", "038ghtk7y2000", "--json"],
        &["summary", "--json"],
    ];
    for args in commands {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let answers = vec![("text/html", login.clone())];
        let fake = std::thread::spawn(move || serve_answers(listener, answers));
        let mut with_server = args.to_vec();
        with_server.extend(["--server", &server]);

        let out = run(&app, WRITE_TOKEN, &with_server).await;

        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("not what klaxon expects"),
            "{}",
            out.stderr
        );
        fake.join().unwrap();
    }
}

#[tokio::test]
async fn list_all_stops_when_a_cursor_comes_round_again() {
    let app = spawn_app().await;
    let page = |cursor: &str| json!({"alerts": [], "next_cursor": cursor});
    let cycle = "A\u{1b}]0;title\u{7}";
    let (server, fake) = serve_pages(vec![page(cycle), page("B"), page(cycle)]);

    let out = list_all_json_from(&app, &server).await;

    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("cursor A�]0;title� twice"),
        "{}",
        out.stderr
    );
    assert_eq!(fake.join().unwrap().len(), 3);
}

/// A TLS server on localhost whose certificate an unknown CA signed: it
/// answers one request with an empty summary. The CA's PEM, and the address.
fn tls_summary_server() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::io::{BufRead, BufReader, Write};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream.unwrap()));
            let mut line = String::new();
            // A handshake the client refused ends here.
            while tls.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let body = r#"{"total":0,"by_status":{},"by_urgency":{},"by_status_and_urgency":{}}"#;
            let _ = write!(
                tls.get_mut(),
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.get_mut().flush();
        }
    });
    (ca.pem(), address)
}

#[tokio::test]
async fn an_https_server_behind_an_internal_ca_is_trusted_through_ssl_cert_file() {
    let app = spawn_app().await;
    let (ca, server) = tls_summary_server();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let args = [
        "--token", READ_TOKEN, "summary", "--json", "--server", &server,
    ];

    let unknown = run_env(&app, &args, &[]).await;
    let trusted = run_env(
        &app,
        &args,
        &[("SSL_CERT_FILE", ca_file.display().to_string())],
    )
    .await;

    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("UnknownIssuer"),
        "{}",
        unknown.stderr
    );
    assert_eq!(trusted.code, 0, "{}", trusted.stderr);
    let summary: Value = serde_json::from_str(&trusted.stdout).unwrap();
    assert_eq!(summary["total"], 0);
}

#[tokio::test]
async fn json_output_passes_a_newer_servers_alert_through_as_sent() {
    // A real alert as a newer server might send it: a status and a field this client lacks.
    let app = spawn_app().await;
    let id = app.create_alert("high: disk", "1732400300.000001").await;
    let mut alert = stored(&app, &id).await;
    alert["status"] = json!("snoozed");
    alert["escalation"] = json!({"level": 2});
    for args in [["show", &id, "--json"], ["resolve", &id, "--json"]] {
        let (server, fake) = serve_pages(vec![alert.clone()]);
        let mut with_server = args.to_vec();
        with_server.extend(["--server", &server]);

        let out = run(&app, WRITE_TOKEN, &with_server).await;

        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let printed: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(printed, alert);
        fake.join().unwrap();
    }
    // A page whose alerts are not alerts is not a listing.
    let (server, fake) = serve_pages(vec![json!({"alerts": [1], "next_cursor": null})]);
    let out = run(&app, READ_TOKEN, &["list", "--json", "--server", &server]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    fake.join().unwrap();
}
