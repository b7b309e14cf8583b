//! The two Slack surfaces and the settings they share.

pub mod events;
mod form;
pub mod markup;
pub mod outgoing;
pub mod signature;

use crate::error::ApiError;
use crate::secret::{SecretList, TokenSet};
use crate::store::{ReplyOutcome, Store, ThreadReply};
use crate::urgency::Urgency;

/// Largest body accepted on the Slack routes. Slack messages are at most
/// 40,000 characters, but their encodings are long: percent-encoded in a
/// form, a CJK character takes 9 bytes (360 KB); JSON-escaped, 6 bytes, and
/// an Events API body carries the text twice (`text` and `blocks`). 1 MiB
/// holds the longest with room for the rest of the body.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub use crate::alert::MAX_ID_BYTES;

/// 400 when one of `fields` (name, value) is longer than [`MAX_ID_BYTES`].
pub fn check_ids<'a>(
    fields: impl IntoIterator<Item = (&'static str, Option<&'a str>)>,
) -> Result<(), ApiError> {
    match fields
        .into_iter()
        .find(|(_, value)| value.is_some_and(|v| v.len() > MAX_ID_BYTES))
    {
        Some((name, _)) => Err(ApiError::MalformedBody(format!(
            "field `{name}` is longer than {MAX_ID_BYTES} bytes"
        ))),
        None => Ok(()),
    }
}

/// A field Slack sent, if it holds anything: an empty or blank id or ts is a
/// missing one (two messages with an empty ts would otherwise be one).
pub fn given<T: AsRef<str>>(value: Option<T>) -> Option<T> {
    value.filter(|v| !v.as_ref().trim().is_empty())
}

/// Where a message stands in its thread: the same rule on both surfaces,
/// so that the same message does the same whichever brings it first.
#[derive(Debug, PartialEq, Eq)]
pub enum InThread<'a> {
    /// A message of its own (or a thread's first message).
    No,
    /// A reply under the message whose ts this is.
    Reply(&'a str),
    /// A reply with nothing to say (a file alone): ignored.
    ReplyWithoutText,
}

/// Where the message `ts` with `thread_ts` and `text` stands.
pub fn in_thread<'a>(ts: &str, thread_ts: Option<&'a str>, text: &str) -> InThread<'a> {
    match given(thread_ts).filter(|t| *t != ts) {
        None => InThread::No,
        Some(_) if text.trim().is_empty() => InThread::ReplyWithoutText,
        Some(thread_ts) => InThread::Reply(thread_ts),
    }
}

/// What the Slack routes need to know. An unconfigured surface fails closed.
#[derive(Clone, Debug)]
pub struct SlackSettings {
    pub signing_secrets: Option<SecretList>,
    pub verification_tokens: TokenSet,
    pub default_urgency: Urgency,
}

/// Applies a thread reply (`hold`: one that came before its thread's first
/// message waits for it).
pub async fn apply_reply(
    store: &Store,
    reply: ThreadReply,
    hold: bool,
) -> Result<ReplyOutcome, ApiError> {
    Ok(if hold {
        store.thread_reply_or_hold(reply).await?
    } else {
        store.thread_reply(reply).await?
    })
}
