use crate::process::{command, serve_refused, server_env, set_env};

fn check_config(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut all = vec!["check-config"];
    all.extend_from_slice(args);
    let out = command(&all, env).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap(),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn line<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
}

#[test]
fn flags_beat_environment_beat_the_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9001\"\ndata_dir = \"/from/file\"\ndefault_urgency = \"low\"\ncache_mb = 48\nverification_token = \"file-token-123\"\nallow_from_api = [\"10.0.0.0/8\"]\n",
    )
    .unwrap();
    let env = [
        ("KLAXON_CONFIG", file.display().to_string()),
        ("KLAXON_DATA_DIR", "/from/env".to_owned()),
        ("KLAXON_DEFAULT_URGENCY", "high".to_owned()),
    ];

    let (code, stdout, stderr) = check_config(&["--default-urgency", "critical"], &env);

    assert_eq!(code, 0, "{stderr}");
    assert!(
        line(&stdout, "listen").ends_with("127.0.0.1:9001"),
        "file over default"
    );
    assert!(
        line(&stdout, "data_dir").ends_with("/from/env"),
        "env over file"
    );
    assert!(
        line(&stdout, "default_urgency").ends_with("critical"),
        "flag over env"
    );
    assert!(line(&stdout, "cache_mb").ends_with("48"));
    assert!(line(&stdout, "allow_from_api").ends_with("10.0.0.0/8"));
    assert!(line(&stdout, "verification_token").contains("[redacted] (1 configured)"));
    assert!(
        line(&stdout, "api_rate").contains("50/s"),
        "defaults fill the rest"
    );
    assert!(line(&stdout, "config_file").ends_with("klaxon.toml"));
    assert!(line(&stdout, "log").contains("human-readable"));
    assert!(!stdout.contains("file-token-123") && !stderr.contains("file-token-123"));
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    std::fs::write(
        &file,
        "verification_token = \"t\"\nlisten_adress = \"0.0.0.0:80\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check_config(&["--config", &file.display().to_string()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("listen_adress"), "{stderr}");
}

#[test]
fn a_secret_in_the_environment_overrides_a_secret_file_named_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    std::fs::write(&file, "signing_secret_file = \"/does/not/exist\"\n").unwrap();
    let env = [
        ("KLAXON_CONFIG", file.display().to_string()),
        ("SLACK_SIGNING_SECRET", "a,b".to_owned()),
    ];
    let (code, stdout, stderr) = check_config(&[], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(line(&stdout, "signing_secret").contains("(2 configured)"));
}

