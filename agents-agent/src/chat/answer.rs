//! The answer pipeline, one named step at a time: [`Chat::open_thread`]
//! (store the question, or find the answer being retried) →
//! [`Chat::context`] (Layer 1) → [`Chat::route`] (the complexity router,
//! the budget, and who answers) → [`prompt`] (the conversation sent) →
//! [`Chat::stream`] (deltas relayed as they come) → [`Chat::ledger`] (the
//! usage ledger) → the answer stored.

use super::store::{self, MessageRow};
use super::{Ask, Chat, ChatError, Event, Grounded, GroundingRequest, Route, MAX_MESSAGE};
use crate::config::{parse_preference, AgentsConfig, MemoryConfig};
use crate::context::{layer1, store as context_store};
use crate::llm::client::{stream_chat, ChatMessage, ChatTarget};
use crate::llm::detect::{Detected, LocalEngine};
use crate::llm::router::{self, Decision, Request as RouteRequest, Target};
use crate::llm::tier::{for_tier, Tier, TIERS};
use crate::llm::tokens;
use crate::usage::ledger;
use crate::util::{new_id, now_ms};
use cowork_proto::traces::TARGET as TRACE;
use tokio::sync::mpsc;
use tracing::Instrument as _;

/// Recent windows given to the model as Layer 1 context.
pub const CONTEXT_WINDOWS: u32 = 8;

/// What the answer's events are sent on (the caller's half closes when it
/// goes away, which cancels the engine's request).
pub type Events = mpsc::Sender<Result<Event, ChatError>>;

/// The thread step's result.
struct Opened {
    thread_id: String,
    ask_id: String,
    /// The assistant message being retried ("try harder").
    retried: Option<MessageRow>,
    /// The thread so far (for a retry: up to the retried answer).
    history: Vec<MessageRow>,
    /// What is being answered.
    question: String,
    /// The question's message (None for a retry, whose question was
    /// stored by its first ask).
    question_id: Option<String>,
}

