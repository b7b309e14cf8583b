//! Spawns the real server on port 0 with a temporary data dir, and talks to
//! it over HTTP the way Slack and dashboards do.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use klaxon::config::Settings;
use klaxon::secret::SecretList;
use klaxon::slack::signature::sign;
use klaxon::startup::Application;
use reqwest::{Client, Response};
use serde_json::Value;
use tempfile::TempDir;

pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The token of Slack's documented outgoing-webhook sample.
pub const VERIFICATION_TOKEN: &str = "XXXXXXXXXXXXXXXXXX";
pub const READ_TOKEN: &str = "read-token-for-dashboards";
pub const WRITE_TOKEN: &str = "write-token-for-on-call";

pub struct TestApp {
    pub address: String,
    pub client: Client,
    /// Kept so the data directory outlives the server.
    pub _data_dir: TempDir,
}

impl TestApp {
    /// A client of the server at `address` (a server process started by
    /// the test, which owns its data directory).
    pub fn at(address: &str) -> TestApp {
        TestApp {
            address: address.to_owned(),
            client: Client::new(),
            _data_dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// Settings every test starts from: both surfaces and both token kinds configured.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::new(data_dir);
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.signing_secrets = Some(SecretList::parse(SIGNING_SECRET).unwrap());
    settings.verification_tokens = Some(SecretList::parse(VERIFICATION_TOKEN).unwrap());
    settings.read_tokens = Some(SecretList::parse(READ_TOKEN).unwrap());
    settings.write_tokens = Some(SecretList::parse(WRITE_TOKEN).unwrap());
    settings.cache_bytes = 8 * 1024 * 1024;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(data_dir.path());
    configure(&mut settings);
    spawn_on(settings, data_dir).await
}

pub async fn spawn_on(settings: Settings, data_dir: TempDir) -> TestApp {
    // Logs only when asked: `TEST_LOG=1 cargo test`.
    if std::env::var_os("TEST_LOG").is_some() {
        klaxon::telemetry::init().expect("RUST_LOG and KLAXON_LOG_FORMAT parse");
    }
    let app = Application::build(&settings).expect("server starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: Client::new(),
        _data_dir: data_dir,
    }
}

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/slack")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn event_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(&format!("events/{name}.json"))).unwrap()
}

/// A thread reply (Events API) under the `message` fixture's alert.
pub fn reply(text: &str, ts: &str, event_id: &str) -> Value {
    let mut event = event_fixture("thread_reply");
    event["event"]["text"] = text.into();
    event["event"]["ts"] = ts.into();
    event["event_id"] = event_id.into();
    event
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Posts `body` to /slack/events signed as Slack would, right now.
    pub async fn post_event(&self, body: &Value) -> Response {
        self.post_event_raw(serde_json::to_vec(body).unwrap(), &[])
            .await
    }

    pub async fn post_event_raw(&self, body: Vec<u8>, extra: &[(&str, &str)]) -> Response {
        send_event(&self.client, &self.address, body, extra)
            .await
            .unwrap()
    }

    /// Posts `body` with exactly the given signature headers (None leaves one out).
    pub async fn post_event_signed(
        &self,
        body: Vec<u8>,
        ts: Option<&str>,
        sig: Option<&str>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url("/slack/events"))
            .header("content-type", "application/json");
        if let Some(ts) = ts {
            req = req.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = sig {
            req = req.header("x-slack-signature", sig);
        }
        req.body(body).send().await.unwrap()
    }

    pub async fn post_outgoing(&self, form: &str) -> Response {
        send_outgoing(&self.client, &self.address, form.to_owned())
            .await
            .unwrap()
    }

    pub async fn get_with(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    pub async fn get_alert(&self, id: &str) -> Response {
        self.get_with(&format!("/api/v1/alerts/{id}"), Some(READ_TOKEN))
            .await
    }

    /// The listing's JSON; panics unless it answers 200.
    pub async fn list(&self, query: &str) -> Value {
        let res = self
            .get_with(&format!("/api/v1/alerts?{query}"), Some(READ_TOKEN))
            .await;
        assert_eq!(res.status(), 200, "listing failed");
        res.json().await.unwrap()
    }

    /// Every stored alert, walking all pages, newest first.
    pub async fn all_alerts(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut query = "limit=1000".to_owned();
        loop {
            let page = self.list(&query).await;
            out.extend(page["alerts"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => query = format!("limit=1000&cursor={cursor}"),
                None => return out,
            }
        }
    }

    /// POST /api/v1/alerts/{id}/{action} with the write token and an optional JSON body.
    pub async fn act(&self, id: &str, action: &str, body: Option<Value>) -> Response {
        self.act_as(id, action, body, WRITE_TOKEN).await
    }

    pub async fn act_as(
        &self,
        id: &str,
        action: &str,
        body: Option<Value>,
        token: &str,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/api/v1/alerts/{id}/{action}")))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Creates one alert through the Events API and returns its id.
    pub async fn create_alert(&self, text: &str, ts: &str) -> String {
        let mut event = event_fixture("message");
        event["event"]["text"] = text.into();
        event["event"]["ts"] = ts.into();
        event["event_id"] = format!("Ev{}", ts.replace('.', "")).into();
        let res = self.post_event(&event).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["alert_id"]
            .as_str()
            .expect("an alert was created")
            .to_owned()
    }
}

/// Posts `body` to `address`'s /slack/events, signed now as Slack would, with `extra` headers.
pub async fn send_event(
    client: &Client,
    address: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::Result<Response> {
    send_event_to(client, &format!("{address}/slack/events"), body, extra).await
}

/// Posts a signed Events API body to `url`.
pub async fn send_event_to(
    client: &Client,
    url: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::Result<Response> {
    let ts = now().to_string();
    let sig = sign(SIGNING_SECRET.as_bytes(), &ts, &body);
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &ts)
        .header("x-slack-signature", sig);
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.body(body).send().await
}

/// Posts an outgoing-webhook form to `address`'s /slack/outgoing.
pub async fn send_outgoing(
    client: &Client,
    address: &str,
    form: String,
) -> reqwest::Result<Response> {
    client
        .post(format!("{address}/slack/outgoing"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
}

/// Asserts a JSON error answer with `status` and `code`; returns the body.
pub async fn assert_error(res: Response, status: u16, code: &str) -> String {
    assert_eq!(res.status(), status);
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    body.to_string()
}

/// The alert id in an outgoing-webhook reply ("... alert <id> ...").
pub fn alert_id_in_reply(text: &str) -> String {
    let after = text
        .split(" alert ")
        .nth(1)
        .unwrap_or_else(|| panic!("no alert id in {text:?}"));
    after.split_whitespace().next().unwrap().to_owned()
}
