//! What an MCP server can make us hold, and what it sees of us. Pure.
//!
//! A stdio server starts with a cleared environment: only
//! [`inherited_env`]'s allow-list, plus the variables and secrets it was
//! configured with (the cloud keys agents-agent may hold never reach it).
//! One line it writes is at most [`MAX_LINE`] (then the connection is an
//! error); its tool list at most [`MAX_TOOLS`] tools and [`MAX_TOOLS_BYTES`]
//! in [`MAX_TOOL_PAGES`] pages within [`LIST_TIMEOUT`];
//! a result's text at most [`MAX_RESULT_TEXT`]; an audit row's fields at
//! most [`MAX_AUDIT_FIELD`], each cut with its original size recorded.

use std::ffi::OsString;

/// Longest line read from a stdio server.
pub const MAX_LINE: usize = 16 << 20;
/// Most tools one server may list.
pub const MAX_TOOLS: usize = 1000;
/// Most bytes of tool definitions (JSON) one server may list.
pub const MAX_TOOLS_BYTES: usize = 4 << 20;
/// Most pages one tool list may come in.
pub const MAX_TOOL_PAGES: usize = 100;
/// How long listing every page may take.
pub const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest text of one result kept.
pub const MAX_RESULT_TEXT: usize = 1 << 20;
/// Longest arguments or error text in one audit row.
pub const MAX_AUDIT_FIELD: usize = 64 << 10;

/// Variables a stdio server inherits from agents-agent: what a program
/// needs to run and find its files, nothing that may hold a credential.
pub fn inherited_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    crate::util::inherited_env(vars, |_| false)
}

/// `s` cut to at most `max` bytes (at a character boundary), saying how
/// long it was.
pub fn truncate_recorded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [truncated: {} bytes in all]", &s[..end], s.len())
}

/// The bytes since the last newline after reading `chunk`, or `None` when
/// that passes [`MAX_LINE`].
pub fn line_after(since_newline: usize, chunk: &[u8]) -> Option<usize> {
    let n = match chunk.iter().rposition(|b| *b == b'\n') {
        Some(i) => chunk.len() - i - 1,
        None => since_newline.saturating_add(chunk.len()),
    };
    (n <= MAX_LINE).then_some(n)
}

/// Why a tool list is refused, if it is: too many tools or too big.
pub fn check_tools(count: usize, bytes: usize) -> Result<(), String> {
    if count > MAX_TOOLS {
        return Err(format!(
            "the server lists over {MAX_TOOLS} tools ({count} so far)"
        ));
    }
    if bytes > MAX_TOOLS_BYTES {
        return Err(format!(
            "the server's tool list is over {MAX_TOOLS_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allow_list_is_inherited() {
        let vars = [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "TZ",
            "TMPDIR",
            "XDG_RUNTIME_DIR",
            "GEMINI_API_KEY",
            "OPENROUTER_API_KEY",
            "COWORK_HOME",
            "AWS_SECRET_ACCESS_KEY",
            "PATHX",
        ]
        .map(|k| (OsString::from(k), OsString::from("v")));
        let kept: Vec<_> = inherited_env(vars)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "HOME",
                "LANG",
                "LC_ALL",
                "TZ",
                "TMPDIR",
                "XDG_RUNTIME_DIR"
            ]
        );
    }

    #[test]
    fn long_texts_are_cut_with_their_size_and_lines_are_bounded() {
        assert_eq!(truncate_recorded("short", 10), "short");
        let t = truncate_recorded(&"é".repeat(10), 5);
        assert!(t.starts_with("éé…"), "{t}");
        assert!(t.ends_with("[truncated: 20 bytes in all]"), "{t}");
        assert_eq!(line_after(5, b"abc"), Some(8));
        assert_eq!(line_after(MAX_LINE, b"x\nab"), Some(2));
        assert_eq!(line_after(MAX_LINE, b"x"), None);
        assert!(check_tools(MAX_TOOLS, MAX_TOOLS_BYTES).is_ok());
        assert!(check_tools(MAX_TOOLS + 1, 0).is_err());
        assert!(check_tools(1, MAX_TOOLS_BYTES + 1).is_err());
    }
}
