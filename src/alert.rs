//! The alert: klaxon's domain record, as stored and as served.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use crate::urgency::{Urgency, UrgencySource};

/// A creation-ordered alert id. The upper 48 bits are the creation time in
/// Unix milliseconds and the lower 16 a counter, so ids sort by creation and a
/// `created_at` range is an id range. Written as 13 Crockford base-32 digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AlertId(u64);

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const ID_DIGITS: usize = 13;

impl AlertId {
    pub const MIN: AlertId = AlertId(0);
    pub const MAX: AlertId = AlertId(u64::MAX);

    pub fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The smallest id that can be created at `unix_ms`.
    pub const fn first_at(unix_ms: u64) -> Self {
        Self(unix_ms.saturating_mul(1 << 16))
    }

    /// When the alert was created, in Unix milliseconds.
    pub fn created_at_ms(self) -> u64 {
        self.0 >> 16
    }
}

impl fmt::Display for AlertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut digits = [0u8; ID_DIGITS];
        for (i, digit) in digits.iter_mut().rev().enumerate() {
            *digit = CROCKFORD[((self.0 >> (5 * i)) & 31) as usize];
        }
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

/// The error for a string that is not an alert id.
#[derive(Debug, thiserror::Error)]
#[error("not an alert id")]
pub struct InvalidAlertId;

impl FromStr for AlertId {
    type Err = InvalidAlertId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_DIGITS {
            return Err(InvalidAlertId);
        }
        let mut value: u64 = 0;
        for (i, byte) in s.bytes().enumerate() {
            let digit = CROCKFORD
                .iter()
                .position(|&c| c == byte.to_ascii_lowercase())
                .ok_or(InvalidAlertId)? as u64;
            // 13 digits hold 65 bits: the first may only use the low four.
            if i == 0 && digit > 15 {
                return Err(InvalidAlertId);
            }
            value = (value << 5) | digit;
        }
        Ok(Self(value))
    }
}

/// Its 13 digits in JSON; its number in binary formats (stored records).
impl Serialize for AlertId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

/// Pattern of a served id: 13 lowercase Crockford digits, the first at most `f`.
pub const ID_PATTERN: &str = "^[0-9a-f][0-9a-hjkmnp-tv-z]{12}$";

impl utoipa::PartialSchema for AlertId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "13 Crockford base-32 digits that sort by creation time.",
            ))
            .min_length(Some(ID_DIGITS))
            .max_length(Some(ID_DIGITS))
            .pattern(Some(ID_PATTERN))
            .examples(["01jd3k5m8q000"])
            .into()
    }
}

impl ToSchema for AlertId {}

impl<'de> Deserialize<'de> for AlertId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return u64::deserialize(deserializer).map(Self);
        }
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an alert stands in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
}

impl Status {
    pub const ALL: [Status; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    /// Stable one-byte code used in storage keys.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown status {s:?}: expected open, acknowledged or resolved"))
    }
}

/// Which Slack surface brought the alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    OutgoingWebhook,
    EventsApi,
}

/// Longest Slack identifier (team, channel, user, ts, event id, names)
/// klaxon keeps. Slack's are at most a few dozen bytes; some become part of
/// store keys, which must stay short.
pub const MAX_ID_BYTES: usize = 255;

/// Longest name of who acknowledged, resolved or wrote a note (`by` in the
/// API). Each is kept in the record, which every change rewrites.
pub const MAX_ACTOR_BYTES: usize = 255;

/// Where the alert came from in Slack. Every field is always present (null when unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SlackRef {
    #[schema(required = true)]
    pub team_id: Option<String>,
    #[schema(required = true)]
    pub team_domain: Option<String>,
    pub channel_id: String,
    #[schema(required = true)]
    pub channel_name: Option<String>,
    #[schema(required = true)]
    pub user_id: Option<String>,
    #[schema(required = true)]
    pub user_name: Option<String>,
    pub ts: String,
    #[schema(required = true)]
    pub thread_ts: Option<String>,
    #[schema(required = true)]
    pub trigger_word: Option<String>,
    #[schema(required = true)]
    pub event_id: Option<String>,
}