#[test]
fn a_secret_flag_beats_the_other_form_of_it_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "one,two,three\n").unwrap();
    let tokens = tokens.display().to_string();
    let base = ("SLACK_VERIFICATION_TOKEN", "t".to_owned());

    // The flag, over a _FILE variable.
    let env = [base.clone(), ("KLAXON_READ_TOKENS_FILE", tokens.clone())];
    let (code, stdout, stderr) = check_config(&["--read-tokens", "a"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        line(&stdout, "read_tokens").contains("(1 configured)"),
        "{stdout}"
    );

    // The _FILE flag, over the variable.
    let env = [base.clone(), ("KLAXON_READ_TOKENS", "a".to_owned())];
    let (code, stdout, stderr) = check_config(&["--read-tokens-file", &tokens], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        line(&stdout, "read_tokens").contains("(3 configured)"),
        "{stdout}"
    );

    // Both forms in the environment, or both as flags: which one is meant is a guess.
    let env = [
        base.clone(),
        ("KLAXON_READ_TOKENS", "a".to_owned()),
        ("KLAXON_READ_TOKENS_FILE", tokens.clone()),
    ];
    let (code, _, stderr) = check_config(&[], &env);
    assert_eq!(code, 2, "{stderr}");
    let both = ["--read-tokens", "a", "--read-tokens-file", &tokens];
    let (code, _, stderr) = check_config(&both, std::slice::from_ref(&base));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--read-tokens-file"),
        "names the flags too: {stderr}"
    );

    // A bad secret in the file is the file's fault, and is named so.
    std::fs::write(dir.path().join("tokens"), "one two\n").unwrap();
    let env = [base, ("KLAXON_READ_TOKENS_FILE", tokens)];
    let (code, _, stderr) = check_config(&[], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("the file named by KLAXON_READ_TOKENS_FILE"),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_what_serve_would_refuse() {
    let (code, _, stderr) = check_config(&[], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("SLACK_SIGNING_SECRET") && stderr.contains("SLACK_VERIFICATION_TOKEN"));
    // Exit 2 is also clap's for a flag it does not know: the refusal must
    // be of the value, naming the setting.
    let (code, _, stderr) = check_config(
        &[
            "--verification-token",
            "t",
            "--allow-from-api",
            "not-a-cidr",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--allow-from-api") && stderr.contains("\"not-a-cidr\" is not a network"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("unexpected argument") && !stderr.contains("Usage:"),
        "a usage error, not the setting's: {stderr}"
    );
    // A value clap takes but klaxon's own checks refuse, as serve does.
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(dir.path());
    set_env(&mut env, "KLAXON_API_RATE_BURST", "0");
    let (code, _, stderr) = check_config(&[], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("KLAXON_API_RATE_BURST") && !stderr.contains("Usage:"),
        "{stderr}"
    );
    let serve = serve_refused(&env);
    let serve_stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(2), "{serve_stderr}");
    assert!(
        serve_stderr.contains("KLAXON_API_RATE_BURST"),
        "{serve_stderr}"
    );
}

#[test]
fn a_broken_config_file_is_reported_by_line_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    let config = |text: &str| {
        std::fs::write(&file, text).unwrap();
        check_config(&["--config", &file.display().to_string()], &[])
    };
    // An unterminated string: toml's own message shows the line.
    let (code, _, stderr) =
        config("listen = \"127.0.0.1:9001\"\nsigning_secret = \"TOPSECRET-abc\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");
    // A secret under the wrong key: serde's message quotes the value.
    let (code, _, stderr) = config("verification_token = \"t\"\ncache_mb = \"TOPSECRET-abc\"\n");
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 2") && stderr.contains("invalid type"),
        "{stderr}"
    );
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");
}

#[test]
fn sizes_that_do_not_fit_are_refused_not_wrapped() {
    for name in ["KLAXON_CACHE_MB", "KLAXON_MIN_FREE_MB"] {
        let env = [
            ("SLACK_VERIFICATION_TOKEN", "t".to_owned()),
            (name, "17592186044416".to_owned()),
        ];
        let (code, _, stderr) = check_config(&[], &env);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains("too large"),
            "{stderr}"
        );
    }
}

#[test]
fn serve_exits_1_when_it_cannot_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = server_env(dir.path());
    set_env(
        &mut env,
        "KLAXON_LISTEN",
        &taken.local_addr().unwrap().to_string(),
    );
    let out = serve_refused(&env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn log_settings_that_do_not_parse_stop_serve_and_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("RUST_LOG", "info,klaxon=loud"),
        ("RUST_LOG", "wran"),
        ("KLAXON_LOG_FORMAT", "xml"),
    ] {
        let mut env = server_env(dir.path());
        set_env(&mut env, name, value);
        let out = serve_refused(&env);
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{stderr}");
        let (code, _, _) = check_config(&[], &env);
        assert_eq!(code, 2, "check-config with {name}={value}");
    }
    // Both accepted spellings still start the server.
    for (name, value) in [
        ("KLAXON_LOG_FORMAT", "human"),
        ("RUST_LOG", "klaxon=debug,warn"),
    ] {
        let mut env = server_env(dir.path());
        set_env(&mut env, name, value);
        let (code, _, stderr) = check_config(&[], &env);
        assert_eq!(code, 0, "{name}={value}: {stderr}");
    }
}

#[test]
fn an_urgency_in_the_file_is_read_in_any_case_like_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    let env = [
        ("KLAXON_CONFIG", file.display().to_string()),
        ("SLACK_VERIFICATION_TOKEN", "t".to_owned()),
    ];
    std::fs::write(&file, "default_urgency = \"HIGH\"\n").unwrap();
    let (code, stdout, stderr) = check_config(&[], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        line(&stdout, "default_urgency").ends_with("high"),
        "{stdout}"
    );

    std::fs::write(&file, "default_urgency = \"urgent\"\n").unwrap();
    let (code, _, stderr) = check_config(&[], &env);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 1") && stderr.contains("default_urgency must be low"),
        "{stderr}"
    );
    assert!(!stderr.contains("urgent"), "{stderr}");
}

