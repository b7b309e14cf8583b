//! Query parameters of the listing and the change feed, parsed into store queries.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::IntoParams;

use crate::alert::{AlertId, Status};
use crate::error::ApiError;
use crate::store::ListQuery;
use crate::urgency::Urgency;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// `GET /api/v1/alerts` parameters as sent. Unknown parameters are ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only these statuses (comma-separated, any case).
    #[param(value_type = Option<Vec<Status>>, style = Form, explode = false)]
    pub status: Option<String>,
    /// Only these urgencies (comma-separated, any case).
    #[param(value_type = Option<Vec<Urgency>>, style = Form, explode = false)]
    pub urgency: Option<String>,
    /// Only alerts created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only alerts created at or before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Only alerts from this Slack channel id.
    pub channel: Option<String>,
    /// Page size.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn into_query(self) -> Result<ListQuery, ApiError> {
        Ok(ListQuery {
            statuses: comma_list(
                self.status.as_deref(),
                "status",
                &Status::ALL.map(Status::as_str),
            )?,
            urgencies: comma_list(
                self.urgency.as_deref(),
                "urgency",
                &Urgency::ALL.map(Urgency::as_str),
            )?,
            channel: self.channel.filter(|c| !c.is_empty()),
            // Alerts carry whole milliseconds: a bound between two takes the
            // later one for `since` and the earlier one for `until`.
            since_ms: given(self.since.as_deref())
                .map(|t| unix_nanos(t, "since").map(|n| unix_ms(n + 999_999)))
                .transpose()?,
            until_ms: given(self.until.as_deref())
                .map(|t| unix_nanos(t, "until").map(unix_ms))
                .transpose()?,
            // Not `given`: a client that sent back a null cursor as empty
            // would start over at the first page, for ever.
            before: self.cursor.as_deref().map(decode_cursor).transpose()?,
            limit: limit(self.limit.as_deref(), DEFAULT_LIMIT)?,
        })
    }
}

/// `GET /api/v1/changes` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangeParams {
    /// The `next_after` of the previous answer; 0 for everything.
    #[param(value_type = Option<u64>, default = 0)]
    pub after: Option<String>,
    /// Most alerts in one answer.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

impl ChangeParams {
    pub fn parse(self) -> Result<(u64, usize), ApiError> {
        let after = match self.after.as_deref() {
            None | Some("") => 0,
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid("after must be a change sequence number"))?,
        };
        Ok((after, limit(self.limit.as_deref(), 100)?))
    }
}

/// The cursor is the id of the last alert of the previous page: opaque to
/// clients, stable across restarts, and unaffected by alerts created since.
pub fn encode_cursor(id: AlertId) -> String {
    id.to_string()
}

fn decode_cursor(raw: &str) -> Result<AlertId, ApiError> {
    raw.parse()
        .map_err(|_| invalid("cursor is not one this server gave out"))
}

/// A parameter sent empty (`since=`, as a form with nothing filled in
/// sends it) is one not sent, as `status=` or `channel=` are.
fn given(raw: Option<&str>) -> Option<&str> {
    raw.filter(|v| !v.is_empty())
}

fn limit(raw: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let Some(raw) = given(raw) else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(invalid(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// A comma-separated list of `known` words, each once (`open,OPEN` is
/// `open`: the listing reads one index per word, and a word twice showed
/// every alert twice). The error names the words known, not the one sent
/// (the client has it; a log or a proxy need not).
fn comma_list<T: std::str::FromStr + PartialEq>(
    raw: Option<&str>,
    name: &str,
    known: &[&str],
) -> Result<Vec<T>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    for word in raw.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let item = word.parse().map_err(|_| {
            invalid(format!(
                "{name} must be one or more of {}, separated by commas",
                known.join(", ")
            ))
        })?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(items)
}

fn unix_nanos(raw: &str, name: &str) -> Result<i128, ApiError> {
    let at = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        invalid(format!(
            "{name} must be an RFC 3339 time such as 2026-11-23T09:30:00Z"
        ))
    })?;
    Ok(at.unix_timestamp_nanos())
}

