//! Settings from flags, environment, a TOML file and defaults, in that order
//! of precedence. Secrets may also come from files (`*_FILE`, for
//! Kubernetes/Docker secrets).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::header::HeaderName;
use ipnet::IpNet;

use crate::secret::{Secret, SecretList};
use crate::urgency::Urgency;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./klaxon-data";
/// sled's page cache. 16 rather than sled's usual 64: ingest ran as fast
/// (7 A/B rounds on fresh stores), and after 60 s of ingest a server held
/// 75 MiB resident (769,497 alerts) against 134 MiB (632,191) at 64.
/// (README, Performance).
pub const DEFAULT_CACHE_MB: u64 = 16;
/// Per client address. Slack delivers at most 30,000 events per workspace an
/// hour (about 8/s) from many addresses, so these never throttle Slack.
pub const DEFAULT_SLACK_RATE: RateLimit = RateLimit {
    per_sec: 100,
    burst: 500,
};
/// Per client address: a dashboard polling every second uses 1/s.
pub const DEFAULT_API_RATE: RateLimit = RateLimit {
    per_sec: 50,
    burst: 200,
};
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;
pub const DEFAULT_MIN_FREE_MB: u64 = 64;
pub const DEFAULT_CLIENT_TIMEOUT_SECS: u64 = 10;

/// A per-client request rate; `per_sec` 0 turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

/// `klaxon serve` flags; each also reads the environment variable it names,
/// and the same names in snake case are the keys of the `--config` file.
#[derive(Debug, Default, clap::Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings; flags and environment override it
    #[arg(long, env = "KLAXON_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "KLAXON_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory of the sled database [default: ./klaxon-data]
    #[arg(long, env = "KLAXON_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Events API signing secret(s), comma-separated (prefer the env var or file)
    #[arg(
        long,
        env = "SLACK_SIGNING_SECRET",
        hide_env_values = true,
        value_name = "SECRETS"
    )]
    pub signing_secret: Option<Secret>,
    /// File holding the signing secret(s)
    #[arg(long, env = "SLACK_SIGNING_SECRET_FILE", value_name = "FILE")]
    pub signing_secret_file: Option<PathBuf>,
    /// Outgoing-webhook verification token(s), comma-separated
    #[arg(
        long,
        env = "SLACK_VERIFICATION_TOKEN",
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub verification_token: Option<Secret>,
    /// File holding the verification token(s)
    #[arg(long, env = "SLACK_VERIFICATION_TOKEN_FILE", value_name = "FILE")]
    pub verification_token_file: Option<PathBuf>,
    /// Bearer tokens that may read the alert API, comma-separated
    #[arg(
        long,
        env = "KLAXON_READ_TOKENS",
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub read_tokens: Option<Secret>,
    /// File holding the read tokens
    #[arg(long, env = "KLAXON_READ_TOKENS_FILE", value_name = "FILE")]
    pub read_tokens_file: Option<PathBuf>,
    /// Bearer tokens that may read and change alerts, comma-separated
    #[arg(
        long,
        env = "KLAXON_WRITE_TOKENS",
        hide_env_values = true,
        value_name = "TOKENS"
    )]
    pub write_tokens: Option<Secret>,
    /// File holding the write tokens
    #[arg(long, env = "KLAXON_WRITE_TOKENS_FILE", value_name = "FILE")]
    pub write_tokens_file: Option<PathBuf>,
    /// Urgency of a message that names none [default: medium]
    #[arg(long, env = "KLAXON_DEFAULT_URGENCY", value_name = "URGENCY")]
    #[serde(deserialize_with = "urgency_word")]
    pub default_urgency: Option<Urgency>,
    /// Browser origins allowed to call the alert API, comma-separated [default: none]
    #[arg(
        long,
        env = "KLAXON_CORS_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Option<Vec<String>>,
    /// sled page cache size in MiB [default: 16]
    #[arg(long, env = "KLAXON_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Writes stop (503) while the data dir has less free space, in MiB [default: 64]
    #[arg(long, env = "KLAXON_MIN_FREE_MB", value_name = "MIB")]
    pub min_free_mb: Option<u64>,
    /// Separate address for GET /metrics without auth, e.g. 0.0.0.0:9090 [default: none: /metrics on the main port, behind a read token]
    #[arg(long, env = "KLAXON_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds to finish in-flight requests after SIGTERM/SIGINT [default: 30]
    #[arg(long, env = "KLAXON_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds a client may take to send its request head, and again its body [default: 10]
    #[arg(long, env = "KLAXON_CLIENT_TIMEOUT_SECS", value_name = "SECS")]
    pub client_timeout_secs: Option<u64>,
    /// Requests per second per client on /slack/*; 0 turns the limit off [default: 100]
    #[arg(long, env = "KLAXON_SLACK_RATE_PER_SEC", value_name = "N")]
    pub slack_rate_per_sec: Option<u32>,
    /// Burst allowed above the /slack/* rate [default: 500]
    #[arg(long, env = "KLAXON_SLACK_RATE_BURST", value_name = "N")]
    pub slack_rate_burst: Option<u32>,
    /// Requests per second per client on /api/*; 0 turns the limit off [default: 50]
    #[arg(long, env = "KLAXON_API_RATE_PER_SEC", value_name = "N")]
    pub api_rate_per_sec: Option<u32>,
    /// Burst allowed above the /api/* rate [default: 200]
    #[arg(long, env = "KLAXON_API_RATE_BURST", value_name = "N")]
    pub api_rate_burst: Option<u32>,
    /// Header with the client address set by a trusted reverse proxy, e.g. X-Forwarded-For [default: none: the peer address]
    #[arg(long, env = "KLAXON_CLIENT_IP_HEADER", value_name = "HEADER")]
    pub client_ip_header: Option<String>,
    /// Networks allowed to call /slack/*, comma-separated CIDRs [default: all]
    #[arg(long, env = "KLAXON_ALLOW_FROM_SLACK", value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net)]
    pub allow_from_slack: Option<Vec<IpNet>>,
    /// Networks allowed to call /api/*, comma-separated CIDRs [default: all]
    #[arg(long, env = "KLAXON_ALLOW_FROM_API", value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net)]
    pub allow_from_api: Option<Vec<IpNet>>,
}

