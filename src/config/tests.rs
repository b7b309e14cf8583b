//! The configuration's rules, without a process.

use std::fs;

use super::*;
use crate::secret::Secret;

fn args() -> ServeArgs {
    ServeArgs {
        verification_token: Some(Secret::new("verify-me-123")),
        ..ServeArgs::default()
    }
}

#[test]
fn defaults_apply_when_nothing_is_given() {
    let s = Settings::from_args(args()).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.data_dir, PathBuf::from("./klaxon-data"));
    assert_eq!(s.default_urgency, Urgency::Medium);
    assert!(s.signing_secrets.is_none());
}

#[test]
fn no_slack_secret_refuses_to_start_naming_both_variables() {
    let err = Settings::from_args(ServeArgs::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SLACK_SIGNING_SECRET") && err.contains("SLACK_VERIFICATION_TOKEN"),
        "{err}"
    );
}

#[test]
fn cors_origins_are_what_a_browser_sends() {
    for (given, sent) in [
        ("https://dash.example.com", "https://dash.example.com"),
        ("https://dash.example.com/", "https://dash.example.com"),
        ("HTTPS://Dash.Example.com:443", "https://dash.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://x.example:80", "https://x.example:80"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://[0:0::1]", "http://[::1]"),
    ] {
        assert_eq!(browser_origin(given).as_deref(), Some(sent), "{given}");
    }
    for bad in [
        "dash.example.com",
        "https://*.example.com",
        "https://u:p@x.example.com",
        "https://a.example/path",
        "https://a.example:",
        "https://a.example:99999",
        "https://a.example:080",
        "https://a.example:+8080",
        "https://",
        "https://[::1",
        "https://[::1]x",
        "ftp://a.example",
    ] {
        assert_eq!(browser_origin(bad), None, "{bad}");
    }
    let a = ServeArgs {
        cors_origins: Some(vec!["https://*.example.com".into()]),
        ..args()
    };
    assert!(matches!(
        Settings::from_args(a),
        Err(ConfigError::BadOrigin(_))
    ));
    let a = ServeArgs {
        cors_origins: Some(vec!["HTTPS://Dash.Example.com:443/".into()]),
        ..args()
    };
    let settings = Settings::from_args(a).unwrap();
    assert_eq!(settings.cors_origins, ["https://dash.example.com"]);
}

#[test]
fn numbers_that_would_break_the_server_are_refused() {
    let refused = |a: ServeArgs| match Settings::from_args(a) {
        Err(ConfigError::Invalid { name, .. }) => name,
        other => panic!("{other:?}"),
    };
    let cache = ServeArgs {
        cache_mb: Some(0),
        ..args()
    };
    assert_eq!(refused(cache), "KLAXON_CACHE_MB");
    for secs in [0, 3601, u64::MAX] {
        let timeout = ServeArgs {
            client_timeout_secs: Some(secs),
            ..args()
        };
        assert_eq!(refused(timeout), "KLAXON_CLIENT_TIMEOUT_SECS", "{secs}");
    }
    let grace = ServeArgs {
        shutdown_grace_secs: Some(u64::MAX),
        ..args()
    };
    assert_eq!(refused(grace), "KLAXON_SHUTDOWN_GRACE_SECS");
    let empty = ServeArgs {
        allow_from_api: Some(Vec::new()),
        ..args()
    };
    assert_eq!(refused(empty), "allow_from_api");
    let ok = ServeArgs {
        cache_mb: Some(1),
        client_timeout_secs: Some(3600),
        shutdown_grace_secs: Some(0),
        ..args()
    };
    let settings = Settings::from_args(ok).unwrap();
    assert!(settings
        .to_string()
        .contains("allow_from_api       = any network"));
}

#[test]
fn a_burst_of_0_is_refused_while_the_rate_is_on() {
    let a = ServeArgs {
        api_rate_burst: Some(0),
        ..args()
    };
    assert!(Settings::from_args(a).is_err());
    let off = ServeArgs {
        api_rate_per_sec: Some(0),
        api_rate_burst: Some(0),
        ..args()
    };
    assert!(Settings::from_args(off).is_ok());
}

#[test]
fn metrics_cannot_listen_where_the_service_does() {
    for (main, metrics, ok) in [
        ("127.0.0.1:8080", "127.0.0.1:8080", false),
        ("0.0.0.0:8080", "127.0.0.1:8080", false),
        ("127.0.0.1:8080", "127.0.0.1:9090", true),
        ("127.0.0.1:0", "127.0.0.1:0", true),
    ] {
        let a = ServeArgs {
            listen: Some(main.parse().unwrap()),
            metrics_listen: Some(metrics.parse().unwrap()),
            ..args()
        };
        assert_eq!(Settings::from_args(a).is_ok(), ok, "{main} {metrics}");
    }
}

#[test]
fn empty_secrets_are_errors() {
    let a = ServeArgs {
        signing_secret: Some(Secret::new("")),
        ..args()
    };
    assert!(matches!(
        Settings::from_args(a),
        Err(ConfigError::EmptySecret {
            name: "SLACK_SIGNING_SECRET",
            ..
        })
    ));
}

#[test]
fn api_tokens_no_header_can_carry_are_errors_but_slack_secrets_are_not() {
    let a = ServeArgs {
        write_tokens: Some(Secret::new("\u{201c}pasted\u{201d}")),
        ..args()
    };
    assert!(matches!(
        Settings::from_args(a),
        Err(ConfigError::EmptySecret {
            name: "KLAXON_WRITE_TOKENS",
            from_file: false,
            source: crate::secret::EmptySecret::NotAscii,
        })
    ));
    // A verification token travels in a form body, not a header.
    let a = ServeArgs {
        verification_token: Some(Secret::new("t\u{f6}ken")),
        ..args()
    };
    assert!(Settings::from_args(a).is_ok());
}

#[test]
fn secrets_come_from_files_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    fs::write(&path, "from-file,second\n").unwrap();
    let a = ServeArgs {
        signing_secret_file: Some(path.clone()),
        ..args()
    };
    let s = Settings::from_args(a).unwrap();
    let got: Vec<&str> = s
        .signing_secrets
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.expose())
        .collect();
    assert_eq!(got, ["from-file", "second"]);

    let both = ServeArgs {
        signing_secret: Some(Secret::new("x")),
        signing_secret_file: Some(path),
        ..args()
    };
    assert!(matches!(
        Settings::from_args(both),
        Err(ConfigError::SecretTwice { .. })
    ));
    let missing = ServeArgs {
        read_tokens_file: Some(dir.path().join("nope")),
        ..args()
    };
    assert!(matches!(
        Settings::from_args(missing),
        Err(ConfigError::SecretFile { .. })
    ));
}

#[test]
fn debug_output_redacts_every_secret() {
    let a = ServeArgs {
        signing_secret: Some(Secret::new("sign-me")),
        read_tokens: Some(Secret::new("read-me")),
        ..args()
    };
    let shown = format!("{a:?} {:?}", Settings::from_args(a_clone(&a)).unwrap());
    for secret in ["sign-me", "read-me", "verify-me-123"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

fn a_clone(a: &ServeArgs) -> ServeArgs {
    ServeArgs {
        signing_secret: a.signing_secret.clone(),
        read_tokens: a.read_tokens.clone(),
        verification_token: a.verification_token.clone(),
        ..ServeArgs::default()
    }
}
