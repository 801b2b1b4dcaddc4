//! Splitting long texts into chunks, and bounding what an embedder is
//! given. Pure; counts characters, never splits one.

/// About this many characters per chunk of an imported document.
pub const CHUNK_CHARS: usize = 1000;
/// Characters shared by two neighbouring chunks.
pub const OVERLAP_CHARS: usize = 100;

/// `text` in chunks of at most `size` characters, each starting `overlap`
/// characters before the previous one ended; a chunk ends at the last
/// whitespace in its final fifth when there is one, so words stay whole.
/// A text no longer than `size` is one chunk; an empty text none.
pub fn chunks(text: &str, size: usize, overlap: usize) -> Vec<String> {
    let text = text.trim();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = size.max(1);
    let overlap = overlap.min(size / 2);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let mut end = (start + size).min(chars.len());
        if end < chars.len() {
            let floor = start + size * 4 / 5;
            if let Some(ws) = (floor..end).rev().find(|&i| chars[i].1.is_whitespace()) {
                end = ws;
            }
        }
        let piece = text[byte_at(start)..byte_at(end)].trim();
        if !piece.is_empty() {
            out.push(piece.to_owned());
        }
        if end >= chars.len() {
            return out;
        }
        start = (end.saturating_sub(overlap)).max(start + 1);
        // Start the next chunk at a word boundary inside the overlap, if
        // it has one.
        if let Some(b) = (start..end).find(|&i| chars[i - 1].1.is_whitespace()) {
            start = b;
        }
    }
}

/// At most `max` characters of `text` (an embedder's input limit).
pub fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_texts_are_one_chunk_and_long_ones_overlap_at_word_boundaries() {
        assert!(chunks("  ", 1000, 100).is_empty());
        assert_eq!(chunks("one chunk", 1000, 100), vec!["one chunk"]);
        let words: Vec<String> = (0..400).map(|i| format!("w{i:03}")).collect();
        let text = words.join(" ");
        let c = chunks(&text, 1000, 100);
        assert!(c.len() >= 2, "{}", c.len());
        for piece in &c {
            assert!(piece.chars().count() <= 1000);
            // Whole words only.
            assert!(piece.split(' ').all(|w| w.len() == 4), "{piece}");
        }
        // Neighbours share words, and nothing is lost.
        let last_of_first = c[0].split(' ').next_back().unwrap();
        assert!(c[1].contains(last_of_first));
        for w in &words {
            assert!(c.iter().any(|p| p.contains(w.as_str())), "{w} lost");
        }
        // No whitespace at all: cut at the size, still overlapping.
        let solid = "x".repeat(2500);
        let c = chunks(&solid, 1000, 100);
        assert_eq!(
            c.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![1000, 1000, 700]
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}
