//! capture-agent: serves `cowork.capture.v1.Capture` and the worker
//! contract; records consented capture streams into cowork.db. SIGTERM
//! closes and commits every open record before exiting.

use capture_agent::config::CaptureConfig;
use capture_agent::engine::Engine;
use capture_agent::service::CaptureService;
use clap::Parser;
use cowork_proto::paths::CoworkPaths;
use cowork_proto::pb::capture::capture_server::CaptureServer;
use cowork_proto::worker::WorkerArgs;
use std::process::ExitCode;

/// Shuts the trace provider down (writing what is queued) when main ends.
struct Flush(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            cowork_proto::traces::flush_and_stop(p);
        }
    }
}

fn main() -> ExitCode {
    let args = WorkerArgs::parse();
    let result = (|| -> anyhow::Result<()> {
        let paths = CoworkPaths::resolve(args.home.as_deref())?;
        // Its request spans go to cowork.db beside coworkd's.
        let traces = cowork_proto::logging::init_with_traces(None, &paths, "capture")?;
        let _flush = Flush(Some(traces));
        let config_path = paths.config_file();
        // A broken [capture] fails closed: recording under defaults would
        // drop the person's denylist and redactions.
        let (cfg, config_error) = match CaptureConfig::load(&config_path, &paths.home) {
            Ok(c) => (c, None),
            Err(e) => {
                tracing::error!(error = %e, "capture paused: config.toml is invalid");
                (CaptureConfig::default(), Some(e.to_string()))
            }
        };
        std::fs::create_dir_all(&paths.home)?;
        let db = paths.home.join("cowork.db");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut engine: Option<Engine> = None;
        let mut start_error: Option<anyhow::Error> = None;
        rt.block_on(cowork_proto::worker::run(
            "capture",
            paths.clone(),
            args.socket,
            |ctx, routes| match Engine::start(
                &db,
                &config_path,
                &paths.home,
                cfg,
                config_error,
                ctx.health.clone(),
            ) {
                Ok(e) => {
                    engine = Some(e.clone());
                    routes.add_service(CaptureServer::new(CaptureService::new(e)))
                }
                Err(e) => {
                    let e = anyhow::anyhow!("capture cannot open {}: {e}", db.display());
                    ctx.health.set_degraded(e.to_string());
                    start_error = Some(e);
                    ctx.shutdown.cancel();
                    routes
                }
            },
        ))?;
        if let Some(e) = engine {
            e.shutdown();
        }
        match start_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture-agent: {e:#}");
            tracing::error!(error = %e, "capture-agent exiting");
            ExitCode::FAILURE
        }
    }
}