/// A CIDR such as `10.0.0.0/8`, or a single address.
fn parse_net(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is not a network such as 10.0.0.0/8 or an address"))
}

/// The effective configuration of a running server.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub signing_secrets: Option<SecretList>,
    pub verification_tokens: Option<SecretList>,
    pub read_tokens: Option<SecretList>,
    pub write_tokens: Option<SecretList>,
    pub default_urgency: Urgency,
    pub cors_origins: Vec<String>,
    pub cache_bytes: u64,
    pub min_free_bytes: u64,
    pub metrics_listen: Option<SocketAddr>,
    pub shutdown_grace: Duration,
    pub client_timeout: Duration,
    pub slack_rate: RateLimit,
    pub api_rate: RateLimit,
    pub client_ip_header: Option<HeaderName>,
    pub allow_from_slack: Vec<IpNet>,
    pub allow_from_api: Vec<IpNet>,
}

/// A configuration klaxon refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("neither SLACK_SIGNING_SECRET (Events API) nor SLACK_VERIFICATION_TOKEN (outgoing webhooks) is configured: set at least one (or its _FILE variant)")]
    NoSlackSecret,
    #[error("{} and {} are both set: use one", setting(name), setting_file(name))]
    SecretTwice { name: &'static str },
    #[error("{} {source}", if *from_file { format!("the file named by {}", setting_file(name)) } else { setting(name) })]
    EmptySecret {
        name: &'static str,
        /// Read from the file its `_FILE` form names.
        from_file: bool,
        source: crate::secret::EmptySecret,
    },
    #[error("cannot read {path}, named by {}: {source}", setting_file(name))]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("KLAXON_CORS_ORIGINS: {0:?} is not an origin such as https://dash.example.com")]
    BadOrigin(String),
    #[error("KLAXON_CLIENT_IP_HEADER: {0:?} is not a header name")]
    BadHeader(String),
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}: too large")]
    TooLarge(&'static str),
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

/// Longest client and shutdown timeouts accepted: longer is a mistake, and
/// near `u64::MAX` seconds a deadline overflows.
const MAX_TIMEOUT_SECS: u64 = 3600;

/// An allow-list; unset allows any network. An empty list (only the config
/// file can give one, so `name` is its key) is refused rather than read as either.
fn allow_list(name: &'static str, list: Option<Vec<IpNet>>) -> Result<Vec<IpNet>, ConfigError> {
    match list {
        Some(list) if list.is_empty() => Err(ConfigError::Invalid {
            name,
            message: "an empty list in the config file; leave the key out to allow any network"
                .into(),
        }),
        list => Ok(list.unwrap_or_default()),
    }
}

/// A size given in MiB, in bytes; refuses one that does not fit.
fn mebibytes(name: &'static str, mb: Option<u64>) -> Result<Option<u64>, ConfigError> {
    mb.map(|mb| mb.checked_mul(1 << 20).ok_or(ConfigError::TooLarge(name)))
        .transpose()
}

impl std::fmt::Display for Settings {
    /// The effective settings, one per line, secrets redacted (`klaxon check-config`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secrets = |list: &Option<SecretList>| match list {
            Some(list) => format!("[redacted] ({} configured)", list.len()),
            None => "not set".to_owned(),
        };
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        let rate = |r: RateLimit| match r.per_sec {
            0 => "off".to_owned(),
            n => format!("{n}/s per client, burst {}", r.burst),
        };
        writeln!(f, "listen               = {}", self.listen)?;
        writeln!(f, "data_dir             = {}", self.data_dir.display())?;
        writeln!(
            f,
            "signing_secret       = {}",
            secrets(&self.signing_secrets)
        )?;
        writeln!(
            f,
            "verification_token   = {}",
            secrets(&self.verification_tokens)
        )?;
        writeln!(f, "read_tokens          = {}", secrets(&self.read_tokens))?;
        writeln!(f, "write_tokens         = {}", secrets(&self.write_tokens))?;
        writeln!(f, "default_urgency      = {}", self.default_urgency)?;
        writeln!(
            f,
            "cors_origins         = {}",
            list(self.cors_origins.clone())
        )?;
        writeln!(f, "cache_mb             = {}", self.cache_bytes >> 20)?;
        writeln!(f, "min_free_mb          = {}", self.min_free_bytes >> 20)?;
        let metrics = self
            .metrics_listen
            .map_or("main port, read token".to_owned(), |a| {
                format!("{a}, no auth")
            });
        writeln!(f, "metrics_listen       = {metrics}")?;
        writeln!(
            f,
            "shutdown_grace_secs  = {}",
            self.shutdown_grace.as_secs()
        )?;
        writeln!(
            f,
            "client_timeout_secs  = {}",
            self.client_timeout.as_secs()
        )?;
        writeln!(f, "slack_rate           = {}", rate(self.slack_rate))?;
        writeln!(f, "api_rate             = {}", rate(self.api_rate))?;
        let header = self
            .client_ip_header
            .as_ref()
            .map_or("none (peer address)".to_owned(), |h| h.to_string());
        writeln!(f, "client_ip_header     = {header}")?;
        let networks = |nets: &[IpNet]| match nets {
            [] => "any network".to_owned(),
            nets => list(nets.iter().map(ToString::to_string).collect()),
        };
        writeln!(
            f,
            "allow_from_slack     = {}",
            networks(&self.allow_from_slack)
        )?;
        write!(
            f,
            "allow_from_api       = {}",
            networks(&self.allow_from_api)
        )
    }
}

