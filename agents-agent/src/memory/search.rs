//! How a person's query becomes an FTS5 query, and how chunk hits become
//! source hits. Pure.

use std::collections::HashMap;

/// Words too common to help a keyword search (they match nearly every
/// row, which only slows BM25 down). Kept when the query is nothing else.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had",
    "has", "have", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "that", "the",
    "this", "to", "was", "were", "what", "when", "where", "which", "who", "with", "you",
];

/// The FTS5 query for `text`: every word (a file name, URL or error code
/// is one quoted phrase, so `main.rs` matches "main rs" in that order;
/// a word ending in `*` matches by prefix, `invoi*` → invoices), any of
/// them matching (BM25 ranks rows with more and rarer words first); None
/// when there is nothing to search for.
pub fn fts_query(text: &str) -> Option<String> {
    let mut terms: Vec<(String, bool)> = Vec::new();
    for word in text.split_whitespace() {
        let w = word.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let stop = STOPWORDS.contains(&w.to_lowercase().as_str());
        let prefix = word.ends_with('*') && word.trim_end_matches('*').ends_with(w);
        let star = if prefix { "*" } else { "" };
        let phrase = format!("\"{}\"{star}", w.replace('"', "\"\""));
        if !terms.iter().any(|t| t.0 == phrase) {
            terms.push((phrase, stop));
        }
    }
    let content: Vec<&str> = terms
        .iter()
        .filter(|t| !t.1)
        .map(|t| t.0.as_str())
        .collect();
    let chosen: Vec<&str> = if content.is_empty() {
        terms.iter().map(|t| t.0.as_str()).collect()
    } else {
        content
    };
    (!chosen.is_empty()).then(|| chosen.join(" OR "))
}

/// A question's content words, lower case (stopwords left out; all its
/// words when it is nothing else), once each.
pub fn content_terms(text: &str) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let w = word.to_lowercase();
        if !w.is_empty() && !all.contains(&w) {
            all.push(w);
        }
    }
    let content: Vec<String> = all
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    if content.is_empty() {
        all
    } else {
        content
    }
}

/// Hits of one list folded to one per source (a document's chunks are one
/// hit): `(source key, best item id, its score)`, best first. `source_of`
/// names an item's source; items it does not know are dropped.
pub fn per_source(
    hits: &[(i64, f64)],
    source_of: &HashMap<i64, String>,
    keys: &mut HashMap<String, i64>,
) -> Vec<(i64, i64, f64)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for &(id, score) in hits {
        let Some(source) = source_of.get(&id) else {
            continue;
        };
        let next = keys.len() as i64;
        let key = *keys.entry(source.clone()).or_insert(next);
        if seen.insert(key) {
            out.push((key, id, score));
        }
    }
    out
}

/// The words of a query to mark in a hit's snippet: its words (not the
/// stopwords, unless that is all it has), lower-cased, as prefixes about
/// as long as their stem (`deficiency` marks `deficient` too).
pub fn highlight_terms(text: &str) -> Vec<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let content: Vec<&String> = words
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    let chosen = if content.is_empty() {
        words.iter().collect()
    } else {
        content
    };
    let mut out: Vec<String> = Vec::new();
    for w in chosen {
        let n = w.chars().count();
        let keep = if n <= 4 { n } else { (n * 3 / 4).max(4) };
        let stem: String = w.chars().take(keep).collect();
        if !out.contains(&stem) {
            out.push(stem);
        }
    }
    out
}

