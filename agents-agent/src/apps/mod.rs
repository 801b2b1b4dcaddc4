//! Installed apps (seed 003 "Apps Runtime", "App Read Lane", "App Access
//! Controls"): a zip (a Google AI Studio export, say) unpacked without
//! trusting it (`archive`), described by its manifest (`manifest`),
//! bundled offline by esbuild (`bundle`), recorded (`store`), served at its
//! own origin on loopback (`server`) with the read lane (`lane`,
//! `sdk.js`): apps get data, never tools.
//!
//! Layout: `$COWORK_HOME/apps/<id>/` holds `src/` (the zip's files),
//! `site/` (what is served: the bundle, index.html, assets) and `profile/`
//! (the app window's own Chromium profile). Nothing of an install is
//! written outside it, and a failed install leaves nothing.

pub mod archive;
pub mod bundle;
pub mod lane;
pub mod manifest;
pub mod server;
pub mod service;
pub mod store;

use crate::chat::store as chat_store;
use crate::db::{Db, DbError};
use crate::memory::{store as memory_store, Memory};
use crate::util::now_ms;
use archive::{ArchiveError, Limits};
use bundle::BundleError;
use manifest::{Manifest, ManifestError};
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{AppRow, AuditRow};
use tokio_util::sync::CancellationToken;

/// The folder an app's zip is unpacked into.
pub const SOURCES: &str = "src";
/// The folder an app is served from.
pub const SITE: &str = "site";
/// The app window's Chromium profile.
pub const PROFILE: &str = "profile";
/// The largest manifest or package.json read (bytes).
const MAX_METADATA: u64 = 64 << 10;
/// The largest index.html read (bytes).
const MAX_HTML: u64 = 1 << 20;
/// How long a launch link (`apps open`) may wait to be used.
const LAUNCH_TTL: Duration = Duration::from_secs(120);
/// The credential-store name of the key app cookies are derived from.
pub const COOKIE_KEY_SECRET: &str = "apps-cookie-key";
/// The prefix of a folder being removed (swept at start if left).
const REMOVING: &str = ".removing-";

/// `[apps]` in config.toml.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The port apps are served on (127.0.0.1); 0 picks a free one at each
    /// start (apps then lose their browser storage between starts).
    pub port: u16,
    /// The esbuild executable ("": the runtime's, then PATH).
    pub esbuild: String,
    /// The shared node_modules every bundle may import from (react,
    /// react-dom, @google/genai), installed by scripts/start.sh ("":
    /// `$XDG_CACHE_HOME/cowork/apps-runtime`).
    pub runtime_dir: String,
    /// The largest zip (MiB).
    pub max_zip_mb: u64,
    /// The most an app may unpack to (MiB).
    pub max_unpacked_mb: u64,
    /// The most files an app may hold.
    pub max_files: usize,
    /// How long bundling may take (s).
    pub bundle_timeout_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: 7340,
            esbuild: String::new(),
            runtime_dir: String::new(),
            max_zip_mb: 50,
            max_unpacked_mb: 200,
            max_files: 5000,
            bundle_timeout_s: 60,
        }
    }
}

impl Settings {
    /// `[apps]` of `path` (defaults when absent).
    pub fn load(path: &Path) -> Result<Self, String> {
        let s: Self = crate::config::section(path, "apps")?;
        if s.max_zip_mb == 0
            || s.max_unpacked_mb == 0
            || s.max_files == 0
            || s.bundle_timeout_s == 0
        {
            return Err("[apps] limits are above 0".into());
        }
        Ok(s)
    }

