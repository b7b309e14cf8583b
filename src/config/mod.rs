//! Settings from flags, environment, a TOML file and defaults, in that order
//! of precedence. Secrets may also come from files (`*_FILE`, for
//! Kubernetes/Docker secrets).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header::HeaderName;
use ipnet::IpNet;

use crate::secret::SecretList;
use crate::urgency::Urgency;

mod args;
mod origin;
mod secrets;
#[cfg(test)]
mod tests;

use args::read_config_file;
pub use args::ServeArgs;
use origin::browser_origin;
pub use secrets::prefer_flag;
use secrets::{bearer_list, secret_list, setting, setting_file};

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

/// `args`, with what they leave unset taken from the `--config` file they
/// name, if any.
fn with_config_file(args: ServeArgs) -> Result<ServeArgs, ConfigError> {
    match args.config.clone() {
        Some(path) => Ok(args.over(read_config_file(&path)?)),
        None => Ok(args),
    }
}

/// The data dir as `klaxon serve` finds it (`--data-dir` or
/// `KLAXON_DATA_DIR`, then the `--config` file, then the default), for the
/// offline commands. They need nothing else, so the file's other settings
/// are not checked (a restore needs no Slack secret); a file that cannot be
/// read or parsed is still an error.
pub fn data_dir(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<PathBuf, ConfigError> {
    let args = with_config_file(ServeArgs {
        data_dir,
        config,
        ..ServeArgs::default()
    })?;
    Ok(args
        .data_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
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
        let args = with_config_file(args)?;
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
