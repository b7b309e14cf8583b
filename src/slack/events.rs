//! `POST /slack/events`: Events API callbacks. The signature is checked
//! before anything is parsed; then the envelope becomes a [`Decision`].

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::signature::SignedBody;
use super::{apply_reply, given, in_thread, InThread, SlackSettings};
use crate::alert::{title_of, NewAlert, SlackRef, Source};
use crate::api::responses::{
    BadRequest, BadSignature, ForbiddenNetwork, HeadersTooLarge, PayloadTooLarge, RateLimited,
    RequestTimeout, Unavailable, UnsupportedMediaType,
};
use crate::api::schemas::{EventAnswer, EventEnvelope};
use crate::body::require_content_type;
use crate::error::ApiError;
use crate::metrics;
use crate::store::{Action, Inserted, ReplyOutcome, Store, ThreadReply};
use crate::telemetry::with_outcome;
use crate::urgency::{self, Urgency};

/// The `source` label of this surface's metrics.
const SOURCE: &str = "events_api";

/// The outer JSON Slack posts.
#[derive(Debug)]
pub enum Envelope {
    UrlVerification {
        challenge: String,
    },
    EventCallback(Box<Callback>),
    AppRateLimited {
        team_id: Option<String>,
        minute_rate_limited: Option<u64>,
    },
    /// An event callback of a type klaxon does not handle.
    OtherEvent,
    Other,
}

#[derive(Debug)]
pub struct Callback {
    pub team_id: Option<String>,
    pub event_id: Option<String>,
    /// The app's own users (`authorizations` with `is_bot`): a leading
    /// mention of one of them is addressed to klaxon.
    pub app_users: Vec<String>,
    pub event: Event,
}

/// The inner event; only the fields klaxon uses.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: Option<String>,
    pub bot_id: Option<String>,
    pub text: Option<String>,
    pub user: Option<String>,
    pub team: Option<String>,
    pub channel: Option<String>,
    pub ts: Option<String>,
    pub thread_ts: Option<String>,
    /// Read only for a message with no text of its own: a post shared
    /// without a comment has only its attachment's text.
    #[schema(value_type = Option<Vec<Object>>)]
    pub attachments: Option<Box<serde_json::value::RawValue>>,
}

/// An attachment; only what klaxon uses.
#[derive(Deserialize)]
struct Attachment {
    text: Option<String>,
    fallback: Option<String>,
}

/// The text of the first attachment that has one (else its fallback): a
/// message shared or forwarded without a comment has only that. Any shape
/// not expected is no text.
fn attachment_text(attachments: Option<&serde_json::value::RawValue>) -> Option<String> {
    let attachments: Vec<Attachment> = serde_json::from_str(attachments?.get()).ok()?;
    attachments
        .into_iter()
        .flat_map(|a| [a.text, a.fallback])
        .flatten()
        .find(|t| !t.trim().is_empty())
}

/// What to do with a verified envelope.
#[derive(Debug)]
pub enum Decision {
    Challenge(String),
    RateLimited {
        team: Option<String>,
        minute: Option<u64>,
    },
    Alert(NewAlert),
    Reply(ThreadReply),
    Ignore(&'static str),
}

/// The envelope as it is on the wire: read flat, with the event left as
/// raw JSON until the type says it is wanted. (An internally tagged enum
/// made serde copy the whole body into an intermediate tree first: a
/// twentieth of klaxon's CPU under ingest.)
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    challenge: Option<String>,
    team_id: Option<String>,
    event_id: Option<String>,
    #[serde(borrow)]
    event: Option<&'a serde_json::value::RawValue>,
    minute_rate_limited: Option<u64>,
    /// Read only when it has the expected shape: it decides nothing else.
    #[serde(borrow)]
    authorizations: Option<&'a serde_json::value::RawValue>,
}

/// An installation the event is delivered for; only what klaxon uses.
#[derive(Deserialize)]
struct Authorization {
    user_id: Option<String>,
    is_bot: Option<bool>,
}

