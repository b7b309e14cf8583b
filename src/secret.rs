//! Secrets: a type that never prints itself, and constant-time token sets.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// A secret value (signing secret, token). `Debug` and `Display` print
/// `[redacted]`, so it cannot leak through logs or error messages.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used (HMAC key, comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// One or more secrets of one kind (several allow rotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretList(Vec<Secret>);

/// Why a comma-separated list of secrets was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmptySecret {
    #[error("contains an empty secret")]
    Empty,
    /// No client could send it in a header, so it would fail closed silently.
    #[error("contains a secret with whitespace or control characters inside (several secrets go on one line, separated by commas)")]
    Unsendable,
    /// An API token goes in an `Authorization` header, which carries visible
    /// ASCII only: a pasted curly quote or an accent could never match.
    #[error("contains a token with characters other than visible ASCII, which an Authorization header cannot carry")]
    NotAscii,
}

impl SecretList {
    /// Splits on commas and trims each; an empty item is an error, never
    /// skipped, and so is one with whitespace, a control character or a
    /// byte-order mark inside (one token per line in a file, say).
    pub fn parse(raw: &str) -> Result<Self, EmptySecret> {
        let items: Vec<Secret> = raw
            .trim()
            .split(',')
            .map(|s| Secret::new(s.trim()))
            .collect();
        if items.iter().any(|s| s.expose().is_empty()) {
            return Err(EmptySecret::Empty);
        }
        let unsendable = |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}';
        if items.iter().any(|s| s.expose().contains(unsendable)) {
            return Err(EmptySecret::Unsendable);
        }
        Ok(Self(items))
    }

    /// For bearer tokens: every one must be sendable in a header.
    pub fn for_header(self) -> Result<Self, EmptySecret> {
        if self
            .iter()
            .all(|s| s.expose().bytes().all(|b| b.is_ascii_graphic()))
        {
            Ok(self)
        } else {
            Err(EmptySecret::NotAscii)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A set of tokens checked in constant time. Tokens are kept as SHA-256
/// digests, so every comparison is over 32 bytes (no length leak) and every
/// token is compared (no early exit, nothing tells which one matched).
#[derive(Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl TokenSet {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a Secret>) -> Self {
        Self {
            digests: tokens
                .into_iter()
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `candidate` is one of the tokens, in time independent of which.
    pub fn contains(&self, candidate: &[u8]) -> bool {
        let candidate = digest(candidate);
        let found = self.digests.iter().fold(Choice::from(0), |found, known| {
            found | known.ct_eq(&candidate)
        });
        found.into()
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSet([{} redacted])", self.digests.len())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_themselves() {
        let list = SecretList::parse("hunter2,correct-horse").unwrap();
        let shown = format!("{list:?} {} {:?}", Secret::new("hunter2"), Secret::new("x"));
        assert!(
            !shown.contains("hunter2") && !shown.contains("correct-horse"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn lists_split_on_commas_and_refuse_empty_items() {
        assert_eq!(SecretList::parse(" a , b ").unwrap().len(), 2);
        assert_eq!(SecretList::parse(""), Err(EmptySecret::Empty));
        assert_eq!(SecretList::parse("a,,b"), Err(EmptySecret::Empty));
        assert_eq!(SecretList::parse("a,"), Err(EmptySecret::Empty));
        // One token per line, a space inside, a byte-order mark: no header can carry them.
        for raw in ["tokA\ntokB", "tok A", "\u{feff}tokA", "tok\u{7}"] {
            assert_eq!(
                SecretList::parse(raw),
                Err(EmptySecret::Unsendable),
                "{raw:?}"
            );
        }
        assert_eq!(SecretList::parse(" tokA , tokB \r\n").unwrap().len(), 2);
    }

    #[test]
    fn bearer_tokens_must_be_visible_ascii() {
        for raw in ["\u{201c}tok\u{201d}", "t\u{f6}k\u{e9}n", "ok,caf\u{e9}"] {
            let list = SecretList::parse(raw).unwrap();
            assert_eq!(
                list.for_header().err(),
                Some(EmptySecret::NotAscii),
                "{raw:?}"
            );
        }
        let fine = SecretList::parse("Abc-123_~!$&'()*+./:;=?@[]^`{|}").unwrap();
        assert_eq!(fine.for_header().unwrap().len(), 1);
    }

    #[test]
    fn token_set_matches_any_member_and_nothing_else() {
        let list = SecretList::parse("first-token,second").unwrap();
        let set = TokenSet::new(list.iter());
        assert!(set.contains(b"first-token"));
        assert!(set.contains(b"second"));
        for wrong in [&b""[..], b"first", b"first-token ", b"second2", b"SECOND"] {
            assert!(!set.contains(wrong));
        }
        assert!(!TokenSet::default().contains(b""));
    }

    #[test]
    fn a_token_listed_twice_still_matches() {
        let list = SecretList::parse("tok,other,tok").unwrap();
        let set = TokenSet::new(list.iter());
        assert!(set.contains(b"tok"));
        assert!(set.contains(b"other"));
        assert!(!set.contains(b"to"));
    }

    #[test]
    fn a_token_set_is_empty_only_without_tokens() {
        assert!(TokenSet::default().is_empty());
        assert!(TokenSet::new([]).is_empty());
        let list = SecretList::parse("tok").unwrap();
        assert!(!TokenSet::new(list.iter()).is_empty());
    }

    #[test]
    fn secrets_and_token_sets_print_only_a_redaction_marker() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        let list = SecretList::parse("hunter2,correct-horse").unwrap();
        assert_eq!(
            format!("{:?}", TokenSet::new(list.iter())),
            "TokenSet([2 redacted])"
        );
    }
}
