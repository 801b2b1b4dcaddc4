//! The download manager's pure rules (seed 000 §0): where a file may be
//! saved (the sandbox), when a partial file may be resumed, what a task
//! and its files are called, and when progress is worth reporting. No I/O
//! here; `fetch.rs` does the transfers.

use std::path::{Component, Path, PathBuf};

/// Report aggregated progress at most once per this many bytes (seed:
/// "emit progress every 10 MB").
pub const PROGRESS_STEP: u64 = 10 * 1024 * 1024;

/// Suffix of the partial payload beside the final file.
pub const TMP_SUFFIX: &str = ".tmp";
/// Suffix of the marker naming the URL the partial payload came from.
pub const URL_SUFFIX: &str = ".url";

/// Why a download request was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The save path is absolute, escapes models/ or resolves outside it.
    #[error("save path {0:?} is outside of the models directory")]
    OutsideSandbox(String),
    /// The save path names nothing usable.
    #[error("save path {0:?} is not a file name (give --name NAME)")]
    BadName(String),
    /// Not an http(s) URL.
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The hash is not 64 hex digits.
    #[error("--sha256 must be 64 hex digits, not {0:?}")]
    BadSha256(String),
    /// Nothing to download.
    #[error("a download needs at least one file with a URL")]
    Empty,
    /// Two files of one task would land on the same path.
    #[error("two files of the task would both be saved as {0:?}")]
    Duplicate(String),
}

/// Normalize `name` (relative to the models directory) lexically: `.` is
/// dropped, `..` pops a component, and the result must stay inside. Absolute
/// paths, drive prefixes and a `..` that would leave the root are refused.
/// Symlinks are checked on disk afterwards (`fetch::check_on_disk`).
pub fn sandboxed(root: &Path, name: &str) -> Result<PathBuf, RequestError> {
    let outside = || RequestError::OutsideSandbox(name.to_string());
    if name.is_empty() || name.contains('\0') {
        return Err(RequestError::BadName(name.to_string()));
    }
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(outside());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    let Some(last) = parts.last() else {
        return Err(RequestError::BadName(name.to_string()));
    };
    let last = last.to_string_lossy();
    if last.ends_with(TMP_SUFFIX) || last.ends_with(URL_SUFFIX) {
        // Would collide with another download's sidecars.
        return Err(RequestError::BadName(name.to_string()));
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    Ok(out)
}

/// The path with `suffix` appended to its file name (`model.gguf.tmp`).
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// What to do with what a previous attempt left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Start from byte 0 (discarding any partial file).
    Fresh,
    /// Ask for `bytes=N-` and append.
    From(u64),
}

/// Resume only if the partial payload exists, the URL marker exists, and
/// the marker names this very URL (not a mirror's: mixing them could
/// corrupt the file).
pub fn resume_decision(tmp_len: Option<u64>, marker: Option<&str>, url: &str) -> Resume {
    match (tmp_len, marker) {
        (Some(n), Some(m)) if n > 0 && m.trim() == url => Resume::From(n),
        _ => Resume::Fresh,
    }
}

/// A server's answer to a (possibly ranged) GET, reduced to what decides
/// how to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200: the whole file from byte 0 (a server that ignores Range).
    Whole {
        /// Content-Length, when sent.
        length: Option<u64>,
    },
    /// 206 with `Content-Range: bytes start-end/total`.
    Partial {
        /// First byte of the body.
        start: u64,
        /// The file's full size, when the server knows it.
        total: Option<u64>,
    },
}

/// How to write an answer to a request that asked to resume at `offset`
/// (0: asked for everything): (truncate first, full size if known), or an
/// error if the answer does not continue the partial file.
pub fn plan_write(offset: u64, answer: Answer) -> Result<(bool, Option<u64>), String> {
    match answer {
        Answer::Whole { length } => Ok((true, length)),
        Answer::Partial { start, total } if start == offset => Ok((offset == 0, total)),
        Answer::Partial { start, .. } => Err(format!(
            "server resumed at byte {start}, not at {offset} as asked"
        )),
    }
}

