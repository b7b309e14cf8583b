//! The two Slack surfaces and the settings they share.

pub mod events;
mod form;
pub mod outgoing;
pub mod signature;

use crate::secret::{SecretList, TokenSet};
use crate::urgency::Urgency;

/// Largest body accepted on the Slack routes. Slack messages are at most
/// 40,000 characters; 256 KiB holds the largest with room for escaping.
pub const BODY_LIMIT: usize = 256 * 1024;

/// What the Slack routes need to know. An unconfigured surface fails closed.
#[derive(Clone, Debug)]
pub struct SlackSettings {
    pub signing_secrets: Option<SecretList>,
    pub verification_tokens: TokenSet,
    pub default_urgency: Urgency,
}
