//! The two Slack surfaces and the settings they share.

pub mod events;
mod form;
pub mod outgoing;
pub mod signature;

use crate::secret::{SecretList, TokenSet};
use crate::urgency::Urgency;

/// Largest body accepted on the Slack routes. Slack messages are at most
/// 40,000 characters, but their encodings are long: percent-encoded in a
/// form, a CJK character takes 9 bytes (360 KB); JSON-escaped, 6 bytes, and
/// an Events API body carries the text twice (`text` and `blocks`). 1 MiB
/// holds the longest with room for the rest of the body.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the Slack routes need to know. An unconfigured surface fails closed.
#[derive(Clone, Debug)]
pub struct SlackSettings {
    pub signing_secrets: Option<SecretList>,
    pub verification_tokens: TokenSet,
    pub default_urgency: Urgency,
}
