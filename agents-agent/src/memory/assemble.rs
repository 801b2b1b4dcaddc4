//! A grounded context gathered from cowork.db (the pure rules are in
//! [`super::rag`]): working memory, pinned anchors, the recent capture
//! buffer, hybrid search hits with their neighbouring messages, and a
//! follow-up's backfill; then the budget and the refusal checkpoints.
//! Also the Context Card, and memory as chat's [`Grounding`].

use super::item::{Item, Kind, Stream};
use super::profile::{self, Entry};
use super::rag::{self, Block, Layer, Piece, Refusal};
use super::recall::{Mode, Query};
use super::search::content_terms;
use super::store::{self, Pinned};
use super::{Memory, MemoryError};
use crate::chat::{BoxFuture, Citation, Grounded, Grounding, GroundingRequest};
use crate::context::{layer1, store as context_store};
use crate::util::now_ms;
use std::collections::HashSet;

/// How far back the recent buffer reaches (ms).
const RECENT_MS: i64 = 15 * 60 * 1000;
/// Pieces of the recent buffer, at most.
const RECENT_PIECES: usize = 5;
/// Chunks of a pinned source given, at most.
const PIN_CHUNKS: usize = 4;
/// Messages on each side of a conversation hit.
const NEIGHBOURS: i64 = 1;
/// Answers of the thread whose citations a follow-up's backfill walks.
const BACKFILL_ANSWERS: u32 = 6;
/// Characters of one neighbouring message given, at most.
const NEIGHBOUR_CHARS: usize = 600;
/// Characters of a citation's snippet, about.
const SNIPPET_CHARS: usize = 160;
/// Windows in the Context Card's recent activity.
const CARD_WINDOWS: u32 = 8;

/// A context assembled for one question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assembled {
    /// What a local model gets.
    pub block: Block,
    /// What a cloud model gets (no keystroke or clipboard text).
    pub cloud: Block,
    /// The budget (tokens).
    pub budget: u64,
    /// A grounded question's refusal.
    pub refusal: Option<Refusal>,
    /// Its refusal when a cloud model answers (typed and copied text
    /// left out).
    pub cloud_refusal: Option<Refusal>,
    /// Sources that count as relevant.
    pub relevant: usize,
    /// The best cosine similarity among search hits.
    pub best_similarity: Option<f64>,
    /// The floor it was held to.
    pub floor: f64,
    /// Names in the question memory has never seen.
    pub unknown: Vec<String>,
    /// About the search ("" when nothing to say).
    pub note: String,
}

/// What the agent sees right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Card {
    /// The active window ("app — title"), "" when none.
    pub active_window: String,
    /// Layer 1's block ("" when capture has nothing).
    pub recent_activity: String,
    /// Working memory.
    pub profile: Vec<Entry>,
    /// Pinned anchors.
    pub pins: Vec<Pinned>,
    /// With a query: the context assembled for it.
    pub assembled: Option<Assembled>,
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    let cut = super::chunk::truncate(t, SNIPPET_CHARS);
    if cut.len() < t.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
    }
}

fn private(stream: Stream) -> bool {
    stream.is_private_text()
}

/// A memory item as a cited piece of `layer` (`relevant`: it counts
/// against a grounded question's refusal).
fn piece(item: &Item, layer: Layer, text: String, relevant: bool) -> Piece {
    Piece {
        layer,
        relevant,
        citation: Some(Citation {
            source_type: item.kind.as_str().into(),
            source_id: item.source_id.clone(),
            time_ms: item.time_ms,
            snippet: snippet(&item.text),
            chunk_id: item.id,
            layer: layer.as_str().into(),
        }),
        private: private(item.stream),
        text,
    }
}

impl Memory {
    /// The profile, newest values, known keys first.
    pub async fn profile(&self) -> Result<Vec<Entry>, MemoryError> {
        Ok(self.db().read(store::profile).await?)
    }

