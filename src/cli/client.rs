//! A small blocking client of the alert API: bearer token, timeout, JSON errors.
//!
//! The token is held as a [`Secret`] and only ever written into the
//! `Authorization` header; no error message built here can contain it.

use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::table::clean;
use crate::secret::Secret;

/// How long one request may take, from connecting to the last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read (a page of 1000 alerts of 40,000 characters fits).
const MAX_ANSWER_BYTES: u64 = 256 << 20;

/// A read refused for the client's rate (429) is asked again after the
/// server's `Retry-After`, up to this many times, each wait at most 10 s:
/// `list --all` reads page after page.
const RATE_RETRIES: u32 = 5;

/// Why a command failed. Each kind has its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The command cannot run as given (no token, bad URL): exit 2.
    Usage(String),
    /// The server could not be reached or did not answer in time: exit 2.
    Connection(String),
    /// The server answered with a klaxon error: exit 1.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server answered something that is not the alert API's JSON: exit 1.
    BadAnswer(String),
}

impl Failure {
    /// The process exit code: 1 when the server refused, 2 when it was never asked.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Connection(_) => 2,
            Self::Api { .. } | Self::BadAnswer(_) => 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) | Self::Connection(m) | Self::BadAnswer(m) => f.write_str(m),
            Self::Api {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
        }
    }
}

/// A successful answer. The raw body is kept so `--json` prints the server's JSON as sent.
pub struct Answer {
    pub body: String,
}

impl Answer {
    /// The body as `T`, or [`Failure::BadAnswer`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_str(&self.body).map_err(|e| {
            Failure::BadAnswer(format!(
                "the server's answer is not what klaxon expects: {e}"
            ))
        })
    }
}

/// The `{"error", "code"}` body of every klaxon error.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    code: String,
}