impl Settings {
    /// How the store should run under these settings.
    pub fn store_options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_bytes,
            min_free_bytes: self.min_free_bytes,
            ..Default::default()
        }
    }

    /// Defaults for everything, no secrets, data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("default listen address is valid"),
            data_dir: data_dir.into(),
            signing_secrets: None,
            verification_tokens: None,
            read_tokens: None,
            write_tokens: None,
            default_urgency: Urgency::Medium,
            cors_origins: Vec::new(),
            cache_bytes: DEFAULT_CACHE_MB * 1024 * 1024,
            min_free_bytes: DEFAULT_MIN_FREE_MB << 20,
            metrics_listen: None,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            client_timeout: Duration::from_secs(DEFAULT_CLIENT_TIMEOUT_SECS),
            slack_rate: DEFAULT_SLACK_RATE,
            api_rate: DEFAULT_API_RATE,
            client_ip_header: None,
            allow_from_slack: Vec::new(),
            allow_from_api: Vec::new(),
        }
    }

    /// Resolves `klaxon serve` arguments (flags over environment) over defaults.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        let args = match args.config.clone() {
            Some(path) => args.over(read_config_file(&path)?),
            None => args,
        };
        let defaults = Self::new(DEFAULT_DATA_DIR);
        let settings = Self {
            listen: args.listen.unwrap_or(defaults.listen),
            data_dir: args.data_dir.unwrap_or(defaults.data_dir),
            signing_secrets: secret_list(
                "SLACK_SIGNING_SECRET",
                args.signing_secret,
                args.signing_secret_file,
            )?,
            verification_tokens: secret_list(
                "SLACK_VERIFICATION_TOKEN",
                args.verification_token,
                args.verification_token_file,
            )?,
            read_tokens: bearer_list(
                "KLAXON_READ_TOKENS",
                args.read_tokens,
                args.read_tokens_file,
            )?,
            write_tokens: bearer_list(
                "KLAXON_WRITE_TOKENS",
                args.write_tokens,
                args.write_tokens_file,
            )?,
            default_urgency: args.default_urgency.unwrap_or(defaults.default_urgency),
            cors_origins: (args.cors_origins.unwrap_or_default().into_iter())
                .map(|o| browser_origin(&o).ok_or(ConfigError::BadOrigin(o)))
                .collect::<Result<_, _>>()?,
            cache_bytes: mebibytes("KLAXON_CACHE_MB", args.cache_mb)?
                .unwrap_or(defaults.cache_bytes),
            min_free_bytes: mebibytes("KLAXON_MIN_FREE_MB", args.min_free_mb)?
                .unwrap_or(defaults.min_free_bytes),
            metrics_listen: args.metrics_listen,
            shutdown_grace: args
                .shutdown_grace_secs
                .map_or(defaults.shutdown_grace, Duration::from_secs),
            client_timeout: args
                .client_timeout_secs
                .map_or(defaults.client_timeout, Duration::from_secs),
            slack_rate: RateLimit {
                per_sec: args
                    .slack_rate_per_sec
                    .unwrap_or(DEFAULT_SLACK_RATE.per_sec),
                burst: args.slack_rate_burst.unwrap_or(DEFAULT_SLACK_RATE.burst),
            },
            api_rate: RateLimit {
                per_sec: args.api_rate_per_sec.unwrap_or(DEFAULT_API_RATE.per_sec),
                burst: args.api_rate_burst.unwrap_or(DEFAULT_API_RATE.burst),
            },
            client_ip_header: args
                .client_ip_header
                .map(|h| {
                    HeaderName::from_bytes(h.trim().as_bytes())
                        .map_err(|_| ConfigError::BadHeader(h))
                })
                .transpose()?,
            allow_from_slack: allow_list("allow_from_slack", args.allow_from_slack)?,
            allow_from_api: allow_list("allow_from_api", args.allow_from_api)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.signing_secrets.is_none() && self.verification_tokens.is_none() {
            return Err(ConfigError::NoSlackSecret);
        }
        let invalid = |name, message: &str| ConfigError::Invalid {
            name,
            message: message.to_owned(),
        };
        if self.cache_bytes < 1 << 20 {
            return Err(invalid("KLAXON_CACHE_MB", "must be at least 1"));
        }
        let seconds = 1..=MAX_TIMEOUT_SECS;
        if !seconds.contains(&self.client_timeout.as_secs()) {
            return Err(invalid(
                "KLAXON_CLIENT_TIMEOUT_SECS",
                "must be 1 to 3600 (0 would turn the request-head timeout off)",
            ));
        }
        if self.shutdown_grace.as_secs() > MAX_TIMEOUT_SECS {
            return Err(invalid("KLAXON_SHUTDOWN_GRACE_SECS", "must be 0 to 3600"));
        }
        for (name, rate) in [
            ("KLAXON_SLACK_RATE_BURST", self.slack_rate),
            ("KLAXON_API_RATE_BURST", self.api_rate),
        ] {
            if rate.per_sec > 0 && rate.burst == 0 {
                return Err(invalid(name, "must be at least 1 while the rate is on"));
            }
        }
        if let Some(metrics) = self.metrics_listen {
            let main = self.listen;
            let unspecified = main.ip().is_unspecified() || metrics.ip().is_unspecified();
            if metrics.port() != 0
                && metrics.port() == main.port()
                && (metrics.ip() == main.ip() || unspecified)
            {
                return Err(invalid(
                    "KLAXON_METRICS_LISTEN",
                    "must be another address than KLAXON_LISTEN (both cannot listen there)",
                ));
            }
        }
        Ok(())
    }
}

