//! The download manager's I/O: the on-disk half of the sandbox check, one
//! file's transfer (HTTP Range resume, mirrors, retries) and its
//! verification (size, then SHA-256), all cancellable.

use super::download::{
    check_announced, check_space, parse_content_range, plan_write, resume_decision, sidecar,
    Answer, RequestError, Resume, TMP_SUFFIX, URL_SUFFIX,
};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Bytes gathered before one write to disk.
const WRITE_BATCH: usize = 4 * 1024 * 1024;
/// Transfer attempts per URL (a dropped connection resumes).
const ATTEMPTS: u32 = 3;
/// Most bytes received between two checks of the free space.
const SPACE_CHECK_EVERY: u64 = 8 * 1024 * 1024;

/// Why one file could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The person (or a replacing task) cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The request was refused before anything was written.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server or the network failed (after retries and mirrors).
    #[error("{0}")]
    Transfer(String),
    /// Size or hash did not match; nothing was kept.
    #[error("{0}")]
    Verify(String),
    /// The free-space floor would be crossed; the partial file was
    /// deleted.
    #[error("{0}")]
    NoSpace(String),
    /// The disk said no.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The on-disk half of the sandbox: every existing directory on the way
/// from `root` to `path` must resolve (symlinks followed) inside `root`,
/// and the final file and its sidecars must not be symlinks. Then creates
/// the missing directories. Nothing is created before the check passes.
pub fn check_on_disk(root: &Path, path: &Path) -> Result<(), FetchError> {
    let outside = || RequestError::OutsideSandbox(path.display().to_string());
    let rel = path.strip_prefix(root).map_err(|_| outside())?;
    fs::create_dir_all(root).map_err(io_err(root))?;
    let real_root = fs::canonicalize(root).map_err(io_err(root))?;
    let mut cur = root.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    let mut missing = false;
    for c in parents {
        cur.push(c);
        if missing {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(_) => {
                let real = fs::canonicalize(&cur).map_err(io_err(&cur))?;
                if !real.starts_with(&real_root) {
                    return Err(outside().into());
                }
                if !real.is_dir() {
                    return Err(RequestError::BadName(path.display().to_string()).into());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing = true,
            Err(e) => return Err(io_err(&cur)(e)),
        }
    }
    for p in [
        path.to_path_buf(),
        sidecar(path, TMP_SUFFIX),
        sidecar(path, URL_SUFFIX),
    ] {
        if let Ok(m) = fs::symlink_metadata(&p) {
            if m.file_type().is_symlink() {
                return Err(outside().into());
            }
        }
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    Ok(())
}

/// Open for writing without following a symlink at the last component.
fn open_nofollow(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true)
        .create(true)
        .custom_flags(nix::libc::O_NOFOLLOW);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path)
}

/// What a file's transfer reports as it goes.
pub trait Report: Send + Sync {
    /// `bytes` on disk of `total` (when known), from `url`, resumed at
    /// `resumed_from`.
    fn transferring(&self, url: &str, bytes: u64, total: Option<u64>, resumed_from: u64);
    /// Verification started.
    fn verifying(&self);
}

/// One file to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    /// URLs in order (first, then mirrors).
    pub urls: Vec<String>,
    /// Final path (already sandbox-checked).
    pub path: PathBuf,
    /// Expected SHA-256 (lowercase hex) or empty.
    pub sha256: String,
    /// Expected size or 0.
    pub size: u64,
    /// Bytes to keep free on the filesystem of the models directory.
    pub floor: u64,
}

/// (available, total) bytes of the filesystem holding `path`.
pub fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    let frag = s.fragment_size();
    Ok((
        s.blocks_available().saturating_mul(frag),
        s.blocks().saturating_mul(frag),
    ))
}

/// The partial file and its marker, gone (after a disk error or a body
/// larger than the file: nothing of it is worth resuming).
fn discard(tmp: &Path, marker: &Path) {
    let _ = fs::remove_file(tmp);
    let _ = fs::remove_file(marker);
}

