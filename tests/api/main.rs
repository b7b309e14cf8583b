//! Integration tests: the real server over HTTP, a real sled store on disk.

mod access;
mod alert_api;
mod backup;
mod changes;
mod cli;
mod config;
mod crash;
mod disk_full;
mod durability;
mod events;
mod health;
mod helpers;
mod lifecycle;
mod limits;
mod listing;
mod metrics;
mod openapi;
mod outgoing;
mod polling;
mod process;
mod retries;
mod secrets;
mod shutdown;
mod signature;
mod thread_replies;
