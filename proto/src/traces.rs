//! Cross-process traces: `tracing` spans with target [`TARGET`] become
//! OpenTelemetry spans (tracing-opentelemetry), carry the W3C trace context
//! they received (`traceparent`), and are written by their own process to
//! cowork.db's `traces_spans` ([`cowork_db::traces`]) by the SDK's batch
//! processor: off the request's path, through a bounded queue that drops
//! (and counts) spans rather than blocking a request. Only allowlisted
//! attributes are written ([`cowork_db::traces::KEPT_ATTRIBUTES`]).

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A span attribute (for [`record_past`]).
pub use opentelemetry::KeyValue;

/// The `tracing` target of spans that are recorded as trace spans.
pub const TARGET: &str = "cowork.trace";

/// The response header carrying the trace id coworkd recorded a call under.
pub const TRACE_ID_HEADER: &str = "cowork-trace-id";

/// [`TRACE_ID_HEADER`] as a header name (not parsed per call).
pub const TRACE_ID_HEADER_NAME: http::HeaderName = http::HeaderName::from_static(TRACE_ID_HEADER);

/// Spans waiting to be written at most; more are dropped (and counted),
/// never waited for.
pub const QUEUE: usize = 2048;

/// How often queued spans are written (one transaction each time).
pub const BATCH_DELAY: Duration = Duration::from_secs(1);

/// How long a stopping process waits to write its last spans.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

/// How long a span write waits for cowork.db's write lock. It runs on the
/// batch thread, off every request's path; a stopping process does not
/// wait for it beyond [`SHUTDOWN_WAIT`].
const BUSY: Duration = Duration::from_secs(5);

/// How often coworkd deletes spans beyond `[traces]` retention and size.
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// The largest `max_mb` accepted (1 TB).
const MAX_MB: u64 = 1_000_000;

/// How long an export to the OTLP collector may take.
const OTLP_TIMEOUT: Duration = Duration::from_secs(3);

/// `[traces]` in config.toml, read by every process when it starts (a
/// change takes effect as each process restarts).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracesSettings {
    /// Days spans are kept in cowork.db.
    pub retention_days: u32,
    /// The most the spans may take in cowork.db (MB); the first written
    /// go first.
    pub max_mb: u64,
    /// The share of calls traced, 0.0 to 1.0, decided by coworkd from the
    /// trace id (whatever the caller's flag says); workers follow its
    /// choice. 0 turns tracing off: no trace layer is installed.
    pub sample_ratio: f64,
    /// Also export spans over OTLP/HTTP (protobuf) to this collector
    /// (`http://127.0.0.1:4318`, `/v1/traces` is added to a URL without a
    /// path). Empty: off. Loopback or LAN only.
    pub otlp_endpoint: String,
}

impl Default for TracesSettings {
    fn default() -> Self {
        Self {
            retention_days: 7,
            max_mb: 64,
            sample_ratio: 1.0,
            otlp_endpoint: String::new(),
        }
    }
}

/// A `[traces]` section that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// config.toml is not readable or not TOML.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `[traces]` has a bad key or value.
    #[error("[traces] in {path}: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TracesSettings {
    /// `[traces]` of the config file at `path` (defaults when the file or
    /// the section is absent).
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(SettingsError::Read {
                    path: path.into(),
                    message: e.to_string(),
                })
            }
        };
        Self::parse(&text).map_err(|e| match e {
            SettingsError::Read { message, .. } => SettingsError::Read {
                path: path.into(),
                message,
            },
            SettingsError::Invalid { message, .. } => SettingsError::Invalid {
                path: path.into(),
                message,
            },
        })
    }

    /// `[traces]` of a config file's text.
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        let read = |message: String| SettingsError::Read {
            path: PathBuf::new(),
            message,
        };
        let invalid = |message: String| SettingsError::Invalid {
            path: PathBuf::new(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| read(e.to_string()))?;
        let Some(section) = table.remove("traces") else {
            return Ok(Self::default());
        };
        let s: Self = section
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().to_owned()))?;
        if !(0.0..=1.0).contains(&s.sample_ratio) {
            return Err(invalid(format!(
                "sample_ratio must be 0.0 to 1.0, not {}",
                s.sample_ratio
            )));
        }
        if s.retention_days == 0 || s.max_mb == 0 || s.max_mb > MAX_MB {
            return Err(invalid(format!(
                "retention_days must be at least 1 and max_mb 1 to {MAX_MB} \
                 (sample_ratio = 0 turns tracing off)"
            )));
        }
        if !s.otlp_endpoint.is_empty() && !crate::net::is_local_url(&s.otlp_endpoint) {
            return Err(invalid(format!(
                "otlp_endpoint {:?} is not an http(s) URL on this machine or the LAN; \
                 spans are only exported to a local collector",
                s.otlp_endpoint
            )));
        }
        Ok(s)
    }

    /// The OTLP/HTTP traces URL (the signal path added to a bare base).
    pub fn otlp_traces_url(&self) -> Option<String> {
        if self.otlp_endpoint.is_empty() {
            return None;
        }
        let base = self.otlp_endpoint.trim_end_matches('/');
        let has_path = base
            .parse::<http::Uri>()
            .is_ok_and(|u| !matches!(u.path(), "" | "/"));
        Some(if has_path {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

/// One span queue's counts: spans in it, and spans it refused because it
/// was full or its export failed.
#[derive(Debug, Default)]
pub(crate) struct QueueCounts {
    queued: AtomicUsize,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl QueueCounts {
    fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }
    fn take_failed(&self) -> u64 {
        self.failed.swap(0, Ordering::Relaxed)
    }
    /// Counts taken but not recorded go back.
    fn put_back(&self, dropped: u64, failed: u64) {
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.failed.fetch_add(failed, Ordering::Relaxed);
    }
}

/// A span processor (the SDK's batch processor) behind a queue bound we
/// count ourselves: a span that would overflow it is dropped and counted,
/// never waited for. The exporter behind it is [`Drained`].
#[derive(Debug)]
struct Bounded<P> {
    inner: P,
    counts: Arc<QueueCounts>,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx)
    }
    fn on_end(&self, span: SpanData) {
        if self.counts.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.counts.queued.fetch_sub(1, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}

/// The exporter behind a [`Bounded`] queue: takes exported spans off its
/// count and counts failed exports.
#[derive(Debug)]
struct Drained<E> {
    inner: E,
    counts: Arc<QueueCounts>,
}

impl<E: SpanExporter> SpanExporter for Drained<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        lower_writer_priority();
        let n = batch.len();
        let r = self.inner.export(batch).await;
        self.counts.queued.fetch_sub(n, Ordering::Relaxed);
        if r.is_err() {
            self.counts.failed.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}

/// Added to a span writer thread's nice value (the result capped at 19)
/// at its first batch (Linux only, as [`lower_writer_priority`]).
#[cfg(target_os = "linux")]
const WRITER_NICE: i32 = 10;

/// Lower the calling thread's priority by [`WRITER_NICE`], once per
/// thread: the span writers' threads (the SDK's batch threads, for
/// cowork.db and OTLP, where exports run). A writer writes a batch (up to
/// the SDK's 512 spans) in one burst; at the same priority it competes
/// with the threads serving calls, and on two cores that shows in the
/// tail of their latency (docs/BENCHMARKS.md, "The writer yields"). Where
/// the priority cannot be changed, the thread keeps its own. Linux only:
/// elsewhere a thread's priority cannot be set apart from its process's.
fn lower_writer_priority() {
    #[cfg(target_os = "linux")]
    {
        thread_local!(static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if LOWERED.with(|l| l.replace(true)) {
            return;
        }
        let tid = nix::unistd::gettid().as_raw() as libc::id_t;
        // SAFETY: on Linux, getpriority and setpriority with PRIO_PROCESS
        // and a thread id read and set that one thread's nice value; no
        // memory is passed. (getpriority's -1 is also a valid nice value:
        // an error, which it cannot have for the calling thread, would
        // only give nice 9.)
        let rc = unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + WRITER_NICE).min(19))
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            tracing::debug!(%error, "the span writer keeps its priority");
        }
    }
}

/// A kept attribute's value, counts as numbers (`tracing` hands unsigned
/// integers to the layer as text).
fn typed(kv: &KeyValue) -> opentelemetry::Value {
    use opentelemetry::Value as V;
    if cowork_db::traces::kept_attribute(kv.key.as_str()) != Some(cowork_db::traces::Kept::Number) {
        return kv.value.clone();
    }
    match &kv.value {
        V::String(t) => t
            .as_str()
            .parse::<i64>()
            .map(V::I64)
            .unwrap_or_else(|_| kv.value.clone()),
        other => other.clone(),
    }
}

/// A span with only what may leave its process: the kept attributes (counts
/// as numbers), its ids, name, timings and status without a message; no
/// events, links or caller's trace state.
pub fn scrubbed(mut s: SpanData) -> SpanData {
    s.attributes
        .retain(|kv| cowork_db::traces::kept_attribute(kv.key.as_str()).is_some());
    for kv in &mut s.attributes {
        kv.value = typed(kv);
    }
    s.dropped_attributes_count = 0;
    s.events = Default::default();
    s.links = Default::default();
    // The caller's `tracestate` is theirs, not ours to pass on.
    s.span_context = opentelemetry::trace::SpanContext::new(
        s.span_context.trace_id(),
        s.span_context.span_id(),
        s.span_context.trace_flags(),
        s.span_context.is_remote(),
        Default::default(),
    );
    if let Status::Error { .. } = s.status {
        s.status = Status::error("");
    }
    s
}

/// The OTLP exporter, sending [`scrubbed`] spans only.
#[derive(Debug)]
struct ScrubbedOtlp(opentelemetry_otlp::SpanExporter);

impl SpanExporter for ScrubbedOtlp {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .export(batch.into_iter().map(scrubbed).collect())
            .await
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource)
    }
}

