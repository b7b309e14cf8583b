//! `klaxon alerts`: list, show and change alerts on a running klaxon server
//! through its alert API, with tables for people and `--json` for scripts.

use super::print;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

pub use super::list::ListArgs;

use super::client::{Answer, Client, Failure};
use super::{list, table};
use crate::alert::{Alert, AlertId};
use crate::secret::Secret;

/// The help heading of the options every `klaxon alerts` subcommand takes.
const GLOBAL: &str = "Server and output";

const AFTER_HELP: &str = "\
A read token may list, show and count alerts; ack, resolve, reopen and note need a write token.

Examples:
  export KLAXON_SERVER=https://klaxon.example.com KLAXON_TOKEN_FILE=$HOME/.klaxon-token
  klaxon alerts list --status open,acknowledged --urgency high,critical --since 12h
  klaxon alerts show 01jd3k5m8q000
  klaxon alerts ack 01jd3k5m8q000 --by ana --note 'rolling back the deploy'
  klaxon alerts list --all --json | jq -r '.alerts[].id'

Exit codes: 0 done, 1 the server refused (its error is printed), 2 bad usage or server unreachable.";

/// Read and change alerts on a running klaxon server, through its alert API.
///
/// Every call needs a bearer token: a read token may list and show alerts, a
/// write token may also acknowledge, resolve, reopen and add notes.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct AlertsArgs {
    /// Address of the klaxon server, as reached from here
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "KLAXON_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token of the alert API. Prefer KLAXON_TOKEN or --token-file: flags show up in `ps`
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "KLAXON_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<Secret>,
    /// File holding the bearer token (surrounding whitespace is ignored)
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "KLAXON_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub token_file: Option<PathBuf>,
    /// Print the server's JSON instead of a table
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// What to do with alerts.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first, optionally filtered
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one alert in full: every field, its whole text and its notes
    Show {
        /// The alert's id, as `klaxon alerts list` shows it
        #[arg(value_name = "ID")]
        id: AlertId,
    },
    /// Acknowledge an alert: someone is on it (needs a write token)
    #[command(visible_alias = "acknowledge")]
    Ack(ActArgs),
    /// Resolve an alert (needs a write token)
    Resolve(ActArgs),
    /// Reopen an acknowledged or resolved alert (needs a write token)
    Reopen(ActArgs),
    /// Add a note to an alert (needs a write token)
    Note(NoteArgs),
    /// Count alerts by status and urgency
    Summary,
}

