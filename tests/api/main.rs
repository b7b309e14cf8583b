//! Integration tests: the real server over HTTP, a real sled store on disk.

mod access;
mod alert_api;
mod backup;
mod changes;
mod durability;
mod events;
mod health;
mod helpers;
mod lifecycle;
mod limits;
mod listing;
mod outgoing;
mod polling;
mod process;
mod secrets;
mod signature;
mod thread_replies;
