//! Cross-process traces: `tracing` spans with target [`TARGET`] become
//! OpenTelemetry spans (tracing-opentelemetry), carry the W3C trace context
//! they received (`traceparent`), and are written by their own process to
//! cowork.db's `traces_spans` ([`cowork_db::traces`]) by the SDK's batch
//! processor: off the request's path, through a bounded queue that drops
//! (and counts) spans rather than blocking a request. Only allowlisted
//! attributes are written ([`cowork_db::traces::KEPT_ATTRIBUTES`]).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of spans that are recorded as trace spans.
pub const TARGET: &str = "cowork.trace";

/// The response header carrying the trace id coworkd recorded a call under.
pub const TRACE_ID_HEADER: &str = "cowork-trace-id";

/// Days spans are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Spans waiting to be written at most; more are dropped, never waited for.
pub const QUEUE: usize = 2048;

/// How often queued spans are written (one transaction each time).
pub const BATCH_DELAY: Duration = Duration::from_secs(1);

/// How long a stopping process waits to write its last spans.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

/// How long a span write waits for cowork.db's write lock (short: spans
/// are not worth holding up anyone's shutdown).
const BUSY: Duration = Duration::from_millis(200);

/// Writes a process's spans to cowork.db.
#[derive(Debug)]
pub struct SpanStore {
    db: PathBuf,
    process: &'static str,
    /// The writer connection (opened, and the table migrated, on the
    /// first batch).
    conn: Mutex<Option<cowork_db::traces::Connection>>,
    /// When old spans were last deleted.
    expired: Mutex<Option<std::time::Instant>>,
}

impl SpanStore {
    /// Spans of `process` into cowork.db at `db`.
    pub fn new(db: PathBuf, process: &'static str) -> Self {
        Self {
            db,
            process,
            conn: Mutex::new(None),
            expired: Mutex::new(None),
        }
    }

    fn write(&self, rows: &[cowork_db::traces::SpanRow]) -> Result<(), String> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let c = cowork_db::traces::open(&self.db).map_err(|e| e.to_string())?;
            c.busy_timeout(BUSY).map_err(|e| e.to_string())?;
            *guard = Some(c);
        }
        let Some(c) = guard.as_ref() else {
            return Err("no connection".into());
        };
        cowork_db::traces::insert(c, rows).map_err(|e| e.to_string())?;
        // One process (coworkd) deletes old spans, in small steps.
        if self.process != "coworkd" {
            return Ok(());
        }
        let mut expired = self.expired.lock().unwrap_or_else(|e| e.into_inner());
        if expired.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            *expired = Some(std::time::Instant::now());
            let cutoff = unix_us(SystemTime::now() - RETENTION);
            if let Err(e) = cowork_db::traces::expire(c, cutoff) {
                tracing::warn!(error = %e, "cannot delete old spans");
            }
        }
        Ok(())
    }
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A span as its row: ids, timings, outcome, kept attributes.
pub fn row_of(s: &SpanData, process: &str) -> cowork_db::traces::SpanRow {
    let mut attrs = serde_json::Map::new();
    let mut outcome = match &s.status {
        Status::Error { .. } => "error".to_owned(),
        _ => "ok".to_owned(),
    };
    for kv in &s.attributes {
        let key = kv.key.as_str();
        if key == "outcome" {
            outcome = kv.value.as_str().into_owned();
        }
        if cowork_db::traces::KEPT_ATTRIBUTES.contains(&key) {
            attrs.insert(key.to_owned(), kv.value.as_str().into_owned().into());
        }
    }
    cowork_db::traces::SpanRow {
        trace_id: s.span_context.trace_id().to_string(),
        span_id: s.span_context.span_id().to_string(),
        parent_span_id: s.parent_span_id.to_string(),
        process: process.to_owned(),
        name: s.name.to_string(),
        start_us: unix_us(s.start_time),
        duration_us: s
            .end_time
            .duration_since(s.start_time)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0),
        outcome,
        attributes: serde_json::Value::Object(attrs).to_string(),
    }
}

impl SpanExporter for SpanStore {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let rows: Vec<_> = batch.iter().map(|s| row_of(s, self.process)).collect();
        self.write(&rows).map_err(OTelSdkError::InternalFailure)
    }
}

/// The tracer provider writing this process's spans to cowork.db (written
/// every [`BATCH_DELAY`]). Keep it until the process ends, then pass it to
/// [`flush_and_stop`] (off any async thread).
pub fn provider(db: PathBuf, process: &'static str) -> SdkTracerProvider {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler};
    let batches = BatchSpanProcessor::builder(SpanStore::new(db, process))
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_scheduled_delay(BATCH_DELAY)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        // Every call is recorded (not the SDK's parent-based default, which
        // a caller's "not sampled" flag or OTEL_* variables would turn off
        // while its trace id is still returned).
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(batches)
        .build()
}

