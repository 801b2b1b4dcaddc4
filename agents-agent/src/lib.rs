//! agents-agent: local and cloud models, chat, MCP tools and agent
//! operations. One folder per domain; each owns its pure types, its
//! `store.rs` (the only SQL for its tables, and their migrations), its
//! runtime and its `service.rs` (proto ⇄ domain, nothing else). See
//! ARCHITECTURE.md for the map and the rules.
#![warn(missing_docs)]

pub mod agent;
pub mod apps;
pub mod audio;
pub mod automation;
pub mod browser;
pub mod chat;
pub mod config;
pub mod context;
pub mod db;
pub mod gateway;
pub mod llm;
pub mod mcp;
pub mod memory;
pub mod models;
pub mod notifications;
pub mod schema;
pub mod secrets;
pub mod thermal;
pub mod usage;
pub mod util;
