//! The Observer and the Reflector, in the background (the rules are in
//! [`super::observe`]): once the raw history not yet observed passes
//! `[memory] observe_tokens`, the local model compresses it, a window at
//! a time, into dated observations (and notes profile values the person
//! stated); once the current observations pass `reflect_tokens`, it
//! condenses the oldest. Only a local model is asked (the cron companion
//! when one runs; else the main engine, and then only while no answer
//! has been asked for in the last [`QUIET`]), so the person's chat is
//! never kept waiting behind it and nothing leaves the machine.

use super::observe;
use super::profile::Origin;
use super::{store, Memory};
use crate::llm::client::{complete, ChatTarget};
use crate::llm::resolve::Resolver;
use crate::llm::router::Target;
use crate::util::now_ms;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the Observer looks at the history.
const POLL: Duration = Duration::from_secs(5);
/// How long it waits after a failed pass (no local model, an engine
/// error) before trying again.
const AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Without a cron companion the Observer waits this long after the last
/// answer asked for.
pub const QUIET: Duration = Duration::from_secs(20);
/// Raw history items read per Observer pass, at most.
const READ: usize = 500;

/// Start the Observer; it stops with `shutdown`.
pub fn spawn(memory: Memory, resolver: Resolver, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut state = State::default();
        let mut wait = POLL;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = POLL;
            match pass(&memory, &resolver, &mut state).await {
                Ok(Pass::Idle) => {}
                Ok(done) => tracing::info!(?done, "observer pass"),
                Err(e) => {
                    tracing::warn!(error = %e, "observer pass failed; trying again in a minute");
                    wait = AFTER_FAILURE;
                    let _ = memory
                        .db()
                        .write(move |c| store::set_observer_state(c, &e, now_ms()))
                        .await;
                }
            }
        }
    });
}

/// What the Observer remembers between passes.
#[derive(Debug, Default)]
pub struct State {
    /// No reflection before this (after a rejected one).
    reflect_after: Option<tokio::time::Instant>,
    /// The window whose reply was rejected (its first item) and how many
    /// times.
    rejected: Option<(i64, u32)>,
}

/// Replies rejected for one window before the Observer goes on after it
/// (it stays in semantic recall as it is).
const TRIES: u32 = 2;

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Below both thresholds, or waiting for a quiet engine.
    Idle,
    /// Observed a window: observations stored, profile values noted.
    Observed(usize, usize),
    /// A reply gave nothing usable (why).
    Rejected(String),
    /// Reflected: reflections stored, observations they replace.
    Reflected(usize, usize),
    /// Gave way to chat mid-request (tried again later).
    GaveWay,
}

/// The local model to observe with, and whether it is chat's own (the
/// request then gives way when chat asks): the cron companion, else the
/// main engine when chat has been quiet; None to wait.
async fn model(memory: &Memory, resolver: &Resolver) -> Result<Option<(ChatTarget, bool)>, String> {
    let detected = resolver.watch().current().await;
    let Some(main) = detected.main.as_ref() else {
        return Err("no local model to observe with (observations are made locally only)".into());
    };
    let companion = detected.background.as_ref().filter(|b| b.key != main.key);
    let (engine, shared) = match companion {
        Some(c) => (c, false),
        None if memory.chat_quiet_for() < QUIET => return Ok(None),
        None => (main, true),
    };
    let target = resolver
        .target(&Target::Local(engine.model.clone()), Some(engine), &[])
        .await?;
    Ok(Some((target, shared)))
}

/// Ask the model; None when chat asked meanwhile on a `shared` engine
/// (the request is dropped, which cancels it).
async fn ask(
    memory: &Memory,
    (target, shared): &(ChatTarget, bool),
    messages: &[serde_json::Value],
    max_tokens: u32,
) -> Result<Option<String>, String> {
    let call = complete(target, messages, &[], None, Some(max_tokens));
    if !*shared {
        return call.await.map(|r| Some(r.content));
    }
    tokio::select! {
        r = call => r.map(|r| Some(r.content)),
        _ = memory.chat_asking() => Ok(None),
    }
}

/// One pass: observe one window when enough history waits, else reflect
/// when the observations have grown past theirs.
pub async fn pass(memory: &Memory, resolver: &Resolver, state: &mut State) -> Result<Pass, String> {
    let cfg = memory.config().map_err(|e| e.to_string())?;
    if !cfg.observe {
        return Ok(Pass::Idle);
    }
    let db = memory.db();
    let waiting = db
        .read(store::unobserved_chars)
        .await
        .map_err(|e| e.to_string())?;
    if waiting / crate::llm::tokens::CHARS_PER_TOKEN >= cfg.observe_tokens {
        return observe_window(memory, resolver, state, &cfg).await;
    }
    if state
        .reflect_after
        .is_some_and(|t| tokio::time::Instant::now() < t)
    {
        return Ok(Pass::Idle);
    }
    reflect(memory, resolver, state, &cfg).await
}