    /// The unpacking limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_files: self.max_files,
            max_unpacked: self.max_unpacked_mb << 20,
            ..Limits::default()
        }
    }

    /// The shared node_modules' folder.
    pub fn runtime(&self) -> PathBuf {
        if !self.runtime_dir.is_empty() {
            return PathBuf::from(&self.runtime_dir);
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("/nonexistent"));
        cache.join("cowork").join("apps-runtime")
    }

    /// The esbuild executable: `[apps] esbuild`, the runtime's native
    /// binary, its npm shim, then `esbuild` on PATH.
    pub fn esbuild(&self) -> Result<PathBuf, String> {
        if !self.esbuild.is_empty() {
            let p = PathBuf::from(&self.esbuild);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("[apps] esbuild = {:?} is not a file", self.esbuild))
            };
        }
        let nm = self.runtime().join("node_modules");
        let platform = match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => "linux-x64",
            ("linux", "aarch64") => "linux-arm64",
            ("macos", "aarch64") => "darwin-arm64",
            ("macos", "x86_64") => "darwin-x64",
            _ => "",
        };
        let candidates = [
            nm.join("@esbuild").join(platform).join("bin/esbuild"),
            nm.join(".bin/esbuild"),
        ];
        if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
            return Ok(p);
        }
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("esbuild"))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no esbuild in {} or on PATH", nm.display()))
    }
}

/// Why an apps request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// No such app.
    #[error("no installed app {0:?} (see `coworkctl apps list`)")]
    NotFound(String),
    /// The disclosure was not accepted: it is the message.
    #[error("the read-lane disclosure must be accepted before install:\n{0}")]
    Disclosure(String),
    /// The zip was refused.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Its metadata was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// It could not be bundled.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// `[apps]` cannot be used.
    #[error("{0}")]
    Config(String),
    /// The apps' server cannot listen.
    #[error("cannot serve apps on 127.0.0.1:{port}: {reason}")]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        reason: String,
    },
    /// Files could not be written or read.
    #[error("{0}")]
    Io(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A zip unpacked and bundled into `apps/<id>/`, not yet recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The id chosen.
    pub id: String,
    /// What it says about itself.
    pub manifest: Manifest,
    /// What the person must accept.
    pub disclosure: String,
    /// SHA-256 of the zip (hex).
    pub sha256: String,
    /// Files unpacked.
    pub files: u32,
    /// Bytes unpacked.
    pub unpacked_bytes: u64,
    /// The entry bundled ("" for a plain page).
    pub entry: String,
    /// Bytes of the bundle.
    pub bundle_bytes: u64,
    /// How long esbuild took.
    pub bundle_ms: u32,
}

/// An installed app with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppView {
    /// The record.
    pub row: AppRow,
    /// Its origin's URL.
    pub url: String,
    /// Read-lane calls so far.
    pub reads: u64,
    /// Its conversations.
    pub conversations: u32,
}

/// What removing an app deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Files (sources, site, profile).
    pub files: u64,
    /// Threads.
    pub conversations: u32,
    /// Their messages.
    pub messages: u32,
    /// Audit rows.
    pub audit_rows: u64,
}

/// What opening an app takes (the client starts the window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// The app's launch link: its URL with a one-time code the server
    /// trades for the app's cookie (valid 2 minutes).
    pub url: String,
    /// Its own Chromium profile.
    pub profile_dir: PathBuf,
    /// `[browser] executable`.
    pub chromium: String,
    /// Where the window's stderr goes.
    pub log_file: PathBuf,
}

/// Where apps are served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The port (listening, else configured).
    pub port: u16,
    /// Listening now.
    pub listening: bool,
    /// Why not.
    pub error: String,
    /// Installed apps.
    pub installed: u32,
    /// The bundler found.
    pub bundler: String,
    /// Why none was.
    pub bundler_error: String,
}

struct Listening {
    port: u16,
    _stop: CancellationToken,
}

pub(crate) struct Inner {
    db: Db,
    memory: Memory,
    config: PathBuf,
    apps_dir: PathBuf,
    logs_dir: PathBuf,
    shutdown: CancellationToken,
    installed: RwLock<HashSet<String>>,
    listening: Mutex<Option<Listening>>,
    listen_error: Mutex<String>,
    serve_lock: tokio::sync::Mutex<()>,
    /// One-time launch codes: code → (app, when made).
    launches: Mutex<std::collections::HashMap<String, (String, std::time::Instant)>>,
    /// The key app cookies are derived from (from the credential store).
    cookie_key: Mutex<Option<String>>,
    /// True once the start-up sweep is done (installs wait for it).
    ready: tokio::sync::watch::Sender<bool>,
}