impl SlackRef {
    /// The name of the first identifier longer than [`MAX_ID_BYTES`], if any.
    pub fn long_field(&self) -> Option<&'static str> {
        let optional = [
            ("team_id", &self.team_id),
            ("team_domain", &self.team_domain),
            ("channel_name", &self.channel_name),
            ("user_id", &self.user_id),
            ("user_name", &self.user_name),
            ("thread_ts", &self.thread_ts),
            ("trigger_word", &self.trigger_word),
            ("event_id", &self.event_id),
        ]
        .map(|(name, value)| (name, value.as_deref()));
        [
            ("channel_id", Some(self.channel_id.as_str())),
            ("ts", Some(self.ts.as_str())),
        ]
        .into_iter()
        .chain(optional)
        .find(|(_, value)| value.is_some_and(|v| v.len() > MAX_ID_BYTES))
        .map(|(name, _)| name)
    }
}

/// A comment on an alert, from a Slack thread reply or the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    #[schema(required = true)]
    pub user: Option<String>,
    pub text: String,
    /// The Slack message ts when the note came from a thread reply.
    #[schema(required = true)]
    pub ts: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
}

/// What a Slack surface hands to the store: an alert before it has an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub urgency: Urgency,
    pub urgency_source: UrgencySource,
    pub title: String,
    pub text: String,
    pub source: Source,
    pub slack: SlackRef,
}

/// The stored and served alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: AlertId,
    /// Sequence number of the alert's latest change (see the change feed).
    pub seq: u64,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub status: Status,
    pub urgency: Urgency,
    pub urgency_source: UrgencySource,
    pub title: String,
    pub text: String,
    pub source: Source,
    pub slack: SlackRef,
    #[schema(format = DateTime, required = true)]
    pub acknowledged_at: Option<String>,
    #[schema(required = true)]
    pub acknowledged_by: Option<String>,
    #[schema(format = DateTime, required = true)]
    pub resolved_at: Option<String>,
    #[schema(required = true)]
    pub resolved_by: Option<String>,
    pub notes: Vec<Note>,
}

impl Alert {
    /// A new open alert, created at the time its id encodes.
    pub fn open(id: AlertId, seq: u64, new: NewAlert) -> Self {
        Self {
            id,
            seq,
            created_at: rfc3339_ms(id.created_at_ms()),
            status: Status::Open,
            urgency: new.urgency,
            urgency_source: new.urgency_source,
            title: new.title,
            text: new.text,
            source: new.source,
            slack: new.slack,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            notes: Vec::new(),
        }
    }
}

/// Longest title, in characters.
pub const TITLE_MAX_CHARS: usize = 120;

/// The title of a message with no text of its own: a file shared without a
/// comment, a post that is only the trigger word.
pub const UNTITLED: &str = "(no text)";

/// The first non-empty line of `text`, without a leading trigger word,
/// cut to [`TITLE_MAX_CHARS`] on a character boundary; [`UNTITLED`] if
/// nothing is left.
pub fn title_of(text: &str, trigger_word: Option<&str>) -> String {
    let line = without_trigger_word(text, trigger_word)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(UNTITLED);
    let cut = line
        .char_indices()
        .nth(TITLE_MAX_CHARS)
        .map_or(line, |(end, _)| &line[..end]);
    if cut.len() == line.len() {
        return line.to_owned();
    }
    // Not inside Slack's markup or escapes: a cut `<https://…|label>` or
    // `&amp;` would show its pieces.
    let open = cut.rfind('<').filter(|&at| !cut[at..].contains('>'));
    let entity = cut.rfind('&').filter(|&at| {
        let name = &cut[at + 1..];
        name.len() <= 8 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#')
    });
    let end = open.into_iter().chain(entity).min().unwrap_or(cut.len());
    match cut[..end].trim_end() {
        "" => cut.to_owned(),
        kept => kept.to_owned(),
    }
}

/// `text` without a leading `trigger_word` (a whole word, in any case) and
/// the colon or spaces after it.
pub fn without_trigger_word<'a>(text: &'a str, trigger_word: Option<&str>) -> &'a str {
    let text = text.trim_start();
    trigger_word
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .and_then(|trigger| after_word(text, trigger))
        .map_or(text, |after| {
            after.trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        })
}

