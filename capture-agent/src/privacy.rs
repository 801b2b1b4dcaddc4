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
        if !self.redact.iter().any(|re| re.is_match(text)) {
            return Cow::Borrowed(text);
        }
        Cow::Owned(self.redact_split(text, "").0)
    }

    /// `a` and `b` redacted as the one text `a` + `b` (a chunk cut at the
    /// cap, and what was typed next), then split again where `a` ended. A
    /// match spanning the cut is replaced whole and its replacement goes to
    /// `a`'s side, so neither half keeps part of the secret.
    pub fn redact_split(&self, a: &str, b: &str) -> (String, String) {
        let mut text = format!("{a}{b}");
        let mut cut = a.len();
        for re in &self.redact {
            if !re.is_match(&text) {
                continue;
            }
            let mut out = String::with_capacity(text.len());
            let mut new_cut = None;
            let mut last = 0;
            for caps in re.captures_iter(&text) {
                let Some(m) = caps.get(0) else { continue };
                if new_cut.is_none() && cut <= m.start() {
                    new_cut = Some(out.len() + (cut - last));
                }
                out.push_str(&text[last..m.start()]);
                if re.captures_len() > 1 {
                    out.push_str(caps.get(1).map_or("", |g| g.as_str()));
                }
                out.push_str(REDACTED);
                if new_cut.is_none() && cut < m.end() {
                    new_cut = Some(out.len());
                }
                last = m.end();
            }
            let new_cut = new_cut.unwrap_or_else(|| out.len() + (cut - last));
            out.push_str(&text[last..]);
            text = out;
            cut = new_cut;
        }
        let b = text.split_off(cut);
        (text, b)
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
    fn a_secret_spanning_the_cut_is_redacted_on_both_sides() {
        let p = Privacy::new(Vec::new(), vec![r"\b\d{4}(?:[ -]?\d{4}){3}\b".to_string()]).unwrap();
        let card = "4111 1111 1111 1111";
        for cut in 1..card.len() {
            let a = format!("pay with {}", &card[..cut]);
            let b = format!("{} today", &card[cut..]);
            let (ra, rb) = p.redact_split(&a, &b);
            assert_eq!(
                format!("{ra}{rb}"),
                "pay with [redacted] today",
                "cut at {cut}"
            );
            assert_eq!(
                ra, "pay with [redacted]",
                "the replacement stays on a's side"
            );
            assert!(
                !ra.contains('1') && !rb.contains('1'),
                "cut at {cut}: {ra:?} {rb:?}"
            );
        }
        // Matches on one side only stay there; the rest is unchanged.
        let (ra, rb) = p.redact_split("4111111111111111 and ", "then 4111111111111111");
        assert_eq!(
            (ra.as_str(), rb.as_str()),
            ("[redacted] and ", "then [redacted]")
        );
        assert_eq!(
            p.redact_split("no", " secret"),
            ("no".into(), " secret".into())
        );
        // A capture group keeps its prefix, on the side the match began.
        let p = Privacy::default();
        let (ra, rb) = p.redact_split("https://x.test/?tok", "en=abc&x=1");
        assert_eq!(
            (ra.as_str(), rb.as_str()),
            ("https://x.test/?token=[redacted]", "&x=1")
        );
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