/// The free space kept on `$COWORK_HOME`'s filesystem: the configured
/// MiB, else 2 GiB or 5 % of the filesystem, whichever is smaller.
pub fn free_space_floor(configured_mib: Option<u64>, fs_bytes: u64) -> u64 {
    match configured_mib {
        Some(mib) => mib.saturating_mul(1 << 20),
        None => (2u64 << 30).min(fs_bytes / 20),
    }
}

/// Whether `need` more bytes may be written with `free` available, keeping
/// `floor` free; the refusal names all three.
pub fn check_space(free: u64, need: u64, floor: u64) -> Result<(), String> {
    if free >= need.saturating_add(floor) {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    Err(format!(
        "not enough disk space: {:.1} MiB free, {:.1} MiB more needed, and {:.1} MiB are kept \
         free ([agents] free_space_floor_mib)",
        mib(free),
        mib(need),
        mib(floor)
    ))
}

/// Refuse an answer whose announced size is larger than the size the file
/// is known to have (a huge `Content-Length` must not be written).
pub fn check_announced(total: Option<u64>, known: Option<u64>) -> Result<(), String> {
    match (total, known) {
        (Some(t), Some(k)) if t > k => Err(format!(
            "the server announces {t} bytes, but the file is known to be {k} bytes"
        )),
        _ => Ok(()),
    }
}

/// Parse `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
pub fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// The file name a URL suggests: its last path segment, without query
/// or fragment (kept as sent: percent-escapes are not decoded).
pub fn name_from_url(url: &str) -> Option<String> {
    let no_query = url.split(['?', '#']).next()?;
    let (_, path) = no_query.split_once("://")?.1.split_once('/')?;
    match path.rsplit('/').next()? {
        "" | "." | ".." => None,
        last => Some(last.to_string()),
    }
}

/// Check a URL's scheme (only http and https are fetched).
pub fn check_url(url: &str) -> Result<(), RequestError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(RequestError::BadUrl(url.to_string())),
    }
}

/// Normalize an expected SHA-256 to lowercase hex (empty stays empty).
pub fn check_sha256(hex: &str) -> Result<String, RequestError> {
    let h = hex.trim().to_ascii_lowercase();
    if h.is_empty() {
        return Ok(h);
    }
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h)
    } else {
        Err(RequestError::BadSha256(hex.to_string()))
    }
}

/// One file of a validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// URLs in the order they are tried.
    pub urls: Vec<String>,
    /// Name relative to the models directory, as normalized.
    pub name: String,
    /// Final path (inside the models directory, lexically).
    pub path: PathBuf,
    /// Expected SHA-256 (lowercase hex), or empty.
    pub sha256: String,
    /// Expected size, or 0.
    pub size: u64,
}

/// A raw file request: URLs, wanted name, hash, size.
#[derive(Debug, Clone, Default)]
pub struct FileRequest {
    /// URLs in order.
    pub urls: Vec<String>,
    /// Wanted name (empty: from the first URL).
    pub name: String,
    /// Expected SHA-256.
    pub sha256: String,
    /// Expected size.
    pub size: u64,
}

/// Validate a whole task: every URL, every name inside the sandbox, no two
/// files on one path. Returns the task id (given, or the first file's
/// name) and the files.
pub fn validate(
    root: &Path,
    id: &str,
    files: &[FileRequest],
) -> Result<(String, Vec<FileSpec>), RequestError> {
    if files.is_empty() || files.iter().any(|f| f.urls.is_empty()) {
        return Err(RequestError::Empty);
    }
    let mut out: Vec<FileSpec> = Vec::new();
    for f in files {
        for u in &f.urls {
            check_url(u)?;
        }
        let name = if f.name.trim().is_empty() {
            name_from_url(&f.urls[0]).ok_or_else(|| RequestError::BadName(f.urls[0].clone()))?
        } else {
            f.name.clone()
        };
        let path = sandboxed(root, &name)?;
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| RequestError::OutsideSandbox(name.clone()))?;
        if out.iter().any(|o| o.path == path) {
            return Err(RequestError::Duplicate(rel));
        }
        out.push(FileSpec {
            urls: f.urls.clone(),
            name: rel,
            path,
            sha256: check_sha256(&f.sha256)?,
            size: f.size,
        });
    }
    let id = match id.trim() {
        "" => out[0].name.clone(),
        s => s.to_string(),
    };
    Ok((id, out))
}