/// An urgency in the file is read as in the environment: any case.
fn urgency_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Urgency>, D::Error> {
    let word = <String as serde::Deserialize>::deserialize(d)?;
    // Not quoted back: config file errors never echo a value.
    word.parse().map(Some).map_err(|_| {
        serde::de::Error::custom("default_urgency must be low, medium, high or critical")
    })
}

/// `origin` as a browser sends it in `Origin`, which actix-cors compares
/// byte for byte: `http(s)://host[:port]`, lower case, no default port, no
/// trailing slash. `None` for what no browser sends (a wildcard, a path,
/// user info, another scheme, a port with leading zeros).
fn browser_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    // An IPv6 host is bracketed; anything after the host is `:port`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (ip, port) = v6.split_once(']')?;
            (
                format!("[{}]", ip.parse::<std::net::Ipv6Addr>().ok()?),
                port,
            )
        }
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            if host.is_empty() || !host.chars().all(name) {
                return None;
            }
            (host.to_owned(), port)
        }
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => "",
        None => return None,
        Some(p) if p == default_port => "",
        Some(p)
            if p.bytes().all(|b| b.is_ascii_digit())
                && !p.starts_with('0')
                && p.parse::<u16>().is_ok() =>
        {
            p
        }
        Some(_) => return None,
    };
    let colon = if port.is_empty() { "" } else { ":" };
    Some(format!("{scheme}://{host}{colon}{port}"))
}

