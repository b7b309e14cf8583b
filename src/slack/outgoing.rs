//! `POST /slack/outgoing`: legacy outgoing webhooks (urlencoded forms that
//! Slack sends when a message starts with a trigger word).

use actix_web::{dev, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::events::reply_command;
use super::{apply_reply, form, given, in_thread, InThread, SlackSettings, BODY_LIMIT};
use crate::alert::{title_of, without_trigger_word, NewAlert, SlackRef, Source};
use crate::api::responses::{
    BadRequest, ForbiddenNetwork, HeadersTooLarge, InvalidToken, PayloadTooLarge, RateLimited,
    RequestTimeout, Unavailable, UnsupportedMediaType,
};
use crate::api::schemas::OutgoingReply;
use crate::body::{read_body, require_content_type};
use crate::error::ApiError;
use crate::metrics;
use crate::store::{Inserted, ReplyOutcome, Store, ThreadReply};
use crate::telemetry::with_outcome;
use crate::urgency;

/// The fields Slack sends; unknown fields are ignored, duplicates refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct OutgoingForm {
    /// The webhook's verification token (401 when missing or wrong).
    pub token: Option<String>,
    pub team_id: Option<String>,
    pub team_domain: Option<String>,
    pub service_id: Option<String>,
    #[schema(value_type = String, required = true)]
    pub channel_id: Option<String>,
    pub channel_name: Option<String>,
    pub thread_ts: Option<String>,
    /// The message's Slack ts.
    #[schema(value_type = String, required = true)]
    pub timestamp: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    /// The message, starting with the trigger word.
    #[schema(value_type = String, required = true)]
    pub text: Option<String>,
    pub trigger_word: Option<String>,
    /// Present on posts by bots, which create nothing.
    pub bot_id: Option<String>,
}

impl OutgoingForm {
    /// Strictly decodes a form body (bad escapes and invalid UTF-8 are errors).
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        form::check_encoding(body).map_err(|e| ApiError::MalformedBody(e.into()))?;
        serde_urlencoded::from_bytes(body).map_err(ApiError::undecodable)
    }

    /// Posts by bots, klaxon's own replies among them, must never page anyone.
    pub fn is_from_bot(&self) -> bool {
        self.bot_id.is_some()
            || self.user_name.as_deref() == Some("slackbot")
            || self.user_id.as_deref() == Some("USLACKBOT")
    }

    /// 400 when an identifier is too long.
    pub fn check_ids(&self) -> Result<(), ApiError> {
        super::check_ids([
            ("team_id", self.team_id.as_deref()),
            ("team_domain", self.team_domain.as_deref()),
            ("channel_id", self.channel_id.as_deref()),
            ("channel_name", self.channel_name.as_deref()),
            ("thread_ts", self.thread_ts.as_deref()),
            ("timestamp", self.timestamp.as_deref()),
            ("user_id", self.user_id.as_deref()),
            ("user_name", self.user_name.as_deref()),
            ("trigger_word", self.trigger_word.as_deref()),
        ])
    }

    /// Where the post stands in its thread (see [`super::in_thread`]).
    pub fn in_thread(&self) -> InThread<'_> {
        match given(self.timestamp.as_deref()) {
            Some(ts) => in_thread(
                ts,
                self.thread_ts.as_deref(),
                self.text.as_deref().unwrap_or(""),
            ),
            None => InThread::No,
        }
    }

    /// A post inside a thread, as a reply to the thread's first message:
    /// the same reply the Events API would give for it.
    pub fn as_thread_reply(&self) -> Option<ThreadReply> {
        let InThread::Reply(thread_ts) = self.in_thread() else {
            return None;
        };
        let text = self.text.clone()?;
        // The trigger word is how the post reached klaxon, not what it
        // says (`outage ack`), unless it is all the post says (`ack`).
        let command = reply_command(without_trigger_word(&text, self.trigger_word.as_deref()))
            .or_else(|| reply_command(&text));
        Some(ThreadReply {
            channel: given(self.channel_id.as_deref())?.to_owned(),
            thread_ts: thread_ts.to_owned(),
            ts: self.timestamp.clone()?,
            event_id: None,
            user: self.user_id.clone(),
            command,
            // Only this surface reads a command after the trigger word: the
            // Events API's copy of the message reads it as a note.
            missed: command.filter(|_| reply_command(&text).is_none()),
            text,
        })
    }

    /// The alert this post asks for; 400 when a required field is missing.
    pub fn into_new_alert(self, default: urgency::Urgency) -> Result<NewAlert, ApiError> {
        let channel_id = required(self.channel_id, "channel_id")?;
        let ts = required(self.timestamp, "timestamp")?;
        // Slack always sends `text`; a message of a file alone has it empty,
        // and is an untitled alert, as on the Events API.
        let text = self.text.ok_or(ApiError::MissingField("text"))?;
        let (urgency, urgency_source) = urgency::read(&text, default);
        Ok(NewAlert {
            urgency,
            urgency_source,
            title: title_of(&text, self.trigger_word.as_deref()),
            text,
            source: Source::OutgoingWebhook,
            slack: SlackRef {
                team_id: self.team_id,
                team_domain: self.team_domain,
                channel_id,
                channel_name: self.channel_name,
                user_id: self.user_id,
                user_name: self.user_name,
                ts,
                thread_ts: given(self.thread_ts),
                trigger_word: self.trigger_word,
                event_id: None,
            },
        })
    }
}