/// The apps runtime (cheap to clone).
#[derive(Clone)]
pub struct Apps {
    pub(crate) inner: Arc<Inner>,
}

impl crate::chat::InstalledApps for Apps {
    fn is_installed(&self, id: &str) -> bool {
        Apps::is_installed(self, id)
    }
}

/// Removes an install's folder unless disarmed (a failed or inspected
/// install leaves nothing).
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// Copy the files served as they are from `src` into `site` (the
/// bundle's own files win).
fn copy_assets(files: &[PathBuf], src: &Path, site: &Path) -> Result<(), AppsError> {
    for rel in files.iter().filter(|f| bundle::is_served_asset(f)) {
        let to = site.join(bundle::served_path(rel));
        if to.exists() {
            continue;
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| AppsError::Io(e.to_string()))?;
        }
        std::fs::copy(src.join(rel), &to)
            .map_err(|e| AppsError::Io(format!("{}: {e}", rel.display())))?;
    }
    Ok(())
}

/// The zip's metadata, read without unpacking it.
fn describe(zip: &[u8], file_name: &str) -> Result<Manifest, AppsError> {
    let manifest = archive::read_small(zip, "cowork.manifest.json", MAX_METADATA)?;
    let package = archive::read_small(zip, "package.json", MAX_METADATA)?;
    Ok(manifest::read(
        manifest.as_deref(),
        package.as_deref(),
        file_name,
    )?)
}

fn random_hex(n: usize) -> Result<String, AppsError> {
    let k =
        crate::util::random_key("x").map_err(|e| AppsError::Io(format!("no randomness: {e}")))?;
    Ok(k.trim_start_matches("x-").chars().take(n).collect())
}

