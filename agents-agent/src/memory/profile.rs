//! Working memory: the person's profile, always in the model's context
//! (seed 003 "Memory System"). Pure: keys, values, and who may replace
//! whom — the person's own words are never superseded by an inferred
//! value; every change supersedes the old row, which is kept with when.

use std::fmt;

/// The keys the profile is made of (others are allowed), in the order
/// they are shown.
pub const KEYS: [&str; 6] = [
    "name",
    "role",
    "preferences",
    "goals",
    "communication_style",
    "projects",
];

/// The longest key (bytes).
pub const MAX_KEY: usize = 64;
/// The longest value (bytes).
pub const MAX_VALUE: usize = 2000;
/// Keys in a profile, at most.
pub const MAX_ENTRIES: usize = 64;

/// Who wrote a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The person (`memory profile set`).
    Person,
    /// The local model, from conversations and activity.
    Inferred,
}

impl Origin {
    /// Its name (the table, the proto).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Person => "person",
            Origin::Inferred => "inferred",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(Origin::Person),
            "inferred" => Some(Origin::Inferred),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Who wrote it.
    pub origin: Origin,
    /// When (Unix ms).
    pub updated_ms: i64,
}

/// A key as stored: trimmed, lower case, spaces and dashes as `_`;
/// refused unless letters, digits and `_`, at most [`MAX_KEY`] bytes.
pub fn key(raw: &str) -> Result<String, String> {
    let k: String = raw
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    if k.is_empty() || k.len() > MAX_KEY || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "a profile key is 1 to {MAX_KEY} letters, digits or _ (e.g. {}), not {raw:?}",
            KEYS.join(", ")
        ));
    }
    Ok(k)
}

/// A value as stored: trimmed, no control characters but newlines, at
/// most [`MAX_VALUE`] bytes, not empty (unset a key instead).
pub fn value(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err("the value is empty: use `memory profile unset KEY` to remove a key".into());
    }
    if v.len() > MAX_VALUE {
        return Err(format!("the value is {} bytes, over {MAX_VALUE}", v.len()));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err("the value has control characters".into());
    }
    Ok(v.to_owned())
}

/// What writing `value` by `origin` over `current` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Supersede the current value (or add the key).
    Supersede,
    /// The same value is there already.
    Unchanged,
    /// The person wrote the current value: an inferred one never
    /// replaces it.
    KeepPersons,
}

/// The rule: the person's own words win over inference; anything else
/// supersedes.
pub fn write(current: Option<&Entry>, value: &str, origin: Origin) -> Write {
    match current {
        Some(c) if c.value == value && c.origin == origin => Write::Unchanged,
        Some(c) if c.origin == Origin::Person && origin == Origin::Inferred => Write::KeepPersons,
        _ => Write::Supersede,
    }
}

/// The known keys first, in [`KEYS`] order, then the others by name.
pub fn sort(entries: &mut [Entry]) {
    let rank = |k: &str| KEYS.iter().position(|x| *x == k).unwrap_or(KEYS.len());
    entries.sort_by(|a, b| rank(&a.key).cmp(&rank(&b.key)).then(a.key.cmp(&b.key)));
}

/// The profile as the model reads it ("name: Ann"), None when empty.
pub fn render(entries: &[Entry]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let mut out = String::from("Working memory (the person's profile):");
    for e in entries {
        out += &format!("\n{}: {}", e.key.replace('_', " "), e.value);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, origin: Origin) -> Entry {
        Entry {
            key: key.into(),
            value: value.into(),
            origin,
            updated_ms: 0,
        }
    }

    #[test]
    fn the_persons_words_are_never_superseded_by_inference() {
        let mine = entry("name", "Ann", Origin::Person);
        assert_eq!(
            write(Some(&mine), "Anna", Origin::Inferred),
            Write::KeepPersons
        );
        assert_eq!(write(Some(&mine), "Anne", Origin::Person), Write::Supersede);
        assert_eq!(write(Some(&mine), "Ann", Origin::Person), Write::Unchanged);
        let guess = entry("role", "dev", Origin::Inferred);
        assert_eq!(
            write(Some(&guess), "lead", Origin::Inferred),
            Write::Supersede
        );
        assert_eq!(
            write(Some(&guess), "lead", Origin::Person),
            Write::Supersede
        );
        assert_eq!(write(None, "x", Origin::Inferred), Write::Supersede);
    }

    #[test]
    fn keys_and_values_are_checked_and_shown_in_order() {
        assert_eq!(key(" Communication Style ").unwrap(), "communication_style");
        assert!(key("../etc").is_err());
        assert!(key("").is_err());
        assert!(value("  ").is_err());
        assert!(value("a\u{7}b").is_err());
        assert_eq!(value(" two\nlines ").unwrap(), "two\nlines");
        let mut e = vec![
            entry("zeta", "z", Origin::Person),
            entry("goals", "ship", Origin::Person),
            entry("name", "Ann", Origin::Inferred),
        ];
        sort(&mut e);
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["name", "goals", "zeta"]);
        assert_eq!(
            render(&e).unwrap(),
            "Working memory (the person's profile):\nname: Ann\ngoals: ship\nzeta: z"
        );
    }
}
