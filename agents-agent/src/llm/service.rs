//! `cowork.engines.v1.Engines`: the sessions we run (`managed:<name>`)
//! and detection (probes of every candidate, from the current
//! config.toml) as the proto's engine instances.

use super::detect::probe_configured;
use super::engines::{ApiFamily, Health, Origin, Role};
use super::managed::registry::State;
use super::managed::sessions::Sessions;
use super::managed::Mode;
use cowork_proto::pb::engines::{
    engines_server, EngineInstance, ListEnginesRequest, ListEnginesResponse,
};
use std::path::PathBuf;
use tonic::{Request, Response, Status};

/// The Engines service: detection runs on every call, from the current
/// config.toml.
#[derive(Debug, Clone)]
pub struct EnginesService {
    config_path: PathBuf,
    sessions: Sessions,
}

impl EnginesService {
    /// Serve our `sessions` and detection configured by `config_path`.
    pub fn new(config_path: PathBuf, sessions: Sessions) -> Self {
        Self {
            config_path,
            sessions,
        }
    }
}

#[tonic::async_trait]
impl engines_server::Engines for EnginesService {
    async fn list_engines(
        &self,
        _: Request<ListEnginesRequest>,
    ) -> Result<Response<ListEnginesResponse>, Status> {
        let probed = probe_configured(&self.config_path)
            .await
            .map_err(Status::failed_precondition)?;
        let managed = self.sessions.list().into_iter().map(|i| {
            let s = i.session;
            EngineInstance {
                key: s.engine_key(),
                engine: "llama-server".into(),
                role: match s.mode {
                    Mode::Chat => "main",
                    Mode::Embedding => "embedding",
                }
                .into(),
                origin: "managed".into(),
                base_url: s.base_url(),
                health: match s.state {
                    State::Ready => "up",
                    // Idle: started on the next request; down: restarting.
                    State::Idle => "idle",
                    State::Down => "down",
                }
                .into(),
                models: vec![s.alias],
                error: s.last_error.unwrap_or_default(),
                latency_ms: 0,
                api: "openai".into(),
            }
        });
        Ok(Response::new(ListEnginesResponse {
            engines: managed
                .chain(probed.into_iter().map(|p| {
                    EngineInstance {
                        key: p.instance.key,
                        engine: p.instance.engine,
                        role: match p.instance.role {
                            Role::Main => "main",
                            Role::Cron => "cron",
                        }
                        .into(),
                        origin: match p.instance.origin {
                            Origin::Config => "config",
                            Origin::Port => "port",
                            Origin::Companion => "companion",
                        }
                        .into(),
                        base_url: p.instance.base_url,
                        health: match p.health {
                            Health::Up => "up",
                            Health::Down => "down",
                            Health::Unknown => "unknown",
                        }
                        .into(),
                        models: p.models,
                        error: p.error,
                        latency_ms: p.latency.as_millis().min(u128::from(u32::MAX)) as u32,
                        api: match p.instance.api {
                            ApiFamily::Ollama => "ollama",
                            ApiFamily::OpenAi => "openai",
                        }
                        .into(),
                    }
                }))
                .collect(),
        }))
    }
}
