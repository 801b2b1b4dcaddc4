//! Sources: where desktop events come from, behind one trait. X11 and the
//! simulation source live here; a macOS source (NSWorkspace, CGEventTap,
//! NSPasteboard) would implement the same trait behind
//! `cfg(target_os = "macos")`.

pub mod keymap;
pub mod sim;
#[cfg(target_os = "linux")]
pub mod x11;

use crate::event::{SourceEvent, TimedEvent, Wants};
use std::sync::Arc;

/// What a source tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceMsg {
    /// Something happened.
    Event(TimedEvent),
    /// The source's state changed: `Ok(detail)` or `Err(reason)` (the worker
    /// reports itself degraded with that reason).
    Health(Result<String, String>),
}

/// Where a source sends what it reads. Returns false once the engine is
/// gone, so a source thread can end.
#[derive(Clone)]
pub struct Sink(Arc<dyn Fn(SourceMsg) -> bool + Send + Sync>);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl Sink {
    /// A sink calling `f` for every message.
    pub fn new(f: impl Fn(SourceMsg) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
    /// Report an event at `at_ms` (Unix ms).
    pub fn event(&self, at_ms: i64, event: SourceEvent) -> bool {
        (self.0)(SourceMsg::Event(TimedEvent { at_ms, event }))
    }
    /// Report the source healthy, with a detail for status.
    pub fn healthy(&self, detail: impl Into<String>) -> bool {
        (self.0)(SourceMsg::Health(Ok(detail.into())))
    }
    /// Report the source degraded, with a reason a person can act on.
    pub fn degraded(&self, reason: impl Into<String>) -> bool {
        (self.0)(SourceMsg::Health(Err(reason.into())))
    }
}

/// A source that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A producer of desktop events.
pub trait Source: Send {
    /// "x11", "sim", ...
    fn name(&self) -> &'static str;
    /// Start reading what `wants` asks for, sending to `sink`.
    fn start(&mut self, wants: Wants, sink: Sink) -> Result<(), SourceError>;
    /// Consent changed: read only what `wants` asks for from now on (a
    /// stream that is off is not read at all).
    fn set_wants(&mut self, wants: Wants);
}

/// Wants packed in an atomic, shared with source threads.
#[derive(Debug, Default)]
pub struct SharedWants(std::sync::atomic::AtomicU8);

impl SharedWants {
    /// Store `w`.
    pub fn set(&self, w: Wants) {
        let bits = u8::from(w.window)
            | u8::from(w.idle) << 1
            | u8::from(w.keys) << 2
            | u8::from(w.clipboard) << 3;
        self.0.store(bits, std::sync::atomic::Ordering::SeqCst);
    }
    /// The current wants.
    pub fn get(&self) -> Wants {
        let b = self.0.load(std::sync::atomic::Ordering::SeqCst);
        Wants {
            window: b & 1 != 0,
            idle: b & 2 != 0,
            keys: b & 4 != 0,
            clipboard: b & 8 != 0,
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
