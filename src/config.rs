//! Settings from flags and environment (flags win), then defaults.
//! Secrets may also come from files (`*_FILE`, for Kubernetes/Docker secrets).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::secret::{Secret, SecretList};
use crate::urgency::Urgency;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./klaxon-data";
pub const DEFAULT_CACHE_MB: u64 = 64;

/// `klaxon serve` flags; each also reads the environment variable it names.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
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
    pub default_urgency: Option<Urgency>,
    /// Browser origins allowed to call the alert API, comma-separated [default: none]
    #[arg(
        long,
        env = "KLAXON_CORS_ORIGINS",
        value_name = "ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Option<Vec<String>>,
    /// sled page cache size in MiB [default: 64]
    #[arg(long, env = "KLAXON_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
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
}

/// A configuration klaxon refuses to start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("neither SLACK_SIGNING_SECRET (Events API) nor SLACK_VERIFICATION_TOKEN (outgoing webhooks) is configured: set at least one (or its _FILE variant)")]
    NoSlackSecret,
    #[error("{name} and {name}_FILE are both set: use one")]
    SecretTwice { name: &'static str },
    #[error("{name} {source}")]
    EmptySecret {
        name: &'static str,
        source: crate::secret::EmptySecret,
    },
    #[error("cannot read {name}_FILE {path}: {source}")]
    SecretFile {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("KLAXON_CORS_ORIGINS: {0:?} is not an origin such as https://dash.example.com")]
    BadOrigin(String),
}

impl Settings {
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
        }
    }

    /// Resolves `klaxon serve` arguments (flags over environment) over defaults.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
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
            read_tokens: secret_list(
                "KLAXON_READ_TOKENS",
                args.read_tokens,
                args.read_tokens_file,
            )?,
            write_tokens: secret_list(
                "KLAXON_WRITE_TOKENS",
                args.write_tokens,
                args.write_tokens_file,
            )?,
            default_urgency: args.default_urgency.unwrap_or(defaults.default_urgency),
            cors_origins: args.cors_origins.unwrap_or_default(),
            cache_bytes: args
                .cache_mb
                .map_or(defaults.cache_bytes, |mb| mb * 1024 * 1024),
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.signing_secrets.is_none() && self.verification_tokens.is_none() {
            return Err(ConfigError::NoSlackSecret);
        }
        for origin in &self.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.trim_end_matches('/').ends_with(':')
                && !origin.contains(char::is_whitespace);
            if !ok {
                return Err(ConfigError::BadOrigin(origin.clone()));
            }
        }
        Ok(())
    }
}

/// A secret list from its variable or its `_FILE` variable (not both).
fn secret_list(
    name: &'static str,
    direct: Option<Secret>,
    file: Option<PathBuf>,
) -> Result<Option<SecretList>, ConfigError> {
    let raw = match (direct, file) {
        (Some(_), Some(_)) => return Err(ConfigError::SecretTwice { name }),
        (Some(secret), None) => secret,
        (None, Some(path)) => read_secret_file(name, &path)?,
        (None, None) => return Ok(None),
    };
    SecretList::parse(raw.expose())
        .map(Some)
        .map_err(|source| ConfigError::EmptySecret { name, source })
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
