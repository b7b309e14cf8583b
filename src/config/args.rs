//! `klaxon serve`'s flags and environment variables, and the `--config`
//! file that has the same settings; which of them wins.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::{prefer_flag, ConfigError};
use crate::secret::Secret;
use crate::urgency::Urgency;

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
    #[serde(deserialize_with = "nets")]
    pub allow_from_slack: Option<Vec<IpNet>>,
    /// Networks allowed to call /api/*, comma-separated CIDRs [default: all]
    #[arg(long, env = "KLAXON_ALLOW_FROM_API", value_name = "CIDRS", value_delimiter = ',', value_parser = parse_net)]
    #[serde(deserialize_with = "nets")]
    pub allow_from_api: Option<Vec<IpNet>>,
}

/// A CIDR such as `10.0.0.0/8`, or a single address.
fn parse_net(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is not a network such as 10.0.0.0/8 or an address"))
}

/// Networks in the file are read as in the environment: a CIDR or a single address.
fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    let raw = <Vec<String> as serde::Deserialize>::deserialize(d)?;
    let nets = raw.iter().map(|net| parse_net(net));
    // Not quoted back: config file errors never echo a value.
    nets.collect::<Result<_, _>>().map(Some).map_err(|_| {
        serde::de::Error::custom("each entry must be a network such as 10.0.0.0/8 or an address")
    })
}

/// An urgency in the file is read as in the environment: any case.
fn urgency_word<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Urgency>, D::Error> {
    let word = <String as serde::Deserialize>::deserialize(d)?;
    // Not quoted back: config file errors never echo a value.
    word.parse().map(Some).map_err(|_| {
        serde::de::Error::custom("default_urgency must be low, medium, high or critical")
    })
}

/// The `--config` file; unknown keys are errors, not silently ignored.
pub(super) fn read_config_file(path: &Path) -> Result<ServeArgs, ConfigError> {
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
        prefer_flag(
            matches,
            "signing_secret",
            &mut self.signing_secret,
            &mut self.signing_secret_file,
        );
        prefer_flag(
            matches,
            "verification_token",
            &mut self.verification_token,
            &mut self.verification_token_file,
        );
        prefer_flag(
            matches,
            "read_tokens",
            &mut self.read_tokens,
            &mut self.read_tokens_file,
        );
        prefer_flag(
            matches,
            "write_tokens",
            &mut self.write_tokens,
            &mut self.write_tokens_file,
        );
    }

    /// These arguments, with anything they leave unset taken from `file`.
    /// A secret and its `_FILE` variant count as one setting, so a secret in
    /// the environment overrides a secret file named in the config file.
    pub(super) fn over(self, file: ServeArgs) -> ServeArgs {
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
