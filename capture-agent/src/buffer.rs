//! The activity buffer (seed: "Activity buffer"): finished activities wait
//! in a bounded 5-slot queue that flushes itself when full, so rapid window
//! switching never grows memory.

use crate::record::ActivityRow;

/// Slots in the activity buffer.
pub const ACTIVITY_SLOTS: usize = 5;

/// A bounded queue of finished activities.
#[derive(Debug, Default)]
pub struct ActivityBuffer {
    slots: Vec<ActivityRow>,
}

impl ActivityBuffer {
    /// Queue a finished activity; returns the whole batch when the buffer
    /// is full (`autoFlushIfNeeded`).
    #[must_use]
    pub fn push(&mut self, row: ActivityRow) -> Option<Vec<ActivityRow>> {
        self.slots.push(row);
        if self.slots.len() >= ACTIVITY_SLOTS {
            Some(self.drain())
        } else {
            None
        }
    }

    /// Everything queued.
    pub fn drain(&mut self) -> Vec<ActivityRow> {
        std::mem::replace(&mut self.slots, Vec::with_capacity(ACTIVITY_SLOTS))
    }

    /// Activities waiting.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Nothing waiting?
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64) -> ActivityRow {
        ActivityRow {
            id,
            app: "a".into(),
            app_id: "a".into(),
            title: String::new(),
            url: None,
            started_ms: 0,
            ended_ms: Some(1),
            end_reason: Some("switch"),
            focus_session_id: None,
        }
    }

    #[test]
    fn flushes_itself_at_five_and_never_holds_more() {
        let mut b = ActivityBuffer::default();
        for id in 1..5 {
            assert!(b.push(row(id)).is_none());
        }
        let batch = b.push(row(5)).unwrap();
        assert_eq!(
            batch.iter().map(|r| r.id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(b.is_empty());
        assert!(b.push(row(6)).is_none());
        assert_eq!(b.drain().len(), 1);
    }
}
