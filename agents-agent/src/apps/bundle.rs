//! The bundle step (seed 003: "esbuild bundle: TSX/TS → single JS output,
//! all deps resolved"). Pure: which script is the entry (index.html's
//! module script, else a conventional file), and index.html rewritten to
//! load the bundle (its import map dropped: every import is resolved at
//! install, offline). Runtime: [`run`] starts esbuild with the shared
//! `node_modules` on `NODE_PATH`, under a timeout, and returns its error
//! lines when it fails.

use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Where the compatibility rules are (shown with every bundling failure).
pub const RULES: &str = "docs/apps.md#compatibility (in the Cowork repository)";
/// The bundle's file names, at the app's root.
pub const SCRIPT: &str = "app.js";
/// The bundle's styles, when its sources import CSS.
pub const STYLES: &str = "app.css";

/// Files tried as the entry when there is no index.html to name one.
const ENTRIES: &[&str] = &[
    "index.tsx",
    "index.ts",
    "index.jsx",
    "index.js",
    "src/main.tsx",
    "src/index.tsx",
    "src/main.ts",
    "src/index.ts",
    "src/main.jsx",
    "src/index.jsx",
];
/// Sources esbuild compiles (never served as they are).
const SOURCES: &[&str] = &["ts", "tsx", "jsx", "mts", "cts"];

static SCRIPT_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<script\b([^>]*)>(.*?)</script\s*>").expect("a fixed pattern")
});
static ATTR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)\b(type|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))"#)
        .expect("a fixed pattern")
});

/// What to build and serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The entry script, relative to the app's root (None: nothing to
    /// bundle, a plain page).
    pub entry: Option<PathBuf>,
    /// index.html as served (before the SDK is put in at serve time).
    pub html: String,
}

/// Why an app cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Nothing to open.
    #[error("the zip has no index.html and no index.tsx, src/main.tsx or similar: nothing to open (see {RULES})")]
    NoEntry,
    /// index.html names a script the zip does not hold, or one outside it.
    #[error("index.html loads {0:?}, which the zip does not hold (see {RULES})")]
    MissingEntry(String),
    /// The bundler is not installed.
    #[error(
        "the bundler is missing: {0} (scripts/start.sh installs esbuild; or set [apps] esbuild)"
    )]
    NoBundler(String),
    /// esbuild failed: its own words.
    #[error("bundling failed; nothing was installed. esbuild said:\n{0}\nSee the compatibility rules: {RULES}")]
    Failed(String),
    /// esbuild took too long.
    #[error("bundling took longer than {0:?}; nothing was installed")]
    Timeout(Duration),
    /// The sources import a file outside the app and the shared runtime.
    #[error("refused: the app imports {0}, outside its own files and the shared packages; nothing was installed (see {RULES})")]
    Outside(String),
    /// index.html runs an inline module script (the CSP would block it).
    #[error("index.html has an inline module script: move it into a file and load it with src (see {RULES})")]
    InlineModule,
    /// Files could not be read or written.
    #[error("{0}")]
    Io(String),
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    ATTR.captures_iter(attrs).find_map(|c| {
        c.get(1)
            .filter(|m| m.as_str().eq_ignore_ascii_case(name))
            .and_then(|_| c.get(2).or(c.get(3)).or(c.get(4)))
            .map(|m| m.as_str().to_owned())
    })
}

/// A local script's path under the root, from a `src` attribute ("/x",
/// "./x" or "x"); None for a URL or a path that climbs out.
fn local(src: &str) -> Option<PathBuf> {
    if src.contains("://") || src.starts_with("//") || src.starts_with("data:") {
        return None;
    }
    let p = src.split(['?', '#']).next().unwrap_or("");
    let p = p.trim_start_matches('/');
    let p = p.strip_prefix("./").unwrap_or(p);
    let path = PathBuf::from(p);
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then_some(path)
        .filter(|p| !p.as_os_str().is_empty())
}