#[test]
fn an_empty_variable_is_named_not_the_flag_it_stands_for() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "KLAXON_LISTEN",
        "KLAXON_CACHE_MB",
        "SLACK_SIGNING_SECRET_FILE",
    ] {
        let mut env = server_env(dir.path());
        set_env(&mut env, name, "");
        let (code, _, stderr) = check_config(&[], &env);
        assert_eq!(code, 2, "{name}=: {stderr}");
        assert!(
            stderr.contains(&format!("{name} is set but empty")),
            "{name}=: {stderr}"
        );
        let out = serve_refused(&env);
        assert_eq!(out.status.code(), Some(2), "serve with {name}=");
    }
    // An argument that is not UTF-8 (a file name) does not stop the search.
    let mut env = server_env(dir.path());
    set_env(&mut env, "KLAXON_LISTEN", "");
    let out = command(&["check-config", "--config"], &env)
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("KLAXON_LISTEN is set but empty"),
        "{stderr}"
    );
}

#[test]
fn check_config_into_a_closed_pipe_is_quiet_and_into_a_full_disk_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // As `klaxon check-config | head -1` once head has gone: every write fails.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = command(&["check-config"], &server_env(dir.path()))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A full disk is another matter: the settings were not written.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = command(&["check-config"], &server_env(dir.path()))
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
}

/// `backup`, `restore` and `check-store` find the data dir as `serve` does:
/// `--data-dir`, then `KLAXON_DATA_DIR`, then the `--config` file, then
/// `./klaxon-data`. Only the file's data_dir matters to them: a secret file
/// it names that does not exist, and no Slack secret at all, are no error.
#[test]
fn offline_commands_find_the_data_dir_as_serve_does() {
    let work = tempfile::tempdir().unwrap();
    let srv = work.path().join("srv");
    let file = work.path().join("klaxon.toml");
    let settings = format!(
        "data_dir = '{}'\nsigning_secret_file = '/no/such/secret'\n",
        srv.display()
    );
    std::fs::write(&file, settings).unwrap();
    let backup = work.path().join("b.jsonl");
    std::fs::write(
        &backup,
        "{\"klaxon_backup\":1,\"schema\":2}\n{\"klaxon_backup_end\":{\"lines\":0,\"seq\":0}}\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, String)]| {
        command(args, env)
            .current_dir(work.path())
            .output()
            .unwrap()
    };
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let config = file.display().to_string();
    let from_file = [("KLAXON_CONFIG", config.clone())];

    let out = run(
        &["restore", "--from", &backup.display().to_string()],
        &from_file,
    );

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(srv.join("v2").is_dir(), "restored where the file says");
    assert!(!work.path().join("klaxon-data").exists());
    let out = run(&["check-store", "--config", &config], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let to = work.path().join("copy.jsonl");
    let to_arg = to.display().to_string();
    let out = run(&["backup", "--to", &to_arg, "--config", &config], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(to.is_file());

    // The environment beats the file, and a flag the environment.
    let elsewhere = work.path().join("elsewhere").display().to_string();
    let env = [
        ("KLAXON_CONFIG", config.clone()),
        ("KLAXON_DATA_DIR", elsewhere.clone()),
    ];
    let out = run(&["check-store"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{elsewhere} holds no klaxon store")));
    let out = run(
        &["check-store", "--data-dir", &srv.display().to_string()],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A config file that cannot be read stops them, as it stops serve.
    let out = run(&["check-store", "--config", "missing.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("config file missing.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn networks_in_the_file_are_read_like_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("klaxon.toml");
    let env = [
        ("KLAXON_CONFIG", file.display().to_string()),
        ("SLACK_VERIFICATION_TOKEN", "t".to_owned()),
    ];
    std::fs::write(
        &file,
        "allow_from_api = [\"203.0.113.7\", \"10.0.0.0/8\"]\nallow_from_slack = [\"2001:db8::1\"]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check_config(&[], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        line(&stdout, "allow_from_api").ends_with("203.0.113.7/32, 10.0.0.0/8"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "allow_from_slack").ends_with("2001:db8::1/128"),
        "{stdout}"
    );

    std::fs::write(&file, "allow_from_api = [\"10.0.0.0/8\", \"TOPSECRET\"]\n").unwrap();
    let (code, _, stderr) = check_config(&[], &env);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 1") && stderr.contains("must be a network"),
        "{stderr}"
    );
    assert!(!stderr.contains("TOPSECRET"), "{stderr}");
}
