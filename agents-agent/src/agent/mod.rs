//! Agent operations (seed 003 "Agent Loop", "Safety Rails"): the model
//! works on a task with the MCP tools, step by step. Pure: the tool
//! approval policy ([`approval`]), the task-chain guardrails
//! ([`guardrails`]), operations' state and the runner that turns a model
//! reply into instructions ([`operation`]). Runtime: the executor that
//! carries them out ([`executor`]) over `agent_operations` ([`store`]);
//! `cowork.agents.v1.Agents` ([`service`]).

pub mod approval;
pub mod executor;
pub mod guardrails;
pub mod hooks;
pub mod operation;
pub mod service;
pub mod store;
