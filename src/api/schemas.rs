//! Schemas of the answers that handlers build by hand (from stored bytes or
//! `json!`), for the OpenAPI document only. The integration tests validate
//! real answers against them, so they cannot drift from what is served.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::alert::{Alert, AlertId, Status};
use crate::slack::events::Event;

/// The conditional-request header of the pollable routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatch {
    /// An `ETag` from an earlier answer: 304 while it is still current.
    #[param(rename = "If-None-Match", value_type = String, required = false)]
    pub if_none_match: Option<String>,
}

/// A page of `GET /api/v1/alerts`, newest first.
#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
    /// Opaque cursor of the next page; null on the last page.
    #[schema(required = true, examples("01jd3k5m8q000"))]
    pub next_cursor: Option<String>,
}

/// An answer of `GET /api/v1/changes`: alerts changed after `after`, oldest change first.
#[derive(Serialize, ToSchema)]
pub struct ChangeFeed {
    pub alerts: Vec<Alert>,
    /// What to send as `after` next time.
    pub next_after: u64,
}

/// Alert counts by status.
#[derive(Serialize, ToSchema)]
pub struct StatusCounts {
    pub open: u64,
    pub acknowledged: u64,
    pub resolved: u64,
}

/// Alert counts by urgency.
#[derive(Serialize, ToSchema)]
pub struct UrgencyCounts {
    pub low: u64,
    pub medium: u64,
    pub high: u64,
    pub critical: u64,
}

/// Alert counts by urgency, for each status.
#[derive(Serialize, ToSchema)]
pub struct StatusUrgencyCounts {
    pub open: UrgencyCounts,
    pub acknowledged: UrgencyCounts,
    pub resolved: UrgencyCounts,
}

/// The answer of `GET /api/v1/alerts/summary`: counts for dashboard tiles.
#[derive(Serialize, ToSchema)]
pub struct Summary {
    pub total: u64,
    pub by_status: StatusCounts,
    pub by_urgency: UrgencyCounts,
    pub by_status_and_urgency: StatusUrgencyCounts,
}

/// The answer of the health probes.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    #[schema(examples("ok", "ready"))]
    pub status: String,
}

/// The answer to an outgoing webhook: Slack posts `text` in the channel.
#[derive(Serialize, ToSchema)]
pub struct OutgoingReply {
    #[schema(examples("klaxon: opened alert 01jd3k5m8q000 (high urgency): check servers high"))]
    pub text: String,
}

/// The answer to `url_verification`.
#[derive(Serialize, ToSchema)]
pub struct Challenge {
    pub challenge: String,
}

/// The answer to any other verified event.
#[derive(Serialize, ToSchema)]
pub struct EventAck {
    /// Always true: the event was taken (even when ignored).
    pub ok: bool,
    /// The alert created, found again, or acted on.
    #[schema(value_type = AlertId, required = false)]
    pub alert_id: Option<AlertId>,
    /// Present (true) when the event or message was seen before.
    #[schema(value_type = bool, required = false)]
    pub duplicate: Option<bool>,
    /// Why nothing was done.
    #[schema(value_type = String, required = false, examples("message subtype"))]
    pub ignored: Option<String>,
    /// The alert's status after a thread reply acted on it.
    #[schema(value_type = Status, required = false)]
    pub status: Option<Status>,
    /// Present (true) when a thread reply came before its thread's first
    /// message: it acts once that message is an alert (within 10 minutes).
    #[schema(value_type = bool, required = false)]
    pub held: Option<bool>,
}

/// What `POST /slack/events` answers.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum EventAnswer {
    Challenge(Challenge),
    Ack(EventAck),
}

/// The Events API envelope; only the fields klaxon reads. Other fields are ignored.
#[derive(ToSchema)]
pub struct EventEnvelope {
    /// `url_verification`, `event_callback`, `app_rate_limited`, or another (ignored).
    #[schema(rename = "type", examples("event_callback"))]
    pub kind: String,
    /// With `url_verification`.
    #[schema(value_type = String, required = false)]
    pub challenge: Option<String>,
    #[schema(value_type = String, required = false)]
    pub team_id: Option<String>,
    #[schema(value_type = String, required = false)]
    pub event_id: Option<String>,
    /// With `event_callback`: `message` or `app_mention` events make alerts.
    #[schema(value_type = Event, required = false)]
    pub event: Option<Event>,
}