/// The bot users of `authorizations`, when it is a list of installations.
fn app_users(authorizations: Option<&serde_json::value::RawValue>) -> Vec<String> {
    let Some(raw) = authorizations else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<Authorization>>(raw.get())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.is_bot == Some(true))
        .filter_map(|a| a.user_id)
        .collect()
}

/// An event's type alone, for an event whose other fields do not parse.
#[derive(Deserialize)]
struct EventKind<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Event types that can make an alert or act on one.
fn handled(kind: &str) -> bool {
    kind == "message" || kind == "app_mention"
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let malformed = |e: serde_json::Error| ApiError::undecodable(e);
        let missing = |field: &str| ApiError::MalformedBody(format!("missing field `{field}`"));
        let wire: Wire = serde_json::from_slice(body).map_err(malformed)?;
        Ok(match &*wire.kind {
            "url_verification" => Self::UrlVerification {
                challenge: wire.challenge.ok_or_else(|| missing("challenge"))?,
            },
            "event_callback" => {
                let event = wire.event.ok_or_else(|| missing("event"))?;
                // Events klaxon does not handle have other shapes (`user`
                // is an object in team_join, `channel` in channel_created):
                // ignored, not refused, or Slack retries them and may turn
                // the subscription off. Looked at only when the full parse
                // fails, so a message costs one parse.
                let event: Event = match serde_json::from_str::<Event>(event.get()) {
                    Ok(event) if handled(&event.kind) => event,
                    Ok(_) => return Ok(Self::OtherEvent),
                    Err(e) => match serde_json::from_str::<EventKind>(event.get()) {
                        Ok(other) if !handled(&other.kind) => return Ok(Self::OtherEvent),
                        _ => return Err(ApiError::undecodable_in("event", e)),
                    },
                };
                let callback = Callback {
                    team_id: wire.team_id,
                    event_id: wire.event_id,
                    app_users: app_users(wire.authorizations),
                    event,
                };
                callback.check_ids()?;
                Self::EventCallback(Box::new(callback))
            }
            "app_rate_limited" => {
                super::check_ids([("team_id", wire.team_id.as_deref())])?;
                Self::AppRateLimited {
                    team_id: wire.team_id,
                    minute_rate_limited: wire.minute_rate_limited,
                }
            }
            _ => Self::Other,
        })
    }

    pub fn decide(self, default: Urgency) -> Decision {
        match self {
            Self::UrlVerification { challenge } => Decision::Challenge(challenge),
            Self::AppRateLimited {
                team_id,
                minute_rate_limited,
            } => Decision::RateLimited {
                team: team_id,
                minute: minute_rate_limited,
            },
            Self::EventCallback(callback) => callback.decide(default),
            Self::OtherEvent => Decision::Ignore("event type not handled"),
            Self::Other => Decision::Ignore("envelope type not handled"),
        }
    }
}

impl Callback {
    fn check_ids(&self) -> Result<(), ApiError> {
        let e = &self.event;
        super::check_ids([
            ("team_id", self.team_id.as_deref()),
            ("event_id", self.event_id.as_deref()),
            ("event.team", e.team.as_deref()),
            ("event.channel", e.channel.as_deref()),
            ("event.user", e.user.as_deref()),
            ("event.ts", e.ts.as_deref()),
            ("event.thread_ts", e.thread_ts.as_deref()),
        ])
    }

