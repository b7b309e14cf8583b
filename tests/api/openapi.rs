//! The OpenAPI document: served, complete (every route registered in code is
//! documented, and every documented operation is served) and true (real
//! answers validate against it). The answers of each route are in `answers`.

mod answers;
mod validate;

use std::collections::BTreeSet;

use regex::Regex;
use reqwest::{Method, Response};
use serde_json::{json, Value};

use self::validate::{assert_documented, DOC};
use crate::helpers::{event_fixture, fixture, spawn_app, TestApp, WRITE_TOKEN};

/// Where routes are registered, read at compile time so that a route added
/// there without documentation fails `every_route_in_code_is_documented_and_nothing_else`.
const ROUTE_SOURCES: &[(&str, &str)] = &[
    ("src/startup.rs", include_str!("../../src/startup.rs")),
    ("src/api/mod.rs", include_str!("../../src/api/mod.rs")),
];

/// (METHOD, path) of every route registered with `get("...", handler)` or `post(...)`.
fn routes_in_code() -> BTreeSet<(String, String)> {
    let resource = Regex::new(r#"\b(get|post)\(\s*"([^"]+)""#).unwrap();
    let other = Regex::new(r#"web::(resource|scope)\(\s*"|\.route\(\s*""#).unwrap();
    let mut routes = BTreeSet::new();
    for (file, source) in ROUTE_SOURCES {
        assert!(
            !other.is_match(source),
            "{file}: register routes with get(\"...\", ..) or post(..) so this test sees them"
        );
        for c in resource.captures_iter(source) {
            routes.insert((c[1].to_uppercase(), c[2].to_owned()));
        }
    }
    routes
}

/// (METHOD, path) of every operation in the document.
fn documented_operations() -> BTreeSet<(String, String)> {
    let paths = DOC["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().unwrap().keys();
            methods.map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1() {
    let app = spawn_app().await;
    let res = app.get_with("/api/v1/openapi.json", None).await;
    let served = assert_documented("GET", "/api/v1/openapi.json", res).await;
    assert_eq!(
        served, *DOC,
        "the served document is the one the code builds"
    );
    assert_eq!(DOC["openapi"], "3.1.0");
    assert_eq!(DOC["info"]["title"], "klaxon");
    assert_eq!(DOC["info"]["version"], env!("CARGO_PKG_VERSION"));
    let bearer = &DOC["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!([&bearer["type"], &bearer["scheme"]], ["http", "bearer"]);
}

#[test]
fn every_route_in_code_is_documented_and_nothing_else() {
    let code = routes_in_code();
    assert!(code.len() >= 15, "the route pattern found only {code:?}");
    let documented = documented_operations();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not registered: {unserved:?}"
    );
}

#[test]
fn the_alert_api_and_metrics_need_a_bearer_token() {
    for (method, path) in documented_operations() {
        let security = &DOC["paths"][&path][method.to_lowercase()]["security"];
        let open =
            path == "/api/v1/openapi.json" || !(path.starts_with("/api/") || path == "/metrics");
        let expected = if open {
            Value::Null
        } else {
            json!([{"bearerAuth": []}])
        };
        assert_eq!(*security, expected, "{method} {path}");
    }
}

/// Sends `method path` the way a client of that route would, with the write token.
async fn probe(app: &TestApp, method: &str, path: &str) -> Response {
    match path {
        "/slack/events" => app.post_event(&event_fixture("url_verification")).await,
        "/slack/outgoing" => {
            app.post_outgoing(&fixture("outgoing/slack_docs_sample.form"))
                .await
        }
        _ => {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let req = app
                .client
                .request(method, app.url(path))
                .bearer_auth(WRITE_TOKEN);
            req.send().await.unwrap()
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_as_documented() {
    let app = spawn_app().await;
    let id = app
        .create_alert("disk full on db-1 (high)", "1732358400.000100")
        .await;
    for (method, template) in documented_operations() {
        let res = probe(&app, &method, &template.replace("{id}", &id)).await;
        let status = res.status().as_u16();
        let body = assert_documented(&method, &template, res).await;
        assert_ne!(status, 405, "{method} {template} is not served");
        assert_ne!(
            body["error"], "route not found",
            "{method} {template} is not served"
        );
    }
    // What the checks above look for, so they cannot pass vacuously.
    let unknown: Value = app
        .get_with("/api/v1/nope", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unknown["error"], "route not found");
    let res = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}
