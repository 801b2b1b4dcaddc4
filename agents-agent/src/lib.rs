//! agents-agent: local and cloud models, chat, memory, tools. This crate
//! grows with the agents issues; today it holds the pure complexity router and the pure part of
//! local engine detection.

pub mod agent;
pub mod agent_service;
pub mod approval;
pub mod chat;
pub mod chat_store;
pub mod client;
pub mod config;
pub mod db;
pub mod engines;
pub mod guardrails;
pub mod mcp;
pub mod operation;
pub mod probe;
pub mod providers;
pub mod router;
pub mod secrets;
pub mod service;
pub mod stream;
pub mod usage;
pub mod watch;
