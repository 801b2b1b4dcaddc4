//! Small helpers every domain uses: the clock, ids, random keys and the
//! environment our child processes inherit. Imports no domain.

use std::ffi::OsString;
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

pub use cowork_proto::secret::random_key;

/// Variables a child process (an MCP server, a `llama-server`) inherits
/// from agents-agent: what a program needs to run and find its files
/// (`PATH`, `HOME`, `LANG`, `TZ`, `TMPDIR`, `LC_*`, `XDG_*`), plus those
/// `also` accepts; nothing that may hold a credential.
pub fn inherited_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    also: impl Fn(&str) -> bool,
) -> Vec<(OsString, OsString)> {
    const EXACT: &[&str] = &["PATH", "HOME", "LANG", "TZ", "TMPDIR"];
    vars.into_iter()
        .filter(|(k, _)| {
            k.to_str().is_some_and(|k| {
                EXACT.contains(&k) || k.starts_with("LC_") || k.starts_with("XDG_") || also(k)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_and_long() {
        let (a, b) = (random_key("k").unwrap(), random_key("k").unwrap());
        assert!(a.starts_with("k-") && a.len() == 2 + 48);
        assert_ne!(a, b);
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let (a, b) = (new_id("m"), new_id("m"));
        assert!(a.starts_with("m-") && b.starts_with("m-"));
        assert_ne!(a, b);
    }
}