impl Chat {
    /// Start answering `ask`; its events arrive on the returned receiver.
    /// An empty or oversized message is refused at once.
    pub fn send(&self, ask: Ask) -> Result<mpsc::Receiver<Result<Event, ChatError>>, ChatError> {
        if ask.retry_of_message_id.is_empty() && ask.text.trim().is_empty() {
            return Err(ChatError::Invalid("the message is empty".into()));
        }
        if ask.text.len() > MAX_MESSAGE {
            return Err(ChatError::Invalid(format!(
                "the message is {} bytes, over the {MAX_MESSAGE}-byte limit",
                ask.text.len()
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        // The answer's span, under the request's (one trace from the
        // client to the engine): names, timings, sizes; never text.
        let span =
            tracing::info_span!(target: TRACE, "chat.answer", outcome = tracing::field::Empty);
        tokio::spawn(
            async move {
                let r = me.answer(ask, &tx).await;
                tracing::Span::current().record("outcome", if r.is_ok() { "ok" } else { "error" });
                if let Err(e) = r {
                    let _ = tx.send(Err(e)).await;
                }
            }
            .instrument(span),
        );
        Ok(rx)
    }

    async fn answer(&self, ask: Ask, out: &Events) -> Result<(), ChatError> {
        let cfg = self.config()?;
        let opened = self.open_thread(&ask).await?;
        let detected = self.resolver.watch().current().await;
        let local = if ask.background {
            detected.background.clone()
        } else {
            detected.main.clone()
        };
        let memory_cfg = MemoryConfig::load(&self.config).map_err(ChatError::Config)?;
        let message_id = new_id("m");
        // RAG assembly: how many sources and tokens memory gave (no text).
        let ground_span = tracing::info_span!(
            target: TRACE,
            "memory.ground",
            items = tracing::field::Empty,
            tokens = tracing::field::Empty,
        );
        let grounded = self
            .ground(&ask, &opened)
            .instrument(ground_span.clone())
            .await?;
        ground_span.record("items", grounded.citations.len());
        ground_span.record(
            "tokens",
            crate::llm::tokens::estimate(grounded.text.as_ref().map_or(0, String::len)),
        );
        drop(ground_span);
        if let Some(refusal) = &grounded.refusal {
            return self.refuse(&opened, message_id, refusal, out).await;
        }
        // A grounded question is answered from what memory assembled
        // alone (its recent layer holds the newest capture); a general one
        // also gets Layer 1, the windows of the moment.
        let layer1 = if ask.grounded {
            None
        } else {
            let span = tracing::info_span!(target: TRACE, "context.layer1", tokens = tracing::field::Empty);
            let l = self.context().instrument(span.clone()).await;
            span.record(
                "tokens",
                crate::llm::tokens::estimate(l.as_ref().map_or(0, String::len)),
            );
            l
        };
        let context = join_context(layer1.clone(), grounded.text.clone());
        let decision = {
            let span = tracing::info_span!(target: TRACE, "router", route = tracing::field::Empty, model = tracing::field::Empty);
            let d = self
                .route(&cfg, &ask, &opened, &detected, local.as_ref(), &context)
                .instrument(span.clone())
                .await?;
            span.record(
                "route",
                match d.target {
                    Target::Cloud(_) => "cloud",
                    Target::Local(_) => "local",
                },
            );
            span.record("model", d.target.model_id());
            d
        };
        if let (Target::Cloud(_), Some(refusal)) = (&decision.target, &grounded.refusal_for_cloud) {
            // What memory holds on it is typed or copied text, which a
            // cloud model never gets.
            return self.refuse(&opened, message_id, refusal, out).await;
        }
        // A cloud model never gets typed or copied text from memory.
        let (context, citations) = match decision.target {
            Target::Cloud(_) => (
                join_context(layer1, grounded.text_for_cloud.clone()),
                grounded.citations_for_cloud.clone(),
            ),
            Target::Local(_) => (context, grounded.citations.clone()),
        };
        let model_id = decision.target.model_id().to_owned();
        let target = match &decision.refusal {
            // No engine because local AI is paused: say so, and how to
            // bring it back.
            Some(crate::llm::router::Refusal::NoEngine) => {
                Err(match self.resolver.watch().sessions().paused() {
                    Some(p) => crate::llm::detect::paused_message(&p.reason),
                    None => crate::llm::router::Refusal::NoEngine.to_string(),
                })
            }
            Some(r) => Err(r.to_string()),
            None => {
                self.resolver
                    .target(&decision.target, local.as_ref(), &detected.cloud)
                    .await
            }
        };
        let _ = out
            .send(Ok(Event::Route(Route {
                model: model_id.clone(),
                reason: decision.reason.clone(),
                notice: decision.notice.clone().unwrap_or_default(),
                cost_estimate_usd: decision.cost_estimate,
                thread_id: opened.thread_id.clone(),
                message_id: message_id.clone(),
                ask_id: opened.ask_id.clone(),
                engine: target.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                reload_ms: target
                    .as_ref()
                    .ok()
                    .and_then(|t| t.reloaded())
                    .map(|d| d.as_millis() as u64),
            })))
            .await;
        if !citations.is_empty() {
            let _ = out.send(Ok(Event::Citations(citations.clone()))).await;
        }
        let mut answer = MessageRow {
            id: message_id,
            thread_id: opened.thread_id.clone(),
            role: "assistant".into(),
            content: String::new(),
            model: model_id,
            ask_id: opened.ask_id.clone(),
            created_ms: now_ms(),
            finish_reason: String::new(),
        };
        let result = match target {
            Err(e) => Err(e),
            Ok(target) => {
                let messages = prompt(&context, &opened, memory_cfg.last_messages);
                let mut counted = None;
                let span = tracing::info_span!(
                    target: TRACE,
                    "engine",
                    engine = %target.name,
                    ttft_ms = tracing::field::Empty,
                    prompt_tokens = tracing::field::Empty,
                    completion_tokens = tracing::field::Empty,
                    outcome = tracing::field::Empty,
                );
                let r = self
                    .stream(
                        &target,
                        &messages,
                        cfg.max_output_tokens,
                        out,
                        &mut answer,
                        &mut counted,
                    )
                    .instrument(span.clone())
                    .await;
                if let Some((p, c)) = counted {
                    span.record("prompt_tokens", p);
                    span.record("completion_tokens", c);
                }
                span.record("outcome", if r.is_ok() { "ok" } else { "error" });
                // The engine's count, else an estimate.
                let used = counted.unwrap_or_else(|| {
                    (
                        tokens::estimate_all(messages.iter().map(|m| m.content.as_str())),
                        tokens::estimate(answer.content.len()),
                    )
                });
                self.ledger(&decision.target, &answer, used)
                    .instrument(tracing::info_span!(target: TRACE, "ledger"))
                    .await?;
                r
            }
        };
        if let Err(e) = result {
            if matches!(decision.target, Target::Local(_)) {
                self.resolver.watch().forget();
            }
            answer.finish_reason = "error".into();
            let _ = out.send(Ok(Event::Error(e))).await;
        }
        self.db
            .write(move |c| {
                store::put_message(c, &answer)?;
                store::put_citations(c, &answer.id, &citations)
            })
            .await?;
        Ok(())
    }

    /// What memory gives this answer (nothing when chat has no memory).
    /// A general question goes on without memory when memory fails; a
    /// grounded one fails with why.
    async fn ground(&self, ask: &Ask, opened: &Opened) -> Result<Grounded, ChatError> {
        let Some(g) = &self.grounding else {
            return Ok(Grounded::default());
        };
        let req = GroundingRequest {
            question: opened.question.clone(),
            thread_id: opened.thread_id.clone(),
            grounded: ask.grounded,
        };
        match g.ground(req).await {
            Ok(x) => Ok(x),
            Err(e) if ask.grounded => Err(ChatError::Memory(e)),
            Err(e) => {
                tracing::warn!(error = %e, "memory gave nothing; answering without it");
                Ok(Grounded::default())
            }
        }
    }

    /// A grounded question memory cannot ground: the refusal streamed
    /// (a route naming no model, the text, finish "refusal") and stored,
    /// with no model call.
    async fn refuse(
        &self,
        opened: &Opened,
        message_id: String,
        refusal: &str,
        out: &Events,
    ) -> Result<(), ChatError> {
        let _ = out
            .send(Ok(Event::Route(Route {
                reason: "grounded: memory holds nothing relevant; refused without a model call"
                    .into(),
                thread_id: opened.thread_id.clone(),
                message_id: message_id.clone(),
                ask_id: opened.ask_id.clone(),
                ..Route::default()
            })))
            .await;
        let _ = out.send(Ok(Event::Delta(refusal.to_owned()))).await;
        let _ = out.send(Ok(Event::Finish(store::REFUSAL.into()))).await;
        let answer = MessageRow {
            id: message_id,
            thread_id: opened.thread_id.clone(),
            role: "assistant".into(),
            content: refusal.to_owned(),
            model: String::new(),
            ask_id: opened.ask_id.clone(),
            created_ms: now_ms(),
            finish_reason: store::REFUSAL.into(),
        };
        self.db
            .write(move |c| store::put_message(c, &answer))
            .await?;
        if let (Some(g), Some(q)) = (&self.grounding, &opened.question_id) {
            if let Err(e) = g.refused(q.clone()).await {
                tracing::warn!(error = %e, "memory could not drop the refused question");
            }
        }
        Ok(())
    }

    /// The thread and ask the answer belongs to: a new thread, the one
    /// named, or (a retry) the retried answer's; the question stored,
    /// or (a retry) the user message before the retried answer.
    async fn open_thread(&self, ask: &Ask) -> Result<Opened, ChatError> {
        let text = ask.text.clone();
        let retry_of = ask.retry_of_message_id.clone();
        let thread_id = ask.thread_id.clone();
        let app_id = ask.app_id.clone();
        if !app_id.is_empty() && !self.apps.as_ref().is_some_and(|a| a.is_installed(&app_id)) {
            return Err(ChatError::NotFound(format!(
                "no installed app {app_id} (see `coworkctl apps list`)"
            )));
        }
        let (thread_id, ask_id, retried, exists, mut history) = self
            .db
            .write(move |c| {
                let retried = if retry_of.is_empty() {
                    None
                } else {
                    store::get_message(c, &retry_of)?
                };
                let thread_id = match (&retried, thread_id.is_empty()) {
                    (Some(m), _) => m.thread_id.clone(),
                    (None, true) => store::create_app_thread(c, &text, &app_id)?,
                    (None, false) => thread_id,
                };
                let exists = store::thread_exists(c, &thread_id)?;
                let ask_id = retried
                    .as_ref()
                    .map(|m| m.ask_id.clone())
                    .unwrap_or_else(|| new_id("ask"));
                let history = if exists {
                    store::messages(c, &thread_id)?
                } else {
                    Vec::new()
                };
                Ok((thread_id, ask_id, retried, exists, history))
            })
            .await?;
        if !exists {
            return Err(ChatError::NotFound(format!("no thread {thread_id}")));
        }
        if !ask.retry_of_message_id.is_empty()
            && retried.as_ref().is_none_or(|m| m.role != "assistant")
        {
            return Err(ChatError::NotFound(format!(
                "no assistant message {} to retry",
                ask.retry_of_message_id
            )));
        }
        let mut question_id = None;
        let question = match &retried {
            // Retry: answer the same question again (the user message
            // before the retried answer).
            Some(m) => {
                let pos = history
                    .iter()
                    .position(|h| h.id == m.id)
                    .unwrap_or(history.len());
                history.truncate(pos);
                history
                    .iter()
                    .rev()
                    .find(|h| h.role == "user")
                    .map(|h| h.content.clone())
                    .unwrap_or_default()
            }
            None => {
                let user = MessageRow {
                    id: new_id("m"),
                    thread_id: thread_id.clone(),
                    role: "user".into(),
                    content: ask.text.clone(),
                    model: String::new(),
                    ask_id: ask_id.clone(),
                    created_ms: now_ms(),
                    finish_reason: String::new(),
                };
                let u = user.clone();
                question_id = Some(user.id.clone());
                self.db.write(move |c| store::put_message(c, &u)).await?;
                history.push(user);
                ask.text.clone()
            }
        };
        Ok(Opened {
            thread_id,
            ask_id,
            retried,
            history,
            question,
            question_id,
        })
    }

    /// Layer 1: the active and recent windows from capture's tables, as a
    /// system block (None when capture has none, or cannot be read).
    async fn context(&self) -> Option<String> {
        self.db
            .read(|c| Ok(context_store::recent_windows(c, CONTEXT_WINDOWS)))
            .await
            .ok()
            .and_then(|w| layer1::block(&w))
    }

    /// The router's decision for this ask: the configured policy with what
    /// detection found, the ask's size (history and context), the retried
    /// answer's tier, and the ledger's spend so far.
    async fn route(
        &self,
        cfg: &AgentsConfig,
        ask: &Ask,
        opened: &Opened,
        detected: &Detected,
        local: Option<&LocalEngine>,
        context: &Option<String>,
    ) -> Result<Decision, ChatError> {
        let mut policy = cfg.policy().map_err(ChatError::Config)?;
        if !ask.preference.is_empty() {
            policy.preference = parse_preference(&ask.preference)
                .map_err(|e| ChatError::Invalid(format!("preference {e}")))?;
        }
        policy.local_model = local.map(|l| format!("{}/{}", l.engine, l.model));
        policy.cloud_tiers = TIERS
            .into_iter()
            .filter(|t| {
                let (p, _) = for_tier(*t);
                detected.cloud.iter().any(|r| r.provider == p)
            })
            .collect();
        let size = tokens::estimate_all(opened.history.iter().map(|m| m.content.as_str()))
            + context.as_ref().map_or(0, |c| tokens::estimate(c.len()));
        let retry_target = opened
            .retried
            .as_ref()
            .map(|m| match Tier::of_model(&m.model) {
                Some(t) => Target::Cloud(t),
                None => Target::Local(m.model.clone()),
            });
        let usage = ledger::usage_now(&self.db, Some(opened.ask_id.clone())).await?;
        Ok(router::route(
            &policy,
            &RouteRequest {
                tokens: size,
                attachments: ask.attachments,
                tools: ask.tools,
                retry_of: retry_target,
            },
            &usage,
        ))
    }

    /// Relay the engine's answer: text deltas and usage to `out` as they
    /// come, into `answer`; a client that goes away drops the engine's
    /// request. Ends with a finish event, or returns the engine's error.
    async fn stream(
        &self,
        target: &ChatTarget,
        messages: &[ChatMessage],
        max_tokens: Option<u32>,
        out: &Events,
        answer: &mut MessageRow,
        counted: &mut Option<(u64, u64)>,
    ) -> Result<(), String> {
        let (tx, mut rx) = mpsc::channel(64);
        let (target, msgs) = (target.clone(), messages.to_vec());
        let target_name = target.name.clone();
        // The sender lives in the call: when it ends, the receiver drains
        // and closes.
        let call = async move { stream_chat(&target, &msgs, max_tokens, &tx).await };
        tokio::pin!(call);
        let mut result = None;
        let started = std::time::Instant::now();
        let mut first = true;
        loop {
            tokio::select! {
                r = &mut call, if result.is_none() => { result = Some(r); }
                d = rx.recv() => match d {
                    Some(d) => {
                        if !d.text.is_empty() {
                            if first {
                                first = false;
                                // Time to first token, on the engine span.
                                tracing::Span::current()
                                    .record("ttft_ms", started.elapsed().as_millis() as u64);
                            }
                            answer.content.push_str(&d.text);
                            if out.send(Ok(Event::Delta(d.text))).await.is_err() {
                                // The client went away: dropping the call cancels the engine.
                                tracing::info!(engine = %target_name, "the client went away; cancelling the answer");
                                return Err("the client went away".into());
                            }
                        }
                        if let Some((p, c)) = d.usage {
                            *counted = Some((p, c));
                            let _ = out.send(Ok(Event::Usage(p, c))).await;
                        }
                        if let Some(f) = d.finish_reason {
                            answer.finish_reason = f;
                        }
                    }
                    None => break,
                },
            }
        }
        match result {
            Some(Ok(())) | None => {
                if answer.finish_reason.is_empty() {
                    answer.finish_reason = "stop".into();
                }
                let _ = out
                    .send(Ok(Event::Finish(answer.finish_reason.clone())))
                    .await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
        }
    }

    /// Write the call to the usage ledger, under the answer's ask (an
    /// answer that used no tokens, e.g. refused before any text, is not a
    /// call).
    async fn ledger(
        &self,
        target: &Target,
        answer: &MessageRow,
        used: (u64, u64),
    ) -> Result<(), ChatError> {
        if used.0 + used.1 == 0 {
            return Ok(());
        }
        let tier = match target {
            Target::Local(_) => None,
            Target::Cloud(t) => Some(*t),
        };
        ledger::record_call(&self.db, &answer.ask_id, &answer.model, tier, used).await?;
        Ok(())
    }
}

/// Layer 1 and the memory block, as one system message.
fn join_context(layer1: Option<String>, memory: Option<String>) -> Option<String> {
    match (layer1, memory) {
        (Some(a), Some(b)) => Some(format!("{a}\n\n{b}")),
        (a, b) => a.or(b),
    }
}

/// The conversation sent to the model: the context block, the thread's
/// last `last` messages (empty, failed and refused ones left out), and
/// for a retry the question again when the thread does not end with it.
fn prompt(context: &Option<String>, opened: &Opened, last: usize) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    if let Some(ctx) = context {
        messages.push(ChatMessage {
            role: "system".into(),
            content: ctx.clone(),
        });
    }
    let kept: Vec<&MessageRow> = opened
        .history
        .iter()
        .filter(|m| {
            !(m.content.is_empty()
                || m.finish_reason == "error"
                || m.finish_reason == store::REFUSAL)
        })
        .collect();
    for m in &kept[kept.len().saturating_sub(last)..] {
        messages.push(ChatMessage {
            role: m.role.clone(),
            content: m.content.clone(),
        });
    }
    if opened.retried.is_some() && messages.last().is_none_or(|m| m.role != "user") {
        messages.push(ChatMessage {
            role: "user".into(),
            content: opened.question.clone(),
        });
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str, content: &str, finish: &str) -> MessageRow {
        MessageRow {
            id: new_id("m"),
            thread_id: "t".into(),
            role: role.into(),
            content: content.into(),
            model: String::new(),
            ask_id: "a".into(),
            created_ms: 0,
            finish_reason: finish.into(),
        }
    }

    #[test]
    fn the_prompt_leaves_out_failed_answers_and_repeats_a_retried_question() {
        let opened = Opened {
            thread_id: "t".into(),
            ask_id: "a".into(),
            retried: None,
            history: vec![
                row("user", "first", ""),
                row("assistant", "", "error"),
                row("assistant", "half", "error"),
                row("user", "second", ""),
            ],
            question: "second".into(),
            question_id: None,
        };
        let p = prompt(&Some("ctx".into()), &opened, 10);
        let seen: Vec<_> = p
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(
            seen,
            [("system", "ctx"), ("user", "first"), ("user", "second")]
        );
        let retry = Opened {
            retried: Some(row("assistant", "old answer", "stop")),
            history: vec![row("user", "q", ""), row("assistant", "a", "stop")],
            question: "q".into(),
            ..opened
        };
        let p = prompt(&None, &retry, 10);
        assert_eq!(p.last().map(|m| m.content.as_str()), Some("q"));
        assert_eq!(p.len(), 3);
    }
}
