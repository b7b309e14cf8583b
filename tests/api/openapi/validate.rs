//! Checks answers and requests against the document: `$ref`s resolve into
//! its components, and answers may carry no undocumented field.

use std::sync::LazyLock;

use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{event_fixture, fixture, spawn_app};

/// The document the code builds (the served one must be the same).
pub static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_slice(klaxon::api::openapi::json()).unwrap());

/// The documented response of an operation for `status`; panics when there is none.
fn documented_response(method: &str, template: &str, status: u16) -> &'static Value {
    let operation = &DOC["paths"][template][method.to_lowercase()];
    assert!(
        operation.is_object(),
        "{method} {template} is not documented"
    );
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which is not documented"
    );
    response
}

/// The components with every object schema closed (`additionalProperties:
/// false` unless set): an answer may not carry an undocumented field.
fn strict(mut schema: Value) -> Value {
    match &mut schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), false.into());
            }
            for value in map.values_mut() {
                *value = strict(value.take());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| *v = strict(v.take())),
        _ => {}
    }
    schema
}

/// Validates `body` against `schema`, whose `$ref`s point into the document's components.
fn validate(schema: &Value, body: &Value, closed: bool, what: &str) {
    let mut root = schema.as_object().cloned().unwrap_or_default();
    root.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    let components = DOC["components"].clone();
    root.insert(
        "components".into(),
        if closed {
            strict(components)
        } else {
            components
        },
    );
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("  {e} (at {})", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match the document:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// Asserts that a JSON answer matches the documented response schema.
pub fn assert_matches_openapi(method: &str, template: &str, status: u16, body: &Value) {
    let response = documented_response(method, template, status);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {template} {status}: no JSON schema documented"
    );
    validate(schema, body, true, &format!("{method} {template} {status}"));
}

/// Checks a real answer against the document: its status is documented, its
/// content type is the documented one (no body when none is documented) and
/// a JSON body matches the schema. Returns the JSON body (`Null` otherwise).
pub async fn assert_documented(method: &str, template: &str, res: Response) -> Value {
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map(|v| {
        let value = v.to_str().unwrap();
        value.split(';').next().unwrap().trim().to_owned()
    });
    let bytes = res.bytes().await.unwrap();
    let response = documented_response(method, template, status);
    let Some(content) = response["content"].as_object() else {
        assert!(
            bytes.is_empty(),
            "{method} {template} {status}: undocumented body"
        );
        return Value::Null;
    };
    let content_type = content_type.unwrap_or_default();
    assert!(
        content.contains_key(&content_type),
        "{method} {template} {status}: {content_type:?} is not a documented content type"
    );
    if content_type != "application/json" {
        return Value::Null;
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_matches_openapi(method, template, status, &body);
    body
}

#[test]
fn the_slack_fixtures_match_the_request_schemas() {
    let events = [
        "app_mention",
        "app_rate_limited",
        "bot_message_bot_id",
        "bot_message_subtype",
        "channel_join",
        "message",
        "message_changed",
        "message_deleted",
        "reaction_added",
        "thread_reply",
        "url_verification",
    ];
    let envelope = json!({"$ref": "#/components/schemas/EventEnvelope"});
    for name in events {
        validate(
            &envelope,
            &event_fixture(name),
            false,
            &format!("events/{name}.json"),
        );
    }
    let form = json!({"$ref": "#/components/schemas/OutgoingForm"});
    for name in [
        "pagertree_outage_high",
        "slack_docs_sample",
        "unicode_critical",
        "bot_post",
    ] {
        let fields: Vec<(String, String)> =
            serde_urlencoded::from_str(&fixture(&format!("outgoing/{name}.form"))).unwrap();
        let body: Value = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        validate(&form, &body, false, &format!("outgoing/{name}.form"));
    }
}

#[tokio::test]
async fn answers_that_drift_from_the_document_are_caught() {
    let app = spawn_app().await;
    let id = app
        .create_alert("CRITICAL: checkout down", "1732358500.000100")
        .await;
    let alert: Value = app.get_alert(&id).await.json().await.unwrap();
    assert_matches_openapi("GET", "/api/v1/alerts/{id}", 200, &alert);
    let drifted = [
        ("an undocumented field", json!({"paged": true})),
        ("a wrong enum value", json!({"status": "closed"})),
        ("a wrong format", json!({"created_at": "yesterday"})),
        ("a malformed id", json!({"id": "not-an-id"})),
        ("null where not nullable", json!({"title": null})),
    ];
    for (what, patch) in drifted {
        let mut body = alert.clone();
        body.as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        let caught = std::panic::catch_unwind(|| {
            assert_matches_openapi("GET", "/api/v1/alerts/{id}", 200, &body)
        });
        assert!(caught.is_err(), "{what} was not caught");
    }
    let mut missing = alert.clone();
    missing.as_object_mut().unwrap().remove("resolved_at");
    let caught = std::panic::catch_unwind(|| {
        assert_matches_openapi("GET", "/api/v1/alerts/{id}", 200, &missing)
    });
    assert!(caught.is_err(), "a missing field was not caught");
}