/// Aggregated progress over a task's files, reporting at most once per
/// [`PROGRESS_STEP`] of new bytes (plus whenever the caller forces it).
#[derive(Debug, Clone)]
pub struct Progress {
    done: Vec<u64>,
    total: Vec<Option<u64>>,
    last_reported: u64,
}

impl Progress {
    /// Progress for `n` files, nothing transferred.
    pub fn new(n: usize) -> Self {
        Self {
            done: vec![0; n],
            total: vec![None; n],
            last_reported: 0,
        }
    }

    /// Set file `i`'s size when it becomes known.
    pub fn set_total(&mut self, i: usize, total: Option<u64>) {
        if let Some(t) = self.total.get_mut(i) {
            *t = total;
        }
    }

    /// File `i` now has `bytes` on disk. True when the aggregate moved by a
    /// step since the last report (and it is now reported).
    pub fn update(&mut self, i: usize, bytes: u64) -> bool {
        if let Some(d) = self.done.get_mut(i) {
            *d = bytes;
        }
        let sum = self.downloaded();
        if sum >= self.last_reported.saturating_add(PROGRESS_STEP) || sum < self.last_reported {
            self.last_reported = sum;
            true
        } else {
            false
        }
    }

    /// Mark the current aggregate as reported.
    pub fn reported(&mut self) {
        self.last_reported = self.downloaded();
    }

    /// Bytes over all files.
    pub fn downloaded(&self) -> u64 {
        self.done.iter().sum()
    }

    /// Sum of sizes, when every file's is known.
    pub fn total(&self) -> Option<u64> {
        self.total.iter().copied().sum()
    }

