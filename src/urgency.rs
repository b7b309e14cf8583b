//! Urgency and how it is read from a message.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::slack::markup::{pieces, Piece};

/// How urgently an alert should page someone; ordered from least to most urgent.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Low,
    Medium,
    High,
    Critical,
}

/// Where an alert's urgency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UrgencySource {
    /// The message named it.
    Message,
    /// The message named none; `KLAXON_DEFAULT_URGENCY` applied.
    Default,
}

impl Urgency {
    pub const ALL: [Urgency; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
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

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a word that is not an urgency.
#[derive(Debug, thiserror::Error)]
#[error("unknown urgency {0:?}: expected low, medium, high or critical")]
pub struct UnknownUrgency(pub String);

impl FromStr for Urgency {
    type Err = UnknownUrgency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim();
        Self::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(word))
            .ok_or_else(|| UnknownUrgency(s.to_owned()))
    }
}

/// The four words, in any case; whether one stands as a word is
/// [`joins_word`]'s to say.
static URGENCY_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)low|medium|high|critical").expect("urgency regex is valid"));

/// Scripts written without spaces between words, or (Hangul) with particles
/// attached to the word before: `DBがcriticalです`, `critical이에요`.
static UNSPACED_SCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]$")
        .expect("script regex is valid")
});

/// Whether `c` next to an urgency word makes it part of a longer word:
/// "highlight", "slowly", "critically", "highé" and "critical_path" are not
/// the words, while "high-priority", "CRITICAL:", "(low)" and "DBがhighです"
/// are.
fn joins_word(c: char) -> bool {
    c == '_' || is_spaced_letter(c)
}

/// A letter or digit of a script that puts spaces between words: one next to
/// an urgency word, or to the `_` of italics, makes them one word.
fn is_spaced_letter(c: char) -> bool {
    let mut utf8 = [0; 4];
    c.is_alphanumeric() && !UNSPACED_SCRIPT.is_match(c.encode_utf8(&mut utf8))
}

/// What stands in for a piece of markup once it is taken out of the text: no
/// letter and no space, so a `~` or `_` against a mention or link still marks
/// an edge (`~<@U1> critical~` is struck) and a word against it stays a word.
const MARKUP: char = '\u{FFFC}';

/// The highest urgency named in `text`, if any: never under-page. Only the
/// words people wrote count, not Slack markup: a link's address, a mention
/// of `@critical-oncall` or of `#high-priority` names no urgency (a link's
/// label does), and `_critical_` (Slack's italics) is the word critical.
pub fn named_in(text: &str) -> Option<Urgency> {
    let words = written_words(text);
    let words = code_tildes_inert(&words);
    let words = without_struck_words(&words);
    let text = without_italics(&words);
    let mut highest = None;
    for word in URGENCY_WORD.find_iter(&text) {
        let before = text[..word.start()].chars().next_back();
        let after = text[word.end()..].chars().next();
        if before.into_iter().chain(after).any(joins_word) {
            continue;
        }
        // The regex only matches the four words (case-folded), so this parses.
        if let Ok(u) = word.as_str().to_lowercase().parse::<Urgency>() {
            highest = highest.max(Some(u));
            if u == Urgency::Critical {
                break;
            }
        }
    }
    highest
}

/// `text` without Slack's markup (`<@U1>`, `<#C1|name>`, `<!here>`,
/// `<!subteam^S1|@team>`, `<https://...>`), keeping a link's label.
fn written_words(text: &str) -> Cow<'_, str> {
    if !text.contains('<') {
        return Cow::Borrowed(text);
    }
    let mut words = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(text) => words.push_str(text),
            Piece::Markup {
                target,
                label: Some(label),
            } if !target.starts_with(['@', '#', '!']) && !is_address_of(label, target) => {
                // Set apart: `critical<https://x|dash>` still names critical.
                // A label's strikes pair within it, never with a `~`
                // outside the link.
                let label = without_struck_words(label);
                words.push(MARKUP);
                words.extend(tildes_inert(&label));
                words.push(MARKUP);
            }
            Piece::Markup { .. } => words.push(MARKUP),
        }
    }
    Cow::Owned(words)
}

