//! The audio folder's housekeeping: what a crash left behind, and files
//! past their retention. Works from the file names alone
//! ([`SegmentName`]), so it needs no database.

use super::{AudioSegmentRow, SegmentName};
use std::path::Path;

/// At start: remove half-written `seg-….tmp` files, and return a row for
/// every segment file (those whose row a crash lost are recorded again;
/// the store ignores the ones it has). Anything else is left alone.
pub fn recover(dir: &Path) -> std::io::Result<Vec<AudioSegmentRow>> {
    let mut rows = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rows),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        if name.starts_with("seg-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if let Some(n) = SegmentName::parse(name) {
            rows.push(AudioSegmentRow {
                file: name.to_owned(),
                started_ms: n.started_ms,
                ended_ms: n.ended_ms,
                // 16-bit mono after a 44-byte header.
                samples: meta.len().saturating_sub(44) / 2,
                speech_ms: 0,
                peak_db: 0,
                source: "recovered",
            });
        }
    }
    rows.sort_by_key(|r| r.started_ms);
    Ok(rows)
}

/// Delete segment files that ended before `cutoff_ms`: the files deleted.
pub fn expire(dir: &Path, cutoff_ms: i64) -> std::io::Result<usize> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(seg) = name.to_str().and_then(SegmentName::parse) else {
            continue;
        };
        if seg.ended_ms < cutoff_ms && std::fs::remove_file(entry.path()).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_segments_removes_half_files_and_expires_old_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("seg-1000-2000.wav"), vec![0u8; 44 + 32_000]).unwrap();
        std::fs::write(p.join("seg-5000-6000.wav"), vec![0u8; 44 + 3200]).unwrap();
        std::fs::write(p.join("seg-7000-8000.wav.tmp"), b"half").unwrap();
        std::fs::write(p.join("notes.txt"), b"mine").unwrap();
        let rows = recover(p).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].file, "seg-1000-2000.wav");
        assert_eq!(rows[0].samples, 16_000);
        assert_eq!(rows[0].source, "recovered");
        assert!(!p.join("seg-7000-8000.wav.tmp").exists());
        assert!(p.join("notes.txt").exists());
        assert_eq!(expire(p, 3000).unwrap(), 1);
        assert!(!p.join("seg-1000-2000.wav").exists());
        assert!(p.join("seg-5000-6000.wav").exists());
        assert!(recover(&p.join("none")).unwrap().is_empty());
    }
}