    /// File `i`'s bytes.
    pub fn file(&self, i: usize) -> (u64, Option<u64>) {
        (
            self.done.get(i).copied().unwrap_or(0),
            self.total.get(i).copied().flatten(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_space_floor_and_the_size_checks() {
        const GIB: u64 = 1 << 30;
        assert_eq!(free_space_floor(None, 1000 * GIB), 2 * GIB);
        assert_eq!(free_space_floor(None, 20 * GIB), GIB);
        assert_eq!(free_space_floor(None, 64 << 20), (64 << 20) / 20);
        assert_eq!(free_space_floor(Some(0), 1000 * GIB), 0);
        assert_eq!(free_space_floor(Some(512), 1000 * GIB), 512 << 20);
        assert!(check_space(10 * GIB, GIB, 2 * GIB).is_ok());
        let e = check_space(2 * GIB, GIB, 2 * GIB).unwrap_err();
        assert!(
            e.contains("2048.0 MiB free") && e.contains("free_space_floor_mib"),
            "{e}"
        );
        assert!(check_announced(Some(10), Some(10)).is_ok());
        assert!(check_announced(None, Some(10)).is_ok());
        assert!(check_announced(Some(1 << 40), None).is_ok());
        assert!(check_announced(Some(1 << 40), Some(10))
            .unwrap_err()
            .contains("known to be 10 bytes"));
    }

    #[test]
    fn sandbox_refuses_escapes_and_absolute_paths() {
        let root = Path::new("/home/p/.cowork/models");
        assert_eq!(
            sandboxed(root, "a/./b/../model.gguf").unwrap(),
            root.join("a/model.gguf")
        );
        for bad in ["../../x", "/etc/passwd", "a/../../x", "..", "a/../.."] {
            assert!(
                matches!(sandboxed(root, bad), Err(RequestError::OutsideSandbox(_))),
                "{bad}"
            );
        }
        for bad in ["", ".", "a/..", "m.gguf.tmp", "m.gguf.url"] {
            assert!(
                matches!(sandboxed(root, bad), Err(RequestError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn resume_only_with_both_sidecars_and_the_same_url() {
        let u = "http://127.0.0.1:1/m.gguf";
        assert_eq!(resume_decision(Some(10), Some(u), u), Resume::From(10));
        assert_eq!(
            resume_decision(Some(10), Some(&format!("{u}\n")), u),
            Resume::From(10)
        );
        assert_eq!(resume_decision(Some(10), None, u), Resume::Fresh);
        assert_eq!(resume_decision(None, Some(u), u), Resume::Fresh);
        assert_eq!(resume_decision(Some(0), Some(u), u), Resume::Fresh);
        assert_eq!(
            resume_decision(Some(10), Some("http://mirror/m.gguf"), u),
            Resume::Fresh
        );
    }

    #[test]
    fn answers_decide_truncation_and_size() {
        assert_eq!(
            plan_write(0, Answer::Whole { length: Some(5) }),
            Ok((true, Some(5)))
        );
        // A server that ignores Range: start again.
        assert_eq!(
            plan_write(7, Answer::Whole { length: None }),
            Ok((true, None))
        );
        assert_eq!(
            plan_write(
                7,
                Answer::Partial {
                    start: 7,
                    total: Some(9)
                }
            ),
            Ok((false, Some(9)))
        );
        assert!(plan_write(
            7,
            Answer::Partial {
                start: 3,
                total: None
            }
        )
        .is_err());
        assert_eq!(parse_content_range("bytes 7-8/9"), Some((7, Some(9))));
        assert_eq!(parse_content_range("bytes 7-8/*"), Some((7, None)));
        assert_eq!(parse_content_range("items 7-8/9"), None);
        assert_eq!(parse_content_range("bytes x-8/9"), None);
    }

    #[test]
    fn names_urls_and_hashes() {
        assert_eq!(
            name_from_url("https://h/org/repo/resolve/main/m-Q4.gguf?download=1").as_deref(),
            Some("m-Q4.gguf")
        );
        assert_eq!(name_from_url("https://h/"), None);
        assert_eq!(name_from_url("https://h"), None);
        assert!(check_url("ftp://h/x").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("http:///x").is_err());
        assert!(check_url("HTTPS://h/x").is_ok());
        assert_eq!(check_sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(check_sha256("abc").is_err());
        assert!(check_sha256(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn validate_names_ids_and_duplicates() {
        let root = Path::new("/m");
        let f = |u: &str, n: &str| FileRequest {
            urls: vec![u.into()],
            name: n.into(),
            ..Default::default()
        };
        let (id, files) = validate(
            root,
            "",
            &[f("http://h/a.gguf", ""), f("http://h/b", "x/b.bin")],
        )
        .unwrap();
        assert_eq!(id, "a.gguf");
        assert_eq!(files[1].name, "x/b.bin");
        assert_eq!(files[1].path, root.join("x/b.bin"));
        assert!(matches!(
            validate(root, "t", &[f("http://h/a", "z"), f("http://h/b", "./z")]),
            Err(RequestError::Duplicate(_))
        ));
        assert!(matches!(
            validate(root, "t", &[f("http://h/a", "../z")]),
            Err(RequestError::OutsideSandbox(_))
        ));
        assert_eq!(validate(root, "t", &[]), Err(RequestError::Empty));
    }

    #[test]
    fn progress_reports_every_ten_megabytes_over_all_files() {
        let mut p = Progress::new(2);
        p.set_total(0, Some(30 * PROGRESS_STEP));
        assert_eq!(p.total(), None);
        p.set_total(1, Some(PROGRESS_STEP));
        assert_eq!(p.total(), Some(31 * PROGRESS_STEP));
        let mut reports = 0;
        // 1 MiB chunks on both files, interleaved.
        for k in 1..=20u64 {
            if p.update(0, k * 1024 * 1024) {
                reports += 1;
            }
            if p.update(1, (k * 512 * 1024).min(PROGRESS_STEP)) {
                reports += 1;
            }
        }
        // 1.5 MiB per round, 30 MiB in all: reported at 10.5 and 21 MiB,
        // and not again until 31.
        assert_eq!(p.downloaded(), 30 * 1024 * 1024);
        assert_eq!(reports, 2);
        // A restart of a file (truncated by the server) is reported.
        assert!(p.update(0, 0));
    }
}