/// `text` after `word` at its start (in any case), when `word` is a whole
/// word there: `outage` is not taken off `outages in eu` or `outage-db`.
fn after_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let mut chars = text.char_indices();
    for expected in word.chars() {
        let (_, c) = chars.next()?;
        if !c.to_lowercase().eq(expected.to_lowercase()) {
            return None;
        }
    }
    let rest = &text[chars.offset()..];
    let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let joined =
        word.chars().last().is_some_and(word_char) && rest.chars().next().is_some_and(word_char);
    (!joined).then_some(rest)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `unix_ms` as RFC 3339 UTC with milliseconds, e.g. `2026-11-23T15:04:05.123Z`.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_like_their_numbers() {
        let ids = [
            0,
            1,
            31,
            32,
            1 << 40,
            (1_764_000_000_000 << 16) | 7,
            u64::MAX,
        ];
        let mut last = String::new();
        for raw in ids {
            let text = AlertId::from_u64(raw).to_string();
            assert_eq!(text.len(), 13);
            assert_eq!(text.parse::<AlertId>().unwrap().as_u64(), raw);
            assert!(text > last, "{text} sorts after {last}");
            last = text;
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "abc",
            "0000000000000u",
            "gzzzzzzzzzzzz",
            "000000000000!",
            "00000000000000",
        ] {
            assert!(bad.parse::<AlertId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn id_encodes_its_creation_time() {
        let id = AlertId::from_u64((1_764_000_000_123 << 16) | 5);
        assert_eq!(id.created_at_ms(), 1_764_000_000_123);
        assert_eq!(rfc3339_ms(id.created_at_ms()), "2025-11-24T16:00:00.123Z");
    }

    #[test]
    fn title_drops_the_trigger_word_and_keeps_the_first_line() {
        assert_eq!(
            title_of("outage check servers high", Some("outage")),
            "check servers high"
        );
        assert_eq!(title_of("\n\n  db down\nmore", None), "db down");
        assert_eq!(title_of("Outage: api", Some("outage")), "api");
        assert_eq!(title_of("ÄRGER im Lager", Some("ärger")), "im Lager");
        assert_eq!(
            title_of(":rotating_light:db", Some(":rotating_light:")),
            "db"
        );
    }

    #[test]
    fn the_trigger_word_is_taken_off_only_as_a_whole_word() {
        assert_eq!(
            title_of("outages in eu high", Some("outage")),
            "outages in eu high"
        );
        assert_eq!(title_of("outage_x down", Some("outage")), "outage_x down");
        assert_eq!(title_of("outage-db down", Some("outage")), "outage-db down");
    }

    #[test]
    fn a_message_without_text_is_untitled() {
        for (text, trigger) in [
            ("", None),
            ("  \n ", None),
            ("outage", Some("outage")),
            ("outage:  ", Some("outage")),
        ] {
            assert_eq!(title_of(text, trigger), UNTITLED, "{text:?}");
        }
    }

    #[test]
    fn title_is_cut_on_a_character_boundary() {
        let text = "é".repeat(200);
        let title = title_of(&text, None);
        assert_eq!(title.chars().count(), TITLE_MAX_CHARS);
        assert!(text.starts_with(&title));
    }

    #[test]
    fn title_is_not_cut_inside_an_escape_or_a_link() {
        let pad = "x".repeat(TITLE_MAX_CHARS - 4);
        let escaped = title_of(&format!("{pad} R&amp;D down"), None);
        assert_eq!(escaped, format!("{pad} R"));
        let link = format!("{pad} <https://grafana.example/d/1|graph> db");
        assert_eq!(title_of(&link, None), pad);
        // A whole escape or link before the cut stays.
        let kept = format!("{} &amp; {}", "x".repeat(100), "y".repeat(40));
        let title = title_of(&kept, None);
        assert!(title.contains("&amp;"), "{title}");
        assert_eq!(title.chars().count(), TITLE_MAX_CHARS);
        // A bare `&` (not Slack's escape) is cut through like any character.
        let bare = format!("Disk & CPU {}", "y".repeat(200));
        assert_eq!(title_of(&bare, None).chars().count(), TITLE_MAX_CHARS);
        // One long link alone is cut as it is rather than left empty.
        let long = format!("<https://x.example/{}>", "a".repeat(200));
        assert_eq!(title_of(&long, None).chars().count(), TITLE_MAX_CHARS);
    }
}
