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
    /// It counts against a grounded question's refusal (a relevant
    /// source: pinned, recent capture with the question's words, a hit
    /// over the floor, backfill).
    pub relevant: bool,
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

    /// Relevant sources kept.
    pub fn relevant(&self) -> usize {
        self.kept.iter().filter(|p| p.relevant).count()
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

/// A week, the unit of the recency weight.
const WEEK_MS: f64 = 7.0 * 86_400_000.0;

/// Working memory's share of the budget, at most (the rest is for the
/// sources, pins first).
pub const WORKING_MEMORY_SHARE: u64 = 4;

/// Compress `pieces` into a block of at most `budget` tokens (by the one
/// token estimate, header included). Layers are filled in priority order
/// (working memory, capped at a [`WORKING_MEMORY_SHARE`]th of the budget;
/// pins; recent capture; search hits; backfill). Within a layer that does
/// not fit whole, pieces are chosen by a recency-weighted rank — their
/// position plus one for every week they are older than the layer's
/// newest — so an old piece gives way to a slightly lower-ranked recent
/// one; the last chosen is cut to the room left, or left out under
/// [`MIN_PIECE_TOKENS`]. The block shows the chosen pieces in their
/// layer's order. Private pieces are left out when `cloud`.
pub fn fit(mut pieces: Vec<Piece>, budget: u64, grounded: bool, cloud: bool) -> Block {
    pieces.retain(|p| !(cloud && p.private));
    // Stable: each layer keeps its own order.
    pieces.sort_by_key(|p| p.layer);
    let limit = (budget * tokens::CHARS_PER_TOKEN) as usize;
    let header = header(grounded);
    let mut block = Block::default();
    if header.len() > limit || pieces.is_empty() {
        block.dropped = pieces.len();
        return block;
    }
    // Sizes are reckoned with the widest source number the block can
    // show, so the numbers it does show never make it longer.
    let widest = pieces.len();
    let mut used = header.len();
    let mut chosen: Vec<(usize, Piece)> = Vec::new();
    let mut start = 0;
    while start < pieces.len() {
        let layer = pieces[start].layer;
        let end = start
            + pieces[start..]
                .iter()
                .take_while(|p| p.layer == layer)
                .count();
        let newest = pieces[start..end].iter().map(time_of).max().unwrap_or(0);
        let mut order: Vec<usize> = (start..end).collect();
        order.sort_by(|&a, &b| {
            let key =
                |i: usize| (i - start) as f64 + (newest - time_of(&pieces[i])) as f64 / WEEK_MS;
            key(a).total_cmp(&key(b)).then(a.cmp(&b))
        });
        let cap = if layer == Layer::WorkingMemory {
            used + limit / WORKING_MEMORY_SHARE as usize
        } else {
            limit
        };
        for i in order {
            let p = &pieces[i];
            let full = line(p, widest, &p.text).len();
            if used + full <= cap {
                used += full;
                chosen.push((i, p.clone()));
                continue;
            }
            let frame = line(p, widest, "").len();
            let room = cap.saturating_sub(used + frame);
            if (room as u64) < MIN_PIECE_TOKENS * tokens::CHARS_PER_TOKEN {
                block.dropped += 1;
                continue;
            }
            let short = cut(&p.text, room);
            used += frame + short.len();
            chosen.push((
                i,
                Piece {
                    text: short,
                    ..p.clone()
                },
            ));
        }
        start = end;
    }
    if chosen.is_empty() {
        return block;
    }
    chosen.sort_by_key(|(i, _)| *i);
    let mut text = header.to_owned();
    let mut n = 0;
    for (_, p) in chosen {
        n += usize::from(p.citation.is_some());
        text += &line(&p, n, &p.text);
        block.kept.push(p);
    }
    block.text = Some(text);
    block
}

fn time_of(p: &Piece) -> i64 {
    p.citation.as_ref().map_or(0, |c| c.time_ms)
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
        let capital = word.chars().next().is_some_and(char::is_uppercase)
            && !word.chars().any(|c| c.is_ascii_digit());
        let name = (capital && !starts && !NOT_NAMES.contains(&word)) || identifier(word);
        if name && !out.iter().any(|o| o.eq_ignore_ascii_case(word)) {
            out.push(word.to_owned());
        }
    }
    out
}

/// An identifier: letters and digits together in one word of at least
/// four characters (INV-20931, PRJ-4411, build7731) — but not a time,
/// an ordinal or a quantity ("10am", "2nd", "30min", "Q3").
fn identifier(word: &str) -> bool {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    let alpha = word.chars().filter(|c| c.is_alphabetic()).count();
    if digits == 0 || alpha == 0 || word.chars().count() < 4 {
        return false;
    }
    // A number with a short unit after it, or a letter or two before it.
    let lead = word.chars().take_while(char::is_ascii_digit).count();
    let tail = word.chars().rev().take_while(char::is_ascii_digit).count();
    let unit = lead == digits && lead + alpha == word.chars().count() && alpha <= 3;
    let prefixed = tail == digits && tail + alpha == word.chars().count() && alpha <= 2;
    !(unit || prefixed)
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
            relevant: true,
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
    fn an_old_hit_gives_way_to_a_recent_one_and_working_memory_keeps_to_its_share() {
        const DAY: i64 = 86_400_000;
        let mut old = piece(Layer::Search, 1, 600);
        let mut recent = piece(Layer::Search, 2, 600);
        let mut recent2 = piece(Layer::Search, 3, 600);
        if let (Some(a), Some(b), Some(c)) = (
            old.citation.as_mut(),
            recent.citation.as_mut(),
            recent2.citation.as_mut(),
        ) {
            a.time_ms = 0;
            b.time_ms = 30 * DAY;
            c.time_ms = 30 * DAY;
        }
        // Room for two: the first-ranked hit is a month older than the
        // next two, so they are kept, shown in rank order.
        let b = fit(vec![old, recent, recent2], 360, false, false);
        let ids: Vec<i64> = b.citations().iter().map(|c| c.chunk_id).collect();
        assert_eq!(ids, [2, 3]);
        // A profile larger than the whole budget takes a quarter of it.
        let wm = piece(Layer::WorkingMemory, 9, 20_000);
        let pin = piece(Layer::Pinned, 4, 400);
        let b = fit(vec![wm, pin], 1000, false, false);
        assert_eq!(b.kept.len(), 2, "the pin still fits");
        assert!(b.kept[0].text.len() <= 1000);
        assert!(b.tokens() <= 1000);
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
        assert!(named("what did I do at 10am on the 2nd, in Q3 and v2? for 30min").is_empty());
        assert_eq!(
            named("did build7731 pass, and PRJ-4411?"),
            ["build7731", "PRJ-4411"]
        );
        assert_eq!(
            coverage(
                "Caroline: the support group",
                &["support".into(), "lgbtq".into()]
            ),
            0.5
        );
    }
}