    /// Set a profile key as the person wrote it.
    pub async fn set_profile(&self, key: &str, value: &str) -> Result<Vec<Entry>, MemoryError> {
        let key = profile::key(key).map_err(MemoryError::Invalid)?;
        let value = profile::value(value).map_err(MemoryError::Invalid)?;
        let now = now_ms();
        let done = self
            .db()
            .write(move |c| store::set_profile(c, &key, &value, profile::Origin::Person, now))
            .await?;
        if done == store::SetOutcome::Full {
            return Err(MemoryError::Invalid(format!(
                "the profile has {} keys already: unset one first",
                profile::MAX_ENTRIES
            )));
        }
        self.profile().await
    }

    /// Remove a profile key (`None`: all of them).
    pub async fn unset_profile(&self, key: Option<&str>) -> Result<Vec<Entry>, MemoryError> {
        let key = key
            .map(|k| profile::key(k).map_err(MemoryError::Invalid))
            .transpose()?;
        let now = now_ms();
        let n = self
            .db()
            .write(move |c| store::unset_profile(c, key.as_deref(), now))
            .await?;
        tracing::info!(removed = n, "profile keys unset");
        self.profile().await
    }

    /// Pin a source; an unknown one is refused.
    pub async fn pin(&self, source_id: &str) -> Result<Vec<Pinned>, MemoryError> {
        let id = source_id.trim().to_owned();
        if id.is_empty() {
            return Err(MemoryError::Invalid("name the source to pin".into()));
        }
        let id2 = id.clone();
        let done = self
            .db()
            .write(move |c| store::pin(c, &id2, now_ms()))
            .await?;
        match done {
            store::PinOutcome::Pinned => self.pins().await,
            store::PinOutcome::Unknown => Err(MemoryError::NotFound(format!(
                "memory holds no source {id:?} (ids as `memory search` shows them)"
            ))),
            store::PinOutcome::Full => Err(MemoryError::Invalid(format!(
                "{} sources are pinned already: unpin one first",
                store::MAX_PINS
            ))),
        }
    }

    /// Unpin a source.
    pub async fn unpin(&self, source_id: &str) -> Result<Vec<Pinned>, MemoryError> {
        let id = source_id.trim().to_owned();
        let id2 = id.clone();
        if !self.db().write(move |c| store::unpin(c, &id2)).await? {
            return Err(MemoryError::NotFound(format!("{id:?} is not pinned")));
        }
        self.pins().await
    }

    /// The pins, newest first.
    pub async fn pins(&self) -> Result<Vec<Pinned>, MemoryError> {
        Ok(self.db().read(|c| store::pins(c, PIN_CHUNKS)).await?)
    }

    /// The Context Card; with a `query`, the context assembled for it.
    pub async fn card(
        &self,
        query: &str,
        grounded: bool,
        thread_id: &str,
    ) -> Result<Card, MemoryError> {
        let (windows, profile, pins) = self
            .db()
            .read(|c| {
                Ok((
                    context_store::recent_windows(c, CARD_WINDOWS),
                    store::profile(c)?,
                    store::pins(c, PIN_CHUNKS)?,
                ))
            })
            .await?;
        let active_window = windows
            .first()
            .filter(|w| w.open)
            .map(|w| format!("{} — {}", w.app, w.title))
            .unwrap_or_default();
        let assembled = if query.trim().is_empty() {
            None
        } else {
            Some(self.assemble(query, grounded, thread_id).await?)
        };
        Ok(Card {
            active_window,
            recent_activity: layer1::block(&windows).unwrap_or_default(),
            profile,
            pins,
            assembled,
        })
    }

