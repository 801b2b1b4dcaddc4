//! coworkd: the supervisor and router of the Cowork daemon suite, and the
//! pieces coworkctl shares with it.
//!
//! Pure domain modules: [`backoff`], [`state`], [`route`], [`config`]
//! (parsing). Runtime: [`supervisor`] drives worker
//! processes, [`relay`] serves the public socket, [`system_service`] adapts
//! the System proto, [`ctl`] renders coworkctl's output.

pub mod backoff;
pub mod config;
pub mod ctl;
pub mod ctl_capture;
pub mod ctl_engines;
pub mod ctl_mcp;
pub mod ctl_models;
pub mod relay;
pub mod route;
pub mod state;
pub mod supervisor;
pub mod system_service;
