//! What the model is told about the person's work. Layer 1: the active
//! window and recent windows, read from capture's tables (read only; capture
//! owns them) by [`store`] and written as a system block by [`layer1`].
//! Memory and RAG join here.

pub mod layer1;
pub mod store;