/// Writes a process's spans to cowork.db and records what the process
/// lost (coworkd alone deletes old spans: [`sweep`]).
#[derive(Debug)]
pub struct SpanStore {
    db: PathBuf,
    process: &'static str,
    /// The writer connection (opened, and the table migrated, on the
    /// first batch).
    conn: Mutex<Option<cowork_db::traces::Connection>>,
    /// The columns of the span being written.
    buffers: Mutex<RowBuffers>,
    /// This store's queue.
    counts: Arc<QueueCounts>,
    /// The OTLP export's queue, when there is one.
    otlp: Option<Arc<QueueCounts>>,
}

impl SpanStore {
    /// Spans of `process` into cowork.db at `db`.
    pub fn new(db: PathBuf, process: &'static str) -> Self {
        Self {
            db,
            process,
            conn: Mutex::new(None),
            buffers: Mutex::default(),
            counts: Arc::default(),
            otlp: None,
        }
    }

    fn write(&self, spans: &[SpanData]) -> Result<(), String> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let c = cowork_db::traces::open(&self.db).map_err(|e| e.to_string())?;
            c.busy_timeout(BUSY).map_err(|e| e.to_string())?;
            *guard = Some(c);
        }
        let Some(c) = guard.as_ref() else {
            return Err("no connection".into());
        };
        let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        cowork_db::traces::insert_with(c, spans.len(), |sink| {
            spans
                .iter()
                .try_for_each(|s| sink.put(&buffers.row(s, self.process)))
        })
        .map_err(|e| e.to_string())?;
        // Queue full, or in a batch whose write failed (this one is the
        // first to succeed since).
        let (dropped, failed) = (self.counts.take_dropped(), self.counts.take_failed());
        let (otlp_dropped, otlp_failed) = self
            .otlp
            .as_ref()
            .map_or((0, 0), |o| (o.take_dropped(), o.take_failed()));
        let lost = cowork_db::traces::Lost {
            dropped: dropped + failed,
            otlp_dropped,
            otlp_failed,
        };
        if !lost.is_empty() {
            let now = unix_us(SystemTime::now());
            if let Err(e) = cowork_db::traces::add_lost(c, self.process, lost, now) {
                tracing::warn!(error = %e, "cannot count lost spans; will try again");
                self.counts.put_back(dropped, failed);
                if let Some(o) = &self.otlp {
                    o.put_back(otlp_dropped, otlp_failed);
                }
            }
        }
        Ok(())
    }
}

