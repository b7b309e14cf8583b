//! Secrets from a variable or the file its `_FILE` form names, and the
//! names an error gives them.

use std::fs;
use std::path::{Path, PathBuf};

use super::ConfigError;
use crate::secret::{Secret, SecretList};

/// A secret's names, for messages: it may have come from the variable, the
/// flag or the config file key (`KLAXON_READ_TOKENS`, `--read-tokens`,
/// `read_tokens`).
pub(super) fn setting(name: &str) -> String {
    let key = name
        .strip_prefix("KLAXON_")
        .or_else(|| name.strip_prefix("SLACK_"))
        .unwrap_or(name)
        .to_ascii_lowercase();
    format!("{name} (--{}, file key {key})", key.replace('_', "-"))
}

/// The names of a secret's `_FILE` form.
pub(super) fn setting_file(name: &str) -> String {
    setting(&format!("{name}_FILE"))
}

/// A secret list from its variable or its `_FILE` variable (not both).
pub(super) fn secret_list(
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
pub(super) fn bearer_list(
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

/// Of a secret given both ways, as the flag `--{id}` (or `--{id}-file`) and
/// in the environment in its other form, the flag's is kept: flags win over
/// the environment, and clap reads the two forms into two fields.
pub fn prefer_flag(
    matches: &clap::ArgMatches,
    id: &str,
    direct: &mut Option<Secret>,
    file: &mut Option<PathBuf>,
) {
    let flag = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    match (flag(id), flag(&format!("{id}_file"))) {
        (true, false) => *file = None,
        (false, true) => *direct = None,
        _ => {}
    }
}
