//! Rendering for people: an aligned alert table, one alert in full, summary counts.
//!
//! Alert text comes from Slack, so every string from the server passes through
//! [`clean`] first: a message cannot move the cursor, recolour or rewrite the
//! terminal of the person reading it.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::alert::{Alert, Source, Status};
use crate::slack::markup;
use crate::urgency::{Urgency, UrgencySource};

/// Widest TITLE cell, in terminal columns.
pub const TITLE_WIDTH: usize = 60;
/// Widest CHANNEL cell, in terminal columns (Slack's names are at most 80 characters).
const CHANNEL_WIDTH: usize = 24;

/// `text` safe for one terminal line: whitespace controls and line or
/// paragraph separators become spaces, other control and
/// bidirectional-override characters become U+FFFD.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}' => ' ',
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                '\u{fffd}'
            }
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// Slack text as Slack shows it (`R&amp;D` as `R&D`, `<#C1|ops>` as
/// `#ops`, a link as its label), made [`clean`].
fn readable(text: &str) -> String {
    clean(&markup::plain(text))
}

/// Terminal columns `text` takes: a CJK character or an emoji takes two,
/// an emoji of several code points (`⚠️`, a family joined by ZWJ) too.
fn columns_of(text: &str) -> usize {
    text.graphemes(true).map(UnicodeWidthStr::width).sum()
}

/// `text` cut to at most `width` terminal columns, between the characters
/// a reader sees (an emoji sequence or an accent stays whole), ending in
/// `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if columns_of(text) <= width {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for g in text.graphemes(true) {
        let w = g.width();
        if used + w > width.saturating_sub(1) {
            break;
        }
        used += w;
        cut.push_str(g);
    }
    cut.push('…');
    cut
}

/// `2026-11-23T09:41:07.123Z` as `2026-11-23 09:41Z`; anything else as sent.
fn minutes(rfc3339: &str) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) if rfc3339.ends_with('Z') => format!("{day} {time}Z"),
        _ => clean(rfc3339),
    }
}

fn channel(alert: &Alert) -> String {
    let name = match &alert.slack.channel_name {
        Some(name) => clean(&format!("#{name}")),
        None => clean(&alert.slack.channel_id),
    };
    truncate(&name, CHANNEL_WIDTH)
}

/// Rows as aligned columns, two spaces apart; `right` columns align right.
fn columns(rows: &[Vec<String>], right: &[usize]) -> String {
    let count = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..count)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| columns_of(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - columns_of(cell));
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The listing table: ID, CREATED, STATUS, URGENCY, CHANNEL, TITLE.
pub fn alerts(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alerts match\n".to_owned();
    }
    let header = ["ID", "CREATED", "STATUS", "URGENCY", "CHANNEL", "TITLE"];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    rows.extend(alerts.iter().map(|a| {
        vec![
            a.id.to_string(),
            minutes(&a.created_at),
            a.status.as_str().to_owned(),
            a.urgency.as_str().to_owned(),
            channel(a),
            truncate(&readable(&a.title), TITLE_WIDTH),
        ]
    }));
    columns(&rows, &[])
}

/// One line saying where an alert stands after a change.
pub fn changed(alert: &Alert) -> String {
    let by = match alert.status {
        Status::Acknowledged => alert.acknowledged_by.as_deref(),
        Status::Resolved => alert.resolved_by.as_deref(),
        Status::Open => None,
    };
    let by = by.map(|b| format!(" by {}", clean(b))).unwrap_or_default();
    format!(
        "alert {} is {}{by} ({}): {}\n",
        alert.id,
        alert.status.as_str(),
        alert.urgency,
        truncate(&readable(&alert.title), TITLE_WIDTH)
    )
}

fn when_by(at: Option<&str>, by: Option<&str>) -> String {
    match (at, by) {
        (None, _) => "-".to_owned(),
        (Some(at), None) => clean(at),
        (Some(at), Some(by)) => format!("{} by {}", clean(at), clean(by)),
    }
}

