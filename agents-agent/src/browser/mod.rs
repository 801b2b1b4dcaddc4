//! The browser as agent tools: browser-agent's actions offered to agent
//! operations as `browser__navigate`, `browser__click`, ... and called
//! through coworkd's public socket (never browser-agent's own), so a crash
//! of either side is contained and the call is routed and started on
//! demand like a person's. The facts that need a person's approval are
//! browser-agent's to find; a call it answers with `needs_approval` is
//! parked by the executor as a waiting call, and runs again, approved,
//! after `approvals approve`.
//!
//! - [`tools`]: the tools' names, descriptions and JSON schemas, and their
//!   arguments → calls (pure).
//! - [`client`]: one call to the Browser service for an operation.

pub mod client;
pub mod tools;

/// The server name browser tools carry in the approval policy, the
/// operation's records and the function names (`browser__click`).
pub const SERVER: &str = "browser";
