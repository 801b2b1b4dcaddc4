//! Cowork's wire contract and the plumbing every process shares.
//!
//! The generated gRPC code lives in [`pb`]; the rest is transport plumbing
//! with no domain logic: where files live ([`paths`]), serving and dialling
//! Unix sockets with peer checks ([`uds`]), the readiness signal
//! ([`ready`]), child-process lockfiles and the orphan sweep ([`lockfile`]),
//! a process's memory and CPU from the OS ([`procinfo`]), worker state
//! names and status fields ([`status`]), gRPC helpers ([`grpc`]), logging
//! ([`logging`]) and the skeleton every worker binary runs ([`worker`]).

pub mod backoff;
pub mod child;
pub mod files;
pub mod grpc;
pub mod lockfile;
pub mod logging;
pub mod net;
pub mod paths;
pub mod procinfo;
pub mod ready;
pub mod secret;
pub mod status;
pub mod traces;
pub mod uds;
pub mod worker;

/// Where one package's generated code finds another's messages: prost
/// names them `super::super::<domain>::v1::…` from inside `pb::<domain>`
/// (chat's messages carry memory's `Citation`).
#[doc(hidden)]
pub mod memory {
    /// `cowork.memory.v1`.
    pub mod v1 {
        pub use crate::pb::memory::*;
    }
}

/// Generated protobuf and gRPC code, one module per `cowork.<domain>.v1`.
pub mod pb {
    /// `cowork.system.v1`: the supervisor's own service.
    pub mod system {
        tonic::include_proto!("cowork.system.v1");
    }
    /// `cowork.worker.v1`: the contract every worker serves.
    pub mod worker {
        tonic::include_proto!("cowork.worker.v1");
    }
    /// `cowork.capture.v1`: capture-agent's domain.
    pub mod capture {
        tonic::include_proto!("cowork.capture.v1");
    }
    /// `cowork.chat.v1`: agents-agent's chat domain.
    pub mod chat {
        tonic::include_proto!("cowork.chat.v1");
    }
    /// `cowork.engines.v1`: agents-agent's local engine detection.
    pub mod engines {
        tonic::include_proto!("cowork.engines.v1");
    }
    /// `cowork.mcp.v1`: agents-agent's MCP servers and tools.
    pub mod mcp {
        tonic::include_proto!("cowork.mcp.v1");
    }
    /// `cowork.agents.v1`: agents-agent's operations and tool approvals.
    pub mod agents {
        tonic::include_proto!("cowork.agents.v1");
    }
    /// `cowork.models.v1`: agents-agent's model files, fit checks and hardware.
    pub mod models {
        tonic::include_proto!("cowork.models.v1");
    }
    /// `cowork.gateway.v1`: agents-agent's local OpenAI-compatible API.
    pub mod gateway {
        tonic::include_proto!("cowork.gateway.v1");
    }
    /// `cowork.memory.v1`: agents-agent's memory (indexing and search).
    pub mod memory {
        tonic::include_proto!("cowork.memory.v1");
    }
    /// `cowork.browser.v1`: browser-agent's domain.
    pub mod browser {
        tonic::include_proto!("cowork.browser.v1");
    }
    /// `cowork.automations.v1`: flows and their runs (agents-agent).
    pub mod automations {
        tonic::include_proto!("cowork.automations.v1");
    }
    /// `cowork.notifications.v1`: proactive notifications (agents-agent
    /// decides, coworkd dispatches).
    pub mod notifications {
        tonic::include_proto!("cowork.notifications.v1");
    }
    /// `cowork.thermal.v1`: the machine's heat (coworkd reads, agents-agent acts).
    pub mod thermal {
        tonic::include_proto!("cowork.thermal.v1");
    }
    /// `cowork.apps.v1`: installed web apps and their read lane (agents-agent).
    pub mod apps {
        tonic::include_proto!("cowork.apps.v1");
    }
    /// `cowork.audio.v1`: transcription of the audio stream (agents-agent).
    pub mod audio {
        tonic::include_proto!("cowork.audio.v1");
    }

    /// Encoded `FileDescriptorSet` of every Cowork proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/cowork_descriptor.bin"));
}

/// The version every binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
