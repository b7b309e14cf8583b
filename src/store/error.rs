//! What can go wrong in the store.

use std::path::PathBuf;
use std::sync::Arc;

/// A storage failure. Clients see 503 (or a refusal to start); the cause goes to the log.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(Arc<sled::Error>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("{path} was written by klaxon schema version {found}, newer than this klaxon's {supported}: run a newer klaxon, or restore a backup into an empty directory")]
    SchemaTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("{path} was written by an earlier klaxon (store schema {found}): `klaxon serve` upgrades it when it starts; back it up or check it after that")]
    SchemaTooOld { path: PathBuf, found: u64 },
    #[error("{0} holds a restore that did not finish, and no store: run `klaxon restore` again (or remove it to start with an empty store)")]
    UnfinishedRestore(PathBuf),
    #[error("the store is shut down")]
    Closed,
    #[error("disk nearly full: {free} bytes free, writes stop below {min}")]
    DiskFull { free: u64, min: u64 },
    #[error("the commit did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        Self::Sled(Arc::new(e))
    }
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Another process holds the store's lock. sled 0.34 reports that only
    /// as text (an `Other` I/O error, "could not acquire lock on ...").
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Sled(e) if matches!(&**e,
            sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock")))
    }
}