/// An alert and, optionally, who acts and why.
#[derive(Args)]
pub struct ActArgs {
    /// The alert's id, as `klaxon alerts list` shows it
    #[arg(value_name = "ID")]
    pub id: AlertId,
    /// Who is acting (a name or Slack user id), recorded on the alert
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// A note to add with the change
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

/// A note for an alert.
#[derive(Args)]
pub struct NoteArgs {
    /// The alert's id, as `klaxon alerts list` shows it
    #[arg(value_name = "ID")]
    pub id: AlertId,
    /// The note
    #[arg(long, value_name = "TEXT")]
    pub note: String,
    /// Who writes it (a name or Slack user id)
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

/// Runs `klaxon alerts ...` against the server. Exit codes: 0 done, 1 the
/// server refused or answered nonsense, 2 bad usage or the server is unreachable.
pub fn run(args: AlertsArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("klaxon: {failure}");
            if let Failure::Api { code, .. } = &failure {
                match code.as_str() {
                    "unauthenticated" => eprintln!(
                        "hint: the server did not accept the token; check KLAXON_TOKEN, --token-file or --token"
                    ),
                    "forbidden" => eprintln!(
                        "hint: a read token may only list and show; changing alerts needs a write token"
                    ),
                    _ => {}
                }
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

fn execute(args: AlertsArgs) -> Result<(), Failure> {
    let token = resolve_token(args.token, args.token_file.as_deref())?;
    let client = Client::new(&args.server, token)?;
    let json = args.json;
    match args.command {
        AlertsCommand::List(list) => list::list(&client, &list, json),
        AlertsCommand::Show { id } => {
            let answer = client.get(&format!("/api/v1/alerts/{id}"))?;
            output::<AlertShape, _>(&answer, json, |a: Alert| table::details(&a))
        }
        AlertsCommand::Ack(act) => change(&client, &act, "acknowledge", json),
        AlertsCommand::Resolve(act) => change(&client, &act, "resolve", json),
        AlertsCommand::Reopen(act) => change(&client, &act, "reopen", json),
        AlertsCommand::Note(note) => {
            let body = json!({ "by": note.by, "note": note.note });
            let answer = client.post(&format!("/api/v1/alerts/{}/notes", note.id), Some(&body))?;
            output::<AlertShape, _>(&answer, json, |a: Alert| {
                format!(
                    "note added ({} in all); {}",
                    a.notes.len(),
                    table::changed(&a)
                )
            })
        }
        AlertsCommand::Summary => {
            let answer = client.get("/api/v1/alerts/summary")?;
            output::<SummaryShape, _>(&answer, json, |s: table::Summary| table::summary(&s))
        }
    }
}

impl AlertsArgs {
    /// A token flag beats the other form of it in the environment
    /// (`--token-file` with KLAXON_TOKEN exported), as for `klaxon serve`.
    pub fn prefer_flags(&mut self, matches: &clap::ArgMatches) {
        crate::config::prefer_flag(matches, "token", &mut self.token, &mut self.token_file);
    }
}

/// The token from exactly one of `--token`/KLAXON_TOKEN and `--token-file`/KLAXON_TOKEN_FILE.
fn resolve_token(flag: Option<Secret>, file: Option<&Path>) -> Result<Secret, Failure> {
    let flag = flag.filter(|t| !t.expose().trim().is_empty());
    let token = match (flag, file) {
        (Some(_), Some(_)) => {
            return Err(Failure::Usage(
                "give the token one way: --token (KLAXON_TOKEN) or --token-file (KLAXON_TOKEN_FILE), not both".into(),
            ))
        }
        (Some(token), None) => token.expose().trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| {
                Failure::Usage(format!("cannot read the token file {}: {e}", path.display()))
            })?
            .trim()
            .to_owned(),
        (None, None) => {
            return Err(Failure::Usage(
                "no token: set KLAXON_TOKEN, or pass --token-file FILE (a read token lists and shows; changes need a write token)".into(),
            ))
        }
    };
    if token.is_empty() {
        return Err(Failure::Usage("the token is empty".into()));
    }
    // Checked here because an HTTP library's "invalid header" error would quote it.
    if !token.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(Failure::Usage(
            "the token has characters an HTTP header cannot carry".into(),
        ));
    }
    Ok(Secret::new(token))
}

/// Prints the server's JSON as sent, once it has the shape `S` (a 200 from
/// something that is not klaxon, a login page say, is not a success), or
/// `render` of it for people.
fn output<S: DeserializeOwned, T: DeserializeOwned>(
    answer: &Answer,
    json: bool,
    render: impl FnOnce(T) -> String,
) -> Result<(), Failure> {
    if json {
        answer.parse::<S>()?;
        print(&format!("{}\n", answer.body.trim_end()));
    } else {
        print(&render(answer.parse()?));
    }
    Ok(())
}

/// What `--json` checks of an alert: only what every klaxon gives, so that a
/// newer server's alert (a status or field this client does not know) passes.
#[derive(Deserialize)]
pub(super) struct AlertShape {
    #[serde(rename = "id")]
    _id: String,
    #[serde(rename = "seq")]
    _seq: u64,
}

/// What `--json` checks of a summary.
#[derive(Deserialize)]
struct SummaryShape {
    #[serde(rename = "total")]
    _total: u64,
}

fn change(client: &Client, act: &ActArgs, action: &str, json: bool) -> Result<(), Failure> {
    let body =
        (act.by.is_some() || act.note.is_some()).then(|| json!({ "by": act.by, "note": act.note }));
    let answer = client.post(
        &format!("/api/v1/alerts/{}/{action}", act.id),
        body.as_ref(),
    )?;
    output::<AlertShape, _>(&answer, json, |a: Alert| table::changed(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_exactly_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let flag = || Some(Secret::new("from-flag"));
        assert_eq!(resolve_token(flag(), None).unwrap().expose(), "from-flag");
        assert_eq!(
            resolve_token(None, Some(&file)).unwrap().expose(),
            "from-file"
        );
        assert!(resolve_token(flag(), Some(&file)).is_err());
        assert!(resolve_token(None, None).is_err());
        assert!(resolve_token(Some(Secret::new("a\u{1}b")), None).is_err());
    }
}