    fn decide(self, default: Urgency) -> Decision {
        let e = self.event;
        // A person's message with a file attached, or a thread reply also
        // sent to the channel, is still a person's message.
        if !matches!(
            e.subtype.as_deref(),
            None | Some("file_share" | "thread_broadcast")
        ) {
            return Decision::Ignore("message subtype");
        }
        // Slackbot's posts (reminders, auto-responses) carry no bot_id: on
        // both surfaces they page no one and act on no alert.
        if e.bot_id.is_some() || e.user.as_deref() == Some("USLACKBOT") {
            return Decision::Ignore("bot message");
        }
        let (Some(channel), Some(ts)) = (given(e.channel), given(e.ts)) else {
            return Decision::Ignore("event without channel or ts");
        };
        let team = given(self.team_id).or(given(e.team));
        let own_text = e.text.filter(|t| !t.trim().is_empty());
        // A command is the author's own words, never a shared post's.
        let may_command = own_text.is_some();
        let text = own_text
            .or_else(|| attachment_text(e.attachments.as_deref()))
            .unwrap_or_default();
        // What the author wrote to klaxon: without a leading `@klaxon`. An
        // app mention that names none of the app users it was delivered for
        // (Slack names one installation; a shared channel's other workspace
        // may have its own) leads with the app.
        let is_app = |user: &str| {
            self.app_users.iter().any(|u| u == user)
                || (e.kind == "app_mention" && !self.app_users.iter().any(|u| mentions(&text, u)))
        };
        let addressed = match leading_mention(&text) {
            (Some(user), rest) if is_app(user) => rest,
            _ => text.trim_start(),
        };
        let thread_ts = given(e.thread_ts);
        match in_thread(&ts, thread_ts.as_deref(), &text) {
            InThread::No => {}
            InThread::ReplyWithoutText => return Decision::Ignore("thread reply without text"),
            InThread::Reply(thread_ts) => {
                let command = reply_command(addressed).filter(|_| may_command);
                return Decision::Reply(ThreadReply {
                    channel,
                    thread_ts: thread_ts.to_owned(),
                    ts,
                    event_id: self.event_id,
                    user: e.user,
                    command,
                    // Copies that may have read this command as a note: the
                    // `message` copy of an app mention of the installation in
                    // a shared channel's other workspace (to it, someone
                    // else's mention), and the outgoing webhook's copy of
                    // `@klaxon ack` (it does not know the app's user).
                    missed: command
                        .filter(|_| e.kind == "app_mention" || reply_command(&text).is_none()),
                    text,
                });
            }
        }
        let (urgency, urgency_source) = urgency::read(&text, default);
        Decision::Alert(NewAlert {
            urgency,
            urgency_source,
            title: title_of(addressed, None),
            text,
            source: Source::EventsApi,
            slack: SlackRef {
                team_id: team,
                channel_id: channel,
                user_id: e.user,
                ts,
                thread_ts,
                event_id: self.event_id,
                ..SlackRef::default()
            },
        })
    }
}

/// `<@U123> ack` (or `<@U123>: ack`, `<@U123>, ack`) → (`U123`, `ack`);
/// text that does not start with a mention → (`None`, the text).
pub fn leading_mention(text: &str) -> (Option<&str>, &str) {
    let trimmed = text.trim_start();
    if let Some(rest) = trimmed.strip_prefix("<@") {
        if let Some(end) = rest.find('>') {
            let user = rest[..end].split('|').next().unwrap_or_default();
            let words = rest[end + 1..].trim_start();
            // `<@U1>: ack`, but not the colon of `<@U1> :fire: db down`.
            let words = match words.strip_prefix([':', ',']) {
                Some(after) if after.is_empty() || after.starts_with(char::is_whitespace) => {
                    after.trim_start()
                }
                _ => words,
            };
            return (Some(user), words);
        }
    }
    (None, trimmed)
}

/// Whether `text` mentions `user` (`<@U1>` or `<@U1|name>`).
fn mentions(text: &str, user: &str) -> bool {
    text.match_indices("<@").any(|(at, _)| {
        let rest = &text[at + 2..];
        rest.strip_prefix(user)
            .is_some_and(|after| after.starts_with(['>', '|']))
    })
}