fn required(value: Option<String>, name: &'static str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or(ApiError::MissingField(name))
}

/// `POST /slack/outgoing`
#[utoipa::path(
    post,
    path = "/slack/outgoing",
    operation_id = "slack_outgoing",
    tag = "slack",
    summary = "A legacy outgoing webhook: a message starting with a trigger word",
    description = "Creates an alert (or finds the one for the same message) and answers the \
        text Slack posts back in the channel. A post in the thread of an alert is a reply to it \
        (a note, or ack / resolve). Posts by bots answer 200 with an empty body, and so do \
        replies without a trigger word under a message that is not an alert (held until it \
        is one, as on the Events API).",
    request_body(content = OutgoingForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The channel reply (empty when nothing was done).",
            body = OutgoingReply),
        BadRequest, InvalidToken, ForbiddenNetwork, RequestTimeout, PayloadTooLarge,
        UnsupportedMediaType, RateLimited, HeadersTooLarge, Unavailable
    )
)]
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    slack: web::Data<SlackSettings>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    require_content_type(&req, "application/x-www-form-urlencoded")?;
    let mut raw: dev::Payload = payload.into_inner();
    let body = read_body(&req, &mut raw, BODY_LIMIT).await?;
    // Fail closed: with no token configured, the set is empty and nothing matches.
    let token = sent_token(&body).unwrap_or_default();
    if !slack.verification_tokens.contains(token.as_bytes()) {
        return Err(ApiError::InvalidToken);
    }
    let post = OutgoingForm::parse(&body)?;
    if post.is_from_bot() {
        metrics::event_ignored("bot message");
        return Ok(with_outcome(
            HttpResponse::Ok().finish(),
            "ignored: bot message",
        ));
    }
    post.check_ids()?;
    let trigger = post.trigger_word.clone().unwrap_or_default();
    // In a thread under an alert, the post is a reply to it; anywhere else
    // (or under a message that is not an alert) the trigger word opens one,
    // and without a trigger word only a message outside a thread does.
    // A reply without text says nothing, as on the Events API.
    if post.in_thread() == InThread::ReplyWithoutText {
        metrics::event_ignored("thread reply without text");
        return Ok(with_outcome(
            HttpResponse::Ok().finish(),
            "ignored: thread reply without text",
        ));
    }
    if let Some(reply) = post.as_thread_reply() {
        // A channel-wide webhook (no trigger word) posts every reply, also
        // under a bot's post or an older message: there a reply is chat, not
        // an alert. It is held as on the Events API, in case its thread's
        // first message becomes an alert yet (Slack delivering it again).
        let channel_wide = trigger.trim().is_empty();
        let outcome = apply_reply(&store, reply, channel_wide).await?;
        if matches!(outcome, ReplyOutcome::Held) {
            return Ok(with_outcome(
                HttpResponse::Ok().finish(),
                "held: thread reply under a message that is not an alert (yet)",
            ));
        }
        if let Some((text, outcome)) = replied(outcome) {
            let reply = json!({ "text": reply_text(&text, &trigger) });
            return Ok(with_outcome(HttpResponse::Ok().json(reply), outcome));
        }
    }
    let inserted = store
        .insert_if_new(post.into_new_alert(slack.default_urgency)?)
        .await?;
    let (text, outcome) = opened(&inserted);
    let reply = json!({ "text": reply_text(&text, &trigger) });
    Ok(with_outcome(HttpResponse::Ok().json(reply), outcome))
}

