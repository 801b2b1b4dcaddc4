//! The `llama-server` command line of one session: a pure function from
//! settings to argv, the same settings always giving the same argv.
//!
//! The server listens on 127.0.0.1 only, on the port we chose, and takes
//! its API key from the environment ([`API_KEY_ENV`]), never from argv
//! (argv is readable by every local user). Extra arguments from config
//! may tune the server but not move it off loopback, change its port or
//! key, or load another model.

use super::Mode;
use std::path::PathBuf;

/// The environment variable llama-server reads its API key from.
pub const API_KEY_ENV: &str = "LLAMA_API_KEY";

/// Options [`build`] sets itself, which extra arguments may not repeat.
const OURS: &[&str] = &[
    "--host",
    "--port",
    "--api-key",
    "--api-key-file",
    "-m",
    "--model",
    "-mu",
    "--model-url",
    "-hf",
    "-hfr",
    "--hf-repo",
    "--alias",
    "-a",
    "-c",
    "--ctx-size",
    "--embedding",
    "--embeddings",
    "--embd-normalize",
];

/// One session's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The GGUF file.
    pub model: PathBuf,
    /// The model name the server answers to (`/v1/models`).
    pub alias: String,
    /// Loopback port.
    pub port: u16,
    /// Context size in tokens (the one agreed for this model).
    pub ctx: u32,
    /// Chat or embeddings.
    pub mode: Mode,
    /// Layers on the GPU (unset: the server's default).
    pub gpu_layers: Option<u32>,
    /// CPU threads (unset: the server's default).
    pub threads: Option<u32>,
    /// A built-in chat template to use (the GGUF has none of its own).
    pub chat_template: Option<String>,
    /// `[agents.llama] extra_args`.
    pub extra_args: Vec<String>,
}

/// Why no command line could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An extra argument would override what a session must be.
    #[error("[agents.llama] extra_args may not set {0}: Cowork sets it for each session")]
    Reserved(String),
    /// Nonsense settings.
    #[error("{0}")]
    Invalid(String),
}

/// The argv (program first) of `server` for `spec`.
pub fn build(server: &str, spec: &Spec) -> Result<Vec<String>, ArgsError> {
    if spec.port == 0 {
        return Err(ArgsError::Invalid("a session needs a port".into()));
    }
    if spec.ctx == 0 {
        return Err(ArgsError::Invalid("a session needs a context size".into()));
    }
    if spec.alias.trim().is_empty() {
        return Err(ArgsError::Invalid("a session needs a model name".into()));
    }
    for a in &spec.extra_args {
        let flag = a.split('=').next().unwrap_or(a);
        if OURS.contains(&flag) {
            return Err(ArgsError::Reserved(flag.to_owned()));
        }
    }
    let mut argv = vec![
        server.to_owned(),
        "--model".into(),
        spec.model.display().to_string(),
        "--alias".into(),
        spec.alias.clone(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        spec.port.to_string(),
        "--ctx-size".into(),
        spec.ctx.to_string(),
    ];
    if spec.mode == Mode::Embedding {
        // Unit-length vectors (L2), stated rather than left to the build's
        // default: cosine becomes a dot product for every consumer.
        argv.extend(["--embedding".into(), "--embd-normalize".into(), "2".into()]);
    }
    if let Some(n) = spec.gpu_layers {
        argv.extend(["--n-gpu-layers".into(), n.to_string()]);
    }
    if let Some(n) = spec.threads {
        argv.extend(["--threads".into(), n.to_string()]);
    }
    let own_template = spec.extra_args.iter().any(|a| {
        let flag = a.split('=').next().unwrap_or(a);
        matches!(flag, "--chat-template" | "--chat-template-file")
    });
    if let (Some(t), false, Mode::Chat) = (&spec.chat_template, own_template, spec.mode) {
        // A built-in template's name is a template only on the non-Jinja
        // path: with Jinja (the default) llama-server takes "gemma" for
        // the template's text, and the model is given the word "gemma"
        // instead of the conversation.
        argv.extend(["--chat-template".into(), t.clone(), "--no-jinja".into()]);
    }
    argv.extend(spec.extra_args.iter().cloned());
    Ok(argv)
}

/// The built-in llama.cpp chat template for a model whose GGUF carries
/// none (`tokenizer.chat_template` absent): without one llama-server
/// falls back to ChatML, which Gemma answers by echoing the prompt. None:
/// the model's own template (or llama-server's choice) stands.
pub fn fallback_template(architecture: &str, has_own: bool) -> Option<&'static str> {
    if has_own {
        return None;
    }
    let a = architecture.to_ascii_lowercase();
    if a.starts_with("gemma") {
        Some("gemma")
    } else if a.starts_with("phi3") {
        Some("phi3")
    } else {
        None
    }
}

