//! Cheap polling: ETags from the store's change sequence, so a `304` needs
//! no listing at all.

use std::hash::{DefaultHasher, Hash, Hasher};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::store::{Store, StoreError};

/// A tag that changes with any change to the store, and differs per query.
/// It covers every change answered before the request: a matching
/// `If-None-Match` needs no query at all.
pub async fn for_store(store: &Store, req: &HttpRequest) -> Result<String, StoreError> {
    Ok(at_seq(store, req, store.settled_seq().await?))
}

/// The tag of an answer built from the store as of change `seq`. A query
/// can see changes applied after the settled sequence it waited for: its
/// answer is tagged with what it saw, so one tag is always one body.
pub fn at_seq(store: &Store, req: &HttpRequest, seq: u64) -> String {
    let mut hasher = DefaultHasher::new();
    req.path().hash(&mut hasher);
    req.query_string().hash(&mut hasher);
    format!(
        "\"{:x}.{}.{:x}\"",
        store.instance(),
        seq,
        hasher.finish() & 0xffff_ffff
    )
}

/// A tag for one alert: its latest change.
pub fn for_alert(store: &Store, seq: u64) -> String {
    format!("\"{:x}.a{}\"", store.instance(), seq)
}

/// `304 Not Modified` when the request's `If-None-Match` names `tag`.
pub fn not_modified(req: &HttpRequest, tag: &str) -> Option<HttpResponse> {
    let matches = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .any(|value| lists(value, tag));
    matches.then(|| cacheable(HttpResponse::NotModified(), tag).finish())
}

/// Adds the `ETag` and `Cache-Control: no-cache` (always revalidate) headers.
pub fn cacheable(mut builder: HttpResponseBuilder, tag: &str) -> HttpResponseBuilder {
    builder.insert_header((header::ETAG, tag.to_owned()));
    builder.insert_header((header::CACHE_CONTROL, "no-cache"));
    builder
}

/// Weak comparison, as RFC 9110 asks for `If-None-Match`.
fn lists(value: &HeaderValue, tag: &str) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}
