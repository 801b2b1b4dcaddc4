//! agents-agent: local and cloud models, chat, memory, tools. This crate
//! grows with the agents issues; today it holds the pure complexity router and the pure part of
//! local engine detection.

pub mod engines;
pub mod router;
