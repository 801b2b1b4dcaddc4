//! coworkd: the supervisor and router of the Cowork daemon suite.
//! (coworkctl, the command-line client, is a binary of this package with
//! modules of its own under `src/bin/coworkctl/`.)
//!
//! Pure domain modules: [`backoff`], [`state`], [`route`], [`config`]
//! (parsing). Runtime: [`supervisor`] drives worker processes, [`relay`]
//! serves the public socket, [`system_service`] adapts the System proto.

/// The restart policy (shared with agents-agent's llama-server sessions).
pub use cowork_proto::backoff;
pub mod config;
pub mod desktop;
pub mod relay;
pub mod route;
pub mod state;
pub mod supervisor;
pub mod system_service;
pub mod thermal;
pub mod ui;