/// Fetch `job` into place: resume or start, try each URL in turn (each up
/// to three times, resuming), verify, rename `.tmp` to the final name and
/// drop the `.url` marker. A verification failure deletes the partial
/// file; a cancellation or transfer failure keeps it for a resume.
pub async fn fetch(
    client: &reqwest::Client,
    job: &Job,
    cancel: &CancellationToken,
    report: &dyn Report,
) -> Result<(), FetchError> {
    let tmp = sidecar(&job.path, TMP_SUFFIX);
    let marker = sidecar(&job.path, URL_SUFFIX);
    if job.path.exists() {
        // Already here: verify what is on disk instead of fetching again
        // (a mismatch names the file: `models rm` it to fetch it anew).
        let len = fs::metadata(&job.path).map_err(io_err(&job.path))?.len();
        report.transferring("", len, Some(len), 0);
        report.verifying();
        return verify_file(&job.path, job.size, &job.sha256, cancel.clone())
            .await
            .map_err(|e| match e {
                FetchError::Verify(why) => FetchError::Verify(format!(
                    "{} is already there but does not match: {why}",
                    job.path.display()
                )),
                e => e,
            });
    }
    let mut last = String::new();
    let mut fetched: Option<Option<u64>> = None;
    'urls: for url in &job.urls {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(FetchError::Cancelled),
                    _ = tokio::time::sleep(Duration::from_millis(500 << attempt)) => {}
                }
            }
            match transfer(client, url, job, &tmp, &marker, cancel, report).await {
                Ok(t) => {
                    fetched = Some(t);
                    break 'urls;
                }
                Err(Attempt::Cancelled) => return Err(FetchError::Cancelled),
                Err(Attempt::Refused(e)) => return Err(e),
                Err(Attempt::Io(e)) => {
                    // The disk said no (full, read-only, quota): a partial
                    // file would only hold space the person needs back.
                    discard(&tmp, &marker);
                    return Err(match e {
                        FetchError::Io { path, source } => FetchError::Io {
                            path,
                            source: io::Error::new(
                                source.kind(),
                                format!("{source}; the partial download was deleted"),
                            ),
                        },
                        e => e,
                    });
                }
                Err(Attempt::Retry(e)) => {
                    tracing::warn!(url = %redacted(url), attempt, error = %e, "download attempt failed");
                    last = format!("{}: {e}", redacted(url));
                }
                Err(Attempt::NextUrl(e)) => {
                    tracing::warn!(url = %redacted(url), error = %e, "download source failed");
                    last = format!("{}: {e}", redacted(url));
                    continue 'urls;
                }
            }
        }
    }
    let Some(total) = fetched else {
        // Nothing usable arrived: leave no empty sidecars behind (a
        // partial payload stays, with its marker, for a resume).
        if fs::metadata(&tmp).map(|m| m.len() == 0).unwrap_or(true) {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&marker);
        }
        return Err(FetchError::Transfer(last));
    };
    report.verifying();
    let expected = if job.size > 0 {
        job.size
    } else {
        total.unwrap_or(0)
    };
    if let Err(e) = verify_file(&tmp, expected, &job.sha256, cancel.clone()).await {
        if matches!(e, FetchError::Verify(_)) {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&marker);
        }
        return Err(e);
    }
    fs::rename(&tmp, &job.path).map_err(io_err(&job.path))?;
    let _ = fs::remove_file(&marker);
    Ok(())
}

/// How one attempt ended, when not with the whole body on disk.
enum Attempt {
    Cancelled,
    /// Worth another try on the same URL (dropped connection, 5xx).
    Retry(String),
    /// This URL will not work (4xx, bad answer): try the next.
    NextUrl(String),
    /// Local disk trouble: stop, and delete the partial file.
    Io(FetchError),
    /// Refused before writing (no room to start): stop, keeping a partial
    /// file for a later resume.
    Refused(FetchError),
}