fn name_and_id(name: Option<&str>, id: Option<&str>) -> String {
    match (name, id) {
        (Some(name), Some(id)) => format!("{} ({})", clean(name), clean(id)),
        (Some(one), None) | (None, Some(one)) => clean(one),
        (None, None) => "-".to_owned(),
    }
}

/// Every field of one alert, its whole text and its notes.
pub fn details(a: &Alert) -> String {
    let s = &a.slack;
    let urgency_source = match a.urgency_source {
        UrgencySource::Message => "named in the message",
        UrgencySource::Default => "the default: the message named none",
    };
    let source = match a.source {
        Source::EventsApi => "Events API",
        Source::OutgoingWebhook => "outgoing webhook",
    };
    let opt = |v: &Option<String>| v.as_deref().map(clean).unwrap_or_default();
    let team = name_and_id(s.team_domain.as_deref(), s.team_id.as_deref());
    let extras = [
        ("team", team),
        ("thread", opt(&s.thread_ts)),
        ("trigger word", opt(&s.trigger_word)),
        ("event", opt(&s.event_id)),
    ];
    let mut slack = vec![format!("{source}, ts {}", clean(&s.ts))];
    for (label, value) in extras {
        if !value.is_empty() && value != "-" {
            slack.push(format!("{label} {value}"));
        }
    }
    let fields = [
        ("alert", a.id.to_string()),
        ("title", readable(&a.title)),
        ("status", a.status.as_str().to_owned()),
        ("urgency", format!("{} ({urgency_source})", a.urgency)),
        ("created", clean(&a.created_at)),
        (
            "acknowledged",
            when_by(a.acknowledged_at.as_deref(), a.acknowledged_by.as_deref()),
        ),
        (
            "resolved",
            when_by(a.resolved_at.as_deref(), a.resolved_by.as_deref()),
        ),
        (
            "channel",
            name_and_id(
                s.channel_name.as_ref().map(|n| format!("#{n}")).as_deref(),
                Some(&s.channel_id),
            ),
        ),
        (
            "from",
            name_and_id(s.user_name.as_deref(), s.user_id.as_deref()),
        ),
        ("slack", slack.join(", ")),
        ("seq", a.seq.to_string()),
    ];
    let rows: Vec<Vec<String>> = fields
        .into_iter()
        .map(|(k, v)| vec![format!("{k}:"), v])
        .collect();
    let mut out = columns(&rows, &[]);
    out.push_str("\ntext:\n");
    for line in a.text.lines() {
        out.push_str(&format!("  {}\n", readable(line)));
    }
    out.push_str(&format!("\nnotes: {}\n", a.notes.len()));
    for note in &a.notes {
        let by = note.user.as_deref().map_or_else(|| "-".to_owned(), clean);
        out.push_str(&format!("  {} {by}:\n", clean(&note.at)));
        // A Slack reply (it has a ts) is Slack markup; an API note is plain text.
        let show = if note.ts.is_some() { readable } else { clean };
        for line in note.text.lines() {
            out.push_str(&format!("    {}\n", show(line)));
        }
    }
    out
}

/// `GET /api/v1/alerts/summary`, the parts the table shows.
#[derive(Deserialize)]
pub struct Summary {
    pub total: u64,
    pub by_status_and_urgency: HashMap<String, HashMap<String, u64>>,
}

