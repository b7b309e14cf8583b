//! Bearer tokens for the alert API. Taking [`CanRead`] or [`CanWrite`] as a
//! handler argument makes the handler authenticated by construction.

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{dev, web, FromRequest, HttpRequest};

use crate::error::ApiError;
use crate::secret::{SecretList, TokenSet};

/// The configured read and write tokens. Empty sets close the API.
#[derive(Clone, Debug, Default)]
pub struct ApiTokens {
    read: TokenSet,
    write: TokenSet,
}

impl ApiTokens {
    pub fn new(read: Option<&SecretList>, write: Option<&SecretList>) -> Self {
        let set =
            |list: Option<&SecretList>| list.map(|l| TokenSet::new(l.iter())).unwrap_or_default();
        Self {
            read: set(read),
            write: set(write),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }

    /// Which scopes the request's token grants: (may read, may write).
    /// Both sets are always checked, so timing does not tell which matched.
    fn scopes(&self, req: &HttpRequest) -> (bool, bool) {
        let token = bearer(req).unwrap_or_default();
        let in_read = self.read.contains(token.as_bytes());
        let in_write = self.write.contains(token.as_bytes());
        (in_read | in_write, in_write)
    }
}

/// The token of an `Authorization: Bearer <token>` header. Two such
/// headers authenticate nothing: which one counts would be a guess.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn scopes_of(req: &HttpRequest) -> (bool, bool) {
    req.app_data::<web::Data<ApiTokens>>()
        .map_or((false, false), |t| t.scopes(req))
}

/// Proof that the request's token may read alerts.
pub struct CanRead(());

/// Proof that the request's token may change alerts.
pub struct CanWrite(());

impl FromRequest for CanRead {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        ready(match scopes_of(req) {
            (true, _) => Ok(CanRead(())),
            _ => Err(ApiError::Unauthenticated),
        })
    }
}

impl FromRequest for CanWrite {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut dev::Payload) -> Self::Future {
        ready(match scopes_of(req) {
            (_, true) => Ok(CanWrite(())),
            (true, false) => Err(ApiError::Forbidden),
            _ => Err(ApiError::Unauthenticated),
        })
    }
}
