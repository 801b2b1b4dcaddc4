//! A grounded context, assembled (seed 003 "RAG Context Assembly",
//! "Query Refusal"). Pure: the layers in their priority order, the
//! relevance rules, the backfill choice, the token budget and the two
//! refusal checkpoints. [`super::assemble`] gathers the pieces.

use crate::chat::Citation;
use crate::llm::tokens;
use std::collections::HashSet;

/// Where a piece of context comes from, in priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// The person's profile (always in context).
    WorkingMemory,
    /// Observation anchors the person pinned (always first of the
    /// sources).
    Pinned,
    /// Capture not embedded yet (the recent buffer).
    Recent,
    /// Hybrid search hits, each with its neighbouring messages.
    Search,
    /// Sources earlier answers of the thread cited (a follow-up).
    Backfill,
}

impl Layer {
    /// Every layer, in priority order.
    pub const ALL: [Layer; 5] = [
        Layer::WorkingMemory,
        Layer::Pinned,
        Layer::Recent,
        Layer::Search,
        Layer::Backfill,
    ];

    /// Its name (the Context Card, a citation's `layer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::WorkingMemory => "working_memory",
            Layer::Pinned => "pinned",
            Layer::Recent => "recent",
            Layer::Search => "search",
            Layer::Backfill => "backfill",
        }
    }
}

/// One piece of context.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Its layer.
    pub layer: Layer,
    /// The source it cites (None for working memory).
    pub citation: Option<Citation>,
    /// The text the model gets.
    pub text: String,
    /// Keystroke or clipboard text: never sent to a cloud model.
    pub private: bool,
}

/// A piece shorter than this (tokens) after cutting is left out.
pub const MIN_PIECE_TOKENS: u64 = 16;

/// The header of the block; `grounded` adds the instruction to answer
/// from it alone.
pub fn header(grounded: bool) -> &'static str {
    if grounded {
        "Memory. Answer only from what is below; if it does not hold the answer, say you do not know. Sources are numbered [n]."
    } else {
        "Memory: what you know about the person and their past. Sources are numbered [n]."
    }
}

/// A piece as the block shows it (`n` numbers cited sources).
fn line(p: &Piece, n: usize, text: &str) -> String {
    match &p.citation {
        None => format!("\n{text}"),
        Some(c) => format!(
            "\n[{n}] ({}, {}) {text}",
            c.source_type,
            super::query::format_time(c.time_ms)
        ),
    }
}

/// `text` cut to at most `bytes` bytes at a character boundary, marked
/// with "…" when cut.
fn cut(text: &str, bytes: usize) -> String {
    if text.len() <= bytes {
        return text.to_owned();
    }
    let mut end = bytes.saturating_sub("…".len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The block and what is in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    /// The text (None when no piece fits or there is none).
    pub text: Option<String>,
    /// The pieces kept (cut ones with their cut text), in order.
    pub kept: Vec<Piece>,
    /// Pieces left out for the budget.
    pub dropped: usize,
}

impl Block {
    /// Tokens of the block.
    pub fn tokens(&self) -> u64 {
        self.text.as_ref().map_or(0, |t| tokens::estimate(t.len()))
    }

    /// The citations of the kept pieces, in order.
    pub fn citations(&self) -> Vec<Citation> {
        self.kept
            .iter()
            .filter_map(|p| p.citation.clone())
            .collect()
    }

    /// Tokens per layer (as the pieces' lines count them), in priority
    /// order, with the number of pieces.
    pub fn layers(&self) -> Vec<(Layer, u64, u32)> {
        let mut out = Vec::new();
        let mut n = 0;
        for layer in Layer::ALL {
            let (mut t, mut k) = (0, 0);
            for p in self.kept.iter().filter(|p| p.layer == layer) {
                if p.citation.is_some() {
                    n += 1;
                }
                t += tokens::estimate(line(p, n, &p.text).len());
                k += 1;
            }
            if k > 0 {
                out.push((layer, t, k));
            }
        }
        out
    }
}

/// Compress `pieces` into a block of at most `budget` tokens (by the one
/// token estimate, header included): pieces go in priority order (by
/// layer; within a layer as given: search hits by rank, the recent
/// buffer and backfill newest first, so the oldest of those are cut
/// first); a piece that does not fit is cut to the room left, or left
/// out when under [`MIN_PIECE_TOKENS`]. Private pieces are left out when
/// `cloud`.
pub fn fit(mut pieces: Vec<Piece>, budget: u64, grounded: bool, cloud: bool) -> Block {
    pieces.retain(|p| !(cloud && p.private));
    // Stable: each layer keeps its own order.
    pieces.sort_by_key(|p| p.layer);
    let limit = (budget * tokens::CHARS_PER_TOKEN) as usize;
    let mut text = header(grounded).to_owned();
    let mut block = Block::default();
    if text.len() > limit || pieces.is_empty() {
        block.dropped = pieces.len();
        return block;
    }
    let mut n = 0;
    for p in pieces {
        let number = n + usize::from(p.citation.is_some());
        let full = line(&p, number, &p.text);
        if text.len() + full.len() <= limit {
            text += &full;
            n = number;
            block.kept.push(p);
            continue;
        }
        let frame = line(&p, number, "").len();
        let room = limit.saturating_sub(text.len() + frame);
        if (room as u64) < MIN_PIECE_TOKENS * tokens::CHARS_PER_TOKEN {
            block.dropped += 1;
            continue;
        }
        let short = cut(&p.text, room);
        text += &line(&p, number, &short);
        n = number;
        block.kept.push(Piece { text: short, ..p });
    }
    if block.kept.is_empty() {
        return block;
    }
    block.text = Some(text);
    block
}

/// Which chunks a follow-up's backfill re-injects: the citations of the
/// thread's recent answers (newest answer first), deduplicated by chunk
/// id, leaving out chunks already in context (`have`: pinned or found),
/// until `want` sources are in context with the `found` ones.
pub fn backfill(
    recent: &[Vec<Citation>],
    have: &HashSet<i64>,
    found: usize,
    want: usize,
) -> Vec<Citation> {
    let mut seen = have.clone();
    let mut out = Vec::new();
    for answer in recent {
        for c in answer {
            if found + out.len() >= want {
                return out;
            }
            if seen.insert(c.chunk_id) {
                out.push(c.clone());
            }
        }
    }
    out
}

/// Why a grounded question is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Checkpoint 1: memory holds nothing at all.
    Empty,
    /// Checkpoint 2: nothing assembled is relevant (with why).
    NothingRelevant(String),
}