/// A thread reply that is just `ack`, `acked`, `acknowledge`,
/// `acknowledged`, `resolve`, `resolved`, `reopen` or `reopened` (any case,
/// before a full stop) is a command. A leading mention of the app is taken
/// off before (see [`Callback`]); any other mention makes the reply a note:
/// `@bob resolve` asks Bob.
pub fn reply_command(text: &str) -> Option<Action> {
    let word = text.trim().trim_end_matches(['.', '!']).trim_end();
    match word.to_ascii_lowercase().as_str() {
        "ack" | "acked" | "acknowledge" | "acknowledged" => Some(Action::Acknowledge),
        "resolve" | "resolved" => Some(Action::Resolve),
        "reopen" | "reopened" => Some(Action::Reopen),
        _ => None,
    }
}

/// `POST /slack/events`
#[utoipa::path(
    post,
    path = "/slack/events",
    operation_id = "slack_events",
    tag = "slack",
    summary = "An Events API callback, signed by Slack",
    description = "The signature is checked before anything is parsed. A message or app \
        mention creates an alert; a thread reply acts on its alert; other events are ignored.",
    params(
        ("X-Slack-Signature" = String, Header,
            description = "`v0=` and the lowercase hex HMAC-SHA256 of `v0:{timestamp}:{body}`."),
        ("X-Slack-Request-Timestamp" = String, Header, example = "1531420618",
            description = "Unix seconds; must be within 300 s of now.")
    ),
    request_body(content = EventEnvelope, content_type = "application/json"),
    responses(
        (status = 200, description = "The challenge, or what was done.", body = EventAnswer),
        BadRequest, BadSignature, ForbiddenNetwork, RequestTimeout, PayloadTooLarge,
        UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn receive(
    signed: SignedBody,
    req: HttpRequest,
    slack: web::Data<SlackSettings>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    require_content_type(&req, "application/json")?;
    let decision = Envelope::parse(signed.bytes())?.decide(slack.default_urgency);
    let (body, outcome) = match decision {
        Decision::Challenge(challenge) => (
            json!({ "challenge": challenge }),
            "url verification".to_owned(),
        ),
        Decision::RateLimited { team, minute } => {
            tracing::warn!(
                team = team.as_deref().unwrap_or("-"),
                minute,
                "Slack is rate-limiting event delivery to klaxon"
            );
            metrics::event_ignored("app_rate_limited");
            (json!({ "ok": true }), "app rate limited".to_owned())
        }
        Decision::Ignore(why) => {
            metrics::event_ignored(why);
            (
                json!({ "ok": true, "ignored": why }),
                format!("ignored: {why}"),
            )
        }
        Decision::Alert(new) => match store.insert_if_new(new).await? {
            Inserted::Created(a) => {
                metrics::alert_created(SOURCE, a.urgency);
                (
                    json!({ "ok": true, "alert_id": a.id }),
                    format!("created alert {}", a.id),
                )
            }
            Inserted::Duplicate(a) => {
                metrics::duplicate_suppressed(SOURCE);
                (
                    json!({ "ok": true, "alert_id": a.id, "duplicate": true }),
                    format!("duplicate of alert {}", a.id),
                )
            }
        },
        Decision::Reply(reply) => {
            match apply_reply(&store, reply, true).await? {
                ReplyOutcome::Duplicate(id) => {
                    metrics::duplicate_suppressed(SOURCE);
                    (
                        json!({ "ok": true, "alert_id": id, "duplicate": true }),
                        format!("duplicate reply to alert {id}"),
                    )
                }
                ReplyOutcome::Applied(a) => (
                    json!({ "ok": true, "alert_id": a.id, "status": a.status }),
                    format!("thread reply applied to alert {}", a.id),
                ),
                // Holding, the store answers no NotAnAlert.
                ReplyOutcome::Held | ReplyOutcome::NotAnAlert => (
                    json!({ "ok": true, "held": true }),
                    "thread reply held until its thread's first message is an alert".to_owned(),
                ),
                ReplyOutcome::Refused(id, why) => {
                    metrics::event_ignored("thread reply refused");
                    (
                        json!({ "ok": true, "alert_id": id, "ignored": why }),
                        format!("thread reply to alert {id} refused: {why}"),
                    )
                }
            }
        }
    };
    Ok(with_outcome(HttpResponse::Ok().json(body), outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_commands_are_whole_replies() {
        assert_eq!(reply_command("ack"), Some(Action::Acknowledge));
        assert_eq!(reply_command(" Acknowledge. "), Some(Action::Acknowledge));
        assert_eq!(reply_command("RESOLVED!"), Some(Action::Resolve));
        for ack in ["Acknowledged.", "acked", "ACK!"] {
            assert_eq!(reply_command(ack), Some(Action::Acknowledge), "{ack}");
        }
        assert_eq!(reply_command("resolve"), Some(Action::Resolve));
        assert_eq!(reply_command("Reopen."), Some(Action::Reopen));
        assert_eq!(reply_command("reopened"), Some(Action::Reopen));
        assert_eq!(reply_command("ack, looking"), None);
        assert_eq!(reply_command("we should resolve this"), None);
        assert_eq!(reply_command("<@U0BOB> resolve"), None);
        assert_eq!(reply_command(""), None);
    }

    #[test]
    fn a_leading_mention_comes_apart_from_the_words() {
        assert_eq!(leading_mention(" <@U1> db down"), (Some("U1"), "db down"));
        assert_eq!(leading_mention("<@U1|ana>ack"), (Some("U1"), "ack"));
        assert_eq!(leading_mention("<@U1>: ack"), (Some("U1"), "ack"));
        assert_eq!(leading_mention("<@U1> , ack"), (Some("U1"), "ack"));
        assert_eq!(leading_mention("<@U1>:: ack"), (Some("U1"), ":: ack"));
        assert_eq!(
            leading_mention("<@U1> :fire: db down"),
            (Some("U1"), ":fire: db down")
        );
        assert_eq!(leading_mention("<@U1>:fire: db"), (Some("U1"), ":fire: db"));
        assert_eq!(leading_mention("db <@U1> down"), (None, "db <@U1> down"));
        assert_eq!(leading_mention("<@U1 db down"), (None, "<@U1 db down"));
    }

    /// A thread reply under the fixture's alert, naming the app's bot user.
    fn reply_event(text: &str, kind: &str, authorizations: bool) -> Decision {
        let mut event = serde_json::json!({
            "type": "event_callback",
            "team_id": "T1",
            "event_id": "Ev1",
            "event": {"type": kind, "user": "U0ANA", "channel": "C1", "text": text,
                "ts": "1732358800.000100", "thread_ts": "1732358500.000100"},
        });
        if authorizations {
            event["authorizations"] = serde_json::json!([
                {"team_id": "T1", "user_id": "U0KLAXON", "is_bot": true},
                {"team_id": "T1", "user_id": "U0ADMIN", "is_bot": false},
            ]);
        }
        Envelope::parse(event.to_string().as_bytes())
            .unwrap()
            .decide(Urgency::Medium)
    }

    fn command(decision: Decision) -> Option<Action> {
        match decision {
            Decision::Reply(reply) => reply.command,
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn only_a_mention_of_the_app_itself_leads_a_command() {
        let ack = Some(Action::Acknowledge);
        assert_eq!(
            command(reply_event("<@U0KLAXON> ack", "message", true)),
            ack
        );
        assert_eq!(command(reply_event("ack", "message", true)), ack);
        // Someone asking Bob, or a person the installation names (not the bot).
        for text in ["<@U0BOB> resolve", "<@U0ADMIN> resolve"] {
            assert_eq!(command(reply_event(text, "message", true)), None, "{text}");
        }
        // Without installations named, only an app mention is addressed to the app.
        assert_eq!(
            command(reply_event("<@U0KLAXON> ack", "app_mention", false)),
            ack
        );
        assert_eq!(
            command(reply_event("<@U0KLAXON> ack", "message", false)),
            None
        );
        // An app mention of the app's other installation (a shared channel's
        // other workspace), which Slack does not name: it leads with the app.
        assert_eq!(
            command(reply_event("<@U0THEIRS> ack", "app_mention", true)),
            ack
        );
        // One that names the app later does not lead with it.
        let asks_bob = "<@U0BOB> resolve <@U0KLAXON>";
        assert_eq!(command(reply_event(asks_bob, "app_mention", true)), None);
    }

    #[test]
    fn a_shared_post_in_a_thread_is_a_note_never_a_command() {
        let body = json!({
            "type": "event_callback",
            "authorizations": [{"user_id": "U0KLAXON", "is_bot": true}],
            "event": {"type": "message", "user": "U0ANA", "channel": "C1", "text": "",
                "ts": "1732358800.000100", "thread_ts": "1732358500.000100",
                "attachments": [{"text": "Resolved."}]},
        });
        match Envelope::parse(body.to_string().as_bytes())
            .unwrap()
            .decide(Urgency::Medium)
        {
            Decision::Reply(reply) => {
                assert_eq!((reply.command, reply.text.as_str()), (None, "Resolved."))
            }
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn mentions_are_whole_user_ids() {
        assert!(mentions("ping <@U1> now", "U1"));
        assert!(mentions("<@U1|ana>", "U1"));
        assert!(!mentions("<@U12>", "U1"));
        assert!(!mentions("U1 <#C1>", "U1"));
    }

    #[test]
    fn the_app_s_mention_is_left_out_of_a_title_and_another_is_kept() {
        let title = |text: &str| match Envelope::parse(
            serde_json::json!({
                "type": "event_callback",
                "authorizations": [{"user_id": "U0KLAXON", "is_bot": true}],
                "event": {"type": "app_mention", "user": "U0ANA", "channel": "C1",
                    "text": text, "ts": "1732358500.000100"},
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
        .decide(Urgency::Medium)
        {
            Decision::Alert(alert) => alert.title,
            other => panic!("not an alert: {other:?}"),
        };
        assert_eq!(title("<@U0KLAXON> db down"), "db down");
        assert!(title("<@U0BOB> db down, <@U0KLAXON>").contains("U0BOB"));
    }

    #[test]
    fn an_attachment_gives_text_only_to_a_message_without_its_own() {
        let text = |event: serde_json::Value| {
            let body = json!({"type": "event_callback", "event": event}).to_string();
            match Envelope::parse(body.as_bytes())
                .unwrap()
                .decide(Urgency::Medium)
            {
                Decision::Alert(alert) => alert.text,
                other => panic!("not an alert: {other:?}"),
            }
        };
        let message = |text: &str, attachments: serde_json::Value| {
            json!({"type": "message", "user": "U1", "channel": "C1", "ts": "1.2",
                "text": text, "attachments": attachments})
        };
        let shared = json!([{"fallback": "fb"}, {"text": "second"}]);
        assert_eq!(text(message("mine", shared.clone())), "mine");
        assert_eq!(text(message(" ", shared)), "fb");
        assert_eq!(
            text(message("", json!([{"text": "", "fallback": "fb"}]))),
            "fb"
        );
        // Another shape is no text, not a refused event.
        for odd in [json!({}), json!([7]), json!([{"text": 7}]), json!(null)] {
            assert_eq!(text(message("", odd.clone())), "", "{odd}");
        }
    }

    #[test]
    fn authorizations_of_another_shape_are_read_as_none() {
        let mut event: serde_json::Value = serde_json::from_str(
            r#"{"type":"event_callback","event":{"type":"message","user":"U1",
                "channel":"C1","ts":"1.2","text":"db down"}}"#,
        )
        .unwrap();
        for odd in [
            json!(null),
            json!({}),
            json!([1, 2]),
            json!([{"user_id": 7}]),
        ] {
            event["authorizations"] = odd.clone();
            match Envelope::parse(event.to_string().as_bytes()) {
                Ok(Envelope::EventCallback(callback)) => {
                    assert!(callback.app_users.is_empty(), "{odd}")
                }
                other => panic!("{odd}: {other:?}"),
            }
        }
    }
}