/// One ranged (or whole) GET of `url` appended to `tmp`. Returns the full
/// size when the server said it.
async fn transfer(
    client: &reqwest::Client,
    url: &str,
    job: &Job,
    tmp: &Path,
    marker: &Path,
    cancel: &CancellationToken,
    report: &dyn Report,
) -> Result<Option<u64>, Attempt> {
    let tmp_len = fs::metadata(tmp).ok().map(|m| m.len());
    let old = fs::read_to_string(marker).ok();
    let offset = match resume_decision(tmp_len, old.as_deref(), url) {
        Resume::From(n) => n,
        Resume::Fresh => 0,
    };
    if offset == 0 {
        // Starting over: no byte of another source may be continued, even
        // if this attempt fails before the first byte lands.
        match fs::remove_file(tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Attempt::Io(io_err(tmp)(e)))
            }
            _ => {}
        }
    }
    if old.as_deref().map(str::trim) != Some(url) {
        // Name the URL before the first byte lands, so a crash leaves a
        // partial file that only this URL may continue.
        let mut f = open_nofollow(marker, false).map_err(|e| Attempt::Io(io_err(marker)(e)))?;
        f.write_all(url.as_bytes())
            .map_err(|e| Attempt::Io(io_err(marker)(e)))?;
    }
    let mut req = client.get(url);
    if offset > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    let mut resp = tokio::select! {
        _ = cancel.cancelled() => return Err(Attempt::Cancelled),
        r = req.send() => r.map_err(|e| Attempt::Retry(error_chain(&e.without_url())))?,
    };
    let status = resp.status();
    let answer = match status.as_u16() {
        200 => Answer::Whole {
            length: resp.content_length(),
        },
        206 => {
            let cr = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range)
                .ok_or_else(|| Attempt::NextUrl("206 without a valid Content-Range".into()))?;
            Answer::Partial {
                start: cr.0,
                total: cr.1,
            }
        }
        416 if offset > 0 => {
            // Nothing left to send: the partial file may be complete (a
            // stop during verification). `bytes */TOTAL` says.
            let total = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().strip_prefix("bytes */"))
                .and_then(|t| t.trim().parse::<u64>().ok());
            if total == Some(offset) {
                report.transferring(url, offset, Some(offset), offset);
                return Ok(Some(offset));
            }
            // Not a prefix the server recognises: start over.
            let _ = fs::remove_file(tmp);
            return Err(Attempt::Retry(format!(
                "server refused to resume at byte {offset} (416)"
            )));
        }
        s if (500..600).contains(&s) || s == 429 => {
            return Err(Attempt::Retry(format!("HTTP {status}")))
        }
        _ => return Err(Attempt::NextUrl(format!("HTTP {status}"))),
    };
    let (truncate, total) = plan_write(offset, answer).map_err(Attempt::NextUrl)?;
    let known = (job.size > 0).then_some(job.size);
    check_announced(total, known).map_err(Attempt::NextUrl)?;
    let start = if truncate { 0 } else { offset };
    let space_dir = tmp.parent().unwrap_or(Path::new("."));
    // Bytes received but not yet on disk count as needed too (the writer
    // batches), and the check comes often enough that the floor cannot be
    // jumped over between two checks.
    let space = |written: u64| -> Result<(), Attempt> {
        let (free, _) = disk_space(space_dir).map_err(|e| Attempt::Io(io_err(space_dir)(e)))?;
        let on_disk = fs::metadata(tmp).map_or(start, |m| m.len());
        let need = total
            .or(known)
            .map_or(0, |t| t.saturating_sub(written))
            .saturating_add(written.saturating_sub(on_disk));
        check_space(free, need, job.floor).map_err(|why| {
            Attempt::Io(FetchError::NoSpace(format!(
                "{why}; the partial download was deleted"
            )))
        })
    };
    let check_every = (job.floor / 4).clamp(256 << 10, SPACE_CHECK_EVERY);
    let file = open_nofollow(tmp, !truncate).map_err(|e| Attempt::Io(io_err(tmp)(e)))?;
    // No room to start: refused, and a partial that can resume is kept.
    space(start).map_err(|e| match e {
        Attempt::Io(e) => Attempt::Refused(match e {
            FetchError::NoSpace(why) => FetchError::NoSpace(why.replace(
                "; the partial download was deleted",
                "; nothing was downloaded",
            )),
            e => e,
        }),
        e => e,
    })?;
    let mut written = start;
    report.transferring(url, written, total, start);
    let mut writer = Writer::new(file);
    loop {
        let chunk = tokio::select! {
            _ = cancel.cancelled() => {
                writer.finish().await.map_err(|e| Attempt::Io(io_err(tmp)(e)))?;
                return Err(Attempt::Cancelled);
            }
            c = resp.chunk() => c,
        };
        match chunk {
            Ok(Some(bytes)) => {
                let before = written;
                written += bytes.len() as u64;
                if let Some(t) = total.or(known) {
                    if written > t {
                        writer.abandon().await;
                        let _ = fs::remove_file(tmp);
                        return Err(Attempt::NextUrl(format!(
                            "server sent more than the {t} bytes the file has"
                        )));
                    }
                }
                if before / check_every != written / check_every {
                    if let Err(e) = space(written) {
                        // The partial goes (see `fetch`) once nothing is
                        // writing to it, so its space is back when we say so.
                        writer.abandon().await;
                        return Err(e);
                    }
                }
                writer
                    .push(bytes)
                    .await
                    .map_err(|e| Attempt::Io(io_err(tmp)(e)))?;
                report.transferring(url, written, total, start);
            }
            Ok(None) => break,
            Err(e) => {
                writer
                    .finish()
                    .await
                    .map_err(|e| Attempt::Io(io_err(tmp)(e)))?;
                report.transferring(url, written, total, start);
                return Err(Attempt::Retry(format!(
                    "connection lost after {written} bytes: {}",
                    error_chain(&e.without_url())
                )));
            }
        }
    }
    writer
        .finish()
        .await
        .map_err(|e| Attempt::Io(io_err(tmp)(e)))?;
    report.transferring(url, written, total, start);
    match total {
        Some(t) if written < t => Err(Attempt::Retry(format!(
            "connection closed after {written} of {t} bytes"
        ))),
        _ => Ok(Some(written)),
    }
}

