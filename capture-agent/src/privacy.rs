//! The privacy filter applied before anything is written: the app denylist
//! and redaction patterns.

use crate::event::WindowInfo;
use regex::Regex;
use std::borrow::Cow;

/// Apps never recorded by default: password managers and key stores. Matched
/// case-insensitively against the app name and the app id.
pub const DEFAULT_DENYLIST: &[&str] = &[
    "1password",
    "com.1password.1password",
    "bitwarden",
    "com.bitwarden.desktop",
    "keepassxc",
    "org.keepassxc.keepassxc",
    "keepass",
    "keepass2",
    "lastpass",
    "dashlane",
    "enpass",
    "keeper password manager",
    "proton pass",
    "seahorse",
    "org.gnome.seahorse.application",
    "kwalletmanager5",
    "kwalletmanager",
    "keychain access",
    "com.apple.keychainaccess",
    "passwords",
    "com.apple.passwords",
    "pinentry",
    "pinentry-gtk-2",
    "pinentry-gnome3",
    "pinentry-qt",
    "gcr-prompter",
    "ssh-askpass",
    "polkit-gnome-authentication-agent-1",
    "polkit-kde-authentication-agent-1",
];

/// Redaction applied to titles, URLs, keystroke and clipboard text by
/// default: credentials in URL query strings.
pub const DEFAULT_REDACT: &[&str] = &[
    r"(?i)([?&#](?:access_token|id_token|refresh_token|token|api_key|apikey|key|password|passwd|pwd|secret|client_secret|sig|signature|code|auth|session)=)[^&#\s]+",
];

/// What replaces a redacted match (or the whole match's value part).
pub const REDACTED: &str = "[redacted]";

/// A redaction pattern that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("redact pattern {pattern:?} is invalid: {source}")]
pub struct BadPattern {
    /// The pattern as configured.
    pub pattern: String,
    /// What the regex compiler said.
    pub source: regex::Error,
}

/// The app denylist and the redaction patterns.
#[derive(Debug, Clone)]
pub struct Privacy {
    sources: (Vec<String>, Vec<String>),
    denylist: Vec<String>,
    redact: Vec<Regex>,
}

impl Default for Privacy {
    fn default() -> Self {
        Self::new(
            DEFAULT_DENYLIST.iter().map(|s| s.to_string()),
            DEFAULT_REDACT.iter().map(|s| s.to_string()),
        )
        .expect("default patterns compile")
    }
}

impl Privacy {
    /// Build from configured apps and patterns. A pattern with a capture
    /// group keeps group 1 and redacts the rest of the match (so
    /// `token=SECRET` becomes `token=[redacted]`); without one the whole
    /// match is replaced.
    pub fn new(
        denylist: impl IntoIterator<Item = String>,
        redact: impl IntoIterator<Item = String>,
    ) -> Result<Self, BadPattern> {
        let patterns: Vec<String> = redact.into_iter().collect();
        let redact = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|source| BadPattern {
                    pattern: p.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        let denylist: Vec<String> = denylist.into_iter().map(|s| s.to_lowercase()).collect();
        Ok(Self {
            sources: (denylist.clone(), patterns),
            denylist,
            redact,
        })
    }

    /// Do both filters have the same apps and patterns?
    pub fn same_rules(&self, other: &Privacy) -> bool {
        self.sources == other.sources
    }

    /// Is this window's app on the denylist?
    pub fn is_denied(&self, w: &WindowInfo) -> bool {
        let app = w.app.to_lowercase();
        let id = w.app_id.to_lowercase();
        self.denylist
            .iter()
            .any(|d| (!app.is_empty() && *d == app) || (!id.is_empty() && *d == id))
    }

    /// Is an app of this name or id on the denylist?
    pub fn is_denied_name(&self, name: &str) -> bool {
        let n = name.to_lowercase();
        !n.is_empty() && self.denylist.contains(&n)
    }

    /// `text` with every redaction pattern applied.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for re in &self.redact {
            if !re.is_match(&out) {
                continue;
            }
            let replaced = if re.captures_len() > 1 {
                re.replace_all(&out, |c: &regex::Captures<'_>| {
                    format!("{}{REDACTED}", c.get(1).map_or("", |m| m.as_str()))
                })
            } else {
                re.replace_all(&out, REDACTED)
            };
            out = Cow::Owned(replaced.into_owned());
        }
        out
    }

    /// The window with its title and URL redacted.
    pub fn redact_window(&self, w: WindowInfo) -> WindowInfo {
        WindowInfo {
            title: self.redact(&w.title).into_owned(),
            url: w.url.map(|u| self.redact(&u).into_owned()),
            ..w
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(app: &str, id: &str) -> WindowInfo {
        WindowInfo {
            app: app.into(),
            app_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn password_managers_are_denied_by_default() {
        let p = Privacy::default();
        assert!(p.is_denied(&win("KeePassXC", "keepassxc")));
        assert!(p.is_denied(&win("Something", "com.1password.1password")));
        assert!(!p.is_denied(&win("Firefox", "firefox")));
        assert!(!p.is_denied(&win("", "")));
    }

    #[test]
    fn url_secrets_are_redacted_by_default() {
        let p = Privacy::default();
        assert_eq!(
            p.redact("https://x.test/cb?code=abc123&state=ok&token=zz"),
            "https://x.test/cb?code=[redacted]&state=ok&token=[redacted]"
        );
        assert!(matches!(p.redact("plain title"), Cow::Borrowed(_)));
    }

    #[test]
    fn custom_patterns_without_groups_replace_the_match() {
        let p = Privacy::new(Vec::new(), vec![r"\b\d{4}-\d{4}\b".to_string()]).unwrap();
        assert_eq!(p.redact("card 1234-5678 ok"), "card [redacted] ok");
    }

    #[test]
    fn a_bad_pattern_is_a_clear_error() {
        let e = Privacy::new(Vec::new(), vec!["(".to_string()]).unwrap_err();
        assert!(e.to_string().contains("\"(\""), "{e}");
    }
}
