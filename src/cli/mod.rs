//! Command-line clients of a running klaxon server.
//!
//! `klaxon alerts` ([`alerts`]) lists, shows and changes alerts through the
//! alert API with a bearer token, so an on-call person at a terminal needs no
//! curl. `client` is the HTTP side, `table` the rendering for people.

pub mod alerts;
mod client;
mod list;
mod table;

/// Writes to stdout. A closed pipe (`klaxon check-store | head`) is not an
/// error, and not the panic `println!` makes of it; any other failure (a
/// full disk under `> report`) ends the process with exit 1, so that a lost
/// report is not a success.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("klaxon: cannot write to stdout: {e}");
            std::process::exit(1);
        }
        _ => {}
    }
}