/// A URL for logs and messages: no userinfo, no query (signed URLs carry
/// their credentials there).
pub fn redacted(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let tail = if no_query.len() < url.len() {
        "?…"
    } else {
        ""
    };
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            let slash = if rest.contains('/') { "/" } else { "" };
            format!("{scheme}://{host}{slash}{path}{tail}")
        }
        None => format!("{no_query}{tail}"),
    }
}

/// The error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A batch being written: gives back the file.
type PendingWrite = tokio::task::JoinHandle<io::Result<File>>;

/// Gathers body chunks (without copying them) and writes each batch on a
/// blocking thread while the next is received, then asks the kernel to
/// start writing it back, so the fsync before the rename has little left
/// to wait for.
struct Writer {
    file: Option<File>,
    batch: Vec<bytes::Bytes>,
    batch_len: usize,
    pending: Option<PendingWrite>,
}

impl Writer {
    fn new(file: File) -> Self {
        Self {
            file: Some(file),
            batch: Vec::new(),
            batch_len: 0,
            pending: None,
        }
    }

    async fn wait(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.take() {
            self.file = Some(h.await.map_err(io::Error::other)??);
        }
        Ok(())
    }

    async fn push(&mut self, bytes: bytes::Bytes) -> io::Result<()> {
        self.batch_len += bytes.len();
        self.batch.push(bytes);
        if self.batch_len >= WRITE_BATCH {
            self.flush_batch().await?;
        }
        Ok(())
    }

