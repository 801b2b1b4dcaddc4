//! agents-agent: local and cloud models, chat, MCP tools and agent
//! operations. Pure domain modules (`router`, `engines`, `providers`,
//! `stream`, `approval`, `guardrails`, `operation`, `mcp` specs) have no
//! SQL or gRPC in their types; the rest adapts them to HTTP, rmcp, SQLite
//! and gRPC. See ARCHITECTURE.md for the map.
#![warn(missing_docs)]

pub mod agent;
pub mod agent_service;
pub mod approval;
pub mod chat;
pub mod chat_store;
pub mod client;
pub mod config;
pub mod db;
pub mod engines;
pub mod gateway;
pub mod guardrails;
pub mod mcp;
pub mod models;
pub mod operation;
pub mod probe;
pub mod providers;
pub mod router;
pub mod secrets;
pub mod service;
pub mod stream;
pub mod usage;
pub mod watch;