/// Delete spans older than `[traces] retention_days`, then the first
/// written beyond `max_mb` (counted as the bytes of their columns; the
/// file takes about half as much again). coworkd alone calls this,
/// every [`SWEEP_EVERY`], whether or not it records anything itself.
/// Returns how many spans went.
pub fn sweep(db: &Path, settings: &TracesSettings) -> Result<usize, String> {
    if !db.exists() {
        return Ok(0);
    }
    let c = cowork_db::traces::open(db).map_err(|e| e.to_string())?;
    c.busy_timeout(BUSY).map_err(|e| e.to_string())?;
    let keep = Duration::from_secs(u64::from(settings.retention_days) * 86_400);
    let cutoff = unix_us(SystemTime::now().checked_sub(keep).unwrap_or(UNIX_EPOCH));
    let old = cowork_db::traces::expire(&c, cutoff).map_err(|e| e.to_string())?;
    let over = cowork_db::traces::cap(&c, settings.max_mb.saturating_mul(1_000_000))
        .map_err(|e| e.to_string())?;
    Ok(old + over)
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A span's columns, built in buffers the batch writer reuses from span
/// to span (it runs for every span: no allocation per span once they have
/// grown).
#[derive(Debug)]
struct RowBuffers {
    /// Trace, span and parent ids, hex.
    ids: [u8; 64],
    outcome: String,
    attributes: String,
}

impl Default for RowBuffers {
    fn default() -> Self {
        Self {
            ids: [b'0'; 64],
            outcome: String::new(),
            attributes: String::new(),
        }
    }
}

impl RowBuffers {
    /// `s` as its row: ids, timings, outcome, kept attributes (as one JSON
    /// object; counts as numbers; a later value of a key replaces an
    /// earlier one).
    fn row<'a>(&'a mut self, s: &'a SpanData, process: &'a str) -> cowork_db::traces::SpanRef<'a> {
        use cowork_db::traces::Kept;
        use opentelemetry::Value as V;
        self.outcome.clear();
        self.outcome.push_str(match &s.status {
            Status::Error { .. } => "error",
            _ => "ok",
        });
        let out = &mut self.attributes;
        out.clear();
        out.push('{');
        let attrs = &s.attributes;
        for (i, kv) in attrs.iter().enumerate() {
            let key = kv.key.as_str();
            let Some(kind) = cowork_db::traces::kept_attribute(key) else {
                continue;
            };
            if key == "outcome" {
                self.outcome.clear();
                self.outcome.push_str(&kv.value.as_str());
            }
            if attrs[i + 1..].iter().any(|later| later.key.as_str() == key) {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            // Kept keys are plain words: nothing to escape.
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            let mut number = itoa::Buffer::new();
            match (&kv.value, kind) {
                (V::I64(n), _) => out.push_str(number.format(*n)),
                // Written from the parsed number: text like "+5" or "007"
                // parses but is not JSON.
                (V::String(t), Kept::Number) => match t.as_str().parse::<i64>() {
                    Ok(n) => out.push_str(number.format(n)),
                    Err(_) => json_string(out, t.as_str()),
                },
                (V::F64(f), _) => out.push_str(&serde_json::Value::from(*f).to_string()),
                (V::Bool(b), _) => out.push_str(if *b { "true" } else { "false" }),
                (other, _) => json_string(out, &other.as_str()),
            }
        }
        out.push('}');
        let sc = &s.span_context;
        hex(&mut self.ids[..32], &sc.trace_id().to_bytes());
        hex(&mut self.ids[32..48], &sc.span_id().to_bytes());
        hex(&mut self.ids[48..], &s.parent_span_id.to_bytes());
        // Hex digits are ASCII (the zeros are never used).
        let ids = std::str::from_utf8(&self.ids).unwrap_or(ZERO_IDS);
        cowork_db::traces::SpanRef {
            trace_id: &ids[..32],
            span_id: &ids[32..48],
            parent_span_id: &ids[48..],
            process,
            name: &s.name,
            start_us: unix_us(s.start_time),
            duration_us: s
                .end_time
                .duration_since(s.start_time)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
            outcome: &self.outcome,
            attributes: &self.attributes,
        }
    }
}

/// 64 zeros: three ids, hex.
const ZERO_IDS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A span as its row (as the batch writer writes it).
#[cfg(test)]
fn row_of(s: &SpanData, process: &str) -> cowork_db::traces::SpanRow {
    let mut buffers = RowBuffers::default();
    let r = buffers.row(s, process);
    cowork_db::traces::SpanRow {
        trace_id: r.trace_id.to_owned(),
        span_id: r.span_id.to_owned(),
        parent_span_id: r.parent_span_id.to_owned(),
        process: r.process.to_owned(),
        name: r.name.to_owned(),
        start_us: r.start_us,
        duration_us: r.duration_us,
        outcome: r.outcome.to_owned(),
        attributes: r.attributes.to_owned(),
    }
}

/// `text` as a JSON string literal, appended to `out`.
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    // Runs of characters that need no escape are copied whole.
    // (All three are ASCII, so a byte search never splits a character.)
    while let Some(at) = first_to_escape(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        match rest.as_bytes()[at] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Where the first byte of `bytes` that a JSON string must escape is (`"`,
/// `\`, a control character). Eight bytes at a time while none of them
/// is one (a path is tens of bytes and rarely has any), then byte by byte.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    // Nonzero when some byte of `v` is below `n` (n ≤ 128).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS;
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(word);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        if below(v, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            break;
        }
        clean += 8;
    }
    bytes[clean..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| clean + at)
}

/// Every byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
        b += 1;
    }
    pairs
};

/// `bytes` as lowercase hex digits, into `out` (twice as long).
fn hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*b)]);
    }
}

impl SpanExporter for SpanStore {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.write(&batch).map_err(OTelSdkError::InternalFailure)
    }
}

fn batches<E: SpanExporter + 'static>(
    exporter: E,
    counts: Arc<QueueCounts>,
) -> Bounded<impl SpanProcessor> {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
    let inner = BatchSpanProcessor::builder(Drained {
        inner: exporter,
        counts: counts.clone(),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            // Ours bounds it first (and counts); the SDK's never fills.
            .with_max_queue_size(QUEUE + 64)
            .with_scheduled_delay(BATCH_DELAY)
            .build(),
    )
    .build();
    Bounded { inner, counts }
}

/// The service name a process's spans carry in an OTLP export.
fn service_name(process: &str) -> String {
    if process == "coworkd" {
        process.to_owned()
    } else {
        format!("{process}-agent")
    }
}

/// The tracer provider writing this process's spans to cowork.db (written
/// every [`BATCH_DELAY`]), and to the OTLP collector when one is set.
/// Keep it until the process ends, then pass it to [`flush_and_stop`]
/// (off any async thread). An OTLP exporter that cannot be built is
/// returned as the error beside a provider without it.
pub fn provider(
    db: PathBuf,
    process: &'static str,
    settings: TracesSettings,
) -> (SdkTracerProvider, Option<String>) {
    use opentelemetry_sdk::trace::Sampler;
    let mut store = SpanStore::new(db, process);
    let mut otlp_error = None;
    let otlp = settings
        .otlp_traces_url()
        .and_then(|url| match otlp_exporter(&url) {
            Ok(e) => Some(e),
            Err(e) => {
                otlp_error = Some(format!("cannot export spans to {url}: {e}"));
                None
            }
        });
    let otlp = otlp.map(|e| {
        let counts = Arc::<QueueCounts>::default();
        store.otlp = Some(counts.clone());
        batches(ScrubbedOtlp(e), counts)
    });
    let counts = store.counts.clone();
    let mut builder = SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(service_name(process))
                .build(),
        )
        .with_sampler({
            let by_id = if settings.sample_ratio >= 1.0 {
                Sampler::AlwaysOn
            } else {
                Sampler::TraceIdRatioBased(settings.sample_ratio)
            };
            // coworkd, where a call enters, decides by the trace id alone
            // (a caller's "not sampled" flag or OTEL_* variables cannot
            // silence a call whose trace id it returns); a worker follows
            // coworkd's decision, so one call is whole or absent.
            if process == "coworkd" {
                by_id
            } else {
                Sampler::ParentBased(Box::new(by_id))
            }
        })
        .with_id_generator(TimeOrderedIds::default())
        .with_span_processor(batches(store, counts));
    let processors = if let Some(p) = otlp {
        builder = builder.with_span_processor(p);
        2
    } else {
        1
    };
    PROCESSORS.store(processors, Ordering::Relaxed);
    (builder.build(), otlp_error)
}

