//! Engines we run ourselves: one `llama-server` process per loaded model
//! (Jan's model, issue 15). This first part is pure and unit tested: the
//! deterministic argument builder ([`args`]), reading readiness and
//! failure from the server's output ([`output`]), and the session registry
//! ([`registry`]). The process supervision, `coworkctl models
//! load/unload/sessions` and routing to sessions build on these.

pub mod args;
pub mod output;
pub mod registry;

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
