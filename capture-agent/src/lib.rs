//! capture-agent: records what the person works on into cowork.db, as
//! independent, consented capture streams.
//!
//! Domain (pure, no SQL, no gRPC): [`event`], [`privacy`], [`chunker`],
//! [`buffer`], [`pipeline`], [`source::keymap`], [`audio::vad`]. Adapters:
//! [`source`] (X11, simulation), [`audio`] (the microphone, segment
//! files), [`store`] (SQLite), [`engine`] (the thread tying them
//! together), [`service`] (gRPC).

pub mod audio;
pub mod buffer;
pub mod chunker;
pub mod config;
pub mod engine;
pub mod event;
pub mod pipeline;
pub mod privacy;
pub mod record;
pub mod service;
pub mod source;
pub mod store;
