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
        Cow::Owned(self.redact_parts(&[text]).concat())
    }

    /// `parts` redacted as the one text they make together (chunks cut at
    /// the cap, in order), then split again where each part ended. A match
    /// spanning a cut is replaced whole and its replacement goes to the
    /// part where it began, so no part keeps a piece of the secret.
    pub fn redact_parts(&self, parts: &[&str]) -> Vec<String> {
        let mut text = parts.concat();
        // Where each part but the last ends.
        let mut cuts: Vec<usize> = parts
            .iter()
            .scan(0, |end, p| {
                *end += p.len();
                Some(*end)
            })
            .collect();
        cuts.pop();
        for re in &self.redact {
            if !re.is_match(&text) {
                continue;
            }
            let mut out = String::with_capacity(text.len());
            let mut moved: Vec<usize> = Vec::with_capacity(cuts.len());
            let mut last = 0;
            for caps in re.captures_iter(&text) {
                let Some(m) = caps.get(0) else { continue };
                // Cuts in the text before the match keep their offset in it.
                while let Some(&c) = cuts.get(moved.len()).filter(|c| **c <= m.start()) {
                    moved.push(out.len() + (c - last));
                }
                out.push_str(&text[last..m.start()]);
                if re.captures_len() > 1 {
                    out.push_str(caps.get(1).map_or("", |g| g.as_str()));
                }
                out.push_str(REDACTED);
                // Cuts inside the match go after its replacement.
                while cuts.get(moved.len()).is_some_and(|c| *c < m.end()) {
                    moved.push(out.len());
                }
                last = m.end();
            }
            while let Some(&c) = cuts.get(moved.len()) {
                moved.push(out.len() + (c - last));
            }
            out.push_str(&text[last..]);
            text = out;
            cuts = moved;
        }
        let mut out = Vec::with_capacity(parts.len());
        let mut start = 0;
        for c in cuts {
            out.push(text[start..c].to_owned());
            start = c;
        }
        out.push(text[start..].to_owned());
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
    fn a_secret_spanning_the_cut_is_redacted_on_both_sides() {
        let p = Privacy::new(Vec::new(), vec![r"\b\d{4}(?:[ -]?\d{4}){3}\b".to_string()]).unwrap();
        let card = "4111 1111 1111 1111";
        for cut in 1..card.len() {
            let a = format!("pay with {}", &card[..cut]);
            let b = format!("{} today", &card[cut..]);
            let [ra, rb] = split(&p, &a, &b);
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
        let [ra, rb] = split(&p, "4111111111111111 and ", "then 4111111111111111");
        assert_eq!(
            (ra.as_str(), rb.as_str()),
            ("[redacted] and ", "then [redacted]")
        );
        assert_eq!(
            split(&p, "no", " secret"),
            ["no".to_string(), " secret".to_string()]
        );
        // A capture group keeps its prefix, on the side the match began.
        let p = Privacy::default();
        let [ra, rb] = split(&p, "https://x.test/?tok", "en=abc&x=1");
        assert_eq!(
            (ra.as_str(), rb.as_str()),
            ("https://x.test/?token=[redacted]", "&x=1")
        );
        // An open-ended pattern that matches the first part alone still
        // takes the rest of the secret from the next; three parts (a key
        // across two cuts) too.
        let p = Privacy::new(Vec::new(), vec![r"sk-[A-Za-z0-9]{20,}".to_string()]).unwrap();
        let key = format!("sk-{}", "a1B2".repeat(10));
        let parts = p.redact_parts(&[&format!("key {}", &key[..30]), &key[30..], " ok"]);
        assert_eq!(parts, ["key [redacted]", "", " ok"]);
        let parts = p.redact_parts(&[&key[..10], &key[10..20], &format!("{} end", &key[20..])]);
        assert_eq!(parts, ["[redacted]", "", " end"]);
    }

    fn split(p: &Privacy, a: &str, b: &str) -> [String; 2] {
        let v = p.redact_parts(&[a, b]);
        [v[0].clone(), v[1].clone()]
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
