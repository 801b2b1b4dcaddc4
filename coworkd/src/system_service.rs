//! `cowork.system.v1.System`: a thin adapter from the proto to the
//! [`Supervisor`].

use crate::desktop::Desktop;
use crate::state::{HealthEvent, WorkerName, WorkerSnapshot, WorkerState};
use crate::supervisor::Supervisor;
use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::system as pb;
use cowork_proto::procinfo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// The System service.
pub struct SystemService {
    supervisor: Arc<Supervisor>,
    paths: CoworkPaths,
    shutdown: CancellationToken,
    started: Instant,
    /// Previous CPU sample per pid, for CPU % between two Status calls.
    cpu: Mutex<HashMap<u32, (Instant, Duration)>>,
    /// Desktop notifications.
    desktop: Desktop,
    /// The machine's heat as last read.
    heat: crate::thermal::Reading,
    /// The web UI.
    ui: Arc<crate::ui::Ui>,
}

impl SystemService {
    /// The service over `supervisor`; `Shutdown` cancels `shutdown`.
    pub fn new(
        supervisor: Arc<Supervisor>,
        paths: CoworkPaths,
        shutdown: CancellationToken,
        desktop: Desktop,
        heat: crate::thermal::Reading,
        ui: Arc<crate::ui::Ui>,
    ) -> Self {
        Self {
            supervisor,
            paths,
            shutdown,
            started: Instant::now(),
            cpu: Mutex::new(HashMap::new()),
            desktop,
            heat,
            ui,
        }
    }

    fn worker_status(&self, s: &WorkerSnapshot) -> pb::WorkerStatus {
        let now = Instant::now();
        let (rss_bytes, cpu_percent) = match s.pid.and_then(|p| procinfo::sample(p).map(|x| (p, x)))
        {
            Some((pid, sample)) => {
                let cpu = self.cpu_percent(pid, sample.cpu_time, s.ready_at, now);
                (sample.rss_bytes, cpu)
            }
            None => (0, 0.0),
        };
        pb::WorkerStatus {
            name: s.name.as_str().to_owned(),
            state: state_to_proto(s.state) as i32,
            pid: s.pid.unwrap_or(0),
            restarts: s.restarts,
            attempt: s.attempt,
            max_restarts: s.max_restarts,
            uptime_ms: s
                .ready_at
                .map(|t| now.duration_since(t).as_millis() as u64)
                .unwrap_or(0),
            rss_bytes,
            cpu_percent,
            reason: s.reason.clone(),
            last_exit_code: s.last_exit.and_then(|e| e.code),
            last_signal: s.last_exit.and_then(|e| e.signal),
            last_log_lines: s.last_log_lines.clone(),
            next_retry_in_ms: s
                .next_retry_at
                .map(|t| t.saturating_duration_since(now).as_millis() as u64)
                .unwrap_or(0),
            log_path: self.paths.log_file(s.name.as_str()).display().to_string(),
        }
    }

    /// CPU % since the previous Status call for this pid (at least 100 ms
    /// ago), else the average since the worker became ready.
    fn cpu_percent(&self, pid: u32, cpu: Duration, ready_at: Option<Instant>, now: Instant) -> f64 {
        let Ok(mut prev) = self.cpu.lock() else {
            return 0.0;
        };
        prev.retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(600));
        let pct = match prev.get(&pid) {
            Some((t, before)) if now.duration_since(*t) >= Duration::from_millis(100) => {
                procinfo::cpu_percent(*before, cpu, now.duration_since(*t))
            }
            _ => ready_at
                .map(|r| procinfo::cpu_percent(Duration::ZERO, cpu, now.duration_since(r)))
                .unwrap_or(0.0),
        };
        prev.insert(pid, (now, cpu));
        pct
    }
}

/// Domain state → proto enum.
pub fn state_to_proto(s: WorkerState) -> pb::WorkerState {
    match s {
        WorkerState::Starting => pb::WorkerState::Starting,
        WorkerState::Running => pb::WorkerState::Running,
        WorkerState::Degraded => pb::WorkerState::Degraded,
        WorkerState::Restarting => pb::WorkerState::Restarting,
        WorkerState::Failed => pb::WorkerState::Failed,
        WorkerState::Stopped => pb::WorkerState::Stopped,
    }
}

