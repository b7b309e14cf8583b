//! klaxon: turns Slack messages into durable on-call alerts.
//!
//! The binary in `main.rs` is a thin shell over this library; see README's
//! "Architecture" section for a map of the modules.

pub mod alert;
pub mod api;
pub mod body;
pub mod cli;
pub mod config;
pub mod error;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod offline;
pub mod secret;
pub mod slack;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod urgency;