    async fn flush_batch(&mut self) -> io::Result<()> {
        self.wait().await?;
        let Some(mut file) = self.file.take() else {
            return Err(io::Error::other("writer lost its file"));
        };
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            for b in &batch {
                file.write_all(b)?;
            }
            start_writeback(&file);
            Ok(file)
        }));
        Ok(())
    }

    /// Stop: wait for the write under way, drop the rest unwritten.
    async fn abandon(mut self) {
        let _ = self.wait().await;
    }

    async fn finish(mut self) -> io::Result<()> {
        if !self.batch.is_empty() {
            self.flush_batch().await?;
        }
        self.wait().await?;
        if let Some(f) = self.file.take() {
            tokio::task::spawn_blocking(move || f.sync_data())
                .await
                .map_err(io::Error::other)??;
        }
        Ok(())
    }
}

/// Start (not wait for) writeback of the file's dirty pages.
#[cfg(target_os = "linux")]
fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the call's duration; offset 0 and
    // length 0 mean "the whole file"; the flag only initiates writeback.
    unsafe {
        nix::libc::sync_file_range(f.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File) {}

/// Size first (cheap), then SHA-256 (reads the whole file), checking
/// `cancel` between 1 MiB blocks. `size` 0 and empty `sha256` skip their
/// check.
pub async fn verify_file(
    path: &Path,
    size: u64,
    sha256: &str,
    cancel: CancellationToken,
) -> Result<(), FetchError> {
    let len = fs::metadata(path).map_err(io_err(path))?.len();
    if size > 0 && len != size {
        return Err(FetchError::Verify(format!(
            "size mismatch: expected {size} bytes, the file has {len}"
        )));
    }
    if sha256.is_empty() {
        return Ok(());
    }
    let p = path.to_path_buf();
    let got = tokio::task::spawn_blocking(move || sha256_file(&p, &cancel))
        .await
        .map_err(|e| FetchError::Transfer(e.to_string()))?;
    match got {
        Ok(Some(h)) if h == sha256 => Ok(()),
        Ok(Some(h)) => Err(FetchError::Verify(format!(
            "SHA-256 mismatch: expected {sha256}, the file has {h}"
        ))),
        Ok(None) => Err(FetchError::Cancelled),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// SHA-256 of a file as lowercase hex; None when cancelled part-way.
pub fn sha256_file(path: &Path, cancel: &CancellationToken) -> io::Result<Option<String>> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_check_refuses_a_symlink_out_and_creates_nothing_outside() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("models");
        let outside = home.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let err = check_on_disk(&root, &root.join("evil/sub/m.gguf")).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!outside.join("sub").exists());
        // A symlink in place of the partial file is refused too.
        std::os::unix::fs::symlink(outside.join("t"), root.join("m.gguf.tmp")).unwrap();
        assert!(check_on_disk(&root, &root.join("m.gguf")).is_err());
        // A symlink that stays inside is fine, and missing dirs get made.
        fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        check_on_disk(&root, &root.join("alias/x/m.gguf")).unwrap();
        assert!(root.join("real/x").is_dir());
    }

    #[test]
    fn urls_lose_credentials_in_messages() {
        assert_eq!(
            redacted("https://u:p@h.example/m.gguf?X-Amz-Signature=abc"),
            "https://h.example/m.gguf?…"
        );
        assert_eq!(redacted("http://h:8/a/b"), "http://h:8/a/b");
    }

    #[test]
    fn sha256_matches_a_known_vector_and_stops_when_cancelled() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"abc").unwrap();
        let t = CancellationToken::new();
        assert_eq!(
            sha256_file(&p, &t).unwrap().unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        t.cancel();
        assert_eq!(sha256_file(&p, &t).unwrap(), None);
    }
}