/// Plan the build from the unpacked files: index.html's first local
/// module script is the entry and is replaced by the bundle; import maps
/// go (their URLs were the CDN's); a page with no module script is served
/// as it is. Without index.html, a conventional entry gets a page made
/// for it.
pub fn plan(files: &[PathBuf], index_html: Option<&str>, title: &str) -> Result<Plan, BundleError> {
    let has = |p: &Path| files.iter().any(|f| f == p);
    let Some(html) = index_html else {
        let entry = ENTRIES
            .iter()
            .map(PathBuf::from)
            .find(|p| has(p))
            .ok_or(BundleError::NoEntry)?;
        let title = escape(title);
        return Ok(Plan {
            entry: Some(entry),
            html: format!(
                "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>{title}</title></head>\n<body><div id=\"root\"></div>\
                 <script type=\"module\" src=\"/{SCRIPT}\"></script></body></html>\n"
            ),
        });
    };
    let mut entry = None;
    let mut missing = None;
    let mut inline = false;
    let out = SCRIPT_TAG.replace_all(html, |c: &regex::Captures<'_>| {
        let attrs = c.get(1).map_or("", |m| m.as_str());
        let kind = attr(attrs, "type").unwrap_or_default().to_ascii_lowercase();
        if kind == "importmap" {
            return String::new();
        }
        if kind == "module" && entry.is_none() {
            if attr(attrs, "src").is_none() {
                inline = true;
            }
            if let Some(p) = attr(attrs, "src").as_deref().and_then(local) {
                if has(&p) {
                    entry = Some(p);
                    return format!("<script type=\"module\" src=\"/{SCRIPT}\"></script>");
                }
                missing.get_or_insert_with(|| p.display().to_string());
            }
        }
        c[0].to_owned()
    });
    if entry.is_none() {
        if let Some(m) = missing {
            return Err(BundleError::MissingEntry(m));
        }
        if inline {
            return Err(BundleError::InlineModule);
        }
    }
    Ok(Plan {
        entry,
        html: out.into_owned(),
    })
}

/// index.html with the bundle's styles linked (when esbuild wrote some).
pub fn link_styles(html: &str) -> String {
    let link = format!("<link rel=\"stylesheet\" href=\"/{STYLES}\">");
    match html.to_ascii_lowercase().find("</head>") {
        Some(i) => format!("{}{link}{}", &html[..i], &html[i..]),
        None => format!("{link}\n{html}"),
    }
}

/// Whether a file is served as it is (sources, package files, env files
/// and node_modules never are).
pub fn is_served_asset(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let ext = rel
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !(s.starts_with("node_modules/")
        || s.contains("/node_modules/")
        || rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        || name.starts_with("package")
        || name.starts_with("tsconfig")
        || name.starts_with("vite.config")
        || name == "cowork.manifest.json"
        || s == "index.html"
        || SOURCES.contains(&ext.as_str()))
}

/// Where a served asset goes: Vite's `public/` folder is the site's root.
pub fn served_path(rel: &Path) -> PathBuf {
    rel.strip_prefix("public")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| rel.to_path_buf())
}

/// The values an AI Studio export reads from `process.env` (Vite defines
/// them from `.env.local`): its own Gemini key, or "" when it brings none.
pub fn env_defines(env_file: Option<&str>) -> Vec<(String, String)> {
    let mut key = String::new();
    for line in env_file.unwrap_or("").lines() {
        if let Some((k, v)) = line.split_once('=') {
            if matches!(k.trim(), "GEMINI_API_KEY" | "API_KEY") {
                key = v.trim().trim_matches('"').trim_matches('\'').to_owned();
            }
        }
    }
    let json = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    vec![
        ("process.env.NODE_ENV".into(), json("production")),
        ("process.env.API_KEY".into(), json(&key)),
        ("process.env.GEMINI_API_KEY".into(), json(&key)),
    ]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// esbuild's arguments for `entry` (relative to the source folder, its
/// working directory) into `out`.
pub fn esbuild_args(
    entry: &Path,
    out: &Path,
    meta: &Path,
    defines: &[(String, String)],
) -> Vec<String> {
    let mut a = vec![
        entry.display().to_string(),
        "--bundle".into(),
        "--format=esm".into(),
        "--platform=browser".into(),
        "--target=es2020".into(),
        "--jsx=automatic".into(),
        "--minify".into(),
        "--charset=utf8".into(),
        "--color=false".into(),
        "--log-level=error".into(),
        "--log-limit=20".into(),
        format!("--outdir={}", out.display()),
        format!("--metafile={}", meta.display()),
        "--entry-names=app".into(),
        "--asset-names=assets/[name]-[hash]".into(),
    ];
    for ext in [
        "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "woff", "woff2", "ttf", "mp3", "wav",
    ] {
        a.push(format!("--loader:.{ext}=file"));
    }
    for (k, v) in defines {
        a.push(format!("--define:{k}={v}"));
    }
    a
}

/// What esbuild produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// Bytes of app.js.
    pub bytes: u64,
    /// Whether it wrote app.css.
    pub styles: bool,
    /// How long it took.
    pub took: Duration,
}

