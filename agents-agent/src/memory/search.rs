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
/// is one quoted phrase, so `main.rs` matches "main rs" in that order),
/// any of them matching (BM25 ranks rows with more and rarer words
/// first); None when there is nothing to search for.
pub fn fts_query(text: &str) -> Option<String> {
    let mut terms: Vec<(String, bool)> = Vec::new();
    for word in text.split_whitespace() {
        let w = word.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let stop = STOPWORDS.contains(&w.to_lowercase().as_str());
        let phrase = format!("\"{}\"", w.replace('"', "\"\""));
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