/// The `--config` file; unknown keys are errors, not silently ignored.
fn read_config_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let text = fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| error(toml_error(&text, &e)))
}

/// Where and what, without the quoted source line or the offending value
/// that toml's own message shows: either may be a secret.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = crate::error::without_value(e.message());
    let Some(span) = e.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
    format!("line {line}, column {column}: {message}")
}

impl ServeArgs {
    /// Flags win over the environment for secrets too: clap reads a flag
    /// and the other form of the same secret from the environment
    /// (`--read-tokens` and `KLAXON_READ_TOKENS_FILE`) into two fields, and
    /// two forms are refused. The form not given as a flag is dropped.
    pub fn prefer_flags(&mut self, matches: &clap::ArgMatches) {
        let flag =
            |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        let keep = |id: &str, direct: &mut Option<Secret>, file: &mut Option<PathBuf>| match (
            flag(id),
            flag(&format!("{id}_file")),
        ) {
            (true, false) => *file = None,
            (false, true) => *direct = None,
            _ => {}
        };
        keep(
            "signing_secret",
            &mut self.signing_secret,
            &mut self.signing_secret_file,
        );
        keep(
            "verification_token",
            &mut self.verification_token,
            &mut self.verification_token_file,
        );
        keep(
            "read_tokens",
            &mut self.read_tokens,
            &mut self.read_tokens_file,
        );
        keep(
            "write_tokens",
            &mut self.write_tokens,
            &mut self.write_tokens_file,
        );
    }