impl Apps {
    /// Apps under `apps_dir`, recorded in `db`, reading the activity index
    /// through `memory`, configured by `[apps]` of `config`.
    pub fn new(
        db: Db,
        memory: Memory,
        config: PathBuf,
        apps_dir: PathBuf,
        logs_dir: PathBuf,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                memory,
                config,
                apps_dir,
                logs_dir,
                shutdown,
                installed: RwLock::new(HashSet::new()),
                listening: Mutex::new(None),
                listen_error: Mutex::new(String::new()),
                serve_lock: tokio::sync::Mutex::new(()),
                launches: Mutex::new(std::collections::HashMap::new()),
                cookie_key: Mutex::new(None),
                ready: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    fn settings(&self) -> Result<Settings, AppsError> {
        Settings::load(&self.inner.config).map_err(AppsError::Config)
    }

    /// Whether `id` is installed.
    pub fn is_installed(&self, id: &str) -> bool {
        self.inner
            .installed
            .read()
            .map(|s| s.contains(id))
            .unwrap_or(false)
    }

    /// At start: the installed apps known, folders an interrupted install
    /// or removal left deleted, and apps served when there are any. Until
    /// it is done, installs, removals and opens wait.
    pub async fn recover(&self) -> Result<(), AppsError> {
        let done = self.sweep().await;
        self.inner.ready.send_replace(true);
        done?;
        if !self
            .inner
            .installed
            .read()
            .map(|s| s.is_empty())
            .unwrap_or(true)
        {
            self.serve().await?;
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<(), AppsError> {
        let rows = self.inner.db.read(store::list).await?;
        let ids: HashSet<String> = rows.into_iter().map(|r| r.id).collect();
        if let Ok(rd) = std::fs::read_dir(&self.inner.apps_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let orphan = (manifest::is_app_id(&name) && !ids.contains(&name))
                    || name.starts_with(REMOVING);
                if orphan {
                    tracing::warn!(folder = %name, "removing what an interrupted install or removal left");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        if let Ok(mut s) = self.inner.installed.write() {
            s.extend(ids);
        }
        Ok(())
    }

    /// Wait for the start-up sweep (at most 30 s).
    async fn ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|r| *r)).await;
    }

    /// The cookie that admits a browser to app `id`: SHA-256 of a key kept
    /// in the OS credential store and the id.
    pub(crate) fn cookie_of(&self, id: &str) -> Result<String, AppsError> {
        let mut key = lock(&self.inner.cookie_key);
        if key.is_none() {
            let stored = crate::secrets::get(COOKIE_KEY_SECRET)
                .map_err(|e| AppsError::Io(format!("the credential store: {e}")))?;
            let k = match stored {
                Some(k) => k,
                None => {
                    let k = crate::util::random_key("apps")
                        .map_err(|e| AppsError::Io(format!("no randomness: {e}")))?;
                    crate::secrets::put(COOKIE_KEY_SECRET, &k)
                        .map_err(|e| AppsError::Io(format!("the credential store: {e}")))?;
                    k
                }
            };
            *key = Some(k);
        }
        let k = key.as_deref().unwrap_or_default();
        Ok(format!(
            "{:x}",
            sha2::Sha256::digest(format!("{k}:{id}").as_bytes())
        ))
    }

    /// Use a launch code for app `id` (once, within [`LAUNCH_TTL`]).
    pub(crate) fn take_launch(&self, id: &str, code: &str) -> bool {
        let mut l = lock(&self.inner.launches);
        l.retain(|_, (_, at)| at.elapsed() < LAUNCH_TTL);
        match l.get(code) {
            Some((app, _)) if app == id => {
                l.remove(code);
                true
            }
            _ => false,
        }
    }

    /// Start serving (once; again after a failure), returning the port.
    pub async fn serve(&self) -> Result<u16, AppsError> {
        let _one = self.inner.serve_lock.lock().await;
        if let Some(l) = lock(&self.inner.listening).as_ref() {
            return Ok(l.port);
        }
        let want = self.settings()?.port;
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", want)).await {
            Ok(l) => l,
            Err(e) => {
                let err = AppsError::Listen {
                    port: want,
                    reason: e.to_string(),
                };
                *lock(&self.inner.listen_error) = err.to_string();
                return Err(err);
            }
        };
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| AppsError::Io(e.to_string()))?;
        let stop = self.inner.shutdown.child_token();
        *lock(&self.inner.listening) = Some(Listening {
            port,
            _stop: stop.clone(),
        });
        lock(&self.inner.listen_error).clear();
        tracing::info!(port, "apps served on 127.0.0.1");
        let me = self.clone();
        let handler: crate::gateway::conn::Handler<server::Body> = Arc::new(move |req| {
            let me = me.clone();
            Box::pin(async move { me.handle(req, port).await })
        });
        tokio::spawn(crate::gateway::conn::serve(listener, stop, handler, "apps"));
        Ok(port)
    }

    fn port(&self) -> Option<u16> {
        lock(&self.inner.listening).as_ref().map(|l| l.port)
    }

    fn url(&self, id: &str) -> String {
        let port = self
            .port()
            .unwrap_or_else(|| self.settings().map(|s| s.port).unwrap_or_default());
        format!("{}/", server::origin(id, port))
    }