/// Stop recording and write what is queued, waiting at most
/// [`SHUTDOWN_WAIT`] (a stopping process must not outlive its grace).
pub fn flush_and_stop(provider: SdkTracerProvider) {
    let _ = provider.shutdown_with_timeout(SHUTDOWN_WAIT);
}

/// The layer turning [`TARGET`] spans into OpenTelemetry spans.
pub fn layer<S>(
    provider: &SdkTracerProvider,
    process: &'static str,
) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(process))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() == TARGET
        }))
}

/// Calls that are not a person's request: the worker contract (coworkd's
/// health polls, stops), gRPC health and reflection. They get no span.
fn untraced(path: &str) -> bool {
    [
        "/cowork.worker.v1.Worker/",
        "/grpc.health.",
        "/grpc.reflection.",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

/// `handler` with a `request` span (target [`TARGET`]) around each call,
/// continuing the caller's trace (coworkd's relay span): a worker's side
/// of one trace. Its outcome is the call's `grpc-status` when the worker
/// answers at once with an error, else "ok".
pub fn traced(handler: crate::uds::Handler) -> crate::uds::Handler {
    use tracing::Instrument as _;
    std::sync::Arc::new(move |req: http::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        Box::pin(async move {
            if untraced(req.uri().path()) {
                return handler(req).await;
            }
            let span = tracing::info_span!(
                target: TARGET,
                "request",
                path = %req.uri().path(),
                outcome = tracing::field::Empty,
            );
            continue_trace(&span, req.headers());
            let resp = handler(req).instrument(span.clone()).await;
            span.record("outcome", outcome_of(resp.headers()).as_str());
            resp
        })
    })
}

/// "ok", or "grpc-status N" when a response's headers carry an error.
pub fn outcome_of(headers: &http::HeaderMap) -> String {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .filter(|c| *c != "0")
        .map(|c| format!("grpc-status {c}"))
        .unwrap_or_else(|| "ok".into())
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Make `span` a child of the trace context in `headers` (`traceparent`);
/// a call without one (or with a malformed one) starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// Put `span`'s context into `headers` as `traceparent`, for the next
/// process.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
    }
}

/// `span`'s trace id (32 hex digits), when it is recorded.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_span_continues_the_callers_trace_is_written_and_passes_it_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cowork.db");
        let provider = provider(db.clone(), "coworkd");
        let subscriber = tracing_subscriber::registry().with(layer(&provider, "coworkd"));
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        let mut outgoing = http::HeaderMap::new();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: TARGET, "relay", worker = "capture", path = "/x", secret = "hunter2", outcome = tracing::field::Empty);
            continue_trace(&span, &incoming);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            inject(&span, &mut outgoing);
            span.record("outcome", "ok");
            // Not a trace span: never written.
            let _other = tracing::info_span!("internal");
        });
        let tp = outgoing["traceparent"].to_str().unwrap();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "the relay's own span is the parent"
        );
        provider.force_flush().unwrap();
        let c = cowork_db::traces::open(&db).unwrap();
        let spans = cowork_db::traces::spans_of(&c, "4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(spans.len(), 1, "{spans:?}");
        let s = &spans[0];
        assert_eq!((s.name.as_str(), s.process.as_str()), ("relay", "coworkd"));
        assert_eq!(s.parent_span_id, "00f067aa0ba902b7");
        assert_eq!(s.outcome, "ok");
        assert!(
            s.attributes.contains("\"worker\":\"capture\""),
            "{}",
            s.attributes
        );
        assert!(
            !s.attributes.contains("hunter2"),
            "not an allowlisted attribute"
        );
        provider.shutdown().unwrap();
    }

    #[test]
    fn no_traceparent_starts_a_trace_and_a_bad_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let provider = provider(dir.path().join("cowork.db"), "coworkd");
        let subscriber = tracing_subscriber::registry().with(layer(&provider, "coworkd"));
        tracing::subscriber::with_default(subscriber, || {
            let mut h = http::HeaderMap::new();
            h.insert("traceparent", http::HeaderValue::from_static("garbage"));
            let span = tracing::info_span!(target: TARGET, "relay");
            continue_trace(&span, &h);
            let id = trace_id(&span).unwrap();
            assert_eq!(id.len(), 32);
            assert_ne!(id, "0".repeat(32));
        });
        // Without the layer, nothing is recorded and there is no id.
        let span = tracing::info_span!(target: TARGET, "relay");
        assert_eq!(trace_id(&span), None);
        provider.shutdown().unwrap();
    }
}