/// Observe the oldest window of unobserved history.
async fn observe_window(
    memory: &Memory,
    resolver: &Resolver,
    state: &mut State,
    cfg: &crate::config::MemoryConfig,
) -> Result<Pass, String> {
    let db = memory.db();
    let Some(model) = model(memory, resolver).await? else {
        return Ok(Pass::Idle);
    };
    let entries = db
        .read(|c| store::unobserved(c, READ))
        .await
        .map_err(|e| e.to_string())?;
    let n = observe::window(&entries, cfg.observe_window_tokens);
    let window = &entries[..n];
    let (Some(first), Some(upto)) = (
        window.first().map(|e| e.item_id),
        window.last().map(|e| e.item_id),
    ) else {
        return Ok(Pass::Idle);
    };
    let Some(reply) = ask(
        memory,
        &model,
        &observe::observe_prompt(window),
        cfg.observe_max_tokens,
    )
    .await
    .map_err(|e| format!("the observer's model failed: {e}"))?
    else {
        return Ok(Pass::GaveWay);
    };
    let found = observe::parse_observations(&reply, window);
    let profile = profile_values(memory, &model, window, cfg.observe_max_tokens).await;
    let now = now_ms();
    match found {
        Ok(obs) => {
            state.rejected = None;
            let new = succeeded(memory, now, move |c| {
                store::commit_observations(c, &obs, upto, now)
            })
            .await?;
            Ok(Pass::Observed(new, profile))
        }
        Err(why) => {
            // Nothing usable: asked again; after TRIES the window stays in
            // semantic recall as it is, and the Observer goes on after it.
            let tries = match state.rejected {
                Some((w, n)) if w == first => n + 1,
                _ => 1,
            };
            state.rejected = Some((first, tries));
            let give_up = tries >= TRIES;
            let text = if give_up {
                format!("{why}; passed over after {tries} tries")
            } else {
                format!("{why}; trying again")
            };
            db.write(move |c| {
                if give_up {
                    store::commit_observations(c, &[], upto, now)?;
                }
                store::set_observer_state(c, &text, now)
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok(Pass::Rejected(why.to_string()))
        }
    }
}

/// Condense the oldest observations, when they have grown past
/// `reflect_tokens`.
async fn reflect(
    memory: &Memory,
    resolver: &Resolver,
    state: &mut State,
    cfg: &crate::config::MemoryConfig,
) -> Result<Pass, String> {
    let db = memory.db();
    let current = db
        .read(store::current_observations)
        .await
        .map_err(|e| e.to_string())?;
    let total = observe::tokens_of(current.iter().map(|o| o.text.as_str()));
    if total < cfg.reflect_tokens || current.len() < 2 {
        return Ok(Pass::Idle);
    }
    let Some(model) = model(memory, resolver).await? else {
        return Ok(Pass::Idle);
    };
    // The oldest observations that fit one request.
    let mut used = 0;
    let inputs: Vec<store::Current> = current
        .into_iter()
        .take_while(|o| {
            used += crate::llm::tokens::estimate(o.text.len() + 16);
            used <= cfg.observe_window_tokens
        })
        .collect();
    if inputs.len() < 2 {
        return Ok(Pass::Idle);
    }
    let listed: Vec<(String, i64)> = inputs
        .iter()
        .map(|o| (o.text.clone(), o.refers_ms))
        .collect();
    let Some(reply) = ask(
        memory,
        &model,
        &observe::reflect_prompt(&listed),
        cfg.observe_max_tokens,
    )
    .await
    .map_err(|e| format!("the reflector's model failed: {e}"))?
    else {
        return Ok(Pass::GaveWay);
    };
    let with_sources: Vec<(String, i64, Vec<String>)> = inputs
        .iter()
        .map(|o| (o.text.clone(), o.refers_ms, o.sources.clone()))
        .collect();
    let now = now_ms();
    match observe::parse_reflection(&reply, &with_sources) {
        Ok(reflections) => {
            let replaced = inputs.len();
            let new = succeeded(memory, now, move |c| {
                store::commit_reflection(c, &inputs, &reflections, now)
            })
            .await?;
            Ok(Pass::Reflected(new, replaced))
        }
        Err(why) => {
            // The observations stay as they are.
            state.reflect_after =
                Some(tokio::time::Instant::now() + Duration::from_secs(cfg.reflect_retry_s));
            let text = format!("reflection rejected: {why}");
            db.write(move |c| store::set_observer_state(c, &text, now))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Pass::Rejected(why.to_string()))
        }
    }
}

/// Run `write` and note a run without error, in one write.
async fn succeeded<T: Send + 'static>(
    memory: &Memory,
    now: i64,
    write: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    memory
        .db()
        .write(move |c| {
            let n = write(c)?;
            store::set_observer_state(c, "", now)?;
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())
}

/// Profile values the person stated in `window`, noted as inferred (a
/// value the person set is never replaced); how many were written.
async fn profile_values(
    memory: &Memory,
    model: &(ChatTarget, bool),
    window: &[observe::Raw],
    max_tokens: u32,
) -> usize {
    let said = observe::said(window);
    if said.is_empty() {
        return 0;
    }
    let reply = match ask(memory, model, &observe::profile_prompt(&said), max_tokens).await {
        Ok(Some(r)) => r,
        Ok(None) => return 0,
        Err(e) => {
            tracing::warn!(error = %e, "profile inference failed");
            return 0;
        }
    };
    let values = observe::parse_profile(&reply, &said);
    let now = now_ms();
    memory
        .db()
        .write(move |c| {
            let mut n = 0;
            for (k, v) in &values {
                if store::set_profile(c, k, v, Origin::Inferred, now)? == store::SetOutcome::Written
                {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
        .unwrap_or(0)
}
