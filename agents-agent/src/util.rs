//! Small helpers every domain uses: the clock and ids. Imports no domain.

use std::sync::atomic::{AtomicU64, Ordering};

/// Now, Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new id with a prefix, unique in this process and across restarts
/// (time, pid and a counter).
pub fn new_id(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{:x}-{:x}-{:x}",
        now_ms(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prefixed() {
        let (a, b) = (new_id("m"), new_id("m"));
        assert!(a.starts_with("m-") && b.starts_with("m-"));
        assert_ne!(a, b);
    }
}
