//! Model lifecycle (issue 6, in progress): GGUF metadata and the fit
//! check. Pure: no I/O beyond what the caller hands in.

pub mod fit;
pub mod gguf;
