//! agents-agent: local and cloud models, chat, memory, tools. This crate
//! grows with the agents issues; today it holds the pure complexity router.

pub mod router;
