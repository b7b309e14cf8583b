//! Command-line clients of a running klaxon server.
//!
//! `klaxon alerts` ([`alerts`]) lists, shows and changes alerts through the
//! alert API with a bearer token, so an on-call person at a terminal needs no
//! curl. `client` is the HTTP side, `table` the rendering for people.

pub mod alerts;
mod client;
mod list;
mod table;

/// Writes to stdout; a closed pipe (`klaxon check-store | head`) is not an
/// error, and not the panic `println!` makes of it.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
