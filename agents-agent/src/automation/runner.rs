//! Runs, durable step by step, like a workflow engine: each step's row is
//! committed before it starts and its result (with the run's cursor and
//! variables) before the next one does, so a killed agents-agent resumes
//! at the last committed step. A step found in flight is never re-run on
//! a guess ([`super::after_crash`]); a delay keeps its first deadline;
//! steps that need a person pause the run as `waiting_for_human`
//! (notified; `approvals approve RUN/CALL` goes on); calls nobody decides
//! in `[agents.approval] timeout_s` fail the step (fail closed).

use super::flow::{self, Block, Flow};
use super::{
    advance, after_crash, retry_wait_ms, store, vars, AfterCrash, FlowRow, Next, Outcome, RunRow,
    StepRow, Waiting,
};
use crate::agent::approval::{self, Verdict};
use crate::agent::executor::Agents;
use crate::agent::operation::{expired, Status};
use crate::browser::client::{Answer as BrowserAnswer, BrowserTools};
use crate::browser::tools as browser_tools;
use crate::config::AgentsConfig;
use crate::db::{Db, DbError};
use crate::mcp::manager::Manager;
use crate::notifications::{Notifier, Raise};
use crate::util::{new_id, now_ms};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one MCP tool call of a step may take.
pub const STEP_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The browser, as a step's "server" in approvals.
const BROWSER: &str = "browser";

/// Why an automations request failed.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    /// No such flow.
    #[error("no flow {0:?} (see `coworkctl automations list`)")]
    NoFlow(String),
    /// No such run.
    #[error("no run {0:?} (see `coworkctl automations runs`)")]
    NoRun(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The run is not in a state that allows it.
    #[error("run {id} is {status}")]
    State {
        /// The run.
        id: String,
        /// Its status.
        status: String,
    },
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The automations runtime (cheap to clone).
#[derive(Clone)]
pub struct Automations {
    db: Db,
    config: PathBuf,
    mcp: Manager,
    agents: Agents,
    browser: Option<BrowserTools>,
    notifier: Notifier,
    /// Runs a task is driving now.
    active: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for Automations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automations").finish_non_exhaustive()
    }
}

/// The claim on a run while a task drives it.
struct Claim {
    active: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// What executing a step came to.
enum Exec {
    Done(Value),
    Failed(String),
    /// It waits for a person.
    Ask(Waiting),
    /// A delay waits until this deadline.
    Sleep(i64),
}

impl Automations {
    /// The runtime over cowork.db and the tools steps use.
    pub fn new(
        db: Db,
        config: PathBuf,
        mcp: Manager,
        agents: Agents,
        browser: Option<BrowserTools>,
        notifier: Notifier,
    ) -> Self {
        Self {
            db,
            config,
            mcp,
            agents,
            browser,
            notifier,
            active: Default::default(),
        }
    }

    /// cowork.db.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The MCP manager (for triggers on server notifications).
    pub fn mcp(&self) -> &Manager {
        &self.mcp
    }

