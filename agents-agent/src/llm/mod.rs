//! Models: which one answers, and talking to it. Pure: the tier table
//! ([`tier`]), the complexity router ([`router`]), cloud providers' keys
//! ([`providers`]), the engine registry and the local-host rule
//! ([`engines`]), stream decoders ([`stream`]) and token estimates
//! ([`tokens`]). Runtime: HTTP probes ([`probe`]), detection every 10 s
//! ([`detect`]), the one OpenAI-compatible/Ollama client ([`client`]), the
//! one resolver of "which engine or provider serves this call"
//! ([`resolve`]), and `cowork.engines.v1.Engines` ([`service`]). Engines
//! we run ourselves (`llama-server` sessions) are in [`managed`].

pub mod client;
pub mod detect;
pub mod engines;
pub mod managed;
pub mod probe;
pub mod providers;
pub mod resolve;
pub mod router;
pub mod service;
pub mod stream;
pub mod tier;
pub mod tokens;
