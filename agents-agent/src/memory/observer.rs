//! The Observer and the Reflector, in the background (the rules are in
//! [`super::observe`]): once the raw history not yet observed passes
//! `[memory] observe_tokens`, the local model compresses it, a window at
//! a time, into dated observations (and notes profile values the person
//! stated); once the current observations pass `reflect_tokens`, it
//! condenses the oldest. Only a local model is asked (the cron companion
//! when one runs; else the main engine, and then only while no answer
//! has been asked for in the last [`QUIET`]), so the person's chat is
//! never kept waiting behind it and nothing leaves the machine.

use super::observe::{self, Reject};
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
        let mut reflect_after = tokio::time::Instant::now();
        let mut wait = POLL;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = POLL;
            match pass(&memory, &resolver, &mut reflect_after).await {
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

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Below both thresholds, or waiting for a quiet engine.
    Idle,
    /// Observed a window: observations stored, profile values noted.
    Observed(usize, usize),
    /// A window gave nothing usable (why); the mark moved past it.
    Rejected(String),
    /// Reflected: reflections stored, observations they replace.
    Reflected(usize, usize),
}

/// The local model to observe with: the cron companion, else the main
/// engine when chat has been quiet; None to wait.
async fn model(memory: &Memory, resolver: &Resolver) -> Result<Option<ChatTarget>, String> {
    let detected = resolver.watch().current().await;
    let Some(main) = detected.main.as_ref() else {
        return Err("no local model to observe with (observations are made locally only)".into());
    };
    let companion = detected.background.as_ref().filter(|b| b.key != main.key);
    let engine = match companion {
        Some(c) => c,
        None if memory.chat_quiet_for() < QUIET => return Ok(None),
        None => main,
    };
    let target = resolver
        .target(&Target::Local(engine.model.clone()), Some(engine), &[])
        .await?;
    Ok(Some(target))
}

/// One pass: observe one window when enough history waits, else reflect
/// when the observations have grown past theirs.
pub async fn pass(
    memory: &Memory,
    resolver: &Resolver,
    reflect_after: &mut tokio::time::Instant,
) -> Result<Pass, String> {
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
        let Some(target) = model(memory, resolver).await? else {
            return Ok(Pass::Idle);
        };
        let entries = db
            .read(|c| store::unobserved(c, READ))
            .await
            .map_err(|e| e.to_string())?;
        let n = observe::window(&entries, cfg.observe_window_tokens);
        let window = &entries[..n];
        let Some(upto) = window.last().map(|e| e.item_id) else {
            return Ok(Pass::Idle);
        };
        let reply = complete(
            &target,
            &observe::observe_prompt(window),
            &[],
            None,
            Some(cfg.observe_max_tokens),
        )
        .await
        .map_err(|e| format!("the observer's model failed: {e}"))?;
        let found = observe::parse_observations(&reply.content, window);
        let profile = profile_values(memory, &target, window, cfg.observe_max_tokens).await;
        let now = now_ms();
        return match found {
            Ok(obs) => {
                let new = db
                    .write(move |c| {
                        let n = store::commit_observations(c, &obs, upto, now)?;
                        store::set_observer_state(c, "", now)?;
                        Ok(n)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Pass::Observed(new, profile))
            }
            Err(why) => {
                // Nothing usable in this window: it stays in semantic
                // recall as it is, and the Observer goes on after it.
                let text = why.to_string();
                db.write(move |c| {
                    store::commit_observations(c, &[], upto, now)?;
                    store::set_observer_state(c, &text, now)
                })
                .await
                .map_err(|e| e.to_string())?;
                Ok(Pass::Rejected(why.to_string()))
            }
        };
    }
    if tokio::time::Instant::now() < *reflect_after {
        return Ok(Pass::Idle);
    }
    let current = db
        .read(store::current_observations)
        .await
        .map_err(|e| e.to_string())?;
    let total = observe::tokens_of(current.iter().map(|o| o.text.as_str()));
    if total < cfg.reflect_tokens || current.len() < 2 {
        return Ok(Pass::Idle);
    }
    let Some(target) = model(memory, resolver).await? else {
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
    let reply = complete(
        &target,
        &observe::reflect_prompt(&listed),
        &[],
        None,
        Some(cfg.observe_max_tokens),
    )
    .await
    .map_err(|e| format!("the reflector's model failed: {e}"))?;
    let with_sources: Vec<(String, i64, Vec<String>)> = inputs
        .iter()
        .map(|o| (o.text.clone(), o.refers_ms, o.sources.clone()))
        .collect();
    let now = now_ms();
    match observe::parse_reflection(&reply.content, &with_sources) {
        Ok(reflections) => {
            let replaced = inputs.len();
            let new = db
                .write(move |c| {
                    let n = store::commit_reflection(c, &inputs, &reflections, now)?;
                    store::set_observer_state(c, "", now)?;
                    Ok(n)
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(Pass::Reflected(new, replaced))
        }
        Err(why @ (Reject::Empty | Reject::Looping | Reject::NotShorter(..))) => {
            // The observations stay as they are.
            *reflect_after = tokio::time::Instant::now() + Duration::from_secs(cfg.reflect_retry_s);
            let text = format!("reflection rejected: {why}");
            db.write(move |c| store::set_observer_state(c, &text, now))
                .await
                .map_err(|e| e.to_string())?;
            Ok(Pass::Rejected(why.to_string()))
        }
    }
}

/// Profile values the person stated in `window`, noted as inferred (a
/// value the person set is never replaced); how many were written.
async fn profile_values(
    memory: &Memory,
    target: &ChatTarget,
    window: &[observe::Raw],
    max_tokens: u32,
) -> usize {
    let said = observe::said(window);
    if said.is_empty() {
        return 0;
    }
    let reply = match complete(
        target,
        &observe::profile_prompt(&said),
        &[],
        None,
        Some(max_tokens),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "profile inference failed");
            return 0;
        }
    };
    let values = observe::parse_profile(&reply.content, &said);
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
