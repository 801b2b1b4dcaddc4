//! Engines we run ourselves: one `llama-server` process per loaded model
//! (Jan's model). Pure and unit tested: the deterministic argument builder
//! and the environment a server sees ([`args`]), reading readiness and
//! failure from its output ([`output`]), and the session registry
//! ([`registry`]). Runtime: one supervised server process ([`process`])
//! and the sessions that lease, restart and unload them ([`sessions`]).

pub mod args;
pub mod output;
pub mod process;
pub mod registry;
pub mod sessions;

/// What a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `/v1/chat/completions` and `/v1/completions`.
    Chat,
    /// `/v1/embeddings` (llama.cpp `--embedding`).
    Embedding,
}

impl Mode {
    /// "chat" or "embedding", as `models sessions` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Chat => "chat",
            Mode::Embedding => "embedding",
        }
    }
}
