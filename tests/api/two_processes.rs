use crate::helpers::TestApp;
use crate::process::{assert_store_clean, serve_refused, server_env, start_server};

/// README, Deployment: "Never let two processes share a data dir: sled
/// locks it, and the second process exits with code 3." The first must not
/// notice: it keeps answering Slack, and what it answered survives it.
#[tokio::test]
async fn a_second_server_on_a_data_dir_in_use_exits_3_and_the_first_keeps_serving() {
    // Arrange: a server with one alert.
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(data_dir.path());
    let mut first = start_server(&env);
    let app = TestApp::at(&first.address);
    let before = app
        .create_alert("high: before the second", "1732400000.000001")
        .await;

    // Act: a second server on the same data dir (its own free port).
    let second = serve_refused(&env);

    // Assert: it refused, saying why.
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot open the alert store"), "{stderr}");
    assert!(stderr.contains("could not acquire lock"), "{stderr}");
    assert!(stderr.contains("another process is using"), "{stderr}");
    // The first still takes a signed Slack post, and still has the alert.
    let after = app
        .create_alert("high: after the second", "1732400000.000002")
        .await;
    for id in [&before, &after] {
        assert_eq!(app.get_alert(id).await.status(), 200, "{id}");
    }
    // Nothing the second did spoilt the store: the first's answered alerts
    // are there after it is killed and started again.
    first.kill_hard();
    assert_store_clean(data_dir.path(), "after the second server and a kill");
    let restarted = start_server(&env);
    let app = TestApp::at(&restarted.address);
    for id in [&before, &after] {
        assert_eq!(app.get_alert(id).await.status(), 200, "{id}");
    }
}
