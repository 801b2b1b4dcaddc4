//! Logging setup shared by every binary: `tracing` with the filter from
//! `COWORK_LOG` (default [`DEFAULT_FILTER`]), to stderr and optionally to a
//! log file.

use std::path::Path;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Environment variable holding the log filter (`tracing` directives).
pub const LOG_ENV: &str = "COWORK_LOG";

/// `info`, but only errors from chromiumoxide: its warnings are about CDP
/// events newer than its schema (one a page load), which say nothing a
/// person can act on.
pub const DEFAULT_FILTER: &str = "info,chromiumoxide=error";

/// Install the global subscriber: stderr, plus `file` (appended) when given.
/// Workers log to stderr only; coworkd sends their stderr to their log file.
pub fn init(file: Option<&Path>) -> std::io::Result<()> {
    install(file, None)
}

/// [`init`], and record this process's trace spans ([`crate::traces`]) to
/// cowork.db in `paths.home` as `process`, with `[traces]` of its config
/// file (a bad section is logged and the defaults apply, without export).
/// Returns the provider: pass it to [`crate::traces::flush_and_stop`] at
/// exit (off the async threads) to write what is still queued.
pub fn init_with_traces(
    file: Option<&Path>,
    paths: &crate::paths::CoworkPaths,
    process: &'static str,
) -> std::io::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    let (settings, settings_error) = match crate::traces::TracesSettings::load(&paths.config_file())
    {
        Ok(s) => (s, None),
        Err(e) => (crate::traces::TracesSettings::default(), Some(e)),
    };
    // sample_ratio = 0 is off: no layer at all, so no cost per span.
    let on = settings.sample_ratio > 0.0;
    let (provider, export_error) =
        crate::traces::provider(paths.home.join("cowork.db"), process, settings);
    install(file, on.then_some((&provider, process)))?;
    if let Some(e) = settings_error {
        tracing::error!(error = %e, "traces use their defaults");
    }
    if let Some(e) = export_error {
        tracing::error!(error = %e, "spans are not exported");
    }
    Ok(provider)
}

fn install(
    file: Option<&Path>,
    traces: Option<(&opentelemetry_sdk::trace::SdkTracerProvider, &'static str)>,
) -> std::io::Result<()> {
    let file = match file {
        Some(path) => Some(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => None,
    };
    // A second init (tests) keeps the first subscriber.
    let _ = subscriber(std::io::stderr, file, traces).try_init();
    Ok(())
}

/// The subscriber every process installs: formatted logs to `stderr` and
/// to `file` (no colours) under `COWORK_LOG`'s filter, and the trace layer
/// when `traces` is given. Public so benchmarks measure the stack the
/// processes run.
pub fn subscriber<E, F>(
    stderr: E,
    file: Option<F>,
    traces: Option<(&opentelemetry_sdk::trace::SdkTracerProvider, &'static str)>,
) -> impl tracing::Subscriber + Send + Sync
where
    E: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
    F: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter =
        || EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let stderr = fmt::layer()
        .with_writer(stderr)
        .with_target(false)
        .with_filter(filter());
    let file_layer = file.map(|f| {
        fmt::layer()
            .with_writer(f)
            .with_ansi(false)
            .with_target(false)
            .with_filter(filter())
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .with(traces.map(|(p, process)| crate::traces::layer(p, process)))
}