/// One server, one token.
pub struct Client {
    base: String,
    token: Secret,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `server` (`http://host:port`, optionally with a path prefix).
    pub fn new(server: &str, token: Secret) -> Result<Self, Failure> {
        let base = server.trim().trim_end_matches('/');
        let host = ["http://", "https://"].iter().find_map(|scheme| {
            let head = base.get(..scheme.len())?;
            head.eq_ignore_ascii_case(scheme)
                .then(|| &base[scheme.len()..])
        });
        // A password in the URL would be printed in every error that names
        // the server; the token is how klaxon's API authenticates.
        if server.contains('@') {
            return Err(Failure::Usage(
                "--server (KLAXON_SERVER) must not carry a user or password (user@host): give the token with --token or KLAXON_TOKEN".to_owned(),
            ));
        }
        if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/')) {
            return Err(Failure::Usage(format!(
                "--server (KLAXON_SERVER) must be an http:// or https:// URL such as http://127.0.0.1:8080, not {:?}",
                clean(server)
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls_config()?)
            .timeout(TIMEOUT)
            // A redirect would drop or leak the token; say where it points instead.
            .redirects(0)
            .user_agent(concat!("klaxon-cli/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            base: base.to_owned(),
            token,
            agent,
        })
    }

    /// `GET {server}{path}`, waiting out a rate limit (see [`RATE_RETRIES`]).
    pub fn get(&self, path: &str) -> Result<Answer, Failure> {
        let mut retries = 0;
        loop {
            match self.request("GET", path).call() {
                Err(ureq::Error::Status(429, response)) if retries < RATE_RETRIES => {
                    let wait = response
                        .header("retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .clamp(1, 10);
                    std::thread::sleep(Duration::from_secs(wait));
                    retries += 1;
                }
                result => return self.finish(result),
            }
        }
    }

    /// `POST {server}{path}`, with `body` as JSON when given.
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Answer, Failure> {
        let request = self.request("POST", path);
        let result = match body {
            Some(json) => request.send_json(json),
            None => request.call(),
        };
        self.finish(result)
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set("Accept", "application/json")
            .set("Authorization", &format!("Bearer {}", self.token.expose()))
    }

    fn finish(&self, result: Result<ureq::Response, ureq::Error>) -> Result<Answer, Failure> {
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                return Err(api_failure(status, response));
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(Failure::Connection(self.unreachable(&transport)));
            }
        };
        let status = response.status();
        if (300..400).contains(&status) {
            let to = response.header("location").map(clean).unwrap_or_default();
            return Err(Failure::Usage(format!(
                "{} answered {status} (a redirect to {to:?}); use the address the server is really at as --server",
                self.base
            )));
        }
        match read_body(response) {
            Ok(body) => Ok(Answer { body }),
            Err(e) => Err(Failure::Connection(format!(
                "reading the answer from {} failed: {e}",
                self.base
            ))),
        }
    }

    /// Names the server, the kind of failure and its cause; never the request's headers.
    fn unreachable(&self, transport: &ureq::Transport) -> String {
        if transport.kind() == ureq::ErrorKind::BadHeader {
            return "the token cannot be sent in an HTTP header".to_owned();
        }
        let mut why = transport.kind().to_string();
        if let Some(message) = transport.message() {
            why = format!("{why}: {message}");
        }
        if let Some(source) = std::error::Error::source(transport) {
            why = format!("{why}: {source}");
        }
        format!("cannot reach {}: {}", self.base, clean(&why))
    }
}

/// TLS that trusts the public roots ureq bundles and the system's CA
/// certificates (`SSL_CERT_FILE` or `SSL_CERT_DIR` stand in for the system's
/// when set), so a server behind an internal CA works once its CA is there.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Failure> {
    let roots = trusted_roots();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Connection(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The public roots, and the system's (none readable, in a minimal image, leaves the public ones).
fn trusted_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Ok(system) = rustls_native_certs::load_native_certs() {
        roots.add_parsable_certificates(system);
    }
    roots
}

fn read_body(response: ureq::Response) -> std::io::Result<String> {
    let mut body = String::new();
    response
        .into_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_string(&mut body)?;
    Ok(body)
}

/// A 4xx/5xx: the server's own message and code when it sent klaxon's error JSON.
fn api_failure(status: u16, response: ureq::Response) -> Failure {
    let reason = clean(response.status_text());
    match read_body(response).map(|b| serde_json::from_str::<ErrorBody>(&b)) {
        Ok(Ok(body)) => Failure::Api {
            status,
            code: clean(&body.code),
            message: clean(&body.error),
        },
        _ => Failure::BadAnswer(format!(
            "the server answered {status} {reason} without a klaxon error (is --server a klaxon server?)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_roots_are_trusted_beside_the_systems() {
        let roots = trusted_roots();
        let public = webpki_roots::TLS_SERVER_ROOTS;
        assert!(roots.len() >= public.len());
        let subjects: Vec<&[u8]> = roots.roots.iter().map(|r| r.subject.as_ref()).collect();
        assert!(public
            .iter()
            .all(|r| subjects.contains(&r.subject.as_ref())));
    }

    #[test]
    fn server_urls_must_be_http() {
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "", "https:/x"] {
            assert!(Client::new(bad, Secret::new("t")).is_err(), "{bad}");
        }
        let client = Client::new(" HTTPS://klaxon.example/base/ ", Secret::new("t")).unwrap();
        assert_eq!(client.base, "HTTPS://klaxon.example/base");
        for with_password in ["http://user:hunter2@127.0.0.1:1", "user:hunter2@x"] {
            let Err(Failure::Usage(why)) = Client::new(with_password, Secret::new("t")) else {
                panic!("{with_password} accepted");
            };
            assert!(!why.contains("hunter2"), "{why}");
        }
    }

    #[test]
    fn exit_codes_tell_refusals_from_unreachable_servers() {
        assert_eq!(Failure::Usage(String::new()).exit_code(), 2);
        assert_eq!(Failure::Connection(String::new()).exit_code(), 2);
        assert_eq!(Failure::BadAnswer(String::new()).exit_code(), 1);
        let api = Failure::Api {
            status: 403,
            code: "forbidden".into(),
            message: "this token may only read".into(),
        };
        assert_eq!(api.exit_code(), 1);
        assert_eq!(api.to_string(), "403 forbidden: this token may only read");
    }
}