/// Counts by status (rows) and urgency (columns), with totals.
pub fn summary(summary: &Summary) -> String {
    let count = |s: Status, u: Urgency| {
        summary
            .by_status_and_urgency
            .get(s.as_str())
            .and_then(|row| row.get(u.as_str()))
            .copied()
            .unwrap_or(0)
    };
    let mut header = vec!["STATUS".to_owned()];
    header.extend(Urgency::ALL.map(|u| u.as_str().to_uppercase()));
    header.push("TOTAL".to_owned());
    let mut rows = vec![header];
    for s in Status::ALL {
        let mut row = vec![s.as_str().to_owned()];
        row.extend(Urgency::ALL.map(|u| count(s, u).to_string()));
        row.push(
            Urgency::ALL
                .map(|u| count(s, u))
                .iter()
                .sum::<u64>()
                .to_string(),
        );
        rows.push(row);
    }
    let mut totals = vec!["total".to_owned()];
    totals.extend(Urgency::ALL.map(|u| {
        Status::ALL
            .map(|s| count(s, u))
            .iter()
            .sum::<u64>()
            .to_string()
    }));
    totals.push(summary.total.to_string());
    rows.push(totals);
    columns(&rows, &[1, 2, 3, 4, 5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_reads_as_slack_shows_it_and_stays_clean() {
        assert_eq!(
            readable("R&amp;D <#C1|ops> &lt;x&gt;\u{1b}[2J"),
            "R&D #ops <x>\u{fffd}[2J"
        );
    }

    #[test]
    fn slack_notes_read_as_slack_shows_them_and_api_notes_as_typed() {
        let mut alert = crate::store::testing::alert(1, Urgency::High, Status::Open);
        let note = |text: &str, ts: Option<&str>| crate::alert::Note {
            user: None,
            text: text.into(),
            ts: ts.map(Into::into),
            at: "2026-11-24T00:00:00.000Z".into(),
        };
        alert.notes = vec![
            note("R&amp;D <#C1|ops>", Some("1700000001.000001")),
            note("if x < 3 && y > 2 page R&amp;D", None),
        ];
        let shown = details(&alert);
        assert!(shown.contains("    R&D #ops\n"), "{shown}");
        assert!(
            shown.contains("    if x < 3 && y > 2 page R&amp;D\n"),
            "{shown}"
        );
    }

    #[test]
    fn clean_defuses_terminal_control_sequences() {
        assert_eq!(clean("a\tb\nc"), "a b c");
        assert_eq!(clean("\u{1b}[2J\u{7}x"), "\u{fffd}[2J\u{fffd}x");
        assert_eq!(clean("ab\u{202e}cd"), "ab\u{fffd}cd");
        assert_eq!(clean("é ok"), "é ok");
    }

    #[test]
    fn truncate_cuts_on_character_boundaries() {
        assert_eq!(truncate("short", 60), "short");
        let long = "é".repeat(100);
        let cut = truncate(&long, TITLE_WIDTH);
        assert_eq!(cut.chars().count(), TITLE_WIDTH);
        assert!(cut.ends_with('…'));
        // Wide characters take two columns each.
        let cut = truncate(&"障害".repeat(40), TITLE_WIDTH);
        assert_eq!(columns_of(&cut), TITLE_WIDTH - 1);
        assert_eq!(cut.chars().count(), 30);
        // An emoji of several code points is one thing to cut around.
        let family = "\u{1f469}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        let cut = truncate(&format!("a{family}"), 2);
        assert_eq!(cut, "a…", "the family is not cut in half");
        assert_eq!(columns_of(family), 2);
        assert_eq!(columns_of("\u{26a0}\u{fe0f}"), 2, "⚠️ takes two columns");
    }

    #[test]
    fn wide_cells_align_by_terminal_columns() {
        let rows = vec![
            vec!["障害".into(), "x".into()],
            vec!["abcd".into(), "y".into()],
        ];
        assert_eq!(columns(&rows, &[]), "障害  x\nabcd  y\n");
        assert_eq!(clean("a\u{2028}b"), "a b");
    }

    #[test]
    fn columns_align_and_times_trim_to_minutes() {
        let rows = vec![
            vec!["A".into(), "1".into()],
            vec!["long".into(), "100".into()],
        ];
        assert_eq!(columns(&rows, &[1]), "A       1\nlong  100\n");
        assert_eq!(minutes("2026-11-23T09:41:07.123Z"), "2026-11-23 09:41Z");
        assert_eq!(minutes("odd"), "odd");
    }
}