/// Trace ids that start with the time they were made: the first 48 bits
/// are Unix milliseconds, the other 80 random. A trace's spans are written
/// under its id (`traces_spans`' primary key), so ids that grow with time
/// are appended near the end of that index instead of at a random page
/// each: a batch rewrites a few pages, not hundreds (a third of the
/// writer's CPU per span, measured in SQLite; docs/BENCHMARKS.md). The
/// sampler decides by the low 64 bits, which stay random; span ids are
/// the SDK's random ones. (W3C Trace Context allows this; its "random"
/// flag promises the rightmost 7 bytes only.)
#[derive(Debug, Default)]
pub struct TimeOrderedIds(opentelemetry_sdk::trace::RandomIdGenerator);

/// The random bits of a [`TimeOrderedIds`] trace id.
const RANDOM_BITS: u32 = 80;

impl TimeOrderedIds {
    /// A trace id made at `unix_ms` from the random `bits`.
    pub fn trace_id_at(unix_ms: u64, bits: u128) -> opentelemetry::trace::TraceId {
        let random = bits & ((1u128 << RANDOM_BITS) - 1);
        let time = u128::from(unix_ms & ((1 << 48) - 1)) << RANDOM_BITS;
        opentelemetry::trace::TraceId::from(time | random)
    }
}

impl opentelemetry_sdk::trace::IdGenerator for TimeOrderedIds {
    fn new_trace_id(&self) -> opentelemetry::trace::TraceId {
        let bits = u128::from_be_bytes(self.0.new_trace_id().to_bytes());
        Self::trace_id_at(unix_us(SystemTime::now()) as u64 / 1000, bits)
    }
    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.0.new_span_id()
    }
}

/// How many span processors the provider has (each is given its share of
/// [`SHUTDOWN_WAIT`]).
static PROCESSORS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The OTLP/HTTP (protobuf) exporter to `url`. Its HTTP client goes to that
/// address only: no proxy from the environment, no redirect (either could
/// carry spans past the loopback-or-LAN rule). Built on a thread of its own
/// (a blocking client must not be made on an async thread).
fn otlp_exporter(url: &str) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let url = url.to_owned();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(OTLP_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(OTLP_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the exporter's thread panicked".to_owned())?
}

/// Stop recording and write what is queued, waiting at most
/// [`SHUTDOWN_WAIT`] in all (a stopping process must not outlive its
/// grace): the processors, shut one after another, share it.
pub fn flush_and_stop(provider: SdkTracerProvider) {
    let n = PROCESSORS.load(Ordering::Relaxed).max(1);
    let _ = provider.shutdown_with_timeout(SHUTDOWN_WAIT / n);
}

/// Record a span that already happened: `name` from `start` until now,
/// under `parent`, with `attributes` (allowlisted keys only are kept). For
/// a wait that began in an earlier call (an approval asked in one request,
/// decided in another), which a `tracing` span cannot start in the past.
pub fn record_past(
    name: &'static str,
    start: SystemTime,
    parent: &tracing::Span,
    attributes: Vec<opentelemetry::KeyValue>,
) {
    use opentelemetry::trace::{Span as _, Tracer as _};
    let Some(tracer) = TRACER.get() else { return };
    let cx = parent.context();
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(tracer, &cx);
    span.end();
}

/// This process's tracer (set when the layer is made), for [`record_past`]
/// and [`installed_tracer`].
static TRACER: std::sync::OnceLock<Tracer> = std::sync::OnceLock::new();

/// The OpenTelemetry SDK's tracer.
pub type Tracer = opentelemetry_sdk::trace::SdkTracer;

/// This process's tracer once its trace layer is installed (traces are
/// on), for spans made without `tracing` ([`RelaySpan`]); None when traces
/// are off.
pub fn installed_tracer() -> Option<Tracer> {
    TRACER.get().cloned()
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
    let _ = TRACER.set(provider.tracer(process));
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(process))
        // Nothing of this is kept (not allowlisted): not worth computing.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        // Our spans pass their context explicitly (`inject`, `record_past`):
        // no OpenTelemetry context attached at every enter and exit.
        .with_context_activation(false)
        // By target, decided once per callsite: every other span and event
        // (hyper's, h2's: many per call) is "never" for this layer, at no
        // cost per call. (A `filter_fn` would be asked at every one.)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO),
        )
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
/// of one trace, open until the response's body ends
/// ([`until_body_ends`]).
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
                bytes = tracing::field::Empty,
            );
            continue_trace(&span, req.headers());
            let resp = handler(req).instrument(span.clone()).await;
            until_body_ends(resp, span)
        })
    })
}

/// `resp` with `span` kept open until its body ends: the span's outcome is
/// the call's `grpc-status`, from the headers of a call that fails at once,
/// else from the trailers of a streamed one ("cancelled" when the caller
/// hung up first), and `bytes` counts what the body carried.
pub fn until_body_ends<S: CallSpan>(
    resp: http::Response<tonic::body::Body>,
    mut span: S,
) -> http::Response<tonic::body::Body> {
    let (parts, body) = resp.into_parts();
    let status = parts.headers.get("grpc-status").is_some();
    if status {
        span.outcome(outcome_of(&parts.headers));
    }
    let body = SpanBody {
        inner: body,
        span: Some(span),
        bytes: 0,
        outcome_recorded: status,
    };
    http::Response::from_parts(parts, tonic::body::Body::new(body))
}

/// The span of one call, told how the call ended as its response's body
/// ends ([`until_body_ends`]): a worker's `request` span (`tracing`) or
/// coworkd's [`RelaySpan`].
pub trait CallSpan: Send + Unpin + 'static {
    /// How the call ended: "ok", "grpc-status N", "cancelled".
    fn outcome(&mut self, outcome: Cow<'static, str>);
    /// The call is over; its body carried `bytes`.
    fn end(self, bytes: u64);
}

impl CallSpan for tracing::Span {
    fn outcome(&mut self, outcome: Cow<'static, str>) {
        self.record("outcome", &*outcome);
    }
    fn end(self, bytes: u64) {
        self.record("bytes", bytes);
        // A span ends when it was last exited: exit it now.
        self.in_scope(|| {});
    }
}

