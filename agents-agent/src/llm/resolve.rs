//! The one answer to "which engine or provider serves this call", for
//! chat and agent operations alike: a routed decision becomes a
//! [`ChatTarget`] (a detected local engine, or a tier's cloud provider
//! over the shared TLS client with its key).

use super::client::{cloud_client, ChatTarget, Transport};
use super::detect::{EngineWatch, LocalEngine, NO_ENGINE};
use super::engines::ApiFamily;
use super::providers::ReadyProvider;
use super::router::{Plan, Refusal, Target};
use super::tier::{for_tier, Tier};
use crate::config::AgentsConfig;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Resolves targets (cheap to clone).
#[derive(Debug, Clone)]
pub struct Resolver {
    config: PathBuf,
    /// What can answer (shared with the background detection).
    watch: EngineWatch,
    /// The TLS client cloud calls share, built on first use.
    cloud_client: Arc<OnceLock<Result<reqwest::Client, String>>>,
}

impl Resolver {
    /// Resolve with what `watch` detects, under the `[agents]` of `config`.
    pub fn new(config: PathBuf, watch: EngineWatch) -> Self {
        Self {
            config,
            watch,
            cloud_client: Default::default(),
        }
    }

    /// The detection this resolver reads.
    pub fn watch(&self) -> &EngineWatch {
        &self.watch
    }

    fn cloud_client(&self) -> Result<reqwest::Client, String> {
        self.cloud_client.get_or_init(cloud_client).clone()
    }

    /// Where a routed request goes: the local engine (a session we run is
    /// leased, and started again if it was unloaded or crashed), or the
    /// tier's cloud provider.
    pub async fn target(
        &self,
        decision: &Target,
        local: Option<&LocalEngine>,
        cloud: &[ReadyProvider],
    ) -> Result<ChatTarget, String> {
        match decision {
            Target::Local(_) => {
                let e = local.ok_or(NO_ENGINE)?;
                if let Some(id) = &e.session {
                    let lease = self
                        .watch
                        .sessions()
                        .lease_id(id)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(ChatTarget {
                        name: lease.engine.clone(),
                        base_url: lease.base_url.clone(),
                        api: ApiFamily::OpenAi,
                        model: lease.model.clone(),
                        transport: Transport::Local {
                            session: Some(Arc::new(lease)),
                        },
                    });
                }
                Ok(ChatTarget {
                    name: e.key.clone(),
                    base_url: e.base_url.clone(),
                    api: e.api,
                    model: e.model.clone(),
                    transport: Transport::Local { session: None },
                })
            }
            Target::Cloud(t) => {
                let (provider, model) = for_tier(*t);
                let ready = cloud
                    .iter()
                    .find(|r| r.provider == provider)
                    .ok_or_else(|| Refusal::CloudNotSetUp(*t).to_string())?;
                Ok(ChatTarget {
                    name: provider.id.to_owned(),
                    base_url: ready.base_url.clone(),
                    api: ApiFamily::OpenAi,
                    model: model.to_owned(),
                    transport: Transport::Cloud {
                        client: self.cloud_client()?,
                        api_key: ready.api_key.clone(),
                    },
                })
            }
        }
    }

    /// The model an agent operation uses: the local engine when one is
    /// up, else the plan's cloud tier when its provider has a key.
    /// Returns the target and the cloud tier it bills to (None: local).
    pub async fn for_operation(&self) -> Result<(ChatTarget, Option<Tier>), String> {
        let detected = self.watch.current().await;
        if let Some(local) = &detected.main {
            let t = self
                .target(&Target::Local(String::new()), Some(local), &detected.cloud)
                .await?;
            return Ok((t, None));
        }
        let cfg = AgentsConfig::load(&self.config)?;
        let tier = match cfg.plan()? {
            Plan::Free => Tier::Free,
            Plan::Paid(t) => t,
        };
        if detected.cloud.is_empty() {
            return Err(Refusal::NoEngine.to_string());
        }
        let t = self
            .target(&Target::Cloud(tier), None, &detected.cloud)
            .await?;
        Ok((t, Some(tier)))
    }
}