    /// Unpack, describe and bundle `zip` into a fresh `apps/<id>/`; on any
    /// failure the folder is gone.
    async fn prepare(
        &self,
        zip: Arc<Vec<u8>>,
        file_name: &str,
    ) -> Result<(Prepared, Cleanup), AppsError> {
        let s = self.settings()?;
        if zip.len() as u64 > s.max_zip_mb << 20 {
            return Err(AppsError::Invalid(format!(
                "the zip is {} MiB, more than [apps] max_zip_mb = {}",
                zip.len() >> 20,
                s.max_zip_mb
            )));
        }
        let sha256 = format!("{:x}", sha2::Sha256::digest(zip.as_slice()));
        let m = describe(&zip, file_name)?;
        let id = manifest::app_id(&m.name, &random_hex(6)?);
        let dir = self.inner.apps_dir.join(&id);
        if dir.exists() {
            return Err(AppsError::Io(format!("{} exists already", dir.display())));
        }
        let cleanup = Cleanup(Some(dir.clone()));
        let (src, site) = (dir.join(SOURCES), dir.join(SITE));
        let limits = s.limits();
        let unpacked = {
            let (zip, src) = (zip.clone(), src.clone());
            tokio::task::spawn_blocking(move || archive::unpack(&zip, &src, limits))
                .await
                .map_err(|e| AppsError::Io(e.to_string()))??
        };
        let read_text = |p: PathBuf, max: u64| -> Result<Option<String>, AppsError> {
            match std::fs::metadata(&p) {
                Ok(md) if md.len() > max => Err(AppsError::Invalid(format!(
                    "{} is larger than {max} bytes",
                    p.display()
                ))),
                Ok(_) => std::fs::read(&p)
                    .map(|b| Some(String::from_utf8_lossy(&b).into_owned()))
                    .map_err(|e| AppsError::Io(format!("{}: {e}", p.display()))),
                Err(_) => Ok(None),
            }
        };
        let html = read_text(src.join("index.html"), MAX_HTML)?;
        let plan = bundle::plan(&unpacked.files, html.as_deref(), &m.name)?;
        std::fs::create_dir_all(&site).map_err(|e| AppsError::Io(e.to_string()))?;
        let (mut page, mut bundle_bytes, mut bundle_ms) = (plan.html.clone(), 0, 0);
        if let Some(entry) = &plan.entry {
            let esbuild = s.esbuild().map_err(BundleError::NoBundler)?;
            let env = read_text(src.join(".env.local"), MAX_METADATA)?
                .or(read_text(src.join(".env"), MAX_METADATA)?);
            let built = bundle::run(
                &esbuild,
                &s.runtime().join("node_modules"),
                &src,
                entry,
                &site,
                &bundle::env_defines(env.as_deref()),
                Duration::from_secs(s.bundle_timeout_s),
            )
            .await?;
            if built.styles {
                page = bundle::link_styles(&page);
            }
            bundle_bytes = built.bytes;
            bundle_ms = built.took.as_millis().min(u32::MAX as u128) as u32;
        }
        let copied = {
            let (files, src, site) = (unpacked.files.clone(), src.clone(), site.clone());
            tokio::task::spawn_blocking(move || copy_assets(&files, &src, &site))
                .await
                .map_err(|e| AppsError::Io(e.to_string()))?
        };
        copied?;
        std::fs::write(site.join("index.html"), page).map_err(|e| AppsError::Io(e.to_string()))?;
        let disclosure = manifest::disclosure(&m);
        Ok((
            Prepared {
                id,
                manifest: m,
                disclosure,
                sha256,
                files: unpacked.files.len() as u32,
                unpacked_bytes: unpacked.bytes,
                entry: plan
                    .entry
                    .map(|e| e.display().to_string())
                    .unwrap_or_default(),
                bundle_bytes,
                bundle_ms,
            },
            cleanup,
        ))
    }

    /// Everything install does, kept nowhere: the metadata, the disclosure
    /// and the bundle's figures.
    pub async fn inspect(&self, zip: Vec<u8>, file_name: &str) -> Result<Prepared, AppsError> {
        self.ready().await;
        let (p, _cleanup) = self.prepare(Arc::new(zip), file_name).await?;
        Ok(p)
    }