/// coworkd's `relay` span of one call: made by the OpenTelemetry SDK's
/// tracer directly, not through a `tracing` span and the OpenTelemetry
/// layer. It has no children in coworkd and nothing logs under it, so the
/// layer would only convert it, at a cost on every relayed call
/// (docs/BENCHMARKS.md, "What traces cost"). Same tracer, sampler, ids,
/// processors and table as every span; nothing at all when traces are off.
pub struct RelaySpan {
    span: Option<opentelemetry_sdk::trace::Span>,
    /// Its outcome is recorded.
    outcome: bool,
}

impl RelaySpan {
    /// The span of a call to `worker` at `path`, made by `tracer` (None:
    /// traces are off, nothing is recorded), continuing the caller's trace
    /// (`traceparent` in `headers`), else starting one.
    pub fn start(
        tracer: Option<&Tracer>,
        worker: &'static str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Self {
        use opentelemetry::trace::Tracer as _;
        let Some(tracer) = tracer else {
            return Self {
                span: None,
                outcome: false,
            };
        };
        // Most callers send no trace context: nothing to parse.
        let caller = if headers.contains_key(TRACEPARENT) {
            TraceContextPropagator::new()
                .extract_with_context(&opentelemetry::Context::new(), &Headers(headers))
        } else {
            opentelemetry::Context::new()
        };
        // Room for what is recorded later (wait, outcome, bytes).
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new("worker", worker));
        attributes.push(KeyValue::new("path", path.to_owned()));
        let span = tracer
            .span_builder("relay")
            .with_attributes(attributes)
            .start_with_context(tracer, &caller);
        Self {
            span: Some(span),
            outcome: false,
        }
    }

    /// How long the call waited for its worker to be routable.
    pub fn record_wait_ms(&mut self, ms: u64) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = &mut self.span {
            s.set_attribute(KeyValue::new("wait_ms", ms as i64));
        }
    }

    /// Put this span's context into `headers` as `traceparent`, for the
    /// worker. Returns the trace id when the call is recorded (traces are
    /// on and it was sampled), as the value of [`TRACE_ID_HEADER`] for the
    /// caller.
    pub fn inject(&self, headers: &mut http::HeaderMap) -> Option<http::HeaderValue> {
        use opentelemetry::trace::Span as _;
        let sc = self.span.as_ref()?.span_context();
        let value = inject_traceparent(sc, headers)?;
        let id = http::HeaderValue::from_bytes(&value[3..35]).ok()?;
        sc.is_sampled().then(|| never_indexed(id))
    }
}

impl CallSpan for RelaySpan {
    fn outcome(&mut self, outcome: Cow<'static, str>) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = &mut self.span {
            s.set_attribute(KeyValue::new("outcome", outcome));
            self.outcome = true;
        }
    }
    fn end(mut self, bytes: u64) {
        use opentelemetry::trace::Span as _;
        if let Some(mut s) = self.span.take() {
            s.set_attribute(KeyValue::new("bytes", bytes as i64));
            s.end();
        }
    }
}

impl Drop for RelaySpan {
    /// Dropped before a response's body ended it: the caller hung up (or
    /// the call was given up) while it waited for its worker or was
    /// forwarded.
    fn drop(&mut self) {
        use opentelemetry::trace::Span as _;
        if let Some(mut s) = self.span.take() {
            if !self.outcome {
                s.set_attribute(KeyValue::new("outcome", "cancelled"));
            }
            s.end();
        }
    }
}

/// A response body that ends its span when it ends.
struct SpanBody<S: CallSpan> {
    inner: tonic::body::Body,
    span: Option<S>,
    bytes: u64,
    outcome_recorded: bool,
}

impl<S: CallSpan> SpanBody<S> {
    fn record(&mut self, outcome: Cow<'static, str>) {
        if let Some(span) = &mut self.span {
            if !self.outcome_recorded {
                span.outcome(outcome);
                self.outcome_recorded = true;
            }
        }
    }
    fn end(&mut self) {
        if let Some(span) = self.span.take() {
            span.end(self.bytes);
        }
    }
}

impl<S: CallSpan> Drop for SpanBody<S> {
    fn drop(&mut self) {
        self.record(Cow::Borrowed("cancelled"));
        self.end();
    }
}

impl<S: CallSpan> http_body::Body for SpanBody<S> {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        use std::task::Poll;
        // SpanBody is Unpin (its body is boxed, its span Unpin).
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    let outcome = outcome_of(trailers);
                    this.record(outcome);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let outcome = format!("grpc-status {}", status.code() as i32);
                this.record(Cow::Owned(outcome));
                this.end();
            }
            Poll::Ready(None) => {
                this.record(Cow::Borrowed("ok"));
                this.end();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// "ok", or "grpc-status N" when a response's headers carry an error.
pub fn outcome_of(headers: &http::HeaderMap) -> Cow<'static, str> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .filter(|c| *c != "0")
        .map(|c| Cow::Owned(format!("grpc-status {c}")))
        .unwrap_or(Cow::Borrowed("ok"))
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

/// Make `span` a child of the trace context in `headers` (`traceparent`);
/// a call without one (or with a malformed one) starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// A header value unique to one call (`traceparent`, `cowork-trace-id`,
/// the relay's `grpc-timeout`), marked so HTTP/2 sends it literally
/// instead of adding it to HPACK's table, where it would only push out the
/// headers every call repeats.
pub fn never_indexed(mut v: http::HeaderValue) -> http::HeaderValue {
    v.set_sensitive(true);
    v
}

/// Put `span`'s context into `headers` as `traceparent`, for the next
/// process. Returns the trace id when the span is recorded (traces are on
/// and this call was sampled), as [`trace_id`] does, from the same lookup.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) -> Option<String> {
    let cx = span.context();
    let span = cx.span();
    let sc = span.span_context();
    let value = inject_traceparent(sc, headers)?;
    // Hex digits are ASCII.
    sc.is_sampled()
        .then(|| std::str::from_utf8(&value[3..35]).map(str::to_owned).ok())
        .flatten()
}

/// Put `sc` into `headers` as `traceparent` (the caller's `tracestate`
/// removed): its value, None when `sc` is not valid.
fn inject_traceparent(
    sc: &opentelemetry::trace::SpanContext,
    headers: &mut http::HeaderMap,
) -> Option<[u8; 55]> {
    if !sc.is_valid() {
        return None;
    }
    // The caller's `tracestate` belongs to their context, not ours.
    headers.remove(TRACESTATE);
    let value = traceparent(sc);
    if let Ok(v) = http::HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT, never_indexed(v));
    }
    Some(value)
}

