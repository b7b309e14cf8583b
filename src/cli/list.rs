//! `klaxon alerts list`: filters, paging and `--all`.

use std::collections::HashSet;

use clap::Args;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::alerts::AlertShape;
use super::client::{Client, Failure};
use super::print;
use super::table;
use crate::alert::{now_ms, rfc3339_ms, Alert};

/// The largest page the server gives; `--all` asks for pages this big.
const MAX_PAGE: u16 = 1000;

/// How many alerts `list` shows without `--limit`: a screenful.
const DEFAULT_LIMIT: u16 = 20;

/// Filters and paging of `klaxon alerts list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only alerts in these statuses (comma-separated)
    #[arg(long, value_name = "STATUS", value_delimiter = ',', ignore_case = true,
          value_parser = ["open", "acknowledged", "resolved"])]
    pub status: Vec<String>,
    /// Only alerts of these urgencies (comma-separated)
    #[arg(long, value_name = "URGENCY", value_delimiter = ',', ignore_case = true,
          value_parser = ["low", "medium", "high", "critical"])]
    pub urgency: Vec<String>,
    /// Only alerts from this Slack channel id (such as C024BE91L)
    #[arg(long, value_name = "CHANNEL_ID")]
    pub channel: Option<String>,
    /// Only alerts created at or after TIME: RFC 3339 (2026-11-23T09:30:00Z) or an age (30m, 12h, 7d)
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub since: Option<String>,
    /// Only alerts created at or before TIME (same forms as --since)
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub until: Option<String>,
    /// How many alerts to list, 1 to 1000 [default: 20]; with --all, alerts per request [default: 1000]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_PAGE)))]
    pub limit: Option<u16>,
    /// List every matching alert, following the server's pages to the end
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
    /// Start after this cursor (the `next_cursor` of an earlier --json page)
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// `--since`/`--until`: RFC 3339 as given, or an age (`90s`, `30m`, `12h`, `7d`, `2w`) back from now.
fn time_arg(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if OffsetDateTime::parse(raw, &Rfc3339).is_ok() {
        return Ok(raw.to_owned());
    }
    let units = [
        ('s', 1),
        ('m', 60),
        ('h', 3_600),
        ('d', 86_400),
        ('w', 604_800),
    ];
    for (suffix, seconds) in units {
        if let Some(n) = raw.strip_suffix(suffix).and_then(|n| n.parse::<u64>().ok()) {
            let back_ms = n.saturating_mul(seconds).saturating_mul(1000);
            return Ok(rfc3339_ms(now_ms().saturating_sub(back_ms)));
        }
    }
    Err(
        "expected an RFC 3339 time such as 2026-11-23T09:30:00Z, or an age such as 30m, 12h or 7d"
            .into(),
    )
}

/// One page of `GET /api/v1/alerts`: alerts as [`Alert`]s for a table, or as the server's raw
/// JSON for `--json`, so that fields this client does not know are kept.
#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct Page<T> {
    alerts: Vec<T>,
    next_cursor: Option<String>,
}

/// Every page of `GET /api/v1/alerts` as one, for `list --all --json`.
#[derive(Serialize)]
struct AllPages<'a> {
    alerts: &'a [Box<RawValue>],
    next_cursor: Option<String>,
}

impl ListArgs {
    /// The listing's path and query string, percent-encoded.
    fn path(&self, limit: u16, cursor: Option<&str>) -> String {
        let mut query: Vec<(&str, String)> = Vec::new();
        if !self.status.is_empty() {
            query.push(("status", self.status.join(",").to_ascii_lowercase()));
        }
        if !self.urgency.is_empty() {
            query.push(("urgency", self.urgency.join(",").to_ascii_lowercase()));
        }
        let optional = [
            ("channel", &self.channel),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        query.push(("limit", limit.to_string()));
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let query = serde_urlencoded::to_string(&query).expect("string pairs always encode");
        format!("/api/v1/alerts?{query}")
    }
}

/// Prints one page (a table, or the server's JSON), or with `--all` every page as one.
pub(super) fn list(client: &Client, args: &ListArgs, json: bool) -> Result<(), Failure> {
    if !args.all {
        let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
        let answer = client.get(&args.path(limit, args.cursor.as_deref()))?;
        if json {
            // Checked to be a page, then printed as sent.
            answer.parse::<Page<AlertShape>>()?;
            print(&format!("{}\n", answer.body.trim_end()));
            return Ok(());
        }
        let page: Page<Alert> = answer.parse()?;
        print(&table::alerts(&page.alerts));
        if page.next_cursor.is_some() {
            eprintln!(
                "(more alerts match: --all lists every one, --limit N up to 1000 lists more)"
            );
        }
        return Ok(());
    }
    if json {
        let all = AllPages {
            alerts: &every_page(client, args)?,
            next_cursor: None,
        };
        let body = serde_json::to_string(&all).map_err(|e| Failure::BadAnswer(e.to_string()))?;
        print(&format!("{body}\n"));
    } else {
        print(&table::alerts(&every_page::<Alert>(client, args)?));
    }
    Ok(())
}

/// The alerts of every page, following `next_cursor` to the last.
fn every_page<T: DeserializeOwned>(client: &Client, args: &ListArgs) -> Result<Vec<T>, Failure> {
    let mut alerts = Vec::new();
    let mut cursor: Option<String> = None;
    // A server (or a proxy) that sends a cursor again would loop for ever.
    let mut seen = HashSet::new();
    loop {
        let path = args.path(args.limit.unwrap_or(MAX_PAGE), cursor.as_deref());
        let page: Page<T> = client.get(&path)?.parse()?;
        alerts.extend(page.alerts);
        match page.next_cursor {
            None => return Ok(alerts),
            Some(next) if !seen.insert(next.clone()) => {
                // The server's text, made safe for a terminal and kept short.
                let shown: String = table::clean(&next).chars().take(40).collect();
                return Err(Failure::BadAnswer(format!(
                    "the server gave the cursor {shown} twice"
                )));
            }
            Some(next) => cursor = Some(next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert_eq!(
            time_arg("2026-11-23T09:30:00Z").unwrap(),
            "2026-11-23T09:30:00Z"
        );
        let an_hour_ago = time_arg("1h").unwrap();
        assert!(OffsetDateTime::parse(&an_hour_ago, &Rfc3339).is_ok());
        assert!(an_hour_ago < rfc3339_ms(now_ms()));
        for bad in ["yesterday", "12", "h", "-1h", "1é", "2026-11-23"] {
            assert!(time_arg(bad).is_err(), "{bad}");
        }
    }
}