/// The environment a `llama-server` starts with (after clearing ours):
/// the common allow-list ([`crate::util::inherited_env`]) and what its GPU
/// backends read (`CUDA_*`, `HIP_*`, `ROCR_*`, `GGML_*`, `VK_*`,
/// `LD_LIBRARY_PATH`). Never agents-agent's cloud keys; its own key is
/// added as [`API_KEY_ENV`].
pub fn child_env(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    crate::util::inherited_env(vars, |k| {
        k == "LD_LIBRARY_PATH"
            || ["CUDA_", "HIP_", "ROCR_", "GGML_", "VK_"]
                .iter()
                .any(|p| k.starts_with(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            model: PathBuf::from("/m/gemma-3-270m.gguf"),
            alias: "gemma-3-270m".into(),
            port: 41000,
            ctx: 4096,
            mode: Mode::Chat,
            gpu_layers: None,
            threads: None,
            chat_template: None,
            extra_args: Vec::new(),
        }
    }

    #[test]
    fn a_model_without_a_template_gets_its_family_s() {
        assert_eq!(fallback_template("gemma3", false), Some("gemma"));
        assert_eq!(fallback_template("gemma3", true), None);
        assert_eq!(fallback_template("llama", false), None);
        let s = Spec {
            chat_template: Some("gemma".into()),
            ..spec()
        };
        assert!(build("llama-server", &s)
            .unwrap()
            .join(" ")
            .ends_with("--ctx-size 4096 --chat-template gemma --no-jinja"));
        let theirs = Spec {
            extra_args: vec!["--chat-template=chatml".into()],
            ..s.clone()
        };
        let argv = build("llama-server", &theirs).unwrap();
        assert_eq!(
            argv.iter().filter(|a| a.contains("chat-template")).count(),
            1
        );
        let embedding = Spec {
            mode: Mode::Embedding,
            ..s
        };
        assert!(!build("llama-server", &embedding)
            .unwrap()
            .contains(&"--chat-template".to_string()));
    }

    #[test]
    fn the_same_settings_give_the_same_argv() {
        let base = "llama-server --model /m/gemma-3-270m.gguf --alias gemma-3-270m \
                    --host 127.0.0.1 --port 41000 --ctx-size 4096";
        let cases: Vec<(Spec, String)> = vec![
            (spec(), base.into()),
            (
                Spec {
                    mode: Mode::Embedding,
                    ..spec()
                },
                format!("{base} --embedding --embd-normalize 2"),
            ),
            (
                Spec {
                    gpu_layers: Some(99),
                    threads: Some(4),
                    extra_args: vec!["--no-webui".into(), "--parallel".into(), "2".into()],
                    ..spec()
                },
                format!("{base} --n-gpu-layers 99 --threads 4 --no-webui --parallel 2"),
            ),
        ];
        for (s, want) in cases {
            let got = build("llama-server", &s).unwrap();
            assert_eq!(got.join(" "), want);
            assert_eq!(build("llama-server", &s).unwrap(), got, "deterministic");
        }
    }

    #[test]
    fn extra_args_cannot_move_the_server_or_carry_a_key() {
        for bad in [
            "--host",
            "--host=0.0.0.0",
            "--port",
            "--api-key",
            "--api-key-file",
            "-m",
            "--model",
            "-hf",
            "--ctx-size",
            "--embedding",
            "--embd-normalize",
        ] {
            let s = Spec {
                extra_args: vec![bad.into(), "x".into()],
                ..spec()
            };
            let e = build("llama-server", &s).unwrap_err();
            assert!(matches!(e, ArgsError::Reserved(_)), "{bad}: {e}");
        }
        // Nothing on argv is the key: it travels in the environment.
        let argv = build("llama-server", &spec()).unwrap();
        assert!(!argv.iter().any(|a| a.contains("api-key")));
    }

    #[test]
    fn the_server_sees_no_credential_of_ours() {
        let vars = [
            "PATH",
            "HOME",
            "CUDA_VISIBLE_DEVICES",
            "GGML_VK_DEVICE",
            "GEMINI_API_KEY",
            "OPENROUTER_API_KEY",
            "LLAMA_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
        ]
        .map(|k| (k.into(), "v".into()));
        let kept: Vec<String> = child_env(vars)
            .into_iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            kept,
            ["PATH", "HOME", "CUDA_VISIBLE_DEVICES", "GGML_VK_DEVICE"]
        );
    }

    #[test]
    fn nonsense_settings_are_refused() {
        for s in [
            Spec { port: 0, ..spec() },
            Spec { ctx: 0, ..spec() },
            Spec {
                alias: " ".into(),
                ..spec()
            },
        ] {
            assert!(matches!(
                build("llama-server", &s),
                Err(ArgsError::Invalid(_))
            ));
        }
    }
}