/// Whole milliseconds since the epoch, rounded down; 0 before it.
fn unix_ms(nanos: i128) -> u64 {
    u64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(0)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_list_everything_fifty_at_a_time() {
        let q = ListParams::default().into_query().unwrap();
        assert_eq!(
            q,
            ListQuery {
                limit: 50,
                ..ListQuery::default()
            }
        );
    }

    #[test]
    fn filters_parse() {
        let q = ListParams {
            status: Some("open,acknowledged".into()),
            urgency: Some("HIGH, critical".into()),
            since: Some("2026-11-23T10:00:00+01:00".into()),
            until: Some("2026-11-23T09:00:00.5Z".into()),
            limit: Some("1000".into()),
            ..ListParams::default()
        }
        .into_query()
        .unwrap();
        assert_eq!(q.statuses, [Status::Open, Status::Acknowledged]);
        assert_eq!(q.urgencies, [Urgency::High, Urgency::Critical]);
        assert_eq!(q.since_ms, Some(1_795_424_400_000));
        assert_eq!(q.until_ms, Some(1_795_424_400_500));
        assert_eq!(q.limit, 1000);
    }

    #[test]
    fn a_bound_between_two_milliseconds_leaves_out_what_is_outside_it() {
        let bounds = |since: &str, until: &str| {
            let q = ListParams {
                since: Some(since.into()),
                until: Some(until.into()),
                ..ListParams::default()
            }
            .into_query()
            .unwrap();
            (q.since_ms.unwrap() % 1000, q.until_ms.unwrap() % 1000)
        };
        // An alert at .316 is after neither .3161 nor .316000001, and before .3169.
        assert_eq!(
            bounds("2026-11-23T09:00:14.3161Z", "2026-11-23T09:00:14.3169Z"),
            (317, 316)
        );
        assert_eq!(
            bounds("2026-11-23T09:00:14.316000001Z", "2026-11-23T09:00:14.316Z"),
            (317, 316)
        );
        assert_eq!(
            bounds("2026-11-23T09:00:14.316Z", "2026-11-23T09:00:14.3159999Z"),
            (316, 315)
        );
    }

    #[test]
    fn an_empty_value_is_none_sent_but_an_empty_cursor_is_refused() {
        let empty = || Some(String::new());
        let q = ListParams {
            status: empty(),
            urgency: empty(),
            channel: empty(),
            since: empty(),
            until: empty(),
            limit: empty(),
            ..ListParams::default()
        }
        .into_query()
        .unwrap();
        assert_eq!(q, ListParams::default().into_query().unwrap());
        let cursor = ListParams {
            cursor: empty(),
            ..ListParams::default()
        };
        assert!(cursor.into_query().is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = [
            ListParams {
                status: Some("closed".into()),
                ..ListParams::default()
            },
            ListParams {
                urgency: Some("urgent".into()),
                ..ListParams::default()
            },
            ListParams {
                since: Some("yesterday".into()),
                ..ListParams::default()
            },
            ListParams {
                limit: Some("0".into()),
                ..ListParams::default()
            },
            ListParams {
                limit: Some("1001".into()),
                ..ListParams::default()
            },
            ListParams {
                limit: Some("-1".into()),
                ..ListParams::default()
            },
            ListParams {
                cursor: Some("not-a-cursor".into()),
                ..ListParams::default()
            },
        ];
        for params in bad {
            assert!(params.into_query().is_err());
        }
    }

    #[test]
    fn cursors_round_trip() {
        let id = AlertId::from_u64(123_456_789);
        let q = ListParams {
            cursor: Some(encode_cursor(id)),
            ..ListParams::default()
        }
        .into_query()
        .unwrap();
        assert_eq!(q.before, Some(id));
    }
}