/// About `width` characters of `text` around its first word matching one
/// of `terms` (see [`highlight_terms`]; a term of four characters or
/// fewer must match a whole word), each matching word in [brackets], on
/// one line; the start of the text when nothing matches; "…" where cut.
pub fn snippet(text: &str, terms: &[String], width: usize) -> String {
    // Words as byte ranges.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                words.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, text.len()));
    }
    let hit = |&(s, e): &(usize, usize)| {
        let w = text[s..e].to_lowercase();
        terms.iter().any(|t| {
            if t.chars().count() <= 4 {
                w == *t
            } else {
                w.starts_with(t.as_str())
            }
        })
    };
    let marked: Vec<bool> = words.iter().map(hit).collect();
    // The window: a third of it before the first match.
    let first = marked.iter().position(|m| *m).map_or(0, |i| words[i].0);
    let before = text[..first]
        .char_indices()
        .rev()
        .nth(width / 3)
        .map_or(0, |(i, _)| i);
    let from = if before == 0 {
        0
    } else {
        // Start at a word.
        words
            .iter()
            .map(|w| w.0)
            .find(|&s| s >= before)
            .unwrap_or(first)
    };
    let to = text[from..]
        .char_indices()
        .nth(width)
        .map_or(text.len(), |(i, _)| from + i);
    let to = if to == text.len() {
        to
    } else {
        // End after a word.
        words
            .iter()
            .rev()
            .map(|w| w.1)
            .find(|&e| e <= to && e > from)
            .unwrap_or(to)
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for (w, m) in words.iter().zip(&marked) {
        if w.0 < from || w.1 > to || !m {
            continue;
        }
        out.push_str(&text[at..w.0]);
        out.push('[');
        out.push_str(&text[w.0..w.1]);
        out.push(']');
        at = w.1;
    }
    out.push_str(&text[at..to]);
    if to < text.len() {
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_every_word_and_drop_stopwords() {
        assert_eq!(
            fts_query("What is the error E0432 in main.rs?").unwrap(),
            "\"error\" OR \"E0432\" OR \"main.rs\""
        );
        assert_eq!(
            fts_query("the the").unwrap(),
            "\"the\"",
            "only stopwords: kept"
        );
        assert_eq!(fts_query(" ?! "), None);
        assert_eq!(fts_query("say \"hi\"").unwrap(), "\"say\" OR \"hi\"");
        assert_eq!(
            fts_query("a\"b").unwrap(),
            "\"a\"\"b\"",
            "a quote inside is escaped"
        );
        assert_eq!(
            fts_query("invoi* draft").unwrap(),
            "\"invoi\"* OR \"draft\""
        );
        assert_eq!(
            fts_query("note*s").unwrap(),
            "\"note*s\"",
            "a star inside is not a prefix"
        );
    }

    #[test]
    fn snippets_mark_the_query_words_around_the_first_match() {
        let terms = highlight_terms("What is the deficiency of vitamin D?");
        assert_eq!(terms, vec!["deficie", "vitam", "d"]);
        let text = format!(
            "{} Vitamin D deficient patients were followed.\nMore text {}",
            "filler ".repeat(60),
            "tail ".repeat(60)
        );
        let s = snippet(&text, &terms, 120);
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[Vitamin] [D] [deficient] patients"), "{s}");
        assert!(!s.contains('\n'), "one line: {s}");
        assert!(s.chars().count() <= 120 + 2 + 6, "{}", s.chars().count());
        // "d" alone marks only the word d, not every word starting with d.
        assert!(!s.contains("[deficient patients"), "{s}");
        // Nothing matches: the start of the text.
        assert_eq!(snippet("short note", &["zebra".into()], 100), "short note");
        assert_eq!(snippet("héllo wörld again", &[], 6), "héllo…");
        assert_eq!(snippet("", &terms, 10), "");
    }

    #[test]
    fn chunk_hits_fold_to_their_source() {
        let source_of: HashMap<i64, String> = [(1, "doc-a"), (2, "doc-a"), (3, "doc-b")]
            .into_iter()
            .map(|(i, s)| (i, s.to_owned()))
            .collect();
        let mut keys = HashMap::new();
        let k = per_source(
            &[(2, 0.9), (3, 0.8), (1, 0.7), (9, 0.6)],
            &source_of,
            &mut keys,
        );
        assert_eq!(k, vec![(0, 2, 0.9), (1, 3, 0.8)]);
        let v = per_source(&[(3, 0.5), (1, 0.4)], &source_of, &mut keys);
        assert_eq!(v, vec![(1, 3, 0.5), (0, 1, 0.4)], "same keys across lists");
    }
}
