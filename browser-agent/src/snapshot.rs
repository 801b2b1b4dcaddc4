//! Snapshots: the page as the short list of elements a model needs — role,
//! accessible name, value and state, each with the ref (`e12`) the next
//! action uses — rendered in a character budget. The walk itself runs in
//! the page (`page.js`, through iframes and open shadow roots); this module
//! is pure: elements in, text out.

use serde::Deserialize;

/// The in-page helper, installed once per document.
pub const PAGE_JS: &str = include_str!("page.js");

/// Deepest frame nesting shown as indentation.
pub const MAX_DEPTH: u32 = 8;

/// The default character budget.
pub const DEFAULT_MAX_CHARS: usize = 12_000;

/// One element as the page's walk reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Element {
    /// Its ref (empty for a note such as a cross-origin frame).
    #[serde(rename = "ref")]
    pub reference: String,
    /// ARIA role.
    pub role: String,
    /// Accessible name.
    pub name: String,
    /// Current value (masked in password and payment fields).
    pub value: String,
    /// checked, disabled, expanded, focused, level=2, ...
    pub states: Vec<String>,
    /// How many frames deep it sits.
    pub depth: u32,
}

/// What the walk returns.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PageElements {
    /// The document's URL.
    pub url: String,
    /// Its title.
    pub title: String,
    /// Its elements in document order.
    pub elements: Vec<Element>,
}

/// One element as a line: `- role "name" [e3]: value [state ...]`,
/// indented two spaces per frame.
pub fn line(e: &Element) -> String {
    // The page says how deep: never more indent than a few frames' worth.
    let mut s = "  ".repeat(e.depth.min(MAX_DEPTH) as usize);
    s.push_str("- ");
    s.push_str(&e.role);
    if !e.name.is_empty() {
        s.push_str(&format!(" {:?}", e.name));
    }
    if !e.reference.is_empty() {
        s.push_str(&format!(" [{}]", e.reference));
    }
    if !e.value.is_empty() {
        s.push_str(&format!(": {:?}", e.value));
    }
    if !e.states.is_empty() {
        s.push_str(&format!(" [{}]", e.states.join(" ")));
    }
    s
}

/// A rendered snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The lines.
    pub text: String,
    /// Elements shown.
    pub shown: usize,
    /// Elements left out to fit.
    pub elided: usize,
}

/// Render `elements` in at most `max_chars` characters (0: the default):
/// when they do not fit, the first two thirds of the budget and the last
/// third are kept, with one line saying how many were left out between.
pub fn render(elements: &[Element], max_chars: usize) -> Rendered {
    let max = if max_chars == 0 {
        DEFAULT_MAX_CHARS
    } else {
        max_chars
    };
    let lines: Vec<String> = elements.iter().map(line).collect();
    let size = |l: &String| l.chars().count() + 1;
    let total: usize = lines.iter().map(size).sum();
    if total <= max {
        return Rendered {
            text: lines.join("\n"),
            shown: lines.len(),
            elided: 0,
        };
    }
    // Room for the marker line.
    let budget = max.saturating_sub(100);
    let mut front = Vec::new();
    let mut used = 0;
    for l in &lines {
        if used + size(l) > budget * 2 / 3 {
            break;
        }
        used += size(l);
        front.push(l.clone());
    }
    let mut back = Vec::new();
    for l in lines[front.len()..].iter().rev() {
        if used + size(l) > budget {
            break;
        }
        used += size(l);
        back.push(l.clone());
    }
    back.reverse();
    let elided = lines.len() - front.len() - back.len();
    let mut out = front;
    out.push(format!(
        "- … {elided} elements elided (raise --max-chars, or scroll and snapshot again)"
    ));
    let shown = out.len() - 1 + back.len();
    out.extend(back);
    Rendered {
        text: out.join("\n"),
        shown,
        elided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(i: usize, role: &str, name: &str) -> Element {
        Element {
            reference: format!("e{i}"),
            role: role.into(),
            name: name.into(),
            value: String::new(),
            states: vec![],
            depth: 0,
        }
    }

    #[test]
    fn lines_name_role_ref_value_and_state() {
        let mut e = el(3, "textbox", "Email");
        e.value = "a@b.c".into();
        e.states = vec!["required".into(), "focused".into()];
        e.depth = 1;
        assert_eq!(
            line(&e),
            "  - textbox \"Email\" [e3]: \"a@b.c\" [required focused]"
        );
        assert_eq!(line(&el(1, "button", "")), "- button [e1]");
        let note = Element {
            reference: String::new(),
            role: "note".into(),
            name: "cross-origin frame (not shown)".into(),
            value: String::new(),
            states: vec![],
            depth: 1,
        };
        assert_eq!(line(&note), "  - note \"cross-origin frame (not shown)\"");
    }

    #[test]
    fn a_long_page_fits_its_budget_and_says_what_it_left_out() {
        let els: Vec<Element> = (1..=500)
            .map(|i| el(i, "link", &format!("Item {i}")))
            .collect();
        let small = render(&els[..3], 1000);
        assert_eq!(small.elided, 0);
        assert_eq!(small.text.lines().count(), 3);
        for max in [300, 1000, 5000] {
            let r = render(&els, max);
            assert!(
                r.text.chars().count() <= max,
                "{max}: {}",
                r.text.chars().count()
            );
            assert_eq!(r.shown + r.elided, 500);
            assert!(r.text.contains(&format!("{} elements elided", r.elided)));
            assert!(r.text.starts_with("- link \"Item 1\" [e1]"));
            assert!(r.text.ends_with("- link \"Item 500\" [e500]"));
        }
    }
}