    /// Assemble the context for `question`, in the seed's order: working
    /// memory, pinned anchors, the recent capture buffer, relevant search
    /// hits with their neighbours, a follow-up's backfill; compressed to
    /// `[memory] context_tokens`; for a `grounded` question, the refusal
    /// checkpoints.
    pub async fn assemble(
        &self,
        question: &str,
        grounded: bool,
        thread_id: &str,
    ) -> Result<Assembled, MemoryError> {
        let cfg = self.config()?;
        let embedder = self.embedder(false).await.ok();
        let floor = cfg.relevance_floor.unwrap_or_else(|| {
            embedder
                .as_ref()
                .map_or(rag::MINILM_FLOOR, |e| rag::default_floor(&e.model))
        });
        // Only a grounded question's names are checked: general chat
        // takes what memory has.
        let names = if grounded && cfg.check_names {
            rag::named(question)
        } else {
            Vec::new()
        };
        // A search takes at most MAX_QUERY characters of a long message.
        let question = super::chunk::truncate(question, super::recall::MAX_QUERY);
        let since = now_ms() - RECENT_MS;
        let (thread, last) = (thread_id.to_owned(), cfg.last_messages);
        let (profile, pins, recent, empty, unknown, in_context) = self
            .db()
            .read(move |c| {
                // The thread's messages the answer gets as history (the
                // question among them) are not recalled again.
                let in_context: HashSet<String> = crate::chat::store::last_ids(c, &thread, last)?
                    .into_iter()
                    .collect();
                let serving = store::indexes(c, Some(Kind::Activity))?
                    .into_iter()
                    .find(|i| i.state == store::SERVING);
                let recent = store::recent_unembedded(c, serving.as_ref(), since, RECENT_PIECES)?;
                let mut unknown = Vec::new();
                for n in names {
                    if !store::phrase_known(c, &n)? {
                        unknown.push(n);
                    }
                }
                Ok((
                    store::profile(c)?,
                    store::pins(c, PIN_CHUNKS)?,
                    recent,
                    store::is_empty(c)?,
                    unknown,
                    in_context,
                ))
            })
            .await?;
        let terms = content_terms(question);
        let mut pieces = Vec::new();
        if let Some(text) = profile::render(&profile) {
            pieces.push(Piece {
                layer: Layer::WorkingMemory,
                citation: None,
                text,
                private: false,
                relevant: false,
            });
        }
        let mut have: HashSet<i64> = HashSet::new();
        let pinned: HashSet<String> = pins.iter().map(|p| p.source_id.clone()).collect();
        for p in &pins {
            for item in &p.items {
                have.insert(item.id);
                pieces.push(piece(item, Layer::Pinned, item.text.clone(), true));
            }
        }
        for item in recent.iter().filter(|i| !pinned.contains(&i.source_id)) {
            have.insert(item.id);
            let words = rag::coverage(&item.text, &terms) >= rag::KEYWORD_COVERAGE;
            pieces.push(piece(item, Layer::Recent, item.text.clone(), words));
        }
        // Search: only hits that clear the floor, and none when the
        // question names what memory has never seen.
        let mut note = String::new();
        let mut best_similarity = None;
        let mut found = 0;
        if !question.trim().is_empty() && !empty {
            let hits = self
                .search(Query {
                    text: question.to_owned(),
                    // Room for hits left out (said in this thread,
                    // pinned, under the floor).
                    k: cfg.n_docs * 2 + in_context.len(),
                    mode: Mode::Hybrid,
                    ..Query::default()
                })
                .await?;
            note = hits.note.clone();
            // The words searched (a time expression taken out).
            let searched = content_terms(&hits.text);
            best_similarity = hits
                .hits
                .iter()
                .filter_map(|h| h.vector.map(|v| v.1))
                .reduce(f64::max);
            for h in &hits.hits {
                if found >= cfg.n_docs {
                    break;
                }
                let said_here =
                    h.item.stream == Stream::Chat && in_context.contains(&h.item.source_id);
                if said_here || pinned.contains(&h.item.source_id) || have.contains(&h.item.id) {
                    continue;
                }
                let ok = h.vector.is_some_and(|(_, cos)| cos >= floor)
                    || rag::coverage(&h.item.text, &searched) >= rag::KEYWORD_COVERAGE;
                if !ok || !unknown.is_empty() {
                    continue;
                }
                have.insert(h.item.id);
                let text = self.with_neighbours(&h.item).await?;
                pieces.push(piece(&h.item, Layer::Search, text, true));
                found += 1;
            }
        }
        // A follow-up: what the thread's recent answers cited.
        if found < cfg.n_docs && !thread_id.is_empty() {
            let thread = thread_id.to_owned();
            let recent_cites = self
                .db()
                .read(move |c| crate::chat::store::recent_citations(c, &thread, BACKFILL_ANSWERS))
                .await?;
            let again = rag::backfill(&recent_cites, &have, found, cfg.n_docs);
            let ids: Vec<i64> = again.iter().map(|c| c.chunk_id).collect();
            let items = self.db().read(move |c| store::items(c, &ids)).await?;
            for cite in &again {
                // The chunk still holds the source cited (an id freed by
                // a deletion may have been taken since).
                let Some(item) = items
                    .iter()
                    .find(|i| i.id == cite.chunk_id && i.source_id == cite.source_id)
                else {
                    continue;
                };
                if pinned.contains(&item.source_id) {
                    continue;
                }
                // A follow-up that names what memory has never seen is
                // not grounded by what came before.
                let counts = unknown.is_empty();
                pieces.push(piece(item, Layer::Backfill, item.text.clone(), counts));
            }
        }
        let budget = cfg.context_tokens;
        let block = rag::fit(pieces.clone(), budget, grounded, false);
        let cloud = rag::fit(pieces, budget, grounded, true);
        // The checkpoints count the relevant sources the block kept.
        let (refusal, cloud_refusal) = if grounded {
            (
                rag::refusal(empty, block.relevant(), &unknown),
                rag::refusal(empty, cloud.relevant(), &unknown),
            )
        } else {
            (None, None)
        };
        let relevant = block.relevant();
        Ok(Assembled {
            block,
            cloud,
            budget,
            refusal,
            cloud_refusal,
            relevant,
            best_similarity,
            floor,
            unknown,
            note,
        })
    }