    /// These arguments, with anything they leave unset taken from `file`.
    /// A secret and its `_FILE` variant count as one setting, so a secret in
    /// the environment overrides a secret file named in the config file.
    fn over(self, file: ServeArgs) -> ServeArgs {
        let pair = |direct: Option<Secret>, path: Option<PathBuf>, file_direct, file_path| {
            if direct.is_some() || path.is_some() {
                (direct, path)
            } else {
                (file_direct, file_path)
            }
        };
        let (signing_secret, signing_secret_file) = pair(
            self.signing_secret,
            self.signing_secret_file,
            file.signing_secret,
            file.signing_secret_file,
        );
        let (verification_token, verification_token_file) = pair(
            self.verification_token,
            self.verification_token_file,
            file.verification_token,
            file.verification_token_file,
        );
        let (read_tokens, read_tokens_file) = pair(
            self.read_tokens,
            self.read_tokens_file,
            file.read_tokens,
            file.read_tokens_file,
        );
        let (write_tokens, write_tokens_file) = pair(
            self.write_tokens,
            self.write_tokens_file,
            file.write_tokens,
            file.write_tokens_file,
        );
        ServeArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            signing_secret,
            signing_secret_file,
            verification_token,
            verification_token_file,
            read_tokens,
            read_tokens_file,
            write_tokens,
            write_tokens_file,
            default_urgency: self.default_urgency.or(file.default_urgency),
            cors_origins: self.cors_origins.or(file.cors_origins),
            cache_mb: self.cache_mb.or(file.cache_mb),
            min_free_mb: self.min_free_mb.or(file.min_free_mb),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            shutdown_grace_secs: self.shutdown_grace_secs.or(file.shutdown_grace_secs),
            client_timeout_secs: self.client_timeout_secs.or(file.client_timeout_secs),
            slack_rate_per_sec: self.slack_rate_per_sec.or(file.slack_rate_per_sec),
            slack_rate_burst: self.slack_rate_burst.or(file.slack_rate_burst),
            api_rate_per_sec: self.api_rate_per_sec.or(file.api_rate_per_sec),
            api_rate_burst: self.api_rate_burst.or(file.api_rate_burst),
            client_ip_header: self.client_ip_header.or(file.client_ip_header),
            allow_from_slack: self.allow_from_slack.or(file.allow_from_slack),
            allow_from_api: self.allow_from_api.or(file.allow_from_api),
        }
    }
}

/// A secret's names, for messages: it may have come from the variable, the
/// flag or the config file key (`KLAXON_READ_TOKENS`, `--read-tokens`,
/// `read_tokens`).
fn setting(name: &str) -> String {
    let key = name
        .strip_prefix("KLAXON_")
        .or_else(|| name.strip_prefix("SLACK_"))
        .unwrap_or(name)
        .to_ascii_lowercase();
    format!("{name} (--{}, file key {key})", key.replace('_', "-"))
}

/// The names of a secret's `_FILE` form.
fn setting_file(name: &str) -> String {
    setting(&format!("{name}_FILE"))
}