impl Refusal {
    /// The message the person sees (deterministic: no model wrote it).
    pub fn message(&self) -> String {
        match self {
            Refusal::Empty => {
                "I can't answer that from memory: nothing captured, said or imported \
                               has been indexed yet."
                    .into()
            }
            Refusal::NothingRelevant(why) => {
                format!("I can't answer that from memory: {why}.")
            }
        }
    }

    /// Why, for the Context Card.
    pub fn reason(&self) -> String {
        match self {
            Refusal::Empty => "memory holds nothing".into(),
            Refusal::NothingRelevant(why) => why.clone(),
        }
    }
}

/// The two checkpoints: memory holds nothing (`memory_empty`), or the
/// pipeline assembled no relevant source (`relevant` counts pinned
/// anchors, relevant recent capture and search hits, and backfill).
pub fn refusal(memory_empty: bool, relevant: usize, unknown: &[String]) -> Option<Refusal> {
    if memory_empty {
        return Some(Refusal::Empty);
    }
    if relevant > 0 {
        return None;
    }
    Some(Refusal::NothingRelevant(if unknown.is_empty() {
        "nothing captured, said or imported matches it".into()
    } else {
        format!(
            "memory has never seen {}",
            unknown
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}

/// Words that start with a capital without being names: time words and
/// the question words a sentence starts with.
const NOT_NAMES: &[&str] = &[
    "I",
    "I'm",
    "I've",
    "I'd",
    "I'll",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Today",
    "Yesterday",
    "Tomorrow",
    "AM",
    "PM",
    "OK",
];

/// What a question names: capitalised words that do not start a
/// sentence (Caroline, Zendesk) and identifiers with digits (INV-20931),
/// time words left out. A question naming something memory has never
/// seen cannot be grounded.
pub fn named(question: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut sentence_start = true;
    for raw in question.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let word = word.strip_suffix("'s").unwrap_or(word);
        let starts = sentence_start;
        sentence_start = raw.ends_with(['.', '?', '!', ':']);
        if word.chars().count() < 2 {
            continue;
        }
        let has_digit = word.chars().any(|c| c.is_ascii_digit());
        let has_alpha = word.chars().any(char::is_alphabetic);
        let capital = word.chars().next().is_some_and(char::is_uppercase);
        let name = (capital && !starts && !NOT_NAMES.contains(&word)) || (has_digit && has_alpha);
        if name && !out.iter().any(|o| o.eq_ignore_ascii_case(word)) {
            out.push(word.to_owned());
        }
    }
    out
}

/// The share of `terms` (lowercase content words) that `text` holds.
pub fn coverage(text: &str, terms: &[String]) -> f64 {
    if terms.is_empty() {
        return 0.0;
    }
    let words: HashSet<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    terms.iter().filter(|t| words.contains(t.as_str())).count() as f64 / terms.len() as f64
}

/// A hit under the floor still counts as relevant when it holds at least
/// this share of the question's content words.
pub const KEYWORD_COVERAGE: f64 = 0.5;

/// Relevance floors calibrated per embedding model (a substring of its
/// name, lower case → the cosine similarity of the question and the best
/// hit's chunk under which a hit does not count), measured on LoCoMo by
/// `tests/benches/grounding.rs` (docs/BENCHMARKS.md).
pub const CALIBRATED: &[(&str, f64)] = &[("minilm", MINILM_FLOOR)];

/// all-MiniLM-L6-v2's floor: both refusal targets hold from 0.25 to 0.45.
pub const MINILM_FLOOR: f64 = 0.40;

/// The floor for `model`: its calibrated one, else MiniLM's (no other
/// embedder has been measured here).
pub fn default_floor(model: &str) -> f64 {
    let m = model.to_lowercase();
    CALIBRATED
        .iter()
        .find(|(name, _)| m.contains(name))
        .map_or(MINILM_FLOOR, |(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(layer: Layer, id: i64, chars: usize) -> Piece {
        Piece {
            layer,
            citation: (layer != Layer::WorkingMemory).then(|| Citation {
                source_type: "activity".into(),
                source_id: format!("activity:{id}"),
                time_ms: 1_700_000_000_000 + id,
                snippet: String::new(),
                chunk_id: id,
                layer: layer.as_str().into(),
            }),
            text: "é".repeat(chars / 2) + &"x".repeat(chars % 2),
            private: id % 5 == 0,
        }
    }

    /// A small deterministic generator (no dependency for one test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn the_budget_is_never_exceeded_whatever_the_layer_sizes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let budget = 1 + rng.next(3000);
            let mut pieces = Vec::new();
            for _ in 0..rng.next(30) {
                let layer = Layer::ALL[rng.next(5) as usize];
                let long = rng.next(4) == 0;
                let chars = rng.next(if long { 20_000 } else { 800 }) as usize;
                pieces.push(piece(layer, rng.next(1000) as i64, chars));
            }
            let (grounded, cloud) = (rng.next(2) == 0, rng.next(2) == 0);
            let b = fit(pieces.clone(), budget, grounded, cloud);
            assert!(b.tokens() <= budget, "{} > {budget}", b.tokens());
            if let Some(t) = &b.text {
                assert!(t.starts_with(header(grounded)));
            }
            // Nothing kept twice, nothing private for the cloud, and the
            // layers in priority order.
            assert!(b.kept.windows(2).all(|w| w[0].layer <= w[1].layer));
            if cloud {
                assert!(b.kept.iter().all(|p| !p.private));
            }
            let offered = pieces.iter().filter(|p| !(cloud && p.private)).count();
            assert_eq!(b.kept.len() + b.dropped, offered);
        }
    }

    #[test]
    fn what_does_not_fit_is_cut_from_the_lowest_layer_and_pins_come_first() {
        let pieces = vec![
            piece(Layer::Backfill, 1, 400),
            piece(Layer::Search, 2, 400),
            piece(Layer::Pinned, 3, 400),
        ];
        let b = fit(pieces, 200, false, false);
        let layers: Vec<Layer> = b.kept.iter().map(|p| p.layer).collect();
        assert_eq!(layers, [Layer::Pinned, Layer::Search]);
        assert!(
            b.kept[1].text.ends_with('…'),
            "the search hit is cut to fit"
        );
        assert_eq!(b.dropped, 1);
        let text = b.text.unwrap();
        assert!(
            text.contains("[1] (activity,") && text.contains("[2]"),
            "{text}"
        );
        assert_eq!(b.kept[0].citation.as_ref().unwrap().chunk_id, 3);
    }

    #[test]
    fn backfill_walks_answers_newest_first_dedupes_and_skips_what_is_in_context() {
        let c = |id: i64| Citation {
            chunk_id: id,
            ..Default::default()
        };
        let recent = vec![vec![c(1), c(2)], vec![c(2), c(3), c(4)]];
        let have: HashSet<i64> = [1].into();
        let got: Vec<i64> = backfill(&recent, &have, 1, 4)
            .iter()
            .map(|c| c.chunk_id)
            .collect();
        assert_eq!(got, [2, 3, 4]);
        assert!(
            backfill(&recent, &have, 4, 4).is_empty(),
            "search found enough"
        );
    }

    #[test]
    fn refusal_checkpoints_and_their_messages() {
        assert_eq!(refusal(true, 3, &[]), Some(Refusal::Empty));
        assert_eq!(refusal(false, 1, &[]), None);
        let r = refusal(false, 0, &["Caroline".into()]).unwrap();
        assert!(r.message().contains("\"Caroline\""), "{}", r.message());
    }

    #[test]
    fn names_are_capitalised_words_inside_a_sentence_and_identifiers() {
        assert_eq!(
            named("When did Caroline go to the LGBTQ support group on Tuesday?"),
            ["Caroline", "LGBTQ"]
        );
        assert_eq!(
            named("What was the invoice number INV-20931 about?"),
            ["INV-20931"]
        );
        assert_eq!(
            named("What is Melanie's job? Where does she work?"),
            ["Melanie"]
        );
        assert!(named("What did I do yesterday?").is_empty());
        assert_eq!(
            coverage(
                "Caroline: the support group",
                &["support".into(), "lgbtq".into()]
            ),
            0.5
        );
    }
}