/// What to say of an alert offered (the channel text and the log outcome).
fn opened(inserted: &Inserted) -> (String, String) {
    match inserted {
        Inserted::Created(a) => {
            metrics::alert_created("outgoing_webhook", a.urgency);
            (
                format!(
                    "opened alert {} ({} urgency): {}",
                    a.id,
                    a.urgency,
                    inert(&a.title)
                ),
                format!("created alert {}", a.id),
            )
        }
        Inserted::Duplicate(a) => {
            metrics::duplicate_suppressed("outgoing_webhook");
            (
                format!(
                    "already tracking this as alert {} ({} urgency, {})",
                    a.id,
                    a.urgency,
                    a.status.as_str()
                ),
                format!("duplicate of alert {}", a.id),
            )
        }
    }
}

/// The form's one `token`, read leniently: it is checked before the strict
/// parse, so that a form without the right token is refused as such (401)
/// whatever else is wrong with it. Sent twice, it is no token.
fn sent_token(body: &[u8]) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut tokens = pairs.into_iter().filter(|(k, _)| k == "token");
    match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) => Some(token),
        _ => None,
    }
}

/// What to say of a thread reply (the channel text and the log outcome);
/// `None` when the thread does not start with an alert.
fn replied(outcome: ReplyOutcome) -> Option<(String, String)> {
    Some(match outcome {
        // Under a message that is not an alert, the trigger word opens one.
        ReplyOutcome::NotAnAlert | ReplyOutcome::Held => return None,
        ReplyOutcome::Applied(a) => (
            format!(
                "added to alert {} ({} urgency, {})",
                a.id,
                a.urgency,
                a.status.as_str()
            ),
            format!("thread reply applied to alert {}", a.id),
        ),
        ReplyOutcome::Duplicate(id) => {
            metrics::duplicate_suppressed("outgoing_webhook");
            (
                format!("already added to alert {id}"),
                format!("duplicate reply to alert {id}"),
            )
        }
        ReplyOutcome::Refused(id, why) => {
            metrics::event_ignored("thread reply refused");
            (
                format!("not added to alert {id}: {why}"),
                format!("thread reply to alert {id} refused: {why}"),
            )
        }
    })
}

/// `text` to repeat in klaxon's own reply without its Slack markup acting
/// again: `<!channel>`, `<@U123>`, `<!subteam^S1>` would ping people a second
/// time, and `<https://x|label>` would post someone's link in klaxon's voice.
/// Slack sends `&`, `<` and `>` typed by people already escaped, so escaping
/// the angle brackets shows the markup as the text it was.
fn inert(text: &str) -> String {
    text.replace('<', "&lt;").replace('>', "&gt;")
}

/// Slack posts the reply in the channel: prefix it so that it can never start
/// with the trigger word and fire the webhook again.
pub fn reply_text(text: &str, trigger_word: &str) -> String {
    let trigger = trigger_word.trim();
    for prefix in ["klaxon: ", ":rotating_light: klaxon "] {
        let reply = format!("{prefix}{text}");
        let head = reply.get(..trigger.len()).unwrap_or("");
        if trigger.is_empty() || !head.eq_ignore_ascii_case(trigger) {
            return reply;
        }
    }
    format!("> {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_never_starts_with_the_trigger_word() {
        for trigger in [
            "",
            "outage",
            "klaxon",
            "klaxon:",
            "KLAXON",
            ":rotating_light:",
            "o",
            "k",
        ] {
            let reply = reply_text("opened alert x", trigger);
            assert!(
                trigger.is_empty() || !reply.to_lowercase().starts_with(&trigger.to_lowercase()),
                "{trigger:?} -> {reply:?}"
            );
        }
    }

    #[test]
    fn bots_are_recognised() {
        let bot = |f: fn(&mut OutgoingForm)| {
            let mut form = OutgoingForm::default();
            f(&mut form);
            form.is_from_bot()
        };
        assert!(bot(|f| f.bot_id = Some("B1".into())));
        assert!(bot(|f| f.user_name = Some("slackbot".into())));
        assert!(!bot(|f| f.user_name = Some("steve".into())));
    }

    #[test]
    fn duplicate_fields_and_bad_encoding_are_malformed() {
        assert!(OutgoingForm::parse(b"token=a&token=b").is_err());
        assert!(OutgoingForm::parse(b"text=%ZZ").is_err());
        assert!(OutgoingForm::parse(b"text=ok&unknown=1").is_ok());
    }
}
