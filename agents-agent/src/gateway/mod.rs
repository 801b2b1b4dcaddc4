//! The local OpenAI-compatible API (off by default): `policy` (pure rules:
//! hosts, keys, CORS, routes, the OpenAPI document), `conn` (what one
//! connection may cost: the cap and the timeouts), `server` (hyper and the
//! forwarding), `store` (settings), `service` (gRPC adapter).

pub mod conn;
pub mod policy;
pub mod server;
pub mod service;
pub mod store;