/// The `traceparent` header (W3C Trace Context).
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The `tracestate` header.
const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// `sc` as a W3C `traceparent` value, `00-<trace id>-<span id>-<flags>`,
/// written directly (this runs on every relayed call). The caller's
/// `tracestate` is not passed on: it is theirs, not ours.
fn traceparent(sc: &opentelemetry::trace::SpanContext) -> [u8; 55] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut out[3..35], &sc.trace_id().to_bytes());
    hex(&mut out[36..52], &sc.span_id().to_bytes());
    hex(
        &mut out[53..],
        &[(sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED).to_u8()],
    );
    out
}

/// Put `span`'s context into a gRPC request's metadata as `traceparent`,
/// for a call this process makes.
pub fn inject_metadata(span: &tracing::Span, metadata: &mut tonic::metadata::MetadataMap) {
    let mut headers = http::HeaderMap::new();
    inject(span, &mut headers);
    if let Some(mut v) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<tonic::metadata::MetadataValue<_>>().ok())
    {
        v.set_sensitive(true);
        metadata.insert("traceparent", v);
    }
}

/// `span`'s trace id (32 hex digits), when it is recorded (traces are on
/// and this call was sampled).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn traceparent_is_written_as_the_w3c_propagator_writes_it() {
        use opentelemetry::propagation::Injector;
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        struct Map(std::collections::HashMap<String, String>);
        impl Injector for Map {
            fn set(&mut self, key: &str, value: String) {
                self.0.insert(key.to_owned(), value);
            }
        }
        for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let sc = SpanContext::new(
                TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
                SpanId::from(0x00f067aa0ba902b7_u64),
                flags,
                false,
                TraceState::default(),
            );
            let mut theirs = Map(Default::default());
            TraceContextPropagator::new().inject_context(
                &opentelemetry::Context::new().with_remote_span_context(sc.clone()),
                &mut theirs,
            );
            assert_eq!(
                std::str::from_utf8(&traceparent(&sc)).unwrap(),
                theirs.0["traceparent"]
            );
        }
    }

    #[test]
    fn trace_ids_grow_with_time_and_keep_their_sampling_bits_random() {
        use opentelemetry_sdk::trace::IdGenerator as _;
        let ids = TimeOrderedIds::default();
        let a = ids.new_trace_id().to_string();
        std::thread::sleep(Duration::from_millis(3));
        let b = ids.new_trace_id().to_string();
        assert!(a < b, "{a} then {b}");
        // The first 12 hex digits are the milliseconds.
        let now_ms = unix_us(SystemTime::now()) as u64 / 1000;
        let ms = u64::from_str_radix(&b[..12], 16).unwrap();
        assert!(now_ms - ms < 1000, "{ms} vs {now_ms}");
        // Same millisecond, different ids; time bits never overwrite them.
        let x = TimeOrderedIds::trace_id_at(1, u128::MAX).to_string();
        assert_eq!(x, "000000000001ffffffffffffffffffff");
        // A ratio sampler (it reads the low 64 bits) keeps about its share.
        use opentelemetry::trace::SpanKind;
        use opentelemetry_sdk::trace::{Sampler, ShouldSample as _};
        let sampler = Sampler::TraceIdRatioBased(0.25);
        let kept = (0..4000)
            .filter(|_| {
                let r = sampler.should_sample(
                    None,
                    ids.new_trace_id(),
                    "relay",
                    &SpanKind::Internal,
                    &[],
                    &[],
                );
                r.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
            })
            .count();
        assert!((800..1200).contains(&kept), "kept {kept} of 4000 at 0.25");
    }

    #[test]
    fn a_span_continues_the_callers_trace_is_written_and_passes_it_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cowork.db");
        let (provider, _) = provider(db.clone(), "coworkd", TracesSettings::default());
        let subscriber = tracing_subscriber::registry().with(layer(&provider, "coworkd"));
        let mut incoming = http::HeaderMap::new();
        incoming.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        // The relay passes on the caller's headers, their `tracestate` too.
        let mut outgoing = incoming.clone();
        outgoing.insert(
            "tracestate",
            http::HeaderValue::from_static("vendor=secret"),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: TARGET, "relay", worker = "capture", path = "/x", secret = "hunter2", outcome = tracing::field::Empty);
            continue_trace(&span, &incoming);
            assert_eq!(
                trace_id(&span).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            assert_eq!(
                inject(&span, &mut outgoing).as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            span.record("outcome", "ok");
            // Not a trace span: never written.
            let _other = tracing::info_span!("internal");
        });
        // Unique per call: kept out of HPACK's table.
        assert!(outgoing["traceparent"].is_sensitive());
        assert!(
            outgoing.get("tracestate").is_none(),
            "the caller's, not ours"
        );
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
        let (provider, _) = provider(
            dir.path().join("cowork.db"),
            "coworkd",
            TracesSettings::default(),
        );
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

    #[test]
    fn traces_settings_default_parse_and_refuse_what_they_cannot_use() {
        assert_eq!(
            TracesSettings::parse("").unwrap(),
            TracesSettings::default()
        );
        let s = TracesSettings::parse(
            "[audio]\nx = 1\n[traces]\nretention_days = 2\nmax_mb = 5\nsample_ratio = 0.25\n\
             otlp_endpoint = \"http://127.0.0.1:4318\"\n",
        )
        .unwrap();
        assert_eq!((s.retention_days, s.max_mb, s.sample_ratio), (2, 5, 0.25));
        assert_eq!(
            s.otlp_traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        let custom =
            TracesSettings::parse("[traces]\notlp_endpoint = \"http://10.0.0.2:9/in/\"").unwrap();
        assert_eq!(
            custom.otlp_traces_url().as_deref(),
            Some("http://10.0.0.2:9/in")
        );
        assert_eq!(TracesSettings::default().otlp_traces_url(), None);
        for (bad, says) in [
            ("[traces]\nsample_ratio = 1.5", "sample_ratio"),
            ("[traces]\nretention_days = 0", "at least 1"),
            (
                "[traces]\notlp_endpoint = \"https://otel.example.com\"",
                "local collector",
            ),
            (
                "[traces]\notlp_endpoint = \"http://169.254.169.254\"",
                "local collector",
            ),
            ("[traces]\nsampel = 1", "sampel"),
            ("[traces", "cannot read"),
        ] {
            let e = TracesSettings::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[derive(Debug, Default, Clone)]
    struct Stuck(Arc<std::sync::Mutex<Vec<usize>>>);

    impl SpanExporter for Stuck {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Err(OTelSdkError::InternalFailure("collector down".into()))
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_failed_export_is_counted() {
        let counts = Arc::<QueueCounts>::default();
        let seen = Stuck::default();
        let p = batches(seen.clone(), counts.clone());
        // A queue already full (its writer far behind): nothing waits.
        counts.queued.store(QUEUE, Ordering::Relaxed);
        let provider = SdkTracerProvider::builder().with_span_processor(p).build();
        let tracer = provider.tracer("t");
        for _ in 0..5 {
            opentelemetry::trace::Tracer::start(&tracer, "x");
        }
        assert_eq!(counts.take_dropped(), 5);
        // Room again: exported, and the failure counted.
        counts.queued.store(0, Ordering::Relaxed);
        for _ in 0..3 {
            opentelemetry::trace::Tracer::start(&tracer, "x");
        }
        provider.force_flush().ok();
        assert_eq!(seen.0.lock().unwrap().iter().sum::<usize>(), 3);
        assert_eq!(counts.take_failed(), 3);
        assert_eq!(counts.queued.load(Ordering::Relaxed), 0);
        provider.shutdown().ok();
    }

    /// Records the nice value of the thread each export runs on.
    #[cfg(target_os = "linux")]
    #[derive(Debug, Default, Clone)]
    struct Priorities(Arc<std::sync::Mutex<Vec<i32>>>);

    #[cfg(target_os = "linux")]
    impl SpanExporter for Priorities {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(nice_of_this_thread());
            Ok(())
        }
    }

    /// This thread's nice value, as the kernel reports it (field 19 of
    /// /proc/thread-self/stat).
    #[cfg(target_os = "linux")]
    fn nice_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_span_writer_runs_below_the_threads_serving_calls() {
        // The batch thread is started from this one, at its priority.
        let base = nice_of_this_thread();
        assert!(
            base < 19 - WRITER_NICE,
            "run the tests below nice {} (this thread: {base}): lowering twice must show",
            19 - WRITER_NICE
        );
        let seen = Priorities::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches(seen.clone(), Arc::default()))
            .build();
        let tracer = provider.tracer("t");
        for name in ["a", "b"] {
            opentelemetry::trace::Tracer::start(&tracer, name);
        }
        provider.force_flush().ok();
        // Another batch (or more, if the batch timer fired meanwhile):
        // lowered once, not again.
        opentelemetry::trace::Tracer::start(&tracer, "c");
        provider.force_flush().ok();
        let seen = seen.0.lock().unwrap().clone();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(
            seen.iter().all(|&n| n == base + WRITER_NICE),
            "{seen:?}, from {base}"
        );
        assert_eq!(
            nice_of_this_thread(),
            base,
            "the calling thread keeps its own"
        );
        provider.shutdown().ok();
    }

    #[test]
    fn what_leaves_the_process_is_scrubbed() {
        use opentelemetry::trace::{SpanContext, SpanKind, TraceFlags, TraceState};
        use opentelemetry::KeyValue;
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "log",
            SystemTime::now(),
            vec![KeyValue::new("message", "hunter2")],
            0,
        ));
        let s = SpanData {
            span_context: SpanContext::new(
                opentelemetry::trace::TraceId::from(7u128),
                opentelemetry::trace::SpanId::from(9u64),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "engine".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![
                KeyValue::new("ttft_ms", 12),
                // As `tracing` hands over an unsigned count: text.
                KeyValue::new("bytes", "669"),
                KeyValue::new("message", "hunter2"),
                KeyValue::new("code.file.path", "src/x.rs"),
            ],
            dropped_attributes_count: 0,
            events,
            links: Default::default(),
            status: Status::error("engine said hunter2"),
            instrumentation_scope: Default::default(),
        };
        // The row cowork.db gets: kept attributes only, as valid JSON,
        // counts as numbers, a later value of a key replacing an earlier.
        let mut tricky = s.clone();
        tricky.attributes.extend([
            KeyValue::new("path", "/a\"b\\c\n\u{1}é"),
            KeyValue::new("outcome", "first"),
            KeyValue::new("outcome", "grpc-status 14"),
            KeyValue::new("cancelled", true),
            KeyValue::new("wait_ms", 1.5),
            KeyValue::new("rows", "+007"),
        ]);
        let row = row_of(&tricky, "coworkd");
        let json: serde_json::Value = serde_json::from_str(&row.attributes).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ttft_ms": 12, "bytes": 669, "path": "/a\"b\\c\n\u{1}é",
                "outcome": "grpc-status 14", "wait_ms": 1.5, "rows": 7
            }),
            "{}",
            row.attributes
        );
        assert_eq!(row.outcome, "grpc-status 14");
        assert_eq!(row.trace_id, "00000000000000000000000000000007");
        assert_eq!(row.span_id, "0000000000000009");
        assert_eq!(row.parent_span_id, "0000000000000000");
        let out = scrubbed(s);
        let text = format!("{out:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("src/x.rs"), "{text}");
        assert_eq!(out.attributes.len(), 2);
        assert!(out
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "bytes" && kv.value == opentelemetry::Value::I64(669)));
        assert!(matches!(out.status, Status::Error { .. }));
    }

    #[test]
    fn the_escape_scan_and_hex_agree_with_byte_by_byte() {
        // Every byte at every place of a 24-byte run, among plain ASCII or
        // bytes with the high bit set (UTF-8 beyond ASCII).
        for filler in [b'a', 0xc3] {
            for at in 0..24 {
                for b in 0..=255u8 {
                    let mut bytes = [filler; 24];
                    bytes[at] = b;
                    for len in [at + 1, 24] {
                        let text = &bytes[..len];
                        let naive = text
                            .iter()
                            .position(|&c| c == b'"' || c == b'\\' || c < 0x20);
                        assert_eq!(first_to_escape(text), naive, "{text:?}");
                    }
                }
            }
        }
        // Random runs of up to 39 bytes.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Mostly bytes next to the ones that matter, one of those now and
        // then: words with one at any place, or none.
        const NEAR: [u8; 8] = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff];
        const ESCAPED: [u8; 4] = [b'"', b'\\', 0x1f, 0x00];
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| match next() % 32 {
                    0 => next() as u8,
                    1 => ESCAPED[(next() % 4) as usize],
                    _ => NEAR[(next() % 8) as usize],
                })
                .collect();
            let naive = text
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(first_to_escape(&text), naive, "{text:?}");
        }
        // What is written reads back as the text, whatever is escaped.
        for c in (0..128u8).map(char::from).chain(['é', '€', '\u{10ffff}']) {
            for at in [0, 7, 8, 9, 30] {
                let text: String = (0..=31).map(|i| if i == at { c } else { 'p' }).collect();
                let mut out = String::new();
                json_string(&mut out, &text);
                let back: String = serde_json::from_str(&out).unwrap();
                assert_eq!(back, text, "{out}");
            }
        }
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0; 512];
        hex(&mut out, &bytes);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn sampling_by_trace_id_and_an_unsampled_call_has_no_id() {
        let dir = tempfile::tempdir().unwrap();
        let off = TracesSettings {
            sample_ratio: 0.0,
            ..Default::default()
        };
        let (provider, _) = provider(dir.path().join("cowork.db"), "coworkd", off);
        let subscriber = tracing_subscriber::registry().with(layer(&provider, "coworkd"));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(target: TARGET, "relay");
            assert_eq!(trace_id(&span), None, "not sampled: no id to look up");
        });
        provider.shutdown().ok();
    }

    #[test]
    fn coworkd_records_despite_a_callers_flag_and_a_worker_follows_coworkd() {
        let dir = tempfile::tempdir().unwrap();
        let mut unsampled = http::HeaderMap::new();
        unsampled.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
        );
        for (process, recorded) in [("coworkd", true), ("agents", false)] {
            let (provider, _) = provider(
                dir.path().join("cowork.db"),
                process,
                TracesSettings::default(),
            );
            let subscriber = tracing_subscriber::registry().with(layer(&provider, process));
            tracing::subscriber::with_default(subscriber, || {
                let span = tracing::info_span!(target: TARGET, "relay");
                continue_trace(&span, &unsampled);
                assert_eq!(trace_id(&span).is_some(), recorded, "{process}");
            });
            provider.shutdown().ok();
        }
    }

    /// A provider writing to a new cowork.db, its tracer, and the database.
    fn coworkd_tracer(ratio: f64) -> (SdkTracerProvider, Tracer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let settings = TracesSettings {
            sample_ratio: ratio,
            ..Default::default()
        };
        let (provider, _) = provider(dir.path().join("cowork.db"), "coworkd", settings);
        let tracer = provider.tracer("coworkd");
        (provider, tracer, dir)
    }

    fn caller(traceparent: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_str(traceparent).unwrap(),
        );
        h.insert("tracestate", http::HeaderValue::from_static("theirs=1"));
        h
    }

    #[test]
    fn the_relay_span_continues_a_valid_caller_starts_anew_otherwise_and_off_does_nothing() {
        let (provider, tracer, _dir) = coworkd_tracer(1.0);
        // The caller's trace, though its flag says "not sampled": coworkd
        // records it and says so to the worker.
        let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut h = caller(theirs);
        let span = RelaySpan::start(Some(&tracer), "agents", "/p", &h);
        let id = span.inject(&mut h).unwrap();
        assert_eq!(id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(id.is_sensitive(), "never indexed");
        let sent = h["traceparent"].to_str().unwrap().to_owned();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{sent}"
        );
        assert!(
            sent.ends_with("-01") && !sent.contains("00f067aa0ba902b7"),
            "{sent}"
        );
        assert!(
            h.get("tracestate").is_none(),
            "the caller's state stays theirs"
        );
        // A malformed one, or none: a new trace.
        for mut h in [caller("00-zz-00f067aa0ba902b7-01"), http::HeaderMap::new()] {
            let span = RelaySpan::start(Some(&tracer), "agents", "/p", &h);
            let id = span.inject(&mut h).unwrap();
            let id = id.to_str().unwrap();
            assert!(
                id.len() == 32 && id != "00000000000000000000000000000000",
                "{id}"
            );
            assert_eq!(&h["traceparent"].to_str().unwrap()[3..35], id);
        }
        // Traces off: nothing recorded, the caller's headers untouched.
        let mut h = caller(theirs);
        let span = RelaySpan::start(None, "agents", "/p", &h);
        assert!(span.inject(&mut h).is_none());
        assert_eq!(h["traceparent"], theirs);
        assert_eq!(h["tracestate"], "theirs=1");
        provider.shutdown().ok();
    }

    #[test]
    fn an_unsampled_relay_call_passes_its_decision_on_and_returns_no_id() {
        let (provider, tracer, _dir) = coworkd_tracer(0.000_001);
        let mut h = caller("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let span = RelaySpan::start(Some(&tracer), "agents", "/p", &h);
        assert!(span.inject(&mut h).is_none());
        let sent = h["traceparent"].to_str().unwrap();
        assert!(sent.ends_with("-00"), "the worker follows: {sent}");
        provider.shutdown().ok();
    }

    #[test]
    fn relay_spans_are_written_with_their_outcome_and_a_dropped_one_as_cancelled() {
        let (provider, tracer, dir) = coworkd_tracer(1.0);
        let mut ids = Vec::new();
        for end in [true, false] {
            let mut h = http::HeaderMap::new();
            let mut span = RelaySpan::start(Some(&tracer), "capture", "/x/Get", &h);
            ids.push(span.inject(&mut h).unwrap().to_str().unwrap().to_owned());
            span.record_wait_ms(3);
            if end {
                span.outcome("grpc-status 14".into());
                span.end(37);
            } else {
                // The caller hung up while the call waited.
                drop(span);
            }
        }
        provider.force_flush().unwrap();
        let c = cowork_db::traces::open(&dir.path().join("cowork.db")).unwrap();
        let row = |id: &str| {
            let mut spans = cowork_db::traces::spans_of(&c, id).unwrap();
            assert_eq!(spans.len(), 1, "{spans:?}");
            let s = spans.remove(0);
            let attrs: serde_json::Value = serde_json::from_str(&s.attributes).unwrap();
            (s, attrs)
        };
        let (ended, attrs) = row(&ids[0]);
        assert_eq!(
            (ended.process.as_str(), ended.name.as_str()),
            ("coworkd", "relay")
        );
        assert_eq!(ended.outcome, "grpc-status 14");
        assert_eq!(
            attrs,
            serde_json::json!({"worker": "capture", "path": "/x/Get", "wait_ms": 3,
                "outcome": "grpc-status 14", "bytes": 37})
        );
        let (dropped, attrs) = row(&ids[1]);
        assert_eq!(dropped.outcome, "cancelled");
        assert_eq!(attrs["wait_ms"], 3);
        assert!(attrs.get("bytes").is_none(), "{attrs}");
        provider.shutdown().ok();
    }

    #[test]
    fn the_sweep_deletes_what_is_past_retention_then_beyond_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cowork.db");
        let settings = TracesSettings::default();
        assert_eq!(sweep(&db, &settings).unwrap(), 0, "no database yet");
        let c = cowork_db::traces::open(&db).unwrap();
        let now = unix_us(SystemTime::now());
        let day = 86_400_000_000i64;
        let rows: Vec<_> = (0..10i64)
            .map(|i| cowork_db::traces::SpanRow {
                trace_id: "t".into(),
                span_id: format!("{i:016}"),
                parent_span_id: "0".repeat(16),
                process: "coworkd".into(),
                name: "relay".into(),
                // Two are 8 and 9 days old.
                start_us: if i < 2 { now - (9 - i) * day } else { now - i },
                duration_us: 1,
                outcome: "ok".into(),
                attributes: "{}".into(),
            })
            .collect();
        cowork_db::traces::insert(&c, &rows).unwrap();
        assert_eq!(sweep(&db, &settings).unwrap(), 2);
        assert_eq!(cowork_db::traces::stats(&c).unwrap().spans, 8);
    }
}
