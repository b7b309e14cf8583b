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

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn list(raw: &str) -> SecretList {
        SecretList::parse(raw).unwrap()
    }

    fn scopes_for(tokens: &ApiTokens, token: &str) -> (bool, bool) {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_http_request();
        tokens.scopes(&req)
    }

    #[test]
    fn the_api_is_closed_only_when_neither_kind_of_token_is_configured() {
        assert!(ApiTokens::new(None, None).is_closed());
        assert!(!ApiTokens::new(Some(&list("r")), None).is_closed());
        assert!(!ApiTokens::new(None, Some(&list("w"))).is_closed());
        assert!(!ApiTokens::new(Some(&list("r")), Some(&list("w"))).is_closed());
    }

    #[test]
    fn a_token_configured_to_read_and_to_write_may_do_both() {
        let tokens = ApiTokens::new(Some(&list("both,r")), Some(&list("both,w")));
        assert_eq!(scopes_for(&tokens, "both"), (true, true));
        assert_eq!(scopes_for(&tokens, "r"), (true, false));
        assert_eq!(scopes_for(&tokens, "w"), (true, true));
        assert_eq!(scopes_for(&tokens, "x"), (false, false));
    }
}
