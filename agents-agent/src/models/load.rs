//! Running a model ourselves: resolve what the person named (a file, or a
//! download's `.gguf`), check its fit on this machine (RED refuses unless
//! forced, YELLOW warns), then load it as a `llama-server` session
//! ([`crate::llm::managed::sessions`]). Also `[[agents.llama.autoload]]`
//! at start.

use super::check::{CheckError, Checker};
use super::download::sandboxed;
use super::fit::Level;
use super::manager::Downloads;
use crate::config::AgentsConfig;
use crate::llm::managed::args::fallback_template;
use crate::llm::managed::registry::Session;
use crate::llm::managed::sessions::{Load, SessionError, Sessions};
use crate::llm::managed::Mode;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the person asked to load.
#[derive(Debug, Clone, Default)]
pub struct LoadAsk {
    /// A GGUF file (absolute, or under models/) or a download id.
    pub model: String,
    /// Context size (None: `[agents] local_context_tokens`).
    pub ctx: Option<u32>,
    /// Serve embeddings.
    pub embedding: bool,
    /// GPU layers.
    pub gpu_layers: Option<u32>,
    /// Load even when the fit is RED.
    pub force: bool,
}

/// A load that happened.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The session.
    pub session: Session,
    /// It was loaded already with these options.
    pub already_loaded: bool,
    /// The fit verdict and explanation (None: the check could not run).
    pub fit: Option<(Level, String)>,
    /// Said to the person.
    pub warnings: Vec<String>,
    /// From the request to ready.
    pub took: Duration,
}

/// Why a load did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Nothing named so.
    #[error("{0}")]
    NotFound(String),
    /// The fit check says it does not fit.
    #[error("{0} (load it anyway with --force)")]
    DoesNotFit(String),
    /// The session could not start.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// What a fit verdict means for a load: RED refuses unless `force`d (then
/// it is a warning), YELLOW is a warning, GREEN or no verdict is silent.
pub fn verdict(fit: Option<&(Level, String)>, force: bool) -> Result<Option<String>, LoadError> {
    match fit {
        Some((Level::Red, why)) if !force => Err(LoadError::DoesNotFit(why.clone())),
        Some((Level::Red, why)) => Ok(Some(format!("loading although: {why}"))),
        Some((Level::Yellow, why)) => Ok(Some(why.clone())),
        Some((Level::Green, _)) | None => Ok(None),
    }
}

/// Loads models after checking them (cheap to clone).
#[derive(Clone)]
pub struct Loader {
    checker: Checker,
    downloads: Downloads,
    sessions: Sessions,
}

impl Loader {
    /// Check with `checker`, find downloads in `downloads`, load into
    /// `sessions`.
    pub fn new(checker: Checker, downloads: Downloads, sessions: Sessions) -> Self {
        Self {
            checker,
            downloads,
            sessions,
        }
    }

    /// The sessions loaded into.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The model file `what` names: an absolute path, a name under
    /// models/, or a download id (its first `.gguf` file).
    async fn resolve(&self, what: &str) -> Result<PathBuf, LoadError> {
        let what = what.trim();
        if what.is_empty() {
            return Err(LoadError::NotFound(
                "give a GGUF file or a download id".into(),
            ));
        }
        let root = self.downloads.root();
        if Path::new(what).is_absolute() {
            return Ok(PathBuf::from(what));
        }
        if let Ok(p) = sandboxed(root, what) {
            if p.is_file() {
                return Ok(p);
            }
        }
        if let Ok(Some(r)) = self.downloads.get(what).await {
            if let Some(f) = r
                .files
                .iter()
                .find(|f| f.name.to_ascii_lowercase().ends_with(".gguf"))
            {
                if r.state != "done" {
                    return Err(LoadError::NotFound(format!(
                        "download {what} is {}, not done",
                        r.state
                    )));
                }
                return sandboxed(root, &f.name).map_err(|e| LoadError::NotFound(e.to_string()));
            }
        }
        Err(LoadError::NotFound(format!(
            "{what:?} is neither a model file (absolute, or under {}) nor a download id \
             (`coworkctl models list`)",
            root.display()
        )))
    }

    /// Check and load.
    pub async fn load(&self, ask: LoadAsk) -> Result<Loaded, LoadError> {
        let t0 = Instant::now();
        let model = self.resolve(&ask.model).await?;
        if !model.is_file() {
            return Err(LoadError::NotFound(format!(
                "{} is not a file",
                model.display()
            )));
        }
        let mut warnings = Vec::new();
        let mut chat_template = None;
        let fit = match self
            .checker
            .check(
                &model.display().to_string(),
                u64::from(ask.ctx.unwrap_or(0)),
            )
            .await
        {
            Ok(r) => {
                chat_template =
                    fallback_template(&r.shape.architecture, r.chat_template).map(str::to_owned);
                Some((r.fit.level, r.fit.explanation))
            }
            Err(CheckError::NotFound(m)) => return Err(LoadError::NotFound(m)),
            Err(e) => {
                warnings.push(format!("the fit check could not run: {e}"));
                None
            }
        };
        if let Some(w) = verdict(fit.as_ref(), ask.force)? {
            warnings.push(w);
        }
        let (session, already_loaded) = self
            .sessions
            .load(Load {
                model,
                ctx: ask.ctx,
                mode: if ask.embedding {
                    Mode::Embedding
                } else {
                    Mode::Chat
                },
                gpu_layers: ask.gpu_layers,
                chat_template,
            })
            .await?;
        Ok(Loaded {
            session,
            already_loaded,
            fit,
            warnings,
            took: t0.elapsed(),
        })
    }

    /// Load `[[agents.llama.autoload]]` (after reaping what a killed
    /// agents-agent left behind). A model that does not fit or does not
    /// start is logged and skipped.
    pub async fn autoload(&self, config: &Path) {
        self.sessions.sweep_orphans().await;
        let entries = match AgentsConfig::load(config) {
            Ok(c) => c.llama.autoload,
            Err(e) => {
                tracing::warn!(error = %e, "no autoload: [agents] cannot be read");
                return;
            }
        };
        for e in entries {
            let ask = LoadAsk {
                model: e.model.clone(),
                embedding: e.embedding,
                ..LoadAsk::default()
            };
            match self.load(ask).await {
                Ok(l) => tracing::info!(model = %e.model, id = %l.session.id,
                    ms = l.took.as_millis() as u64, "autoloaded"),
                Err(err) => tracing::warn!(model = %e.model, error = %err, "autoload failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_refuses_unless_forced_and_yellow_warns() {
        let red = (Level::Red, "RED: needs 30 GB, 22 GB usable".to_string());
        let e = verdict(Some(&red), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RED: needs 30 GB, 22 GB usable (load it anyway with --force)"
        );
        assert_eq!(
            verdict(Some(&red), true).unwrap().unwrap(),
            "loading although: RED: needs 30 GB, 22 GB usable"
        );
        let yellow = (Level::Yellow, "YELLOW: tight".to_string());
        assert_eq!(
            verdict(Some(&yellow), false).unwrap().unwrap(),
            "YELLOW: tight"
        );
        let green = (Level::Green, "GREEN".to_string());
        assert_eq!(verdict(Some(&green), false).unwrap(), None);
        assert_eq!(verdict(None, false).unwrap(), None);
    }
}
