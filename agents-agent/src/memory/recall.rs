//! A search, end to end: the time filter taken from the query, keyword
//! hits from FTS5, vector hits from each type's index (the query embedded
//! by the same embedder as the index), chunks folded to their sources,
//! and the two lists fused.

use super::fusion;
use super::item::{Item, Kind};
use super::query::{time_expression, Range};
use super::search::{fts_query, highlight_terms, per_source, snippet};
use super::store::{self, Filter, Knn};
use super::{Memory, MemoryError};
use crate::util::now_ms;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Characters of a hit's snippet, about.
const SNIPPET_CHARS: usize = 240;
/// Candidates each list brings per hit wanted.
const CANDIDATES_PER_HIT: usize = 5;
/// Candidates each list brings at least.
const MIN_CANDIDATES: usize = 50;
/// Messages this close in one thread are one hit (a hit is shown with
/// the messages around it).
pub const NEIGHBOURHOOD: i64 = 2;

/// The most hits one search returns.
pub const MAX_K: usize = 1000;
/// The longest query accepted (characters).
pub const MAX_QUERY: usize = 4096;
/// How long embedding the query may take.
const QUERY_EMBED_TIMEOUT: Duration = Duration::from_secs(5);

/// How a search ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Reciprocal-rank fusion of keyword and vector hits.
    #[default]
    Hybrid,
    /// Nearest vectors only.
    Vector,
    /// FTS5 (BM25) only.
    Keyword,
}

impl Mode {
    /// Its name (`--mode`, the proto).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Vector => "vector",
            Mode::Keyword => "keyword",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "hybrid" => Ok(Mode::Hybrid),
            "vector" => Ok(Mode::Vector),
            "keyword" => Ok(Mode::Keyword),
            other => Err(format!("unknown mode {other:?}: hybrid, vector or keyword")),
        }
    }
}

/// A search as asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// What to look for; a time expression in it ("yesterday", "last
    /// week") becomes the time filter when none is given.
    pub text: String,
    /// Types (empty: all).
    pub kinds: Vec<Kind>,
    /// From (Unix ms).
    pub since_ms: Option<i64>,
    /// Before (Unix ms).
    pub until_ms: Option<i64>,
    /// App, case-insensitive ("" any).
    pub app: String,
    /// Hits wanted (0: 10).
    pub k: usize,
    /// How to rank.
    pub mode: Mode,
    /// Collection ("" any).
    pub collection: String,
}

/// One hit: a source, with the chunk that matched best.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk that matched best.
    pub item: Item,
    /// The text around the match (keyword hits mark it in [brackets]).
    pub snippet: String,
    /// The fused score (or the mode's own).
    pub score: f64,
    /// Rank and BM25 (higher is better) among keyword hits.
    pub keyword: Option<(u32, f64)>,
    /// Rank and cosine similarity among vector hits.
    pub vector: Option<(u32, f64)>,
}

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Best first.
    pub hits: Vec<Hit>,
    /// The mode used (a hybrid search with no embedder is keyword only).
    pub mode: Mode,
    /// Why the mode used differs from the one asked, or an index is
    /// still being built ("" when nothing to say).
    pub note: String,
    /// The text searched.
    pub text: String,
    /// The time filter used.
    pub range: Range,
    /// How long it took.
    pub took: Duration,
}

/// The raw lists one read transaction gathers: chunk hits, best first,
/// and each hit's source key.
struct Lists {
    keyword: Vec<(i64, f64)>,
    vector: Vec<(i64, f64)>,
    source_of: HashMap<i64, String>,
}

/// One fused source, before its item is read.
#[derive(Debug, Clone, PartialEq)]
struct Ranked {
    item: i64,
    score: f64,
    keyword: Option<(u32, f64)>,
    vector: Option<(u32, f64)>,
}