    /// Store a flow from its JSON: a new flow, or a new version of the
    /// flow whose `id` the JSON names.
    pub async fn add(&self, json: &str) -> Result<FlowRow, AutomationError> {
        let f = flow::parse(json).map_err(AutomationError::Invalid)?;
        let given = serde_json::from_str::<Value>(json)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned));
        let id = match given {
            Some(id)
                if id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && !id.is_empty()
                    && id.len() <= 64 =>
            {
                id
            }
            Some(id) => {
                return Err(AutomationError::Invalid(format!(
                    "a flow id is letters, digits, - and _, not {id:?}"
                )))
            }
            None => short_id(),
        };
        let row = FlowRow {
            id,
            name: f.name.clone(),
            enabled: true,
            trigger_type: f.trigger.name().into(),
            json: serde_json::to_string(&f).unwrap_or_default(),
            version: 1,
            created_ms: now_ms(),
            updated_ms: now_ms(),
            trigger_state: "{}".into(),
            trigger_note: String::new(),
        };
        Ok(self.db.write(move |c| store::put_flow(c, &row)).await?)
    }

    /// Every flow.
    pub async fn list(&self) -> Result<Vec<FlowRow>, AutomationError> {
        Ok(self.db.read(store::list_flows).await?)
    }

    /// One flow.
    pub async fn get(&self, id: &str) -> Result<FlowRow, AutomationError> {
        let i = id.to_owned();
        self.db
            .read(move |c| store::get_flow(c, &i))
            .await?
            .ok_or_else(|| AutomationError::NoFlow(id.to_owned()))
    }

    /// Turn a flow's trigger on or off.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<FlowRow, AutomationError> {
        let i = id.to_owned();
        if !self
            .db
            .write(move |c| store::set_enabled(c, &i, enabled, now_ms()))
            .await?
        {
            return Err(AutomationError::NoFlow(id.to_owned()));
        }
        self.get(id).await
    }

    /// Delete a flow (its runs stay in the log).
    pub async fn remove(&self, id: &str) -> Result<(), AutomationError> {
        let i = id.to_owned();
        if !self.db.write(move |c| store::remove_flow(c, &i)).await? {
            return Err(AutomationError::NoFlow(id.to_owned()));
        }
        Ok(())
    }

    /// Runs, newest first.
    pub async fn runs(
        &self,
        flow_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<RunRow>, AutomationError> {
        let limit = match limit {
            0 => 50,
            n => n.min(1000),
        };
        Ok(self
            .db
            .read(move |c| store::list_runs(c, flow_id.as_deref(), limit))
            .await?)
    }

    /// One run with its step log.
    pub async fn run(&self, id: &str) -> Result<(RunRow, Vec<StepRow>), AutomationError> {
        let i = id.to_owned();
        let (run, steps) = self
            .db
            .read(move |c| Ok((store::get_run(c, &i)?, store::steps(c, &i)?)))
            .await?;
        Ok((
            run.ok_or_else(|| AutomationError::NoRun(id.to_owned()))?,
            steps,
        ))
    }

    /// Run a flow now with `vars` (text; a value that parses as JSON is
    /// JSON); with `wait`, until the run stops or waits.
    pub async fn run_now(
        &self,
        id: &str,
        given: BTreeMap<String, String>,
        wait: bool,
    ) -> Result<RunRow, AutomationError> {
        let vars = given
            .into_iter()
            .map(|(k, v)| {
                let j = serde_json::from_str::<Value>(&v).unwrap_or(Value::String(v));
                (k, j)
            })
            .collect();
        let key = format!("manual:{}", new_id("m"));
        self.start(id, "manual", key, vars, wait)
            .await?
            .ok_or_else(|| AutomationError::Invalid("this occurrence already ran".into()))
    }

    /// Start a run of flow `id` for one occurrence (none when this
    /// occurrence already has a run); with `wait`, until it stops or waits.
    pub async fn start(
        &self,
        id: &str,
        trigger: &str,
        occurrence_key: String,
        given: Map<String, Value>,
        wait: bool,
    ) -> Result<Option<RunRow>, AutomationError> {
        let row = self.get(id).await?;
        let f = flow::parse(&row.json).map_err(AutomationError::Invalid)?;
        let mut vars = Map::new();
        for input in &f.inputs {
            match given.get(&input.name).or(input.default.as_ref()) {
                Some(v) => {
                    vars.insert(input.name.clone(), v.clone());
                }
                None => {
                    return Err(AutomationError::Invalid(format!(
                        "the flow needs the input {:?} (--var {}=...)",
                        input.name, input.name
                    )))
                }
            }
        }
        for (k, v) in given {
            vars.entry(k).or_insert(v);
        }
        let run = RunRow {
            id: new_id("run"),
            flow_id: row.id.clone(),
            flow_name: row.name.clone(),
            flow_json: row.json.clone(),
            status: "running".into(),
            trigger: trigger.into(),
            occurrence_key,
            cursor: 0,
            vars_json: Value::Object(vars).to_string(),
            output_json: "null".into(),
            error: String::new(),
            waiting_json: String::new(),
            resume_at_ms: 0,
            started_ms: now_ms(),
            finished_ms: 0,
        };
        let r = run.clone();
        if !self.db.write(move |c| store::insert_run(c, &r)).await? {
            return Ok(None);
        }
        tracing::info!(run = %run.id, flow = %row.id, trigger, "automation run started");
        Ok(Some(self.drive(&run.id, None, wait).await?))
    }

    /// At start, before serving: the runs a killed agents-agent was
    /// driving. They are driven again by [`Self::resume_interrupted`].
    pub fn interrupted(&self) -> Result<Vec<String>, AutomationError> {
        Ok(self
            .db
            .write_blocking(|c| store::runs_in(c, "running"))?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    /// Drive the runs [`Self::interrupted`] found: each goes on from its
    /// last committed step.
    pub async fn resume_interrupted(&self, ids: Vec<String>) {
        for id in ids {
            if let Err(e) = self.drive(&id, None, false).await {
                tracing::warn!(run = %id, error = %e, "cannot resume a run");
            }
        }
    }

    fn claim(&self, id: &str) -> Option<Claim> {
        let mut a = self.active.lock().unwrap_or_else(|e| e.into_inner());
        a.insert(id.to_owned()).then(|| Claim {
            active: self.active.clone(),
            id: id.to_owned(),
        })
    }

    /// Drive run `id` in its own task (`decision`: a person's answer to
    /// the call it waits for); with `wait`, until it stops or waits.
    async fn drive(
        &self,
        id: &str,
        decision: Option<Decision>,
        wait: bool,
    ) -> Result<RunRow, AutomationError> {
        let Some(claim) = self.claim(id) else {
            return Err(AutomationError::State {
                id: id.into(),
                status: "busy (another task drives it)".into(),
            });
        };
        let me = self.clone();
        let run_id = id.to_owned();
        let task = tokio::spawn(async move {
            let r = me.steps(&run_id, decision).await;
            drop(claim);
            r
        });
        if !wait {
            return Ok(self.run(id).await?.0);
        }
        task.await
            .map_err(|e| AutomationError::Invalid(format!("the run's task failed: {e}")))?
    }

    /// The step loop.
    async fn steps(
        &self,
        id: &str,
        mut decision: Option<Decision>,
    ) -> Result<RunRow, AutomationError> {
        let (mut run, log) = self.run(id).await?;
        if !matches!(
            run.status.as_str(),
            "running" | "waiting" | "waiting_for_human"
        ) {
            return Ok(run);
        }
        let f = match flow::parse(&run.flow_json) {
            Ok(f) => f,
            Err(e) => {
                run.status = "failed".into();
                run.error = format!("the stored flow cannot be read: {e}");
                run.finished_ms = now_ms();
                let r = run.clone();
                self.db.write(move |c| store::save_run(c, &r)).await?;
                return Ok(run);
            }
        };
        let mut vars: Value = serde_json::from_str(&run.vars_json).unwrap_or_else(|_| json!({}));
        // The last row of the current step, if this pass did not start it.
        let mut last = log
            .iter()
            .rev()
            .find(|s| s.index == run.cursor)
            .filter(|s| log.last().map(|l| l.seq) == Some(s.seq))
            .cloned();
        loop {
            let i = run.cursor;
            let Some(step) = f.steps.get(i) else {
                return self.finish(run, Next::Finish(Value::Null)).await;
            };
            // Where this step stands after a restart or a pause.
            let mut attempt = 1;
            let mut deadline = 0;
            let mut resume_row: Option<StepRow> = None;
            let mut last_error = String::new();
            if let Some(prev) = last.take() {
                match prev.status.as_str() {
                    "running" => match after_crash(&f, i) {
                        AfterCrash::Rerun => {
                            self.close_step(
                                &run,
                                &prev,
                                "interrupted",
                                "null",
                                "rerun after a restart",
                            )
                            .await?;
                            attempt = prev.attempt + 1;
                            if matches!(step.block, Block::Delay { .. }) {
                                deadline = prev.deadline_ms;
                            }
                        }
                        AfterCrash::Interrupt(why) => {
                            self.close_step(&run, &prev, "interrupted", "null", &why)
                                .await?;
                            run.status = "interrupted".into();
                            run.error = why;
                            run.finished_ms = now_ms();
                            let r = run.clone();
                            self.db.write(move |c| store::save_run(c, &r)).await?;
                            tracing::warn!(run = %run.id, "automation run interrupted");
                            return Ok(run);
                        }
                    },
                    "waiting" => {
                        deadline = prev.deadline_ms;
                        resume_row = Some(prev);
                    }
                    "waiting_for_human" => resume_row = Some(prev),
                    "failed" => {
                        attempt = prev.attempt + 1;
                        last_error = prev.error.clone();
                    }
                    _ => {}
                }
            }
            if attempt > 1 + step.retry.max {
                let n = self.next(&f, i, Outcome::Failed(last_error), &mut vars, &mut run);
                match n {
                    Next::Step(j) => {
                        run.cursor = j;
                        continue;
                    }
                    n => return self.finish(run, n).await,
                }
            }
            let mut row = match resume_row {
                Some(r) => r,
                None => {
                    if matches!(step.block, Block::Delay { .. }) && deadline == 0 {
                        if let Block::Delay { seconds } = step.block {
                            deadline = now_ms() + seconds as i64 * 1000;
                        }
                    }
                    let mut r = StepRow {
                        seq: 0,
                        index: i,
                        step_id: step.id.clone(),
                        block: step.block.name().into(),
                        status: "running".into(),
                        attempt,
                        started_ms: now_ms(),
                        finished_ms: 0,
                        output_json: "null".into(),
                        error: String::new(),
                        deadline_ms: deadline,
                        operation_id: String::new(),
                    };
                    let (rid, rr) = (run.id.clone(), r.clone());
                    r.seq = self
                        .db
                        .write(move |c| store::begin_step(c, &rid, &rr))
                        .await?;
                    r
                }
            };
            let exec = self
                .execute(&f, i, &vars, &run, &mut row, decision.take())
                .await;
            let outcome = match exec {
                Exec::Sleep(until) => {
                    run.status = "waiting".into();
                    run.resume_at_ms = until;
                    row.status = "waiting".into();
                    let (r, s) = (run.clone(), row.clone());
                    self.db
                        .write(move |c| {
                            store::mark_step(c, &r.id, s.seq, &s.status, &s.operation_id)?;
                            store::save_run(c, &r)
                        })
                        .await?;
                    return Ok(run);
                }
                Exec::Ask(w) => {
                    run.status = "waiting_for_human".into();
                    run.waiting_json = serde_json::to_string(&w).unwrap_or_default();
                    row.status = "waiting_for_human".into();
                    let (r, s) = (run.clone(), row.clone());
                    self.db
                        .write(move |c| {
                            store::mark_step(c, &r.id, s.seq, &s.status, &s.operation_id)?;
                            store::save_run(c, &r)
                        })
                        .await?;
                    if w.operation_id.is_empty() {
                        let _ = self
                            .notifier
                            .raise(Raise {
                                trigger_type: "approval".into(),
                                tier: "urgent".into(),
                                title: format!("“{}” needs your approval", run.flow_name),
                                body: format!("{}/{}: {}", w.server, w.tool, w.reason),
                                action: Some(json!({"kind": "approval", "id": format!("{}/{}", run.id, w.call_id)})),
                                bundle_key: String::new(),
                            })
                            .await;
                    }
                    tracing::info!(run = %run.id, call = %w.call_id, "automation run waits for a person");
                    return Ok(run);
                }
                Exec::Done(v) => Outcome::Done(v),
                Exec::Failed(e) => Outcome::Failed(e),
            };
            run.waiting_json.clear();
            run.resume_at_ms = 0;
            run.status = "running".into();
            row.finished_ms = now_ms();
            match &outcome {
                Outcome::Done(v) => {
                    row.status = "done".into();
                    row.output_json = v.to_string();
                }
                Outcome::Failed(e) => {
                    row.status = "failed".into();
                    row.error = e.clone();
                }
            }
            // A failure with retries left: commit it, wait, try again.
            if let Outcome::Failed(_) = &outcome {
                if row.attempt < 1 + step.retry.max {
                    let (r, s) = (run.clone(), row.clone());
                    self.db
                        .write(move |c| store::finish_step(c, &r, &s))
                        .await?;
                    tokio::time::sleep(Duration::from_millis(retry_wait_ms(
                        step.retry.backoff_ms,
                        row.attempt + 1,
                    )))
                    .await;
                    last = Some(row);
                    continue;
                }
            }
            let next = self.next(&f, i, outcome, &mut vars, &mut run);
            match next {
                Next::Step(j) => {
                    run.cursor = j;
                    let (r, s) = (run.clone(), row.clone());
                    self.db
                        .write(move |c| store::finish_step(c, &r, &s))
                        .await?;
                }
                n => {
                    self.conclude(&mut run, n);
                    let (r, s) = (run.clone(), row.clone());
                    self.db
                        .write(move |c| store::finish_step(c, &r, &s))
                        .await?;
                    tracing::info!(run = %run.id, status = %run.status, "automation run ended");
                    return Ok(run);
                }
            }
        }
    }

    fn next(
        &self,
        f: &Flow,
        i: usize,
        outcome: Outcome,
        vars: &mut Value,
        run: &mut RunRow,
    ) -> Next {
        let n = advance(f, i, &outcome, vars);
        run.vars_json = vars.to_string();
        n
    }

    /// Set a finished run's status and result.
    fn conclude(&self, run: &mut RunRow, n: Next) {
        run.finished_ms = now_ms();
        run.waiting_json.clear();
        run.resume_at_ms = 0;
        match n {
            Next::Finish(v) => {
                run.status = "done".into();
                run.output_json = v.to_string();
            }
            Next::Fail(e) => {
                run.status = "failed".into();
                run.error = e;
            }
            Next::Step(_) => {}
        }
    }

    async fn finish(&self, mut run: RunRow, n: Next) -> Result<RunRow, AutomationError> {
        self.conclude(&mut run, n);
        let r = run.clone();
        self.db.write(move |c| store::save_run(c, &r)).await?;
        Ok(run)
    }

    async fn close_step(
        &self,
        run: &RunRow,
        s: &StepRow,
        status: &str,
        output: &str,
        error: &str,
    ) -> Result<(), AutomationError> {
        let mut s = s.clone();
        s.status = status.into();
        s.output_json = output.into();
        s.error = error.into();
        s.finished_ms = now_ms();
        let r = run.clone();
        self.db
            .write(move |c| store::finish_step(c, &r, &s))
            .await?;
        Ok(())
    }

    /// Carry out step `i` (its config substituted with `vars`).
    async fn execute(
        &self,
        f: &Flow,
        i: usize,
        vars: &Value,
        run: &RunRow,
        row: &mut StepRow,
        decision: Option<Decision>,
    ) -> Exec {
        let step = &f.steps[i];
        let call_id = format!("{}-{}", step.id, row.attempt);
        match &step.block {
            Block::Delay { seconds } => {
                let now = now_ms();
                if row.deadline_ms > now {
                    return Exec::Sleep(row.deadline_ms);
                }
                Exec::Done(json!({"waited_s": seconds}))
            }
            Block::Condition { test, .. } => {
                let left = vars::substitute(&test.left, vars);
                let right = vars::substitute(&test.right, vars);
                let result = flow::holds(&test.op, &left, &right);
                Exec::Done(json!({"result": result, "left": left, "right": right}))
            }
            Block::Notification { title, body, tier } => {
                let text = |s: &str| match vars::substitute_str(s, vars) {
                    Value::String(s) => s,
                    v => v.to_string(),
                };
                match self
                    .notifier
                    .raise(Raise {
                        trigger_type: format!("automation:{}", run.flow_id),
                        tier: text(tier),
                        title: text(title),
                        body: text(body),
                        action: None,
                        bundle_key: format!("automation:{}", run.flow_id),
                    })
                    .await
                {
                    Ok(id) => Exec::Done(json!({"notification": id})),
                    Err(e) => Exec::Failed(e.to_string()),
                }
            }
            Block::McpToolCall {
                server,
                tool,
                arguments,
            } => {
                let args = vars::substitute(arguments, vars);
                let Value::Object(args) = args else {
                    return Exec::Failed("arguments must be a JSON object".into());
                };
                match decision {
                    Some(Decision::Reject(why)) => return Exec::Failed(why),
                    Some(Decision::Approve) => {}
                    None => {
                        if let Some(w) = self.gate(server, tool, &args, &call_id).await {
                            return Exec::Ask(w);
                        }
                    }
                }
                let id = format!("{}:{}", run.id, call_id);
                match self
                    .mcp
                    .call(server, tool, args, STEP_CALL_TIMEOUT, id, "automation")
                    .await
                {
                    Ok(o) if o.is_error => Exec::Failed(o.text),
                    Ok(o) => {
                        let data = o
                            .result
                            .get("structuredContent")
                            .filter(|v| !v.is_null())
                            .cloned()
                            .or_else(|| serde_json::from_str::<Value>(o.text.trim()).ok())
                            .unwrap_or(Value::Null);
                        Exec::Done(json!({"text": o.text, "data": data}))
                    }
                    Err(e) => Exec::Failed(e.to_string()),
                }
            }
            Block::Browser { action, arguments } => {
                let Some(b) = &self.browser else {
                    return Exec::Failed("the browser is not available to automations".into());
                };
                let args = vars::substitute(arguments, vars);
                let Value::Object(args) = args else {
                    return Exec::Failed("arguments must be a JSON object".into());
                };
                let approved = match decision {
                    Some(Decision::Reject(why)) => return Exec::Failed(why),
                    Some(Decision::Approve) => true,
                    None => false,
                };
                let call = match browser_tools::parse(action, &args) {
                    Ok(c) => c,
                    Err(e) => return Exec::Failed(e),
                };
                match b.call(call, &run.id, approved).await {
                    Ok(BrowserAnswer::Done(text)) => Exec::Done(json!({"text": text})),
                    Ok(BrowserAnswer::NeedsApproval(reasons)) => Exec::Ask(Waiting {
                        call_id,
                        server: BROWSER.into(),
                        tool: action.clone(),
                        arguments: Value::Object(args).to_string(),
                        phase: 1,
                        reason: reasons.join("; "),
                        asked_ms: now_ms(),
                        operation_id: String::new(),
                    }),
                    Err(e) => Exec::Failed(e),
                }
            }
            Block::AgentStep { task, max_steps } => {
                // Started before a pause for a person: follow the same
                // operation, never start a second one.
                if row.operation_id.is_empty() {
                    let task = match vars::substitute_str(task, vars) {
                        Value::String(s) => s,
                        v => v.to_string(),
                    };
                    match self.agents.start(task, None, true, *max_steps, false).await {
                        Ok(op) => {
                            row.operation_id = op.id.clone();
                            let (rid, s) = (run.id.clone(), row.clone());
                            let _ = self
                                .db
                                .write(move |c| {
                                    store::mark_step(c, &rid, s.seq, "running", &s.operation_id)
                                })
                                .await;
                        }
                        Err(e) => return Exec::Failed(e.to_string()),
                    }
                }
                // Wait for it to stop (it runs in its own task).
                loop {
                    if let Some(done) = self.agent_outcome(&row.operation_id, &call_id).await {
                        return done;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Where an agent step's operation stands: done, failed or waiting for
    /// a person; None while it runs.
    async fn agent_outcome(&self, op_id: &str, call_id: &str) -> Option<Exec> {
        let op = match self.agents.get(op_id).await {
            Ok((op, _, _)) => op,
            Err(e) => return Some(Exec::Failed(e.to_string())),
        };
        Some(match op.status {
            Status::Done => Exec::Done(json!({"text": op.result, "operation": op.id})),
            Status::WaitingForHuman => Exec::Ask(Waiting {
                call_id: call_id.into(),
                server: "agent".into(),
                tool: op.id.clone(),
                arguments: String::new(),
                phase: op.pending.first().map_or(0, |p| p.phase),
                reason: format!(
                    "its agent operation {} waits: `coworkctl approvals list`",
                    op.id
                ),
                asked_ms: now_ms(),
                operation_id: op.id.clone(),
            }),
            Status::Running | Status::Idle => return None,
            Status::Error | Status::Paused => Exec::Failed(format!(
                "agent operation {} stopped ({}): {}",
                op.id,
                op.status.name(),
                op.reason
            )),
        })
    }

    /// The approval policy in automation context (phase 3): None when the
    /// call runs unattended, else what it waits for (phase 1 or 2).
    async fn gate(
        &self,
        server: &str,
        tool: &str,
        args: &Map<String, Value>,
        call_id: &str,
    ) -> Option<Waiting> {
        let policies = self
            .mcp
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.row.spec.name.clone(), s.row.spec.approval_policy))
            .collect();
        let settings =
            match AgentsConfig::load(&self.config).and_then(|c| c.approval_settings(&policies)) {
                Ok(s) => s,
                // Settings that cannot be read: ask (fail closed).
                Err(e) => {
                    return Some(Waiting {
                        call_id: call_id.into(),
                        server: server.into(),
                        tool: tool.into(),
                        arguments: Value::Object(args.clone()).to_string(),
                        phase: 1,
                        reason: format!("the approval settings cannot be read ({e}): asks"),
                        asked_ms: now_ms(),
                        operation_id: String::new(),
                    })
                }
            };
        let d = approval::decide(
            &settings,
            approval::Call {
                server,
                tool,
                automation: true,
            },
        );
        (d.verdict != Verdict::Run).then(|| Waiting {
            call_id: call_id.into(),
            server: server.into(),
            tool: tool.into(),
            arguments: Value::Object(args.clone()).to_string(),
            phase: d.phase,
            reason: d.reason,
            asked_ms: now_ms(),
            operation_id: String::new(),
        })
    }

    /// Every call a run waits on a person for: (run id, waiting call).
    pub async fn pending(&self) -> Result<Vec<(RunRow, Waiting)>, AutomationError> {
        let runs = self
            .db
            .read(|c| store::runs_in(c, "waiting_for_human"))
            .await?;
        Ok(runs
            .into_iter()
            .filter_map(|r| {
                let w: Waiting = serde_json::from_str(&r.waiting_json).ok()?;
                w.operation_id.is_empty().then_some((r, w))
            })
            .collect())
    }

    /// A person approves or rejects the call run `run_id` waits for; the
    /// run goes on (with `wait`, until it stops or waits again).
    pub async fn decide(
        &self,
        run_id: &str,
        call_id: &str,
        approve: bool,
        wait: bool,
    ) -> Result<RunRow, AutomationError> {
        let (run, _) = self.run(run_id).await?;
        let w: Option<Waiting> = serde_json::from_str(&run.waiting_json).ok();
        match (&*run.status, w) {
            ("waiting_for_human", Some(w)) if w.call_id == call_id && w.operation_id.is_empty() => {
                let d = if approve {
                    Decision::Approve
                } else {
                    Decision::Reject("the person rejected this step's call".into())
                };
                self.drive(run_id, Some(d), wait).await
            }
            _ => Err(AutomationError::State {
                id: run_id.into(),
                status: format!("{} (no call {call_id} waits)", run.status),
            }),
        }
    }

    /// Once a second: runs whose delay is due go on; agent steps whose
    /// operation stopped go on; calls nobody decided in time fail.
    pub async fn tick(&self) -> Result<(), AutomationError> {
        let now = now_ms();
        for r in self.db.read(|c| store::runs_in(c, "waiting")).await? {
            if r.resume_at_ms <= now && !self.is_active(&r.id) {
                let _ = self.drive(&r.id, None, false).await;
            }
        }
        let timeout_ms = AgentsConfig::load(&self.config)
            .map(|c| c.approval.timeout_ms())
            .unwrap_or(900_000);
        for r in self
            .db
            .read(|c| store::runs_in(c, "waiting_for_human"))
            .await?
        {
            if self.is_active(&r.id) {
                continue;
            }
            let Ok(w) = serde_json::from_str::<Waiting>(&r.waiting_json) else {
                continue;
            };
            if !w.operation_id.is_empty() {
                if let Ok((op, _, _)) = self.agents.get(&w.operation_id).await {
                    if op.status != Status::WaitingForHuman {
                        let _ = self.drive(&r.id, None, false).await;
                    }
                }
            } else if expired(w.asked_ms, now, timeout_ms) {
                let why = format!(
                    "no one approved {}/{} within {} s; it was not run",
                    w.server,
                    w.tool,
                    timeout_ms / 1000
                );
                let _ = self.drive(&r.id, Some(Decision::Reject(why)), false).await;
            }
        }
        Ok(())
    }

    fn is_active(&self, id: &str) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Enabled flows as agent tools: (flow id, description, JSON Schema of
    /// its inputs).
    pub async fn tool_specs(&self) -> Vec<(String, String, Map<String, Value>)> {
        let Ok(flows) = self.list().await else {
            return Vec::new();
        };
        flows
            .into_iter()
            .filter(|r| r.enabled)
            .filter_map(|r| {
                let f = flow::parse(&r.json).ok()?;
                let mut props = Map::new();
                let mut required = Vec::new();
                for i in &f.inputs {
                    props.insert(i.name.clone(), json!({"description": i.description}));
                    if i.default.is_none() {
                        required.push(Value::String(i.name.clone()));
                    }
                }
                let mut schema = Map::new();
                schema.insert("type".into(), json!("object"));
                schema.insert("properties".into(), Value::Object(props));
                schema.insert("required".into(), Value::Array(required));
                let desc = format!(
                    "Run the automation “{}”{}{}",
                    f.name,
                    if f.description.is_empty() { "" } else { ": " },
                    f.description
                );
                Some((r.id, desc, schema))
            })
            .collect()
    }

    /// Run flow `id` for an agent's tool call and wait: its result as text.
    pub async fn call_as_tool(&self, id: &str, args: Map<String, Value>) -> Result<String, String> {
        let key = format!("tool:{}", new_id("t"));
        let run = self
            .start(id, "tool", key, args, true)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("this occurrence already ran")?;
        match run.status.as_str() {
            "done" => Ok(run.output_json),
            "failed" | "interrupted" => Err(format!("the flow failed: {}", run.error)),
            s => Ok(format!(
                "the flow's run {} is {s}; it goes on by itself (`coworkctl automations runs`)",
                run.id
            )),
        }
    }

    /// Enabled flows with `trigger`'s type, parsed.
    pub async fn enabled_with(&self, kind: &str) -> Vec<(FlowRow, Flow)> {
        self.list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.enabled && r.trigger_type == kind)
            .filter_map(|r| {
                let f = flow::parse(&r.json).ok()?;
                Some((r, f))
            })
            .collect()
    }

    /// Remember a trigger's state.
    pub async fn set_trigger_state(&self, id: &str, state: Value, note: String) {
        let (i, s) = (id.to_owned(), state.to_string());
        if let Err(e) = self
            .db
            .write(move |c| store::set_trigger_state(c, &i, &s, &note))
            .await
        {
            tracing::warn!(error = %e, "cannot save a trigger's state");
        }
    }
}

/// A person's answer to a waiting call.
#[derive(Debug, Clone)]
enum Decision {
    Approve,
    Reject(String),
}

/// A short flow id (what `flow_<id>` tools are named after).
fn short_id() -> String {
    let k = crate::util::random_key("f").unwrap_or_else(|_| new_id("f"));
    k.trim_start_matches("f-").chars().take(10).collect()
}

impl crate::agent::hooks::FlowHooks for Automations {
    fn tools(&self) -> futures::future::BoxFuture<'_, Vec<crate::agent::hooks::FlowTool>> {
        Box::pin(async move {
            self.tool_specs()
                .await
                .into_iter()
                .map(|(id, description, schema)| crate::agent::hooks::FlowTool {
                    id,
                    description,
                    schema,
                })
                .collect()
        })
    }

    fn call(
        &self,
        id: String,
        args: Map<String, Value>,
    ) -> futures::future::BoxFuture<'_, Result<String, String>> {
        Box::pin(async move { self.call_as_tool(&id, args).await })
    }

    fn pending(&self) -> futures::future::BoxFuture<'_, Vec<crate::agent::hooks::RunPending>> {
        Box::pin(async move {
            self.pending()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(r, w)| crate::agent::hooks::RunPending {
                    run_id: r.id,
                    flow_name: r.flow_name,
                    pending: crate::agent::operation::Pending {
                        call: crate::agent::operation::ToolCall {
                            id: w.call_id,
                            server: w.server,
                            tool: w.tool,
                            arguments: w.arguments,
                        },
                        phase: w.phase,
                        reason: w.reason,
                        asked_ms: w.asked_ms,
                    },
                })
                .collect()
        })
    }

    fn decide(
        &self,
        run_id: String,
        call_id: String,
        approve: bool,
    ) -> futures::future::BoxFuture<'_, Result<(String, String), String>> {
        Box::pin(async move {
            let r = Automations::decide(self, &run_id, &call_id, approve, true)
                .await
                .map_err(|e| e.to_string())?;
            let reason = if r.error.is_empty() {
                format!("automation run {}", r.status)
            } else {
                r.error
            };
            Ok((r.status, reason))
        })
    }
}
