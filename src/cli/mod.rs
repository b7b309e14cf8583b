//! Command-line clients of a running klaxon server.
//!
//! `klaxon alerts` ([`alerts`]) lists, shows and changes alerts through the
//! alert API with a bearer token, so an on-call person at a terminal needs no
//! curl. `client` is the HTTP side, `table` the rendering for people.

pub mod alerts;
mod client;
mod list;
mod table;
