//! The download manager: one task per download id, its files fetched in
//! parallel with one aggregated, throttled progress; per-task
//! cancellation where a new task with the same id replaces the old; every
//! task's record persisted in `model_downloads` so a restart resumes it.

use super::download::{self, sidecar, FileRequest, Progress, RequestError, TMP_SUFFIX, URL_SUFFIX};
use super::fetch::{self, FetchError, Job, Report};
use super::store::{self, FileRecord, Record};
use crate::db::{Db, DbError};
use crate::util::now_ms;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a download call failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The request was refused before anything was written.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The sandbox check on disk failed.
    #[error(transparent)]
    Disk(#[from] FetchError),
    /// Another task is writing one of the files.
    #[error("{path} is already being downloaded by task {task:?}")]
    Busy {
        /// The file.
        path: String,
        /// The task writing it.
        task: String,
    },
    /// No such task or file.
    #[error("no download or model file named {0:?}")]
    NotFound(String),
    /// cowork.db failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

struct Running {
    cancel: CancellationToken,
    status: watch::Receiver<Record>,
    handle: JoinHandle<()>,
    paths: Vec<PathBuf>,
    generation: u64,
}

struct Inner {
    db: Db,
    root: PathBuf,
    config: PathBuf,
    client: reqwest::Client,
    shutdown: CancellationToken,
    tasks: Mutex<HashMap<String, Running>>,
    generation: std::sync::atomic::AtomicU64,
}

/// The download manager (cheap to clone).
#[derive(Clone)]
pub struct Downloads {
    inner: Arc<Inner>,
}

impl Downloads {
    /// Downloads into `root` (`$COWORK_HOME/models`), recorded in `db`,
    /// keeping `config`'s free-space floor; tasks stop (resumable) when
    /// `shutdown` fires.
    pub fn new(db: Db, root: PathBuf, config: PathBuf, shutdown: CancellationToken) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("cowork/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                db,
                root,
                config,
                client,
                shutdown,
                tasks: Mutex::default(),
                generation: Default::default(),
            }),
        }
    }

    /// The models directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Bytes kept free on the models directory's filesystem (read at each
    /// start: `[agents] free_space_floor_mib`, else the default rule).
    fn free_space_floor(&self) -> u64 {
        let configured = match crate::config::AgentsConfig::load(&self.inner.config) {
            Ok(c) => c.free_space_floor_mib,
            Err(e) => {
                tracing::warn!(error = %e, "config.toml unreadable: downloads keep the default free-space floor");
                None
            }
        };
        // Unknown size: the largest default, never none.
        let total = match fetch::disk_space(&self.inner.root) {
            Ok((_, t)) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the models directory's free space");
                u64::MAX
            }
        };
        download::free_space_floor(configured, total)
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a task (replacing a running one with the same id) and return
    /// its progress.
    pub async fn start(
        &self,
        id: &str,
        files: &[FileRequest],
    ) -> Result<watch::Receiver<Record>, DownloadError> {
        let (id, specs) = download::validate(&self.inner.root, id, files)?;
        for s in &specs {
            fetch::check_on_disk(&self.inner.root, &s.path)?;
        }
        let created = now_ms();
        let record = Record {
            id: id.clone(),
            state: store::QUEUED.into(),
            files: specs
                .iter()
                .map(|s| FileRecord {
                    urls: s.urls.clone(),
                    name: s.name.clone(),
                    sha256: s.sha256.clone(),
                    size: s.size,
                    state: store::QUEUED.into(),
                    ..Default::default()
                })
                .collect(),
            error: String::new(),
            created_ms: created,
            updated_ms: created,
        };
        let (tx, rx) = watch::channel(record.clone());
        let cancel = self.inner.shutdown.child_token();
        let generation = self
            .inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let floor = self.free_space_floor();
        let jobs: Vec<Job> = specs
            .iter()
            .map(|s| Job {
                urls: s.urls.clone(),
                path: s.path.clone(),
                sha256: s.sha256.clone(),
                size: s.size,
                floor,
            })
            .collect();
        // One critical section from the busy check to the insert, so two
        // pulls can never both own a file, and a task that ends at once
        // still finds its own entry to remove.
        let mut tasks = self.tasks();
        for (other, r) in tasks.iter() {
            if *other == id {
                continue;
            }
            if let Some(s) = specs.iter().find(|s| r.paths.contains(&s.path)) {
                return Err(DownloadError::Busy {
                    path: s.name.clone(),
                    task: other.clone(),
                });
            }
        }
        let previous = tasks.remove(&id);
        if let Some(old) = &previous {
            old.cancel.cancel();
        }
        let me = self.clone();
        let handle = tokio::spawn({
            let cancel = cancel.clone();
            let id = id.clone();
            let span = tracing::info_span!("download", %id);
            async move {
                // The task this one replaces stops writing first.
                if let Some(old) = previous {
                    let _ = old.handle.await;
                }
                let r = record.clone();
                if let Err(e) = me.inner.db.write(move |c| store::put(c, &r)).await {
                    tracing::warn!(error = %e, "could not record the download");
                }
                me.run(record, jobs, cancel, tx).instrument(span).await;
                let mut tasks = me.tasks();
                if tasks.get(&id).is_some_and(|r| r.generation == generation) {
                    tasks.remove(&id);
                }
            }
        });
        tasks.insert(
            id,
            Running {
                cancel,
                status: rx.clone(),
                handle,
                paths: specs.into_iter().map(|s| s.path).collect(),
                generation,
            },
        );
        Ok(rx)
    }

    async fn run(
        &self,
        record: Record,
        jobs: Vec<Job>,
        cancel: CancellationToken,
        tx: watch::Sender<Record>,
    ) {
        let shared = Arc::new(Shared {
            state: Mutex::new((record, Progress::new(jobs.len()))),
            tx,
        });
        shared.set_task(store::DOWNLOADING, "");
        // Persist every published state; the last one wins.
        let persister = {
            let mut rx = shared.tx.subscribe();
            let (db, shutdown) = (self.inner.db.clone(), self.inner.shutdown.clone());
            tokio::spawn(async move {
                loop {
                    let r = rx.borrow_and_update().clone();
                    if shutdown.is_cancelled() && store::is_final(&r.state) {
                        // Stopped by the worker's shutdown, not by the
                        // person: keep the running state so a restart
                        // resumes.
                        return;
                    }
                    if let Err(e) = db.write(move |c| store::put(c, &r)).await {
                        tracing::warn!(error = %e, "could not record download progress");
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        let files_cancel = cancel.child_token();
        let results = futures::future::join_all(jobs.iter().enumerate().map(|(i, job)| {
            let shared = shared.clone();
            let (client, files_cancel) = (self.inner.client.clone(), files_cancel.clone());
            async move {
                let report = FileReport { i, shared };
                let r = fetch::fetch(&client, job, &files_cancel, &report).await;
                if let Err(e) = &r {
                    if !matches!(e, FetchError::Cancelled) {
                        // One file failed: the task has failed.
                        files_cancel.cancel();
                    }
                }
                report.shared.set_file_end(i, &r);
                r
            }
        }))
        .await;
        let first_error = results.iter().find_map(|r| match r {
            Err(FetchError::Cancelled) | Ok(()) => None,
            Err(e) => Some(e.to_string()),
        });
        match (first_error, cancel.is_cancelled()) {
            (Some(e), _) => {
                tracing::warn!(error = %e, "download failed");
                shared.set_task(store::ERROR, &e);
            }
            (None, true) => shared.set_task(store::CANCELLED, ""),
            (None, false) => {
                tracing::info!("download done");
                shared.set_task(store::DONE, "")
            }
        }
        drop(shared);
        let _ = persister.await;
    }

    /// Follow a running task.
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<Record>> {
        self.tasks().get(id).map(|r| r.status.clone())
    }

    /// A task's record (live when running).
    pub async fn get(&self, id: &str) -> Result<Option<Record>, DownloadError> {
        if let Some(rx) = self.watch(id) {
            return Ok(Some(rx.borrow().clone()));
        }
        let id = id.to_string();
        Ok(self.inner.db.read(move |c| store::get(c, &id)).await?)
    }

    /// Stop a running task (its partial files stay for a resume).
    pub async fn cancel(&self, id: &str) -> bool {
        let running = self.tasks().remove(id);
        match running {
            Some(r) => {
                r.cancel.cancel();
                let _ = r.handle.await;
                true
            }
            None => false,
        }
    }

    /// Every record (running ones live), newest first.
    pub async fn records(&self) -> Result<Vec<Record>, DownloadError> {
        let mut recs = self.inner.db.read(store::list).await?;
        for r in &mut recs {
            if let Some(rx) = self.watch(&r.id) {
                *r = rx.borrow().clone();
            }
        }
        Ok(recs)
    }

    /// Model files under the models directory (no sidecars, no symlinks),
    /// as (name, size, path), sorted by name.
    pub fn files(&self) -> Vec<(String, u64, PathBuf)> {
        let mut out = Vec::new();
        walk(&self.inner.root, &self.inner.root, 0, &mut out);
        out.sort();
        out
    }

    /// Stop and delete a task's files and record, or (when no task has
    /// that id) a model file by name. Returns the deleted paths.
    pub async fn remove(&self, id_or_name: &str) -> Result<Vec<PathBuf>, DownloadError> {
        self.cancel(id_or_name).await;
        let key = id_or_name.to_string();
        let record = self.inner.db.read(move |c| store::get(c, &key)).await?;
        let names: Vec<String> = match &record {
            Some(r) => r.files.iter().map(|f| f.name.clone()).collect(),
            None => vec![id_or_name.to_string()],
        };
        let mut deleted = Vec::new();
        for name in names {
            let path = download::sandboxed(&self.inner.root, &name)?;
            // Another task writing this file stops first.
            let owner = self
                .tasks()
                .iter()
                .find(|(_, r)| r.paths.contains(&path))
                .map(|(id, _)| id.clone());
            if let Some(owner) = owner {
                self.cancel(&owner).await;
            }
            inside_on_disk(&self.inner.root, &path)?;
            for p in [
                path.clone(),
                sidecar(&path, TMP_SUFFIX),
                sidecar(&path, URL_SUFFIX),
            ] {
                if std::fs::remove_file(&p).is_ok() {
                    deleted.push(p);
                }
            }
        }
        if let Some(r) = record {
            self.inner
                .db
                .write(move |c| store::delete(c, &r.id))
                .await?;
        } else if deleted.is_empty() {
            return Err(DownloadError::NotFound(id_or_name.to_string()));
        }
        Ok(deleted)
    }

    /// Restart every task a previous run left unfinished (after a crash
    /// or a stop): each resumes from its partial files.
    pub async fn recover(&self) -> Result<usize, DownloadError> {
        let recs = self.inner.db.read(store::list).await?;
        let mut n = 0;
        for r in recs.into_iter().filter(|r| !store::is_final(&r.state)) {
            let files: Vec<FileRequest> = r
                .files
                .iter()
                .map(|f| FileRequest {
                    urls: f.urls.clone(),
                    name: f.name.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                })
                .collect();
            match self.start(&r.id, &files).await {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!(id = %r.id, error = %e, "could not resume download"),
            }
        }
        Ok(n)
    }
}

/// Refuse a path whose existing parent resolves outside `root`.
fn inside_on_disk(root: &Path, path: &Path) -> Result<(), DownloadError> {
    let outside = || RequestError::OutsideSandbox(path.display().to_string());
    let (Ok(real_root), Some(parent)) = (std::fs::canonicalize(root), path.parent()) else {
        return Ok(());
    };
    match std::fs::canonicalize(parent) {
        Ok(real) if !real.starts_with(&real_root) => Err(outside().into()),
        _ => Ok(()),
    }
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, u64, PathBuf)>) {
    if depth > 8 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(root, &p, depth + 1, out);
        } else if ft.is_file() {
            let name = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            if name.ends_with(TMP_SUFFIX) || name.ends_with(URL_SUFFIX) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((name, size, p));
        }
    }
}

/// A task's live record and progress, shared by its files.
struct Shared {
    state: Mutex<(Record, Progress)>,
    tx: watch::Sender<Record>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Record, Progress)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, r: &mut Record) {
        r.updated_ms = now_ms();
        self.tx.send_replace(r.clone());
    }

    fn set_task(&self, state: &str, error: &str) {
        let mut g = self.lock();
        let (r, p) = &mut *g;
        r.state = state.into();
        r.error = error.into();
        p.reported();
        self.publish(r);
    }

    fn set_file_end(&self, i: usize, res: &Result<(), FetchError>) {
        let mut g = self.lock();
        let (r, _) = &mut *g;
        if let Some(f) = r.files.get_mut(i) {
            match res {
                Ok(()) => {
                    f.state = store::DONE.into();
                    f.total = f.total.max(f.downloaded);
                }
                Err(FetchError::Cancelled) => f.state = store::CANCELLED.into(),
                Err(e) => {
                    f.state = store::ERROR.into();
                    f.error = e.to_string();
                }
            }
        }
        self.publish(r);
    }
}

struct FileReport {
    i: usize,
    shared: Arc<Shared>,
}

impl Report for FileReport {
    fn transferring(&self, url: &str, bytes: u64, total: Option<u64>, resumed_from: u64) {
        let mut g = self.shared.lock();
        let (r, p) = &mut *g;
        p.set_total(self.i, total);
        let due = p.update(self.i, bytes);
        let Some(f) = r.files.get_mut(self.i) else {
            return;
        };
        let changed = (!url.is_empty() && f.url != url) || f.state != store::DOWNLOADING;
        f.downloaded = bytes;
        f.total = total.unwrap_or(0);
        if !url.is_empty() && f.url != url {
            f.url = url.to_string();
        }
        f.resumed_from = resumed_from;
        f.state = store::DOWNLOADING.into();
        if due || changed {
            self.shared.publish(r);
        }
    }

    fn verifying(&self) {
        let mut g = self.shared.lock();
        let (r, _) = &mut *g;
        if let Some(f) = r.files.get_mut(self.i) {
            f.state = store::VERIFYING.into();
        }
        if r.files
            .iter()
            .all(|f| f.state == store::VERIFYING || f.state == store::DONE)
        {
            r.state = store::VERIFYING.into();
        }
        self.shared.publish(r);
    }
}