/// Domain event → proto event.
pub fn event_to_proto(e: &HealthEvent) -> pb::HealthEvent {
    pb::HealthEvent {
        worker: e.worker.as_str().to_owned(),
        state: state_to_proto(e.state) as i32,
        previous: state_to_proto(e.previous) as i32,
        reason: e.reason.clone(),
        seq: e.seq,
        unix_ms: e
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        pid: e.pid.unwrap_or(0),
        attempt: e.attempt,
        restarts: e.restarts,
    }
}

fn current_event(s: &WorkerSnapshot) -> pb::HealthEvent {
    event_to_proto(&HealthEvent {
        worker: s.name,
        state: s.state,
        previous: s.state,
        reason: s.reason.clone(),
        seq: 0,
        at: std::time::SystemTime::now(),
        pid: s.pid,
        attempt: s.attempt,
        restarts: s.restarts,
    })
}

fn parse_worker(name: &str) -> Result<WorkerName, Status> {
    name.parse()
        .map_err(|e: crate::state::UnknownWorker| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl pb::system_server::System for SystemService {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let workers = self
            .supervisor
            .snapshots()
            .iter()
            .map(|s| self.worker_status(s))
            .collect();
        Ok(Response::new(pb::StatusResponse {
            workers,
            coworkd_pid: std::process::id(),
            coworkd_uptime_ms: self.started.elapsed().as_millis() as u64,
            coworkd_rss_bytes: procinfo::sample(std::process::id())
                .map(|s| s.rss_bytes)
                .unwrap_or(0),
            home: self.paths.home.display().to_string(),
            socket_path: self.paths.public_socket().display().to_string(),
            notifications: self.desktop.state(),
            thermal: self.heat.lock().map(|h| h.clone()).unwrap_or_default(),
        }))
    }

    async fn notify(
        &self,
        r: Request<pb::NotifyRequest>,
    ) -> Result<Response<pb::NotifyResponse>, Status> {
        Ok(Response::new(self.desktop.notify(r.into_inner()).await))
    }

    async fn get_trace(
        &self,
        r: Request<pb::GetTraceRequest>,
    ) -> Result<Response<pb::GetTraceResponse>, Status> {
        let r = r.into_inner();
        let wanted = r.trace_id;
        let last = wanted.is_empty() || wanted == "last";
        let hex_id = wanted.len() == 32 && wanted.bytes().all(|b| b.is_ascii_hexdigit());
        if !(last || hex_id) {
            return Err(Status::invalid_argument(format!(
                "a trace id is 32 hex digits (or \"last\"), not {wanted:?}"
            )));
        }
        if !r.op.is_empty() && !last {
            return Err(Status::invalid_argument(
                "--op picks the newest trace of an operation: use it with \"last\"",
            ));
        }
        let op = r.op;
        let op_for_error = op.clone();
        let found = read_traces(self.db(), move |c| {
            let id = match (last, op.is_empty()) {
                (true, true) => cowork_db::traces::last_trace(c)?,
                (true, false) => cowork_db::traces::last_trace_of_op(c, &op)?,
                _ => Some(wanted.to_ascii_lowercase()),
            };
            let Some(id) = id else { return Ok(None) };
            let spans = cowork_db::traces::spans_of(c, &id)?;
            Ok(Some((id, spans)))
        })
        .await?
        .flatten();
        match found {
            Some((id, spans)) if !spans.is_empty() => Ok(Response::new(pb::GetTraceResponse {
                trace_id: id,
                spans: spans.into_iter().map(span_of).collect(),
            })),
            Some((id, _)) => Err(Status::not_found(format!(
                "no spans of trace {id} (spans are written within seconds, and kept for \
                 [traces] retention_days)"
            ))),
            None if !op_for_error.is_empty() => Err(Status::not_found(format!(
                "no trace of operation {op_for_error} (spans are written within seconds)"
            ))),
            None => Err(Status::not_found("no trace recorded yet")),
        }
    }

    async fn get_timeline(
        &self,
        r: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<pb::GetTimelineResponse>, Status> {
        let op = r.into_inner().op;
        if op.is_empty() || op.len() > 128 {
            return Err(Status::invalid_argument(
                "an operation id is 1 to 128 characters",
            ));
        }
        let id = op.clone();
        let spans = read_traces(self.db(), move |c| cowork_db::traces::timeline(c, &id))
            .await?
            .unwrap_or_default();
        if spans.is_empty() {
            return Err(Status::not_found(format!(
                "no spans of operation {op} (spans are written within seconds; an operation \
                 run while [traces] sample_ratio skipped it has none)"
            )));
        }
        Ok(Response::new(pb::GetTimelineResponse {
            op,
            spans: spans.into_iter().map(span_of).collect(),
        }))
    }

    async fn open_ui(
        &self,
        r: Request<pb::OpenUiRequest>,
    ) -> Result<Response<pb::OpenUiResponse>, Status> {
        let o = self
            .ui
            .open(r.into_inner().reset)
            .await
            .map_err(|e| match e {
                crate::ui::UiError::Config(_) => Status::failed_precondition(e.to_string()),
                _ => Status::unavailable(e.to_string()),
            })?;
        Ok(Response::new(pb::OpenUiResponse {
            url: o.url,
            port: o.port.into(),
            started: o.started,
            port_written: o.port_written,
            code_expires_unix_ms: o
                .code_expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            origin: o.origin,
            open_file: o.open_file.display().to_string(),
        }))
    }

    async fn get_trace_status(
        &self,
        _r: Request<pb::GetTraceStatusRequest>,
    ) -> Result<Response<pb::GetTraceStatusResponse>, Status> {
        let (settings, settings_error) =
            match cowork_proto::traces::TracesSettings::load(&self.paths.config_file()) {
                Ok(s) => (s, String::new()),
                Err(e) => (Default::default(), e.to_string()),
            };
        let stats = read_traces(self.db(), cowork_db::traces::stats)
            .await?
            .unwrap_or_default();
        Ok(Response::new(pb::GetTraceStatusResponse {
            retention_days: settings.retention_days,
            max_mb: settings.max_mb,
            sample_ratio: settings.sample_ratio,
            otlp_endpoint: settings.otlp_endpoint,
            settings_error,
            spans: stats.spans,
            bytes: stats.bytes,
            oldest_unix_us: stats.oldest_us,
            lost: stats
                .lost
                .into_iter()
                .map(|(process, l)| pb::LostSpans {
                    process,
                    dropped: l.dropped,
                    otlp_dropped: l.otlp_dropped,
                    otlp_failed: l.otlp_failed,
                })
                .collect(),
        }))
    }

    type WatchHealthStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::HealthEvent, Status>>;

    async fn watch_health(
        &self,
        req: Request<pb::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        // Subscribe before reading the snapshots so nothing falls between.
        let mut events = self.supervisor.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        if req.into_inner().include_current {
            for s in self.supervisor.snapshots() {
                let _ = tx.try_send(Ok(current_event(&s)));
            }
        }
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let e = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    e = events.recv() => e,
                };
                match e {
                    Ok(e) => {
                        if tx.send(Ok(event_to_proto(&e))).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "a WatchHealth reader fell behind");
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn retry(
        &self,
        req: Request<pb::RetryRequest>,
    ) -> Result<Response<pb::RetryResponse>, Status> {
        let w = parse_worker(&req.into_inner().worker)?;
        self.supervisor.retry(w).await;
        let snap = self.supervisor.snapshot(w);
        Ok(Response::new(pb::RetryResponse {
            status: Some(self.worker_status(&snap)),
        }))
    }

    async fn shutdown(
        &self,
        _: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        tracing::info!("shutdown requested over the API");
        let token = self.shutdown.clone();
        // Let this answer leave before the server starts draining.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
        });
        Ok(Response::new(pb::ShutdownResponse {}))
    }
}

impl SystemService {
    fn db(&self) -> std::path::PathBuf {
        self.paths.home.join("cowork.db")
    }
}

/// Run `f` on cowork.db opened read-only (a query never migrates or
/// writes it), off the async threads. None when there is no database or
/// no traces table yet.
async fn read_traces<T: Send + 'static>(
    db: std::path::PathBuf,
    f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<Option<T>, Status> {
    tokio::task::spawn_blocking(move || -> Result<Option<T>, String> {
        let c = match cowork_db::open_reader(&db) {
            Ok(c) => c,
            Err(_) if !db.exists() => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        match f(&c) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.to_string().contains("no such table") => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
    .map_err(|e| Status::unavailable(format!("cannot read traces from cowork.db: {e}")))
}

/// A stored span as the API shows it.
fn span_of(s: cowork_db::traces::SpanRow) -> pb::TraceSpan {
    pb::TraceSpan {
        span_id: s.span_id,
        parent_span_id: s.parent_span_id,
        process: s.process,
        name: s.name,
        start_unix_us: s.start_us,
        duration_us: s.duration_us,
        outcome: s.outcome,
        attributes_json: s.attributes,
        trace_id: s.trace_id,
    }
}
