//! Layer 1 context: the active window and recent windows as a system
//! block. Pure.

/// One activity, as Layer 1 shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The app's name.
    pub app: String,
    /// The window's title.
    pub title: String,
    /// The browser URL, when capture knows it.
    pub url: Option<String>,
    /// Still open: the window that has focus now.
    pub open: bool,
}

/// The system block for `recent` (newest first); None when there is
/// nothing to say.
pub fn block(recent: &[Window]) -> Option<String> {
    if recent.is_empty() {
        return None;
    }
    let mut out = String::from("What the user is working on (from Cowork's activity capture):\n");
    let describe = |w: &Window| match &w.url {
        Some(u) if !u.is_empty() => format!("{} — {} <{u}>", w.app, w.title),
        _ => format!("{} — {}", w.app, w.title),
    };
    if let Some(w) = recent.first().filter(|w| w.open) {
        out += &format!("- Active window now: {}\n", describe(w));
    }
    out += "- Recent windows, newest first:\n";
    for w in recent {
        out += &format!("  - {}\n", describe(w));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(app: &str, title: &str, url: Option<&str>, open: bool) -> Window {
        Window {
            app: app.into(),
            title: title.into(),
            url: url.map(Into::into),
            open,
        }
    }

    #[test]
    fn the_active_window_then_recent_ones() {
        assert_eq!(block(&[]), None, "no capture data: skipped");
        let ctx = block(&[
            w("Firefox", "Docs", Some("https://d.test"), true),
            w("Code", "main.rs", None, false),
        ])
        .unwrap();
        assert!(
            ctx.contains("Active window now: Firefox — Docs <https://d.test>"),
            "{ctx}"
        );
        assert!(ctx.contains("  - Code — main.rs\n"), "{ctx}");
        let closed = block(&[w("Code", "main.rs", Some(""), false)]).unwrap();
        assert!(!closed.contains("Active window"), "{closed}");
    }
}