impl Memory {
    /// Search memory (see [`Query`]).
    pub async fn search(&self, q: Query) -> Result<Found, MemoryError> {
        let started = Instant::now();
        if q.text.chars().count() > MAX_QUERY {
            return Err(MemoryError::Invalid(format!(
                "the query is over {MAX_QUERY} characters"
            )));
        }
        let k = match q.k {
            0 => 10,
            k => k.min(MAX_K),
        };
        let (text, range) = if q.since_ms.is_some() || q.until_ms.is_some() {
            (
                q.text.trim().to_owned(),
                Range {
                    since_ms: q.since_ms,
                    until_ms: q.until_ms,
                },
            )
        } else {
            let (t, r) = time_expression(&q.text, now_ms());
            (t, r.unwrap_or_default())
        };
        if let (Some(s), Some(u)) = (range.since_ms, range.until_ms) {
            if s >= u {
                return Err(MemoryError::Invalid(
                    "the time range is empty: --since must be before --until".into(),
                ));
            }
        }
        let filter = Filter {
            kinds: q.kinds.clone(),
            since_ms: range.since_ms,
            until_ms: range.until_ms,
            app: q.app.trim().to_owned(),
            collection: q.collection.clone(),
        };
        let mut mode = q.mode;
        let mut notes = Vec::new();
        // Each list brings candidates in proportion to the hits wanted:
        // deep tails add noise to a fusion by rank.
        let depth = (k * CANDIDATES_PER_HIT).clamp(MIN_CANDIDATES, super::quantize::MAX_K);
        let fts = if mode == Mode::Vector {
            None
        } else {
            fts_query(&text)
        };
        // The keyword list is read while the query is being embedded.
        let keyword = {
            let (fts, filter) = (fts.clone(), filter.clone());
            async move {
                match fts {
                    Some(f) => {
                        self.db()
                            .read(move |c| store::keyword(c, &f, &filter, depth))
                            .await
                    }
                    None => Ok(Vec::new()),
                }
            }
        };
        let vector = async {
            if mode == Mode::Keyword || text.is_empty() {
                None
            } else {
                Some(self.query_vector(&text, &filter.kinds).await)
            }
        };
        let (keyword, vector) = tokio::join!(keyword, vector);
        let lists_at = started.elapsed();
        let keyword = keyword?;
        let vector = match vector {
            None => None,
            Some(Ok((v, indexes, note))) => {
                if !note.is_empty() {
                    notes.push(note);
                }
                Some((v, indexes))
            }
            Some(Err(why)) if mode == Mode::Vector => return Err(MemoryError::Embedder(why)),
            Some(Err(why)) => {
                if why.contains("keyword search only") {
                    notes.push(why);
                } else {
                    notes.push(format!("{why}; keyword search only"));
                }
                mode = Mode::Keyword;
                None
            }
        };
        let terms = highlight_terms(&text);
        let hits = self
            .db()
            .read(move |c| {
                let mut source_of = HashMap::new();
                let keyword: Vec<(i64, f64)> = keyword
                    .into_iter()
                    .map(|(id, score, key)| {
                        source_of.insert(id, key);
                        (id, score)
                    })
                    .collect();
                let mut vectors = Vec::new();
                if let Some((v, indexes)) = &vector {
                    for index in indexes {
                        vectors.extend(store::nearest(c, index, v, &filter, depth, Knn::Auto)?);
                    }
                    vectors.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    let unknown: Vec<i64> = vectors
                        .iter()
                        .map(|h| h.0)
                        .filter(|id| !source_of.contains_key(id))
                        .collect();
                    source_of.extend(store::source_keys(c, &unknown)?);
                }
                let lists = Lists {
                    keyword,
                    vector: vectors,
                    source_of,
                };
                // A few more than wanted: messages next to a better hit
                // fold into it. Only the hits returned are read in full.
                let ranked = fuse(&lists, mode, k * 2 + 10);
                let ids: Vec<i64> = ranked.iter().map(|r| r.item).collect();
                let mut items: HashMap<i64, Item> = store::items(c, &ids)?
                    .into_iter()
                    .map(|i| (i.id, i))
                    .collect();
                let mut hits: Vec<Hit> = Vec::with_capacity(k);
                let mut best_keyword = None;
                for r in ranked {
                    let Some(item) = items.remove(&r.item) else {
                        continue;
                    };
                    let hit = Hit {
                        snippet: snippet(&item.text, &terms, SNIPPET_CHARS),
                        item,
                        score: r.score,
                        keyword: r.keyword,
                        vector: r.vector,
                    };
                    if hits.iter().any(|h| neighbours(&h.item, &hit.item)) {
                        continue;
                    }
                    if hits.len() < k {
                        hits.push(hit);
                    } else if hit.keyword.is_some_and(|x| x.0 == 1) {
                        best_keyword = Some(hit);
                        break;
                    }
                }
                // The best keyword hit is never dropped (see fusion::rrf).
                if let (Some(best), Some(last)) = (best_keyword, hits.last_mut()) {
                    *last = best;
                }
                Ok(hits)
            })
            .await?;
        tracing::debug!(
            mode = %mode,
            k,
            lists_us = lists_at.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "memory search (keyword list and query vector, then KNN, fusion and items)"
        );
        Ok(Found {
            hits,
            mode,
            note: notes.join("; "),
            text,
            range,
            took: started.elapsed(),
        })
    }

