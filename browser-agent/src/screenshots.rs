//! The screenshots of the execution log, kept as files named by their
//! SHA-256 (`$COWORK_HOME/browser-screenshots/<sha>.png`, the hash the log
//! row holds), within a size cap: the oldest go first.

use std::path::{Path, PathBuf};

/// The bytes of screenshots kept (the oldest beyond it are deleted).
pub const CAP_BYTES: u64 = 256 << 20;

/// Why a screenshot cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    /// Not 64 lowercase hex digits: never a file name here.
    #[error("{0:?} is not a screenshot's SHA-256 (64 hex digits)")]
    BadHash(String),
    /// Not kept (never taken, or deleted under the size cap).
    #[error("no screenshot {0} is kept (the oldest are deleted beyond {cap} MB)", cap = CAP_BYTES >> 20)]
    NotKept(String),
    /// The file could not be read or written.
    #[error("screenshot file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The screenshot files of one home.
#[derive(Debug, Clone)]
pub struct Screenshots {
    dir: PathBuf,
    cap: u64,
}

impl Screenshots {
    /// The store in `dir`, keeping at most `cap` bytes.
    pub fn new(dir: PathBuf, cap: u64) -> Self {
        Self { dir, cap }
    }

    fn path(&self, sha: &str) -> Result<PathBuf, ScreenshotError> {
        if sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(self.dir.join(format!("{sha}.png")))
        } else {
            Err(ScreenshotError::BadHash(sha.chars().take(80).collect()))
        }
    }

    /// Keep `png` under `sha` (written whole, then renamed), then delete
    /// the oldest beyond the cap.
    pub fn save(&self, sha: &str, png: &[u8]) -> Result<(), ScreenshotError> {
        let path = self.path(sha)?;
        let io = |source| ScreenshotError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        cowork_proto::files::write_atomically(&path, png, 0o600).map_err(io)?;
        self.prune(&path);
        Ok(())
    }

    /// The PNG kept under `sha`.
    pub fn load(&self, sha: &str) -> Result<Vec<u8>, ScreenshotError> {
        let path = self.path(sha)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ScreenshotError::NotKept(sha.to_owned()))
            }
            Err(source) => Err(ScreenshotError::Io { path, source }),
        }
    }

    /// Delete the oldest files until the rest fit the cap (never `keep`,
    /// the one just written), and what a crash left half-written.
    fn prune(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let m = e.metadata().ok()?;
                let p = e.path();
                if p.extension()? == "tmp" {
                    let stale =
                        m.modified().ok()?.elapsed().ok()? > std::time::Duration::from_secs(60);
                    if stale {
                        let _ = std::fs::remove_file(&p);
                    }
                    return None;
                }
                if p.extension()? != "png" {
                    return None;
                }
                Some((m.modified().ok()?, m.len(), p))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, p) in files {
            if total <= self.cap {
                break;
            }
            if p != keep && std::fs::remove_file(&p).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    #[test]
    fn kept_by_hash_within_the_cap_and_no_other_name_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = Screenshots::new(dir.path().join("shots"), 25);
        s.save(&sha(1), &[1; 10]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.save(&sha(2), &[2; 10]).unwrap();
        assert_eq!(s.load(&sha(1)).unwrap(), vec![1; 10]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 30 bytes > 25: the oldest goes, the newest stays.
        s.save(&sha(3), &[3; 10]).unwrap();
        assert!(matches!(s.load(&sha(1)), Err(ScreenshotError::NotKept(_))));
        assert_eq!(s.load(&sha(3)).unwrap(), vec![3; 10]);
        for bad in [
            "../../etc/passwd",
            "",
            &sha(0xab).to_uppercase(),
            &format!("{}x", &sha(1)[1..]),
        ] {
            assert!(
                matches!(s.load(bad), Err(ScreenshotError::BadHash(_))),
                "{bad}"
            );
            assert!(s.save(bad, b"x").is_err());
        }
    }
}
