//! Unpacking an app's zip without trusting it. The rule for one entry
//! ([`entry_path`]) is pure: absolute paths, `..`, backslashes, drive
//! letters, symlinks and device files are refused. [`unpack`] applies it
//! to every entry before writing anything, then writes each file with
//! `O_NOFOLLOW | O_EXCL` under a fresh directory, counting the bytes it
//! actually inflates (never the sizes the headers claim) against the
//! limits, so a zip bomb stops at the limit.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// What one zip may hold and unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files, at most.
    pub max_files: usize,
    /// Bytes unpacked, in all.
    pub max_unpacked: u64,
    /// Inflated bytes per compressed byte of one entry above 1 MiB: more
    /// is a bomb, not an app.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_files: 5000,
            max_unpacked: 200 << 20,
            max_ratio: 200,
        }
    }
}

/// Why a zip was refused; nothing it held was kept.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a zip, or a damaged one.
    #[error("not a readable zip file: {0}")]
    NotZip(String),
    /// An entry's name points outside the app's folder.
    #[error("refused: entry {name:?} {why} (nothing was installed)")]
    Entry {
        /// The entry's name as the zip spells it.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Too many files.
    #[error(
        "refused: {files} files is more than the {max} an app may hold (nothing was installed)"
    )]
    TooManyFiles {
        /// In the zip.
        files: usize,
        /// `[apps] max_files`.
        max: usize,
    },
    /// It unpacks to more than allowed, or inflates like a bomb.
    #[error("refused: {0} (nothing was installed)")]
    TooLarge(String),
    /// Writing the files failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What one entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file at this relative path.
    File(PathBuf),
    /// A directory.
    Dir(PathBuf),
    /// Left out: macOS resource forks and Finder files.
    Skip,
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;

/// The rule for one entry, from its raw name, its Unix mode (when the zip
/// was made on Unix) and whether the zip marks it a directory or symlink.
pub fn entry_path(
    raw: &[u8],
    mode: Option<u32>,
    is_dir: bool,
    is_symlink: bool,
) -> Result<Entry, (&'static str, String)> {
    let name = String::from_utf8_lossy(raw).into_owned();
    let refuse = |why: &'static str| Err((why, name.clone()));
    if std::str::from_utf8(raw).is_err() {
        return refuse("has a name that is not UTF-8");
    }
    if raw.contains(&0) {
        return refuse("has a NUL byte in its name");
    }
    if name.contains('\\') {
        return refuse("uses a backslash (a Windows path)");
    }
    if name.starts_with('/') {
        return refuse("is an absolute path");
    }
    if name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic() {
        return refuse("names a drive");
    }
    let kind = mode.map(|m| m & S_IFMT).unwrap_or(0);
    if is_symlink || kind == S_IFLNK {
        return refuse("is a symbolic link");
    }
    if kind != 0 && kind != S_IFREG && kind != S_IFDIR {
        return refuse("is a device, pipe or socket, not a file");
    }
    let mut path = PathBuf::new();
    for c in Path::new(&name).components() {
        match c {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            Component::ParentDir => return refuse("climbs out with '..'"),
            Component::RootDir | Component::Prefix(_) => return refuse("is an absolute path"),
        }
    }
    if path.as_os_str().is_empty() {
        return Ok(Entry::Skip);
    }
    let first = path
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if first == "__MACOSX" || file_name == ".DS_Store" {
        return Ok(Entry::Skip);
    }
    if is_dir || kind == S_IFDIR || name.ends_with('/') {
        Ok(Entry::Dir(path))
    } else {
        Ok(Entry::File(path))
    }
}

/// The one folder every file is under, when there is one (a zip of a
/// folder): it is stripped, so `my-app/index.html` is the app's root.
pub fn common_folder(files: &[PathBuf]) -> Option<PathBuf> {
    let first = files.first()?.components().next()?;
    let all_under = files
        .iter()
        .all(|f| f.components().count() > 1 && f.components().next() == Some(first));
    all_under.then(|| PathBuf::from(first.as_os_str()))
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Files written (relative paths, the common folder stripped).
    pub files: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
}