    /// Install `zip` once the person accepted the disclosure (and, when
    /// given, only if it is the zip they inspected).
    pub async fn install(
        &self,
        zip: Vec<u8>,
        file_name: &str,
        accepted: bool,
        expected_sha256: &str,
    ) -> Result<AppView, AppsError> {
        self.ready().await;
        let zip = Arc::new(zip);
        if !expected_sha256.is_empty() {
            let got = format!("{:x}", sha2::Sha256::digest(zip.as_slice()));
            if !got.eq_ignore_ascii_case(expected_sha256.trim()) {
                return Err(AppsError::Invalid(format!(
                    "the zip changed since it was inspected (SHA-256 {got}, not {expected_sha256})"
                )));
            }
        }
        if !accepted {
            let m = describe(&zip, file_name)?;
            return Err(AppsError::Disclosure(manifest::disclosure(&m)));
        }
        let (p, mut cleanup) = self.prepare(zip, file_name).await?;
        let row = AppRow {
            id: p.id.clone(),
            manifest: p.manifest,
            entry: p.entry,
            bundle_bytes: p.bundle_bytes,
            files: p.files,
            sha256: p.sha256,
            disclosure: p.disclosure,
            installed_ms: now_ms(),
            last_opened_ms: 0,
        };
        let saved = row.clone();
        self.inner
            .db
            .write(move |c| store::insert(c, &saved))
            .await?;
        cleanup.0 = None;
        if let Ok(mut s) = self.inner.installed.write() {
            s.insert(row.id.clone());
        }
        if let Err(e) = self.serve().await {
            tracing::warn!(error = %e, "apps are installed but not served");
        }
        tracing::info!(app = %row.id, "app installed");
        self.view(row).await
    }

    async fn view(&self, row: AppRow) -> Result<AppView, AppsError> {
        let id = row.id.clone();
        let (reads, conversations) = self
            .inner
            .db
            .read(move |c| {
                Ok((
                    store::reads(c, &id)?,
                    chat_store::app_threads(c, &id, u32::MAX)?.len() as u32,
                ))
            })
            .await?;
        Ok(AppView {
            url: self.url(&row.id),
            row,
            reads,
            conversations,
        })
    }

    async fn row(&self, id: &str) -> Result<AppRow, AppsError> {
        if !manifest::is_app_id(id) {
            return Err(AppsError::NotFound(id.into()));
        }
        let key = id.to_owned();
        self.inner
            .db
            .read(move |c| store::get(c, &key))
            .await?
            .ok_or_else(|| AppsError::NotFound(id.into()))
    }