    /// A hit's text as the model gets it: a message with the messages
    /// around it (±1) in its thread, else the chunk.
    async fn with_neighbours(&self, item: &Item) -> Result<String, MemoryError> {
        if item.kind != Kind::Conversation || item.thread.is_empty() {
            return Ok(item.text.clone());
        }
        let (thread, seq) = (item.thread.clone(), item.seq);
        let around = self
            .db()
            .read(move |c| crate::chat::store::around(c, &thread, seq, NEIGHBOURS))
            .await?;
        if around.is_empty() {
            return Ok(item.text.clone());
        }
        Ok(around
            .iter()
            .map(|(who, text)| {
                let t = text.trim();
                let cut = super::chunk::truncate(t, NEIGHBOUR_CHARS);
                let more = if cut.len() < t.len() { "…" } else { "" };
                format!("{who}: {cut}{more}")
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

impl Grounding for Memory {
    fn ground(&self, req: GroundingRequest) -> BoxFuture<'_, Result<Grounded, String>> {
        Box::pin(async move {
            self.chat_asked();
            let a = self
                .assemble(&req.question, req.grounded, &req.thread_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Grounded {
                citations: a.block.citations(),
                citations_for_cloud: a.cloud.citations(),
                text: a.block.text,
                text_for_cloud: a.cloud.text,
                refusal: a.refusal.map(|r| r.message()),
                refusal_for_cloud: a.cloud_refusal.map(|r| r.message()),
            })
        })
    }

    fn refused(&self, message_id: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            // The question leaves every index and is never indexed: asked
            // again, it would otherwise be its own relevant source (and
            // make the names in it known).
            self.forget(super::Forget::Sources {
                ids: vec![message_id],
                collection: Some(String::new()),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_copied_and_spoken_text_stay_out_of_a_cloud_prompt() {
        for s in Stream::ALL {
            let want = matches!(s, Stream::Keystrokes | Stream::Clipboard | Stream::Audio);
            assert_eq!(private(s), want, "{}", s.as_str());
        }
    }
}
