//! The instruction executor: runs agent operations step by step — model
//! calls with the MCP tools offered (OpenAI tool-calling format), tool
//! calls through the MCP manager, approvals parked for a person — and
//! persists each operation in `agent_operations` after every step, so a
//! crash leaves it `paused` and resumable. The decisions are
//! `operation.rs`'s; this module only carries them out.

use super::approval::DecidedBy;
use super::guardrails;
use super::hooks::{FlowHooks, FLOWS};
use super::operation::{
    after_reply, before_step, expired, function_name, unanswered_calls, CallRecord, Instruction,
    Operation, Pending, Reply, Status, ToolCall,
};
use super::store;
use crate::browser::client::{Answer as BrowserAnswer, BrowserTools};
use crate::browser::tools::{self as browser_tools, AgentSettings};
use crate::browser::SERVER as BROWSER;
use crate::config::AgentsConfig;
use crate::db::{Db, DbError};
use crate::llm::client::{complete, ChatTarget, Completion};
use crate::llm::resolve::Resolver;
use crate::llm::router::{check_budget, Refusal, Request};
use crate::llm::tier::{actual_cost, Tier};
use crate::llm::tokens;
use crate::mcp::manager::{Manager, DEFAULT_CALL_TIMEOUT};
use crate::usage::ledger;
use crate::util::{new_id, now_ms};
use cowork_proto::traces::TARGET as TRACE;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tracing::Instrument as _;

/// How often waiting calls are checked for their approval timeout.
pub const EXPIRY_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A person's (or the clock's) answer to a waiting call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Approve,
    Reject,
    /// Nobody answered within this many seconds.
    Expire(i64),
}

/// Longest reply asked of the model per step.
pub const STEP_MAX_TOKENS: u32 = 256;

/// An operation claimed by one request; dropping it releases the claim.
struct Claim {
    active: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut a) = self.active.lock() {
            a.remove(&self.id);
        }
    }
}

/// Why an operation request failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No such operation.
    #[error("no operation {0}")]
    NoOperation(String),
    /// No such pending call.
    #[error(
        "operation {op} has no call {call} waiting for approval (see `coworkctl approvals list`)"
    )]
    NoPending {
        /// The operation.
        op: String,
        /// The call.
        call: String,
    },
    /// The operation is not in a state that allows this.
    #[error("operation {id} is {status}, not {wanted}")]
    State {
        /// The operation.
        id: String,
        /// Its status.
        status: &'static str,
        /// What was needed.
        wanted: &'static str,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The executor (cheap to clone).
#[derive(Clone)]
pub struct Agents {
    db: Db,
    config: PathBuf,
    mcp: Manager,
    /// Which model the operation's calls go to.
    resolver: Resolver,
    /// Operations a task is driving now (never two drivers at once).
    active: Arc<Mutex<HashSet<String>>>,
    /// The browser's tools, through coworkd's socket (none: not offered).
    browser: Option<BrowserTools>,
    /// Automations (flows as tools, runs' waiting calls), set once they exist.
    flows: Arc<std::sync::OnceLock<Arc<dyn FlowHooks>>>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").finish_non_exhaustive()
    }
}

impl Agents {
    /// An executor over cowork.db, the MCP manager and the model resolver.
    pub fn new(db: Db, config: PathBuf, mcp: Manager, resolver: Resolver) -> Self {
        Self {
            db,
            config,
            mcp,
            resolver,
            active: Default::default(),
            browser: None,
            flows: Default::default(),
        }
    }

    /// Offer enabled flows as `flow_<id>` tools and list runs' waiting
    /// calls in `approvals` (set once, after automations exist).
    pub fn set_flows(&self, hooks: Arc<dyn FlowHooks>) {
        let _ = self.flows.set(hooks);
    }

    /// Offer the browser's actions as `browser__*` tools, called through
    /// `browser` (coworkd's socket), unless `[browser] agent_tools = false`.
    pub fn with_browser(mut self, browser: BrowserTools) -> Self {
        self.browser = Some(browser);
        self
    }

    /// At start, before serving (it blocks): operations a killed
    /// agents-agent was running come back paused, resumable. Returns how
    /// many.
    pub fn recover(&self) -> Result<usize, AgentError> {
        Ok(self.db.write_blocking(store::pause_interrupted)?)
    }