/// Run esbuild on `entry` in `src` into `out`, resolving bare imports in
/// the app's own node_modules, then in `node_path` (the shared runtime).
pub async fn run(
    esbuild: &Path,
    node_path: &Path,
    src: &Path,
    entry: &Path,
    out: &Path,
    defines: &[(String, String)],
    timeout: Duration,
) -> Result<Built, BundleError> {
    let started = Instant::now();
    let meta = out.with_file_name("bundle-meta.json");
    let mut cmd = tokio::process::Command::new(esbuild);
    cmd.args(esbuild_args(entry, out, &meta, defines))
        .current_dir(src)
        .env_clear()
        .env("NODE_PATH", node_path)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| BundleError::NoBundler(format!("cannot run {}: {e}", esbuild.display())))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| BundleError::Timeout(timeout))?
        .map_err(|e| BundleError::Io(e.to_string()))?;
    if !output.status.success() {
        let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
        if said.trim().is_empty() {
            said = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let said: String = said.chars().take(8000).collect();
        return Err(BundleError::Failed(format!(
            "{}\n({})",
            said.trim_end(),
            output.status
        )));
    }
    // Every file the bundle read must be the app's or the runtime's: a
    // path that climbs out, an absolute path or a tsconfig alias could
    // otherwise pull any readable file into what the app serves.
    let inputs = std::fs::read_to_string(&meta)
        .map_err(|e| BundleError::Io(format!("esbuild wrote no metafile: {e}")))?;
    let _ = std::fs::remove_file(&meta);
    check_inputs(&inputs, src, &[src.to_path_buf(), node_path.to_path_buf()])?;
    let bytes = std::fs::metadata(out.join(SCRIPT))
        .map(|m| m.len())
        .map_err(|e| BundleError::Io(format!("esbuild wrote no {SCRIPT}: {e}")))?;
    Ok(Built {
        bytes,
        styles: out.join(STYLES).is_file(),
        took: started.elapsed(),
    })
}