/// Whether a link's label is its address as someone typed it: Slack links
/// `example.com/critical` as `<http://example.com/critical|example.com/critical>`.
fn is_address_of(label: &str, target: &str) -> bool {
    let bare = ["https://", "http://", "mailto:"]
        .into_iter()
        .find_map(|scheme| target.strip_prefix(scheme))
        .unwrap_or(target);
    label.eq_ignore_ascii_case(target) || label.eq_ignore_ascii_case(bare)
}

/// `text` with each `~` inside Slack code (`` `x` `` within a line, or a
/// ```` ```x``` ```` block) as markup: Slack shows code as typed, so a `~`
/// there strikes nothing (`` `~critical~` `` shows the word critical) and
/// pairs with none outside the code.
fn code_tildes_inert(text: &str) -> Cow<'_, str> {
    if !text.contains('`') || !text.contains('~') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Each search ends at the next backtick (or fence) after the opening
    // one, and the scan goes on from there: linear.
    while let Some(open) = rest.find('`') {
        let fence = if rest[open..].starts_with("```") {
            "```"
        } else {
            "`"
        };
        let inside = open + fence.len();
        let close = rest[inside..].find(fence).map(|c| inside + c);
        match close {
            Some(end) if fence == "```" || !rest[inside..end].contains('\n') => {
                out.push_str(&rest[..inside]);
                out.extend(tildes_inert(&rest[inside..end]));
                out.push_str(fence);
                rest = &rest[end + fence.len()..];
            }
            // An unclosed fence, or a backtick alone on its line: text.
            _ => {
                out.push_str(&rest[..inside]);
                rest = &rest[inside..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `text` with each `~` as markup: it strikes nothing and pairs with none.
fn tildes_inert(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().map(|c| if c == '~' { MARKUP } else { c })
}

/// `text` without what its author struck through: Slack sends `~critical~`
/// for struck words, a `~` at each edge of a stretch of one line. `~50%`
/// or `a~b~c` strike nothing.
fn without_struck_words(text: &str) -> Cow<'_, str> {
    if !text.contains('~') {
        return Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let edge = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_none_or(|c| !c.is_alphanumeric())
    };
    let mut out = String::with_capacity(text.len());
    // Up to here no `~` closes a stretch: once a search for one fails, no
    // later `~` on that line can close one either (the scan stays linear).
    let mut no_close_until = 0;
    let mut i = 0;
    while i < chars.len() {
        let opens = chars[i] == '~'
            && i >= no_close_until
            && edge(i.checked_sub(1))
            && chars
                .get(i + 1)
                .is_some_and(|c| !c.is_whitespace() && *c != '~');
        let mut close = None;
        if opens {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\n' {
                if chars[j] == '~' && !chars[j - 1].is_whitespace() && edge(Some(j + 1)) {
                    close = Some(j);
                    break;
                }
                j += 1;
            }
            if close.is_none() {
                no_close_until = j;
            }
        }
        match close {
            Some(end) => {
                out.extend(std::iter::repeat_n(' ', end + 1 - i));
                i = end + 1;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// `text` with the underscores at either edge of a word as spaces: Slack
/// sends italics as `_critical_`, and `\b` counts `_` as a letter. Inside a
/// word (`critical_path`) they stay, so an identifier names no urgency; text
/// written without spaces is no word of it (`DBが_critical_です`).
fn without_italics(text: &str) -> Cow<'_, str> {
    if !text.contains('_') {
        return Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let letter = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|&c| is_spaced_letter(c))
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '_' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = i;
        while chars.get(i) == Some(&'_') {
            i += 1;
        }
        let inside = letter(run.checked_sub(1)) && letter(Some(i));
        out.extend(std::iter::repeat_n(if inside { '_' } else { ' ' }, i - run));
    }
    Cow::Owned(out)
}

/// The urgency of a message: the highest one it names, else `default`.
pub fn read(text: &str, default: Urgency) -> (Urgency, UrgencySource) {
    match named_in(text) {
        Some(u) => (u, UrgencySource::Message),
        None => (default, UrgencySource::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_match_in_any_case_and_punctuation() {
        for (text, want) in [
            ("outage check servers high", Urgency::High),
            ("CRITICAL: db down", Urgency::Critical),
            ("disk filling (low)", Urgency::Low),
            ("high-priority: checkout broken", Urgency::High),
            ("Medium", Urgency::Medium),
            ("ÉCHEC du paiement, urgence high ✅", Urgency::High),
            ("障害 critical 発生", Urgency::Critical),
        ] {
            assert_eq!(named_in(text), Some(want), "{text}");
        }
    }

    #[test]
    fn words_inside_other_words_do_not_match() {
        for text in [
            "highlight the flow",
            "slowly allow it",
            "critically acclaimed",
            "mediums",
            "lowercase",
            "highé",
            "",
        ] {
            assert_eq!(named_in(text), None, "{text}");
        }
    }

    #[test]
    fn struck_words_name_no_urgency() {
        for (text, named) in [
            ("~critical~ never mind, low", Some(Urgency::Low)),
            ("~critical db down~ fixed", None),
            ("high: ~critical~", Some(Urgency::High)),
            ("~50% errors, critical", Some(Urgency::Critical)),
            ("a~critical~b", Some(Urgency::Critical)),
            ("~ critical ~", Some(Urgency::Critical)),
            ("~critical\n~ low", Some(Urgency::Critical)),
            ("~~critical~~", None),
            ("~a ~b ~c ~critical", Some(Urgency::Critical)),
            ("~a\n~critical~ low", Some(Urgency::Low)),
            // Markup at a stretch's edge or inside it is struck with it.
            ("~critical <@U1>~ low", Some(Urgency::Low)),
            ("~<@U1> critical~ low", Some(Urgency::Low)),
            (
                "~<https://x.example|critical>~ never mind, low",
                Some(Urgency::Low),
            ),
            (
                "low, ~see <https://x.example|critical incident>~",
                Some(Urgency::Low),
            ),
            ("<@U1>~critical~ low", Some(Urgency::Low)),
            // A `~` inside a link's label pairs with none outside it.
            (
                "<https://x.example|~wip> critical, <https://y.example|b~>",
                Some(Urgency::Critical),
            ),
            ("<https://x.example|~critical~> low", Some(Urgency::Low)),
            (
                "~a critical <https://x.example|b~> low",
                Some(Urgency::Critical),
            ),
            // Code shows a `~` as typed: it strikes nothing, inside or out.
            ("`~critical~` low", Some(Urgency::Critical)),
            ("```\nrm ~critical~\n``` low", Some(Urgency::Critical)),
            ("~a `b~` critical~ low", Some(Urgency::Low)),
            ("~critical `code` db~ low", Some(Urgency::Low)),
            ("`unclosed ~critical~ low", Some(Urgency::Low)),
            ("`a\n~critical~` low", Some(Urgency::Low)),
            // A `~` inside a link's address strikes nothing.
            (
                "<https://x.example/~a|a> critical <https://x.example/b~|b>",
                Some(Urgency::Critical),
            ),
        ] {
            assert_eq!(named_in(text), named, "{text}");
        }
    }

    /// A quadratic scan would take hours on these in a debug build.
    #[test]
    fn long_lines_of_tildes_are_read_in_one_pass() {
        let backticks = format!("~{} critical", "`a\n".repeat(100_000));
        assert_eq!(named_in(&backticks), Some(Urgency::Critical));
        let unclosed = format!("{} critical", "~a ".repeat(100_000));
        assert_eq!(named_in(&unclosed), Some(Urgency::Critical));
        let struck = format!("{} high", "~critical~ ".repeat(50_000));
        assert_eq!(named_in(&struck), Some(Urgency::High));
    }

    #[test]
    fn a_word_against_text_written_without_spaces_still_counts() {
        for (text, named) in [
            ("決済APIがcriticalです", Urgency::Critical),
            ("【緊急】DBがhighです", Urgency::High),
            ("カード決済low", Urgency::Low),
            ("결제 API가 critical이에요", Urgency::Critical),
            ("ระบบชำระเงินcritical", Urgency::Critical),
        ] {
            assert_eq!(named_in(text), Some(named), "{text}");
        }
        assert_eq!(named_in("DBがhighlightです"), None);
    }

    #[test]
    fn slack_markup_names_no_urgency_but_a_link_label_does() {
        for text in [
            "<!subteam^S123|@critical-oncall> please look",
            "see <https://grafana.example.com/d/high-cpu|dashboard>",
            "see <https://grafana.example.com/d/high-cpu>",
            "moved to <#C123|high-priority>",
            "<@U0CRITICAL> db down",
            "<!here|here> db down",
        ] {
            assert_eq!(named_in(text), None, "{text}");
        }
        assert_eq!(
            named_in("<@U1> see <https://x.example/low|critical status>"),
            Some(Urgency::Critical)
        );
        assert_eq!(named_in("<@U1> high: db down"), Some(Urgency::High));
        assert_eq!(
            named_in("critical<https://x.example|dash>"),
            Some(Urgency::Critical)
        );
        assert_eq!(
            named_in("<https://x.example|dash>high"),
            Some(Urgency::High)
        );
        // An unclosed `<` is text, as are escaped brackets.
        assert_eq!(named_in("a < b, high"), Some(Urgency::High));
        assert_eq!(named_in("&lt;low&gt;"), Some(Urgency::Low));
    }

    #[test]
    fn italics_name_an_urgency_and_identifiers_do_not() {
        for (text, want) in [
            ("_critical_ checkout down", Some(Urgency::Critical)),
            ("*_critical_* checkout down", Some(Urgency::Critical)),
            ("db down, _HIGH_ priority", Some(Urgency::High)),
            ("__low__", Some(Urgency::Low)),
            ("_low", Some(Urgency::Low)),
            ("see critical_path_service", None),
            ("_critical_path_ slow", None),
            ("high_cpu alarm", None),
            ("DBが_critical_です", Some(Urgency::Critical)),
            ("<@U1>_high_", Some(Urgency::High)),
        ] {
            assert_eq!(named_in(text), want, "{text}");
        }
    }

    #[test]
    fn a_link_labelled_with_its_own_address_names_no_urgency() {
        for text in [
            "see <http://example.com/critical|example.com/critical>",
            "see <https://example.com/critical|https://example.com/critical>",
            "mail <mailto:high@x.example|high@x.example>",
        ] {
            assert_eq!(named_in(text), None, "{text}");
        }
        assert_eq!(
            named_in("<https://x.example/critical|the critical runbook>"),
            Some(Urgency::Critical)
        );
    }

    #[test]
    fn the_highest_named_urgency_wins() {
        assert_eq!(
            named_in("low? no, critical. maybe high"),
            Some(Urgency::Critical)
        );
        assert_eq!(named_in("low then medium"), Some(Urgency::Medium));
    }

    #[test]
    fn default_applies_when_none_is_named() {
        assert_eq!(
            read("db is down", Urgency::High),
            (Urgency::High, UrgencySource::Default)
        );
        assert_eq!(
            read("db is down, low", Urgency::High),
            (Urgency::Low, UrgencySource::Message)
        );
    }

    #[test]
    fn parsing_is_case_insensitive_and_rejects_others() {
        assert_eq!(" CRITICAL ".parse::<Urgency>().unwrap(), Urgency::Critical);
        assert!("urgent".parse::<Urgency>().is_err());
        for u in Urgency::ALL {
            assert_eq!(Urgency::from_code(u.code()), Some(u));
        }
    }
}