    async fn save(&self, op: &Operation) -> Result<(), AgentError> {
        let op = op.clone();
        self.db.write(move |c| store::save(c, &op)).await?;
        Ok(())
    }

    /// One operation with its created and updated times.
    pub async fn get(&self, id: &str) -> Result<(Operation, i64, i64), AgentError> {
        let i = id.to_owned();
        self.db
            .read(move |c| store::load(c, &i))
            .await?
            .ok_or_else(|| AgentError::NoOperation(id.to_owned()))
    }

    /// Operations, newest first (`limit` 0: 50; at most 1000).
    pub async fn list(&self, limit: u32) -> Result<Vec<(Operation, i64, i64)>, AgentError> {
        let limit = match limit {
            0 => 50,
            n => n.min(1000),
        };
        Ok(self.db.read(move |c| store::list(c, limit)).await?)
    }

    /// Every call waiting for a person: operations', then automation runs'
    /// (their run id in place of an operation id).
    pub async fn pending(&self) -> Result<Vec<(String, Pending)>, AgentError> {
        let ops = self.db.read(store::waiting).await?;
        let mut all: Vec<(String, Pending)> = ops
            .into_iter()
            .flat_map(|o| {
                let id = o.id.clone();
                o.pending.into_iter().map(move |p| (id.clone(), p))
            })
            .collect();
        if let Some(h) = self.flows.get() {
            all.extend(h.pending().await.into_iter().map(|r| (r.run_id, r.pending)));
        }
        Ok(all)
    }

    /// Claim `id` so no other request drives or decides it meanwhile; the
    /// claim is released when the returned guard drops.
    fn claim(&self, id: &str) -> Result<Claim, AgentError> {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if !active.insert(id.to_owned()) {
            return Err(AgentError::State {
                id: id.to_owned(),
                status: "busy",
                wanted: "idle (another request is working on it)",
            });
        }
        Ok(Claim {
            active: self.active.clone(),
            id: id.to_owned(),
        })
    }

    /// Start an operation; with `wait`, drive it until it stops.
    pub async fn start(
        &self,
        task: String,
        tool_choice: Option<String>,
        automation: bool,
        max_steps: u32,
        wait: bool,
    ) -> Result<Operation, AgentError> {
        if task.trim().is_empty() {
            return Err(AgentError::Invalid("the task is empty".into()));
        }
        if let Some(tc) = &tool_choice {
            if !tc.contains('/') {
                return Err(AgentError::Invalid(format!(
                    "--tool-choice is server/tool, not {tc:?}"
                )));
            }
        }
        let mut op = Operation::new(new_id("op"), task, max_steps, automation, now_ms());
        op.tool_choice = tool_choice;
        let claim = self.claim(&op.id)?;
        self.save(&op).await?;
        self.drive(op, wait, claim).await
    }

    /// Resume a paused operation (the person answered a check-in, or it
    /// was interrupted).
    pub async fn resume(&self, id: &str, wait: bool) -> Result<Operation, AgentError> {
        let claim = self.claim(id)?;
        let (mut op, _, _) = self.get(id).await?;
        if op.status != Status::Paused {
            return Err(AgentError::State {
                id: id.to_owned(),
                status: op.status.name(),
                wanted: "paused",
            });
        }
        op.last_check_in_ms = now_ms();
        // Calls a crash interrupted may or may not have run: say so, and
        // let the model decide (never re-run a call on a guess).
        for id in unanswered_calls(&op.messages) {
            if !op.pending.iter().any(|p| p.call.id == id) {
                op.messages.push(tool_message(
                    &id,
                    "This call was interrupted by a restart; it may or may not have run.",
                ));
            }
        }
        // A pause for repeated calls would trip again at once: the person
        // said go on, so the history starts fresh.
        op.steps.clear();
        op.reason.clear();
        self.drive(op, wait, claim).await
    }