/// Check esbuild's metafile: every input (relative to `src`, esbuild's
/// working directory) must resolve, links followed, under one of `roots`.
/// Inputs in a namespace of esbuild's own (`(disabled):…`, `<stdin>`) are
/// not files. Returns how many files were read.
pub fn check_inputs(metafile: &str, src: &Path, roots: &[PathBuf]) -> Result<usize, BundleError> {
    let v: serde_json::Value = serde_json::from_str(metafile)
        .map_err(|e| BundleError::Io(format!("esbuild's metafile: {e}")))?;
    let roots: Vec<PathBuf> = roots.iter().filter_map(|r| r.canonicalize().ok()).collect();
    let inputs = v
        .get("inputs")
        .and_then(|i| i.as_object())
        .ok_or_else(|| BundleError::Io("esbuild's metafile lists no inputs".into()))?;
    let mut n = 0;
    for key in inputs.keys() {
        if key.starts_with('(') || key.starts_with('<') {
            continue;
        }
        let path = src.join(key);
        let real = path
            .canonicalize()
            .map_err(|_| BundleError::Outside(key.clone()))?;
        if !roots.iter().any(|r| real.starts_with(r)) {
            return Err(BundleError::Outside(real.display().to_string()));
        }
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AI_STUDIO: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8" /><title>Notes</title>
<script type="importmap">
{"imports": {"react": "https://aistudiocdn.com/react@^19.1.0", "@google/genai": "https://aistudiocdn.com/@google/genai@^1.20.0"}}
</script>
</head><body><div id="root"></div>
<script type="module" src="/index.tsx"></script>
</body></html>"#;

    fn files(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn an_ai_studio_page_loads_the_bundle_without_its_import_map() {
        let p = plan(
            &files(&["index.html", "index.tsx", "App.tsx"]),
            Some(AI_STUDIO),
            "x",
        )
        .unwrap();
        assert_eq!(p.entry, Some(PathBuf::from("index.tsx")));
        assert!(
            !p.html.contains("importmap") && !p.html.contains("aistudiocdn"),
            "{}",
            p.html
        );
        assert!(p
            .html
            .contains(r#"<script type="module" src="/app.js"></script>"#));
        assert!(p.html.contains(r#"<div id="root">"#));
        let styled = link_styles(&p.html);
        assert!(
            styled.contains(r#"<link rel="stylesheet" href="/app.css"></head>"#),
            "{styled}"
        );
    }

    #[test]
    fn entries_are_found_or_their_absence_explained() {
        let p = plan(&files(&["src/main.tsx", "src/App.tsx"]), None, "A <b>").unwrap();
        assert_eq!(p.entry, Some(PathBuf::from("src/main.tsx")));
        assert!(p.html.contains("<title>A &lt;b&gt;</title>"));
        assert!(matches!(
            plan(&files(&["README.md"]), None, "x"),
            Err(BundleError::NoEntry)
        ));
        let html = r#"<script type="module" src="./missing.tsx"></script>"#;
        let e = plan(&files(&["index.html"]), Some(html), "x").unwrap_err();
        assert!(
            e.to_string().contains("missing.tsx") && e.to_string().contains(RULES),
            "{e}"
        );
        // A script outside the zip is not an entry, and a plain page is
        // served as it is.
        let html = r#"<script type='module' src="../../etc/x.js"></script><p>hi</p>"#;
        assert!(plan(&files(&["index.html"]), Some(html), "x")
            .unwrap()
            .entry
            .is_none());
        let html = "<p>static</p><script src=\"a.js\"></script>";
        let p = plan(&files(&["index.html", "a.js"]), Some(html), "x").unwrap();
        assert_eq!((p.entry, p.html.as_str()), (None, html));
    }

    #[test]
    fn an_inline_module_script_is_refused_not_silently_blocked() {
        let html = r#"<script type="module">import x from "./a.js"</script>"#;
        let e = plan(&files(&["index.html", "a.js"]), Some(html), "x").unwrap_err();
        assert!(matches!(e, BundleError::InlineModule), "{e}");
    }

    #[test]
    fn the_bundle_reads_only_the_app_and_the_runtime() {
        let d = tempfile::tempdir().unwrap();
        let (src, rt) = (
            d.path().join("app/src"),
            d.path().join("runtime/node_modules"),
        );
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::create_dir_all(rt.join("react")).unwrap();
        std::fs::write(src.join("index.tsx"), "").unwrap();
        std::fs::write(src.join("lib/a.ts"), "").unwrap();
        std::fs::write(rt.join("react/index.js"), "").unwrap();
        std::fs::write(d.path().join("secret.json"), "{}").unwrap();
        let roots = [src.clone(), rt.clone()];
        let meta = |keys: &[&str]| {
            let inputs: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .map(|k| (k.to_string(), serde_json::json!({})))
                .collect();
            serde_json::json!({"inputs": inputs, "outputs": {}}).to_string()
        };
        let ok = meta(&[
            "index.tsx",
            "lib/a.ts",
            "../../runtime/node_modules/react/index.js",
            "(disabled):fs",
        ]);
        assert_eq!(check_inputs(&ok, &src, &roots).unwrap(), 3);
        for bad in [
            "../../secret.json".to_owned(),
            d.path().join("secret.json").display().to_string(),
        ] {
            let e = check_inputs(&meta(&["index.tsx", &bad]), &src, &roots).unwrap_err();
            assert!(matches!(e, BundleError::Outside(_)), "{bad}: {e}");
        }
        // A link inside the app that points out is followed, and refused.
        std::os::unix::fs::symlink(d.path().join("secret.json"), src.join("link.json")).unwrap();
        assert!(check_inputs(&meta(&["link.json"]), &src, &roots).is_err());
    }

    #[test]
    fn sources_and_secrets_are_never_served() {
        for (f, served) in [
            ("logo.png", true),
            ("public/favicon.ico", true),
            ("styles/app.css", true),
            ("index.tsx", false),
            ("src/App.tsx", false),
            (".env.local", false),
            ("package.json", false),
            ("node_modules/react/index.js", false),
            ("tsconfig.json", false),
            ("index.html", false),
        ] {
            assert_eq!(is_served_asset(Path::new(f)), served, "{f}");
        }
        assert_eq!(
            served_path(Path::new("public/favicon.ico")),
            PathBuf::from("favicon.ico")
        );
    }

    #[test]
    fn the_export_gets_its_own_key_or_none() {
        let d = env_defines(Some("GEMINI_API_KEY=PLACEHOLDER_API_KEY\n"));
        assert!(d.contains(&(
            "process.env.API_KEY".into(),
            "\"PLACEHOLDER_API_KEY\"".into()
        )));
        let d = env_defines(None);
        assert!(d.contains(&("process.env.GEMINI_API_KEY".into(), "\"\"".into())));
        let a = esbuild_args(
            Path::new("index.tsx"),
            Path::new("/o"),
            Path::new("/m.json"),
            &d,
        );
        assert!(a.contains(&"--bundle".to_string()) && a.contains(&"--outdir=/o".to_string()));
    }
}