    /// The query's vector from the current embedder, the index of each
    /// type (of `kinds`, all when empty) holding that embedder's vectors,
    /// and a note when a type's serving index is another model's.
    async fn query_vector(
        &self,
        text: &str,
        kinds: &[Kind],
    ) -> Result<(Vec<f32>, Vec<store::Index>, String), String> {
        let embedder = self.embedder(false).await?;
        if let Some(why) = self.passed_over(&embedder.engine) {
            return Err(why);
        }
        let cfg = self.config().map_err(|e| e.to_string())?;
        let input = super::chunk::truncate(text, cfg.max_input_chars).to_owned();
        let v = match embedder
            .embed(self.sessions(), &[input], QUERY_EMBED_TIMEOUT)
            .await
        {
            Ok(mut v) if !v.is_empty() => v.swap_remove(0),
            Ok(_) => return Err("the embedder returned no vector".into()),
            Err(e) => {
                let why = format!("the embedder {} did not answer: {e}", embedder.engine);
                self.unresponsive(&embedder.engine, why.clone());
                self.embedder_failed();
                return Err(why);
            }
        };
        self.responsive(&embedder.engine);
        let all = self
            .db()
            .read(|c| store::indexes(c, None))
            .await
            .map_err(|e| e.to_string())?;
        let mut chosen = Vec::new();
        let mut notes = Vec::new();
        for kind in Kind::ALL {
            if !kinds.is_empty() && !kinds.contains(&kind) {
                continue;
            }
            let of_kind: Vec<&store::Index> = all.iter().filter(|i| i.kind == kind).collect();
            match of_kind
                .iter()
                .find(|i| i.model == embedder.model && i.dims as usize == v.len())
            {
                Some(i) => {
                    if i.state == store::BUILDING {
                        notes.push(format!(
                            "the {kind} index is being rebuilt for {} ({} vectors so far)",
                            i.model, i.vectors
                        ));
                    }
                    chosen.push((*i).clone());
                }
                None => {
                    if let Some(old) = of_kind.iter().find(|i| i.state == store::SERVING) {
                        notes.push(format!(
                            "the {kind} index holds {}'s vectors, not {}'s: it is being rebuilt",
                            old.model, embedder.model
                        ));
                    }
                }
            }
        }
        Ok((v, chosen, notes.join("; ")))
    }
}

/// Keyword and vector chunk hits folded to their sources and fused
/// (hybrid) or ranked alone: the best `k`, each with the chunk that
/// stands for its source (its best keyword chunk, else its best vector
/// chunk).
fn fuse(lists: &Lists, mode: Mode, k: usize) -> Vec<Ranked> {
    let mut keys = HashMap::new();
    let keyword = per_source(&lists.keyword, &lists.source_of, &mut keys);
    let vector = per_source(&lists.vector, &lists.source_of, &mut keys);
    let best_item: HashMap<i64, i64> = vector
        .iter()
        .chain(keyword.iter())
        .map(|(key, id, _)| (*key, *id))
        .collect();
    let strip = |l: &[(i64, i64, f64)]| l.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>();
    let (kw, vec) = match mode {
        Mode::Hybrid => (strip(&keyword), strip(&vector)),
        Mode::Keyword => (strip(&keyword), Vec::new()),
        Mode::Vector => (Vec::new(), strip(&vector)),
    };
    fusion::rrf(&kw, &vec, k)
        .into_iter()
        .filter_map(|f| {
            Some(Ranked {
                item: *best_item.get(&f.id)?,
                score: match mode {
                    Mode::Hybrid => f.score,
                    Mode::Keyword => f.keyword.map_or(0.0, |x| x.1),
                    Mode::Vector => f.vector.map_or(0.0, |x| x.1),
                },
                keyword: f.keyword,
                vector: f.vector,
            })
        })
        .collect()
}

/// Whether two hits are messages of one thread close enough to be shown
/// as one (their neighbourhoods overlap).
fn neighbours(a: &Item, b: &Item) -> bool {
    !a.thread.is_empty() && a.thread == b.thread && (a.seq - b.seq).abs() <= NEIGHBOURHOOD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fold_to_their_document_and_modes_rank_by_their_own_list() {
        let source_of: HashMap<i64, String> = [(1, "a"), (2, "a"), (3, "b"), (4, "c")]
            .into_iter()
            .map(|(i, s)| (i, s.to_owned()))
            .collect();
        let lists = Lists {
            keyword: vec![(2, 9.0), (1, 8.0), (4, 3.0)],
            vector: vec![(3, 0.9), (1, 0.8)],
            source_of,
        };
        let hybrid = fuse(&lists, Mode::Hybrid, 10);
        let items: Vec<i64> = hybrid.iter().map(|h| h.item).collect();
        // a (in both lists) first, standing as its best keyword chunk 2.
        assert_eq!(items, vec![2, 3, 4]);
        assert_eq!(hybrid[0].keyword, Some((1, 9.0)));
        assert_eq!(hybrid[0].vector, Some((2, 0.8)));
        let kw = fuse(&lists, Mode::Keyword, 10);
        assert_eq!(kw.len(), 2, "b has no keyword match");
        assert_eq!(kw[0].score, 9.0);
        let v = fuse(&lists, Mode::Vector, 1);
        assert_eq!((v.len(), v[0].item), (1, 3));
        let msg = |thread: &str, seq: i64| Item {
            id: seq,
            kind: Kind::Conversation,
            stream: crate::memory::item::Stream::Chat,
            source_id: format!("m{seq}"),
            chunk: 0,
            text: String::new(),
            time_ms: 0,
            app: String::new(),
            collection: String::new(),
            thread: thread.into(),
            seq,
        };
        assert!(neighbours(&msg("t", 4), &msg("t", 6)));
        assert!(!neighbours(&msg("t", 4), &msg("t", 7)));
        assert!(!neighbours(&msg("t", 4), &msg("u", 4)));
        assert!(!neighbours(&msg("", 4), &msg("", 4)), "not messages");
        assert_eq!("".parse::<Mode>().unwrap(), Mode::Hybrid);
        assert!("fuzzy"
            .parse::<Mode>()
            .unwrap_err()
            .contains("hybrid, vector or keyword"));
    }
}