    /// Approve (`approve = true`) or reject a waiting call; when none is
    /// left waiting, the operation goes on.
    pub async fn decide(
        &self,
        op_id: &str,
        call_id: &str,
        approve: bool,
        wait: bool,
        decided_by: DecidedBy,
    ) -> Result<Operation, AgentError> {
        // A run's call: automations decide it; the run stands in for an
        // operation in the answer.
        if op_id.starts_with("run-") {
            if let Some(h) = self.flows.get() {
                let (status, reason) = h
                    .decide(op_id.to_owned(), call_id.to_owned(), approve)
                    .await
                    .map_err(AgentError::Invalid)?;
                let decision = if approve { "approved" } else { "rejected" };
                approval_span(op_id, "", "", decision, decided_by.name(), None);
                let mut op =
                    Operation::new(op_id.to_owned(), "automation run".into(), 0, true, now_ms());
                op.status = Status::parse(&status).unwrap_or(Status::Running);
                op.reason = reason;
                op.result = status;
                return Ok(op);
            }
        }
        let answer = if approve {
            Answer::Approve
        } else {
            Answer::Reject
        };
        self.answer(op_id, call_id, answer, wait, decided_by).await
    }

    async fn answer(
        &self,
        op_id: &str,
        call_id: &str,
        answer: Answer,
        wait: bool,
        decided_by: DecidedBy,
    ) -> Result<Operation, AgentError> {
        let claim = self.claim(op_id)?;
        let (mut op, _, _) = self.get(op_id).await?;
        let Some(pos) = op.pending.iter().position(|p| p.call.id == call_id) else {
            return Err(AgentError::NoPending {
                op: op_id.to_owned(),
                call: call_id.to_owned(),
            });
        };
        let p = op.pending.remove(pos);
        // The wait for a person, as one span from when it was asked to
        // now: what was decided, and by whom.
        approval_span(
            &op.id,
            &p.call.server,
            &p.call.tool,
            match answer {
                Answer::Approve => "approved",
                Answer::Reject => "rejected",
                Answer::Expire(_) => "expired",
            },
            match answer {
                Answer::Expire(_) => DecidedBy::Timeout.name(),
                _ => decided_by.name(),
            },
            (p.asked_ms > 0).then_some(p.asked_ms),
        );
        match answer {
            Answer::Approve => self.run_calls(&mut op, vec![p.call], true).await,
            Answer::Reject | Answer::Expire(_) => {
                let (told, outcome) = match answer {
                    Answer::Expire(after_s) => (
                        format!(
                            "No one approved this tool call within {after_s} s; it was not run."
                        ),
                        "expired",
                    ),
                    _ => (
                        "The person rejected this tool call.".to_string(),
                        "rejected",
                    ),
                };
                op.messages.push(tool_message(&p.call.id, &told));
                op.calls.push(CallRecord {
                    call: p.call,
                    outcome: outcome.into(),
                    result: String::new(),
                });
            }
        }
        if !op.pending.is_empty() {
            self.save(&op).await?;
            return Ok(op);
        }
        self.drive(op, wait, claim).await
    }