/// A secret list from its variable or its `_FILE` variable (not both).
fn secret_list(
    name: &'static str,
    direct: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Option<SecretList>, ConfigError> {
    let from_file = file.is_some();
    let raw = match (direct, file) {
        (Some(_), Some(_)) => return Err(ConfigError::SecretTwice { name }),
        (Some(secret), None) => secret,
        (None, Some(path)) => read_secret_file(name, &path)?,
        (None, None) => return Ok(None),
    };
    SecretList::parse(raw.expose())
        .map(Some)
        .map_err(|source| ConfigError::EmptySecret {
            name,
            from_file,
            source,
        })
}

/// A list of API tokens: a secret list whose tokens fit in a header.
fn bearer_list(
    name: &'static str,
    direct: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Option<SecretList>, ConfigError> {
    let from_file = file.is_some();
    secret_list(name, direct, file)?
        .map(SecretList::for_header)
        .transpose()
        .map_err(|source| ConfigError::EmptySecret {
            name,
            from_file,
            source,
        })
}

fn read_secret_file(name: &'static str, path: &Path) -> Result<Secret, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        name,
        path: path.to_owned(),
        source,
    })?;
    Ok(Secret::new(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            verification_token: Some(Secret::new("verify-me-123")),
            ..ServeArgs::default()
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let s = Settings::from_args(args()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./klaxon-data"));
        assert_eq!(s.default_urgency, Urgency::Medium);
        assert!(s.signing_secrets.is_none());
    }

    #[test]
    fn no_slack_secret_refuses_to_start_naming_both_variables() {
        let err = Settings::from_args(ServeArgs::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SLACK_SIGNING_SECRET") && err.contains("SLACK_VERIFICATION_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn cors_origins_are_what_a_browser_sends() {
        for (given, sent) in [
            ("https://dash.example.com", "https://dash.example.com"),
            ("https://dash.example.com/", "https://dash.example.com"),
            ("HTTPS://Dash.Example.com:443", "https://dash.example.com"),
            ("http://localhost:80", "http://localhost"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://x.example:80", "https://x.example:80"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[0:0::1]", "http://[::1]"),
        ] {
            assert_eq!(browser_origin(given).as_deref(), Some(sent), "{given}");
        }
        for bad in [
            "dash.example.com",
            "https://*.example.com",
            "https://u:p@x.example.com",
            "https://a.example/path",
            "https://a.example:",
            "https://a.example:99999",
            "https://a.example:080",
            "https://a.example:+8080",
            "https://",
            "https://[::1",
            "https://[::1]x",
            "ftp://a.example",
        ] {
            assert_eq!(browser_origin(bad), None, "{bad}");
        }
        let a = ServeArgs {
            cors_origins: Some(vec!["https://*.example.com".into()]),
            ..args()
        };
        assert!(matches!(
            Settings::from_args(a),
            Err(ConfigError::BadOrigin(_))
        ));
        let a = ServeArgs {
            cors_origins: Some(vec!["HTTPS://Dash.Example.com:443/".into()]),
            ..args()
        };
        let settings = Settings::from_args(a).unwrap();
        assert_eq!(settings.cors_origins, ["https://dash.example.com"]);
    }

    #[test]
    fn numbers_that_would_break_the_server_are_refused() {
        let refused = |a: ServeArgs| match Settings::from_args(a) {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        let cache = ServeArgs {
            cache_mb: Some(0),
            ..args()
        };
        assert_eq!(refused(cache), "KLAXON_CACHE_MB");
        for secs in [0, 3601, u64::MAX] {
            let timeout = ServeArgs {
                client_timeout_secs: Some(secs),
                ..args()
            };
            assert_eq!(refused(timeout), "KLAXON_CLIENT_TIMEOUT_SECS", "{secs}");
        }
        let grace = ServeArgs {
            shutdown_grace_secs: Some(u64::MAX),
            ..args()
        };
        assert_eq!(refused(grace), "KLAXON_SHUTDOWN_GRACE_SECS");
        let empty = ServeArgs {
            allow_from_api: Some(Vec::new()),
            ..args()
        };
        assert_eq!(refused(empty), "allow_from_api");
        let ok = ServeArgs {
            cache_mb: Some(1),
            client_timeout_secs: Some(3600),
            shutdown_grace_secs: Some(0),
            ..args()
        };
        let settings = Settings::from_args(ok).unwrap();
        assert!(settings
            .to_string()
            .contains("allow_from_api       = any network"));
    }

    #[test]
    fn a_burst_of_0_is_refused_while_the_rate_is_on() {
        let a = ServeArgs {
            api_rate_burst: Some(0),
            ..args()
        };
        assert!(Settings::from_args(a).is_err());
        let off = ServeArgs {
            api_rate_per_sec: Some(0),
            api_rate_burst: Some(0),
            ..args()
        };
        assert!(Settings::from_args(off).is_ok());
    }

    #[test]
    fn metrics_cannot_listen_where_the_service_does() {
        for (main, metrics, ok) in [
            ("127.0.0.1:8080", "127.0.0.1:8080", false),
            ("0.0.0.0:8080", "127.0.0.1:8080", false),
            ("127.0.0.1:8080", "127.0.0.1:9090", true),
            ("127.0.0.1:0", "127.0.0.1:0", true),
        ] {
            let a = ServeArgs {
                listen: Some(main.parse().unwrap()),
                metrics_listen: Some(metrics.parse().unwrap()),
                ..args()
            };
            assert_eq!(Settings::from_args(a).is_ok(), ok, "{main} {metrics}");
        }
    }

    #[test]
    fn empty_secrets_are_errors() {
        let a = ServeArgs {
            signing_secret: Some(Secret::new("")),
            ..args()
        };
        assert!(matches!(
            Settings::from_args(a),
            Err(ConfigError::EmptySecret {
                name: "SLACK_SIGNING_SECRET",
                ..
            })
        ));
    }

    #[test]
    fn api_tokens_no_header_can_carry_are_errors_but_slack_secrets_are_not() {
        let a = ServeArgs {
            write_tokens: Some(Secret::new("\u{201c}pasted\u{201d}")),
            ..args()
        };
        assert!(matches!(
            Settings::from_args(a),
            Err(ConfigError::EmptySecret {
                name: "KLAXON_WRITE_TOKENS",
                from_file: false,
                source: crate::secret::EmptySecret::NotAscii,
            })
        ));
        // A verification token travels in a form body, not a header.
        let a = ServeArgs {
            verification_token: Some(Secret::new("t\u{f6}ken")),
            ..args()
        };
        assert!(Settings::from_args(a).is_ok());
    }

    #[test]
    fn secrets_come_from_files_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "from-file,second\n").unwrap();
        let a = ServeArgs {
            signing_secret_file: Some(path.clone()),
            ..args()
        };
        let s = Settings::from_args(a).unwrap();
        let got: Vec<&str> = s
            .signing_secrets
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.expose())
            .collect();
        assert_eq!(got, ["from-file", "second"]);

        let both = ServeArgs {
            signing_secret: Some(Secret::new("x")),
            signing_secret_file: Some(path),
            ..args()
        };
        assert!(matches!(
            Settings::from_args(both),
            Err(ConfigError::SecretTwice { .. })
        ));
        let missing = ServeArgs {
            read_tokens_file: Some(dir.path().join("nope")),
            ..args()
        };
        assert!(matches!(
            Settings::from_args(missing),
            Err(ConfigError::SecretFile { .. })
        ));
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let a = ServeArgs {
            signing_secret: Some(Secret::new("sign-me")),
            read_tokens: Some(Secret::new("read-me")),
            ..args()
        };
        let shown = format!("{a:?} {:?}", Settings::from_args(a_clone(&a)).unwrap());
        for secret in ["sign-me", "read-me", "verify-me-123"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    fn a_clone(a: &ServeArgs) -> ServeArgs {
        ServeArgs {
            signing_secret: a.signing_secret.clone(),
            read_tokens: a.read_tokens.clone(),
            verification_token: a.verification_token.clone(),
            ..ServeArgs::default()
        }
    }
}