    /// Installed apps, newest first.
    pub async fn list(&self) -> Result<Vec<AppView>, AppsError> {
        let rows = self.inner.db.read(store::list).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.view(r).await?);
        }
        Ok(out)
    }

    /// One app.
    pub async fn show(&self, id: &str) -> Result<AppView, AppsError> {
        let row = self.row(id).await?;
        self.view(row).await
    }

    /// Delete the app: its conversations (and what memory indexed of
    /// them), its record and audit, then its folder.
    pub async fn remove(&self, id: &str) -> Result<Removed, AppsError> {
        self.ready().await;
        self.row(id).await?;
        // The folder moves aside first: if it cannot (a window holding
        // it), nothing is deleted and the app stays whole.
        let dir = self.inner.apps_dir.join(id);
        let trash = self
            .inner
            .apps_dir
            .join(format!("{REMOVING}{id}-{}", random_hex(6)?));
        if dir.exists() {
            std::fs::rename(&dir, &trash)
                .map_err(|e| AppsError::Io(format!("cannot move {} aside: {e}", dir.display())))?;
        }
        if let Ok(mut s) = self.inner.installed.write() {
            s.remove(id);
        }
        let key = id.to_owned();
        let (conversations, messages, audit_rows) = self
            .inner
            .db
            .write(move |c| {
                let ids = chat_store::app_message_ids(c, &key)?;
                if !ids.is_empty() {
                    memory_store::forget_sources(c, &ids, None, now_ms())?;
                }
                let (threads, messages) = chat_store::delete_app_threads(c, &key)?;
                let audit = store::delete(c, &key)?.unwrap_or(0);
                Ok((threads, messages, audit))
            })
            .await?;
        let files = count_files(&trash);
        if trash.exists() {
            if let Err(e) = std::fs::remove_dir_all(&trash) {
                // The next start sweeps it.
                tracing::warn!(error = %e, folder = %trash.display(), "not all files deleted yet");
            }
        }
        tracing::info!(app = %id, files, conversations, "app removed");
        Ok(Removed {
            files,
            conversations,
            messages,
            audit_rows,
        })
    }

    /// What the client needs to open the app's window (and serving on).
    pub async fn open(&self, id: &str) -> Result<Opening, AppsError> {
        self.ready().await;
        self.row(id).await?;
        self.serve().await?;
        self.cookie_of(id)?;
        let code = random_hex(32)?;
        {
            let mut l = lock(&self.inner.launches);
            l.retain(|_, (_, at)| at.elapsed() < LAUNCH_TTL);
            l.insert(code.clone(), (id.to_owned(), std::time::Instant::now()));
        }
        let key = id.to_owned();
        self.inner
            .db
            .write(move |c| store::opened(c, &key, now_ms()))
            .await?;
        let chromium = std::fs::read_to_string(&self.inner.config)
            .ok()
            .and_then(|t| crate::browser::tools::AgentSettings::parse(&t).ok())
            .unwrap_or_default()
            .executable;
        Ok(Opening {
            url: format!("{}?{}={code}", self.url(id), server::LAUNCH_PARAM),
            profile_dir: self.inner.apps_dir.join(id).join(PROFILE),
            chromium,
            log_file: self.inner.logs_dir.join(format!("app-{id}.log")),
        })
    }

    /// The app's read-lane calls, newest first.
    pub async fn audit_log(&self, id: &str, limit: u32) -> Result<Vec<AuditRow>, AppsError> {
        self.row(id).await?;
        let key = id.to_owned();
        let limit = if limit == 0 { 50 } else { limit.min(1000) };
        Ok(self
            .inner
            .db
            .read(move |c| store::audit_rows(c, &key, limit))
            .await?)
    }

    pub(crate) async fn audit(&self, id: &str, row: AuditRow) {
        let key = id.to_owned();
        if let Err(e) = self
            .inner
            .db
            .write(move |c| store::audit(c, &key, &row))
            .await
        {
            tracing::warn!(error = %e, app = %id, "read-lane audit not written");
        }
    }

    pub(crate) async fn hosts_of(&self, id: &str) -> Vec<String> {
        let key = id.to_owned();
        self.inner
            .db
            .read(move |c| store::get(c, &key))
            .await
            .ok()
            .flatten()
            .map(|r| r.manifest.api_hosts)
            .unwrap_or_default()
    }

    /// Where apps are served, and the bundler.
    pub async fn status(&self) -> Result<Status, AppsError> {
        let s = self.settings()?;
        let installed = self.inner.installed.read().map(|s| s.len()).unwrap_or(0) as u32;
        let (bundler, bundler_error) = match s.esbuild() {
            Ok(p) => (p.display().to_string(), String::new()),
            Err(e) => (String::new(), e),
        };
        Ok(Status {
            port: self.port().unwrap_or(s.port),
            listening: self.port().is_some(),
            error: lock(&self.inner.listen_error).clone(),
            installed,
            bundler,
            bundler_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_refuse_zero_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        assert_eq!(Settings::load(&p).unwrap(), Settings::default());
        std::fs::write(&p, "[apps]\nport = 9000\nruntime_dir = \"/r\"\n").unwrap();
        let s = Settings::load(&p).unwrap();
        assert_eq!((s.port, s.runtime()), (9000, PathBuf::from("/r")));
        std::fs::write(&p, "[apps]\nmax_files = 0\n").unwrap();
        assert!(Settings::load(&p).is_err());
        std::fs::write(&p, "[apps]\nnope = 1\n").unwrap();
        assert!(Settings::load(&p).unwrap_err().contains("nope"));
        std::fs::write(&p, "[apps]\nesbuild = \"/no/such/esbuild\"\n").unwrap();
        assert!(Settings::load(&p)
            .unwrap()
            .esbuild()
            .unwrap_err()
            .contains("not a file"));
    }
}