/// Read one small file from the zip (after the common folder) without
/// unpacking anything: the manifest and package.json, before an id is
/// chosen. None when absent; refused when larger than `max`.
pub fn read_small(zip: &[u8], rel: &str, max: u64) -> Result<Option<Vec<u8>>, ArchiveError> {
    let mut archive = open(zip)?;
    let (entries, strip) = plan(&mut archive)?;
    let want = strip
        .map(|s| s.join(rel))
        .unwrap_or_else(|| PathBuf::from(rel));
    let Some((i, _)) = entries.iter().find(|(_, p)| *p == want) else {
        return Ok(None);
    };
    let f = archive
        .by_index(*i)
        .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
    let mut out = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
    if out.len() as u64 > max {
        return Err(ArchiveError::TooLarge(format!(
            "{rel} is larger than {max} bytes"
        )));
    }
    Ok(Some(out))
}

fn open(zip: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>, ArchiveError> {
    zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(|e| ArchiveError::NotZip(e.to_string()))
}

/// Every entry checked (nothing written yet): the files by index, and the
/// common folder to strip.
#[allow(clippy::type_complexity)]
fn plan(
    archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
) -> Result<(Vec<(usize, PathBuf)>, Option<PathBuf>), ArchiveError> {
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let f = archive
            .by_index_raw(i)
            .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
        if f.encrypted() {
            return Err(ArchiveError::Entry {
                name: f.name().unwrap_or_default().into_owned(),
                why: "is encrypted",
            });
        }
        match entry_path(f.name_raw(), f.unix_mode(), f.is_dir(), f.is_symlink())
            .map_err(|(why, name)| ArchiveError::Entry { name, why })?
        {
            Entry::File(p) => files.push((i, p)),
            Entry::Dir(_) | Entry::Skip => {}
        }
    }
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    Ok((files, common_folder(&paths)))
}

/// Unpack `zip` into `dest` (created here; it must not exist), within
/// `limits`. On any refusal, what was written is left for the caller to
/// delete with `dest`.
pub fn unpack(zip: &[u8], dest: &Path, limits: Limits) -> Result<Unpacked, ArchiveError> {
    let mut archive = open(zip)?;
    let (files, strip) = plan(&mut archive)?;
    if files.len() > limits.max_files {
        return Err(ArchiveError::TooManyFiles {
            files: files.len(),
            max: limits.max_files,
        });
    }
    // The headers' claim first (cheap); the real count is kept below.
    let mut claimed = 0u64;
    for (i, _) in &files {
        if let Ok(f) = archive.by_index_raw(*i) {
            claimed = claimed.saturating_add(f.size());
        }
    }
    if claimed > limits.max_unpacked {
        return Err(ArchiveError::TooLarge(format!(
            "it unpacks to {} MiB, more than the {} MiB an app may take",
            claimed >> 20,
            limits.max_unpacked >> 20
        )));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    std::fs::create_dir_all(dest.parent().unwrap_or(dest)).map_err(io(dest))?;
    std::fs::create_dir(dest).map_err(io(dest))?;
    let mut out = Unpacked::default();
    let mut buf = vec![0u8; 64 << 10];
    for (i, rel) in files {
        let rel = match &strip {
            Some(s) => rel.strip_prefix(s).map(Path::to_path_buf).unwrap_or(rel),
            None => rel,
        };
        let path = dest.join(&rel);
        if let Some(parent) = path.parent() {
            // Every folder under `dest` is made here: none is a link.
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = archive
            .by_index(i)
            .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
        let compressed = f.compressed_size().max(1);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc_nofollow())
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => ArchiveError::Entry {
                    name: rel.display().to_string(),
                    why: "appears twice",
                },
                _ => ArchiveError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        let mut written = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| ArchiveError::NotZip(format!("{}: {e}", rel.display())))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            out.bytes += n as u64;
            if out.bytes > limits.max_unpacked {
                return Err(ArchiveError::TooLarge(format!(
                    "it unpacks to more than the {} MiB an app may take",
                    limits.max_unpacked >> 20
                )));
            }
            if written > (1 << 20) && written / compressed > limits.max_ratio {
                return Err(ArchiveError::TooLarge(format!(
                    "{} inflates more than {}:1 (a zip bomb)",
                    rel.display(),
                    limits.max_ratio
                )));
            }
            file.write_all(&buf[..n]).map_err(io(&path))?;
        }
        out.files.push(rel);
    }
    Ok(out)
}