    /// Fail closed: every call that has waited for a person longer than
    /// `[agents.approval] timeout_s` is rejected (it never runs; the model
    /// is told) and its operation goes on. Returns how many expired.
    pub async fn expire_waiting(&self) -> Result<usize, AgentError> {
        let timeout_ms = AgentsConfig::load(&self.config)
            .map(|c| c.approval.timeout_ms())
            .unwrap_or(900_000);
        let now = now_ms();
        let mut n = 0;
        for op in self.db.read(store::waiting).await? {
            for p in op
                .pending
                .iter()
                .filter(|p| expired(p.asked_ms, now, timeout_ms))
            {
                match self
                    .answer(
                        &op.id,
                        &p.call.id,
                        Answer::Expire(timeout_ms / 1000),
                        false,
                        DecidedBy::Timeout,
                    )
                    .await
                {
                    Ok(_) => n += 1,
                    // Busy (a person is deciding it right now) or gone.
                    Err(AgentError::State { .. } | AgentError::NoPending { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Check for expired approvals every [`EXPIRY_CHECK`] until `shutdown`.
    pub fn spawn_expiry(&self, shutdown: tokio_util::sync::CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(EXPIRY_CHECK) => {}
                }
                match me.expire_waiting().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(calls = n, "approvals expired: rejected"),
                    Err(e) => tracing::error!(error = %e, "cannot expire approvals"),
                }
            }
        });
    }

    /// Run the loop in its own task (a client that goes away does not cut
    /// a step in half); with `wait`, until it stops.
    async fn drive(
        &self,
        mut op: Operation,
        wait: bool,
        claim: Claim,
    ) -> Result<Operation, AgentError> {
        op.status = Status::Running;
        self.save(&op).await?;
        let me = self.clone();
        let snapshot = op.clone();
        // The operation's part of the trace of the call that set it going
        // (start, approve, resume): its model calls, tool calls and
        // approvals carry its id (`coworkctl agent show ID --timeline`).
        let span = tracing::info_span!(
            target: TRACE,
            "operation",
            op = %op.id,
            outcome = tracing::field::Empty,
        );
        let task = tokio::spawn(
            async move {
                let r = me.run_loop(op).await;
                drop(claim);
                r
            }
            .instrument(span),
        );
        if !wait {
            return Ok(snapshot);
        }
        task.await
            .map_err(|e| AgentError::Invalid(format!("the operation's task failed: {e}")))?
    }

    /// The tools offered to the model: every running server's tools, as
    /// OpenAI functions, with the name → (server, tool) map.
    async fn tools(
        &self,
        offer_browser: bool,
    ) -> (Vec<serde_json::Value>, HashMap<String, (String, String)>) {
        let mut specs = Vec::new();
        let mut names = HashMap::new();
        if offer_browser {
            for (tool, description, schema) in browser_tools::all() {
                let f = function_name(BROWSER, tool);
                specs.push(serde_json::json!({"type": "function", "function": {
                    "name": f, "description": description,
                    "parameters": serde_json::Value::Object(schema),
                }}));
                names.insert(f, (BROWSER.to_string(), tool.to_string()));
            }
        }
        if let Some(h) = self.flows.get() {
            for t in h.tools().await {
                let f = format!("flow_{}", t.id);
                specs.push(serde_json::json!({"type": "function", "function": {
                    "name": f, "description": t.description,
                    "parameters": serde_json::Value::Object(t.schema),
                }}));
                names.insert(f, (FLOWS.to_string(), t.id));
            }
        }
        let servers = self.mcp.list().await.unwrap_or_default();
        for s in servers.into_iter().filter(|s| s.row.spec.enabled) {
            let server = s.row.spec.name.clone();
            let Ok(tools) = self.mcp.tools(&server).await else {
                continue;
            };
            for t in tools {
                let f = function_name(&server, &t.name);
                if names.contains_key(&f) {
                    // Two tools would share a name: offer neither's second,
                    // so a call can never reach the wrong server.
                    tracing::warn!(function = %f, server = %server, "tool name collides; not offered");
                    continue;
                }
                specs.push(serde_json::json!({"type": "function", "function": {
                    "name": f,
                    "description": t.description.as_deref().unwrap_or(""),
                    "parameters": serde_json::Value::Object((*t.input_schema).clone()),
                }}));
                names.insert(f, (server.clone(), t.name.to_string()));
            }
        }
        (specs, names)
    }

    async fn run_loop(&self, mut op: Operation) -> Result<Operation, AgentError> {
        let result = self.steps(&mut op).await;
        if let Err(e) = result {
            op.status = Status::Error;
            op.reason = e;
        }
        self.save(&op).await?;
        tracing::Span::current().record("outcome", op.status.name());
        tracing::info!(operation = %op.id, status = op.status.name(), steps = op.step, "operation stopped");
        Ok(op)
    }

    /// Steps until the operation finishes, fails, pauses or waits.
    async fn steps(&self, op: &mut Operation) -> Result<(), String> {
        let cfg = AgentsConfig::load(&self.config)?;
        let servers = self.mcp.list().await.map_err(|e| e.to_string())?;
        let mut policies: BTreeMap<_, _> = servers
            .iter()
            .map(|s| (s.row.spec.name.clone(), s.row.spec.approval_policy))
            .collect();
        // The browser's own phase 4 (default auto: its facts decide),
        // read once with whether its tools are offered at all.
        let browser = match &self.browser {
            Some(_) => Some(AgentSettings::parse(
                &std::fs::read_to_string(&self.config).unwrap_or_default(),
            )?),
            None => None,
        };
        if let Some(b) = &browser {
            policies.insert(BROWSER.to_string(), b.policy()?);
        }
        // A flow runs in automation context: its own steps are gated
        // (phases 1 and 2 still ask), so starting it runs.
        policies.insert(FLOWS.to_string(), crate::mcp::ServerPolicy::Auto);
        let settings = cfg.approval_settings(&policies)?;
        // No model now is a pause, not a failure: resume when one is up.
        let (target, tier) = match self.resolver.for_operation().await {
            Ok(t) => t,
            Err(e) => {
                op.status = Status::Paused;
                op.reason = format!("{e}; `coworkctl agent resume {}` retries", op.id);
                return Ok(());
            }
        };
        let offer_browser = browser.is_some_and(|b| b.agent_tools);
        let (tools, names) = self.tools(offer_browser).await;
        loop {
            match before_step(op, now_ms()) {
                Some(Instruction::Pause(r)) => {
                    op.status = Status::Paused;
                    op.reason = r;
                    return Ok(());
                }
                Some(Instruction::Fail(r)) => return Err(r),
                _ => {}
            }
            let forced = match (&op.tool_choice, op.step) {
                (Some(tc), 0) => {
                    let (server, tool) = tc.split_once('/').unwrap_or((tc, ""));
                    let f = function_name(server, tool);
                    if !names.contains_key(&f) {
                        return Err(format!(
                            "--tool-choice {tc}: no such tool on a connected server"
                        ));
                    }
                    Some(f)
                }
                _ => None,
            };
            // A cloud model call goes through the router's budget check
            // (plan quota and spend caps; this operation is one
            // interaction): over it, the operation pauses, nothing is sent.
            if let Some(t) = tier {
                if let Some(refusal) = self.over_budget(op, &cfg, t, tools.len()).await? {
                    op.status = Status::Paused;
                    op.reason =
                        format!("{refusal}; `coworkctl agent resume {}` tries again", op.id);
                    return Ok(());
                }
            }
            op.step += 1;
            let model_span = tracing::info_span!(
                target: TRACE,
                "model",
                op = %op.id,
                engine = %target.name,
                model = %target.model,
                prompt_tokens = tracing::field::Empty,
                completion_tokens = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            let completion = complete(
                &target,
                &op.messages,
                &tools,
                forced.as_deref(),
                Some(STEP_MAX_TOKENS),
            )
            .instrument(model_span.clone())
            .await;
            model_span.record("outcome", if completion.is_ok() { "ok" } else { "error" });
            if let Ok(Completion {
                usage: Some((p, c)),
                ..
            }) = &completion
            {
                model_span.record("prompt_tokens", p);
                model_span.record("completion_tokens", c);
            }
            drop(model_span);
            let completion = match completion {
                Ok(c) => c,
                Err(e) => {
                    // The engine died or failed: nothing was decided, so
                    // the step can be taken again.
                    op.step -= 1;
                    op.status = Status::Paused;
                    op.reason = format!(
                        "the model failed: {e}; `coworkctl agent resume {}` retries",
                        op.id
                    );
                    return Ok(());
                }
            };
            let cost = self
                .record_usage(op, &target, tier, &completion)
                .instrument(tracing::info_span!(target: TRACE, "ledger", op = %op.id))
                .await;
            op.cost_usd += cost;
            op.steps.push(guardrails::Step {
                at_ms: now_ms(),
                tool: String::new(),
                input: String::new(),
                failed: false,
                cost_usd: cost,
                error: String::new(),
            });
            let mut reply = Reply {
                content: completion.content.clone(),
                tool_calls: Vec::new(),
            };
            let mut unknown = Vec::new();
            for (id, name, args) in &completion.tool_calls {
                match names.get(name) {
                    Some((server, tool)) => reply.tool_calls.push(ToolCall {
                        id: id.clone(),
                        server: server.clone(),
                        tool: tool.clone(),
                        arguments: args.clone(),
                    }),
                    None => unknown.push((id.clone(), name.clone())),
                }
            }
            op.messages.push(serde_json::json!({
                "role": "assistant",
                "content": completion.content,
                "tool_calls": completion.tool_calls.iter().map(|(id, name, args)| serde_json::json!({
                    "id": id, "type": "function", "function": {"name": name, "arguments": args}
                })).collect::<Vec<_>>(),
            }));
            if completion.tool_calls.is_empty() {
                if let Some(m) = op.messages.last_mut() {
                    if let Some(o) = m.as_object_mut() {
                        o.remove("tool_calls");
                    }
                }
            }
            for (id, name) in unknown {
                op.messages.push(tool_message(
                    &id,
                    &format!("There is no tool named {name}."),
                ));
            }
            if completion.tool_calls.is_empty() {
                op.status = Status::Done;
                op.result = completion.content;
                return Ok(());
            }
            if reply.tool_calls.is_empty() {
                // Only unknown tools: the model is told (above) and asked again.
                self.save(op).await.map_err(|e| e.to_string())?;
                continue;
            }
            for ins in after_reply(op, &reply, &settings) {
                match ins {
                    Instruction::Block(calls) => {
                        for (c, why) in calls {
                            op.messages
                                .push(tool_message(&c.id, &format!("Blocked: {why}.")));
                            op.calls.push(CallRecord {
                                call: c,
                                outcome: "blocked".into(),
                                result: why,
                            });
                        }
                    }
                    Instruction::CallToolsBatch(calls) => self.run_calls(op, calls, false).await,
                    Instruction::RequestHumanApprove(p) => {
                        let now = now_ms();
                        op.pending
                            .extend(p.into_iter().map(|p| Pending { asked_ms: now, ..p }));
                    }
                    Instruction::Finish(text) => {
                        op.status = Status::Done;
                        op.result = text;
                        return Ok(());
                    }
                    _ => {}
                }
            }
            if !op.pending.is_empty() {
                op.status = Status::WaitingForHuman;
                op.reason = format!("{} tool call(s) wait for approval", op.pending.len());
                return Ok(());
            }
            self.save(op).await.map_err(|e| e.to_string())?;
        }
    }

    /// The router's verdict on the next model call of `op` on `tier`.
    async fn over_budget(
        &self,
        op: &Operation,
        cfg: &AgentsConfig,
        tier: Tier,
        tools: usize,
    ) -> Result<Option<Refusal>, String> {
        let policy = cfg.policy()?;
        let req = Request {
            tokens: tokens::estimate(sent_chars(op)),
            attachments: 0,
            tools: tools as u32,
            retry_of: None,
        };
        let usage = ledger::usage_now(&self.db, Some(op.id.clone()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(check_budget(&policy, &req, &usage, tier))
    }

    /// Write one model call to the usage ledger (the engine's token counts,
    /// else an estimate), grouped under the operation's id; returns its
    /// list-price cost (0 for local models and the free tier).
    async fn record_usage(
        &self,
        op: &Operation,
        target: &ChatTarget,
        tier: Option<Tier>,
        completion: &Completion,
    ) -> f64 {
        let used = completion.usage.unwrap_or_else(|| {
            let got = completion.content.len()
                + completion
                    .tool_calls
                    .iter()
                    .map(|c| c.2.len())
                    .sum::<usize>();
            (tokens::estimate(sent_chars(op)), tokens::estimate(got))
        });
        let model = format!("{}/{}", target.name, target.model);
        match ledger::record_call(&self.db, &op.id, &model, tier, used).await {
            Ok(cost) => cost,
            Err(e) => {
                tracing::error!(error = %e, "could not write the usage ledger");
                tier.map_or(0.0, |t| actual_cost(t, used.0, used.1))
            }
        }
    }

    /// Run calls (in parallel, or in order when the browser is among them);
    /// append their results in order. A browser
    /// call browser-agent stops for its facts is parked for a person
    /// instead (`approved`: a person already said yes to these calls).
    async fn run_calls(&self, op: &mut Operation, calls: Vec<ToolCall>, approved: bool) {
        let futures = calls.iter().map(|c| {
            let args = match serde_json::from_str::<serde_json::Value>(&c.arguments) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                _ => Err(format!(
                    "the arguments are not a JSON object: {}",
                    c.arguments
                )),
            };
            let mcp = self.mcp.clone();
            let browser = self.browser.clone();
            let flows = self.flows.get().cloned();
            let call_id = format!("{}:{}", op.id, c.id);
            let op_id = op.id.clone();
            let (server, tool) = (c.server.clone(), c.tool.clone());
            // Names and the outcome only: never the arguments or result.
            let span = tracing::info_span!(
                target: TRACE,
                "tool",
                op = %op.id,
                server = %server,
                tool = %tool,
                outcome = tracing::field::Empty,
            );
            let traced = span.clone();
            let call = async move {
                let args = args.map_err(|e| (e, false))?;
                if server == FLOWS {
                    return match flows {
                        Some(h) => h.call(tool, args).await.map_err(|e| (e, false)),
                        None => Err(("automations are not available".to_string(), false)),
                    };
                }
                match (server.as_str(), browser) {
                    (BROWSER, Some(b)) => {
                        let call = browser_tools::parse(&tool, &args).map_err(|e| (e, false))?;
                        match b.call(call, &op_id, approved).await {
                            Ok(BrowserAnswer::Done(text)) => Ok(text),
                            Ok(BrowserAnswer::NeedsApproval(reasons)) => {
                                Err((reasons.join("; "), true))
                            }
                            Err(e) => Err((e, false)),
                        }
                    }
                    _ => match mcp
                        .call(&server, &tool, args, DEFAULT_CALL_TIMEOUT, call_id, "agent")
                        .await
                    {
                        Ok(o) if o.is_error => Err((o.text, false)),
                        Ok(o) => Ok(o.text),
                        Err(e) => Err((e.to_string(), false)),
                    },
                }
            };
            async move {
                let r: Result<String, (String, bool)> = call.await;
                traced.record(
                    "outcome",
                    match &r {
                        Ok(_) => "ran",
                        Err((_, true)) => "needs_approval",
                        Err(_) => "failed",
                    },
                );
                r
            }
            .instrument(span)
        });
        // Browser calls act on one page, in the order the model gave them
        // (type, then click): one after another. MCP calls run at once.
        let results = if calls.iter().any(|c| c.server == BROWSER) {
            let mut r = Vec::with_capacity(calls.len());
            for f in futures {
                r.push(f.await);
            }
            r
        } else {
            futures::future::join_all(futures).await
        };
        for (c, r) in calls.into_iter().zip(results) {
            let (outcome, text, failed) = match r {
                Err((reason, true)) => {
                    op.pending.push(Pending {
                        call: c,
                        phase: 1,
                        reason,
                        asked_ms: now_ms(),
                    });
                    continue;
                }
                Ok(text) => ("ran", text, false),
                Err((e, false)) => ("failed", e, true),
            };
            op.messages.push(tool_message(&c.id, &text));
            op.steps.push(guardrails::Step {
                at_ms: now_ms(),
                tool: format!("{}/{}", c.server, c.tool),
                input: c.arguments.clone(),
                failed,
                cost_usd: 0.0,
                error: if failed { text.clone() } else { String::new() },
            });
            op.calls.push(CallRecord {
                call: c,
                outcome: outcome.into(),
                result: text,
            });
        }
    }
}

/// What an operation's conversation sends the model, in characters.
fn sent_chars(op: &Operation) -> usize {
    op.messages.iter().map(|m| m.to_string().len()).sum()
}

/// The span of one approval: asked at `asked_ms` (when known) and decided
/// now, with what was decided and by whom (names only, never arguments).
fn approval_span(
    op: &str,
    server: &str,
    tool: &str,
    decision: &'static str,
    decided_by: &'static str,
    asked_ms: Option<i64>,
) {
    use cowork_proto::traces::KeyValue;
    let now = now_ms();
    let asked = asked_ms.unwrap_or(now);
    let mut attributes = vec![
        KeyValue::new("op", op.to_owned()),
        KeyValue::new("decision", decision),
        KeyValue::new("decided_by", decided_by),
        KeyValue::new("wait_ms", (now - asked).max(0)),
        KeyValue::new("outcome", "ok"),
    ];
    if !server.is_empty() {
        attributes.push(KeyValue::new("server", server.to_owned()));
        attributes.push(KeyValue::new("tool", tool.to_owned()));
    }
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_millis(asked.max(0) as u64);
    cowork_proto::traces::record_past("approval", start, &tracing::Span::current(), attributes);
}

fn tool_message(call_id: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"role": "tool", "tool_call_id": call_id, "content": text})
}