/// `O_NOFOLLOW`: a file is never opened through a link.
fn libc_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8], Option<u32>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body, mode) in entries {
            let mut o = SimpleFileOptions::default();
            if let Some(m) = mode {
                o = o.unix_permissions(*m);
            }
            w.start_file(*name, o).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn hostile_names_and_kinds_are_refused() {
        let e = |raw: &str| entry_path(raw.as_bytes(), None, false, false);
        for (name, why) in [
            ("/etc/passwd", "absolute"),
            ("../x", "'..'"),
            ("a/../../x", "'..'"),
            ("a\\..\\x", "backslash"),
            ("C:/x", "drive"),
        ] {
            let (w, _) = e(name).unwrap_err();
            assert!(w.contains(why), "{name}: {w}");
        }
        assert!(entry_path(b"a\xff", None, false, false).is_err());
        let (w, _) = entry_path(b"link", Some(0o120777), false, false).unwrap_err();
        assert!(w.contains("symbolic link"));
        let (w, _) = entry_path(b"dev", Some(0o020644), false, false).unwrap_err();
        assert!(w.contains("device"));
        let (w, _) = entry_path(b"fifo", Some(0o010644), false, false).unwrap_err();
        assert!(w.contains("device"));
        assert_eq!(e("./a/./b.txt").unwrap(), Entry::File("a/b.txt".into()));
        assert_eq!(e("src/").unwrap(), Entry::Dir("src".into()));
        assert_eq!(e("__MACOSX/._a").unwrap(), Entry::Skip);
    }

    #[test]
    fn a_zipped_folder_is_its_root() {
        let f = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            common_folder(&f(&["app/index.html", "app/src/a.tsx"])),
            Some(PathBuf::from("app"))
        );
        assert_eq!(common_folder(&f(&["index.html", "src/a.tsx"])), None);
        assert_eq!(common_folder(&f(&["app"])), None);
    }

    #[test]
    fn unpacks_inside_dest_only_and_counts_real_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_of(&[
            ("my-app/index.html", b"<html></html>", Some(0o644)),
            ("my-app/src/main.tsx", b"export {}", None),
        ]);
        let u = unpack(&z, &dir.path().join("a"), Limits::default()).unwrap();
        assert_eq!(
            u.files,
            vec![PathBuf::from("index.html"), PathBuf::from("src/main.tsx")]
        );
        assert_eq!(u.bytes, 22);
        assert!(dir.path().join("a/src/main.tsx").is_file());
        assert_eq!(
            read_small(&z, "index.html", 100).unwrap().as_deref(),
            Some(&b"<html></html>"[..])
        );
        assert!(read_small(&z, "index.html", 3).is_err());
        assert_eq!(read_small(&z, "package.json", 100).unwrap(), None);
    }

    #[test]
    fn traversal_and_links_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_of(&[("ok.txt", b"fine", None), ("../evil.txt", b"x", None)]);
        let e = unpack(&z, &dir.path().join("a"), Limits::default()).unwrap_err();
        assert!(e.to_string().contains("'..'"), "{e}");
        assert!(!dir.path().join("a").exists(), "refused before writing");
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let e = unpack(&z, &dir.path().join("b"), Limits::default()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!dir.path().join("b").exists());
    }

    #[test]
    fn bombs_and_floods_stop_at_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 8 << 20];
        let z = zip_of(&[("zeros.bin", &zeros, None)]);
        assert!(z.len() < 100 << 10, "deflate squeezes zeros");
        let e = unpack(&z, &dir.path().join("a"), Limits::default()).unwrap_err();
        assert!(e.to_string().contains("zip bomb"), "{e}");
        let small = Limits {
            max_unpacked: 1 << 20,
            ..Limits::default()
        };
        let e = unpack(&z, &dir.path().join("b"), small).unwrap_err();
        assert!(e.to_string().contains("MiB"), "{e}");
        let many: Vec<(String, &[u8], Option<u32>)> = (0..12)
            .map(|i| (format!("f{i}"), &b"x"[..], None))
            .collect();
        let many: Vec<(&str, &[u8], Option<u32>)> =
            many.iter().map(|(n, b, m)| (n.as_str(), *b, *m)).collect();
        let few = Limits {
            max_files: 10,
            ..Limits::default()
        };
        let e = unpack(&zip_of(&many), &dir.path().join("c"), few).unwrap_err();
        assert!(
            matches!(e, ArchiveError::TooManyFiles { files: 12, .. }),
            "{e}"
        );
    }
}
