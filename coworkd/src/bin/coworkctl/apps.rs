//! `coworkctl apps`: installed web apps (`cowork.apps.v1`): install a zip
//! after its read-lane disclosure, list, show, open in a Chromium app
//! window, the audit of what each read, remove.

use crate::context::{age, call, clip, human_bytes, long, now_unix_ms, rfc3339_ms, Ctx};
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use cowork_proto::pb::apps::{self as pb, apps_client::AppsClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The largest zip sent (the service refuses above `[apps] max_zip_mb`).
const MAX_MESSAGE: usize = 256 << 20;
/// How long `open` watches the window's Chromium for an early failure.
const OPEN_WATCH: Duration = Duration::from_secs(3);

/// `coworkctl apps`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Install an app from a zip (a Google AI Studio export, say): checked,
    /// bundled offline, and installed once you accept what it may read.
    Install {
        /// The zip file.
        file: PathBuf,
        /// Accept the read-lane disclosure without asking (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Installed apps.
    List,
    /// One app: what it is, where it is served, what it may read.
    Show {
        /// Its id.
        id: String,
    },
    /// Open an app in a Chromium app window with its own profile.
    Open {
        /// Its id.
        id: String,
        /// Print the launch link (usable once, within 2 minutes) and the
        /// command instead of starting the window.
        #[arg(long)]
        print: bool,
    },
    /// The read-lane calls an app made, newest first.
    Audit {
        /// Its id.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Delete an app: its files, its record, its conversations.
    Remove {
        /// Its id.
        id: String,
    },
    /// Where apps are served, and the bundler.
    Status,
}

/// Run an `apps` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = AppsClient::new(ctx.channel.clone())
        .max_encoding_message_size(MAX_MESSAGE)
        .max_decoding_message_size(MAX_MESSAGE);
    match cmd {
        Cmd::Install { file, yes } => {
            let zip =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let file_name = file.display().to_string();
            let seen = c
                .inspect(long(pb::InspectRequest {
                    zip: zip.clone(),
                    file_name: file_name.clone(),
                }))
                .await?
                .into_inner();
            // On stderr, so a --json line stays alone on stdout.
            eprint!("{}", inspect_text(&seen));
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("pass --yes to accept the read-lane disclosure without a prompt");
                }
                eprint!("Install it? [y/N] ");
                std::io::stderr().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("not installed");
                    return Ok(ExitCode::FAILURE);
                }
            }
            let app = c
                .install(long(pb::InstallRequest {
                    zip,
                    file_name,
                    disclosure_accepted: true,
                    expected_sha256: seen.sha256,
                }))
                .await?
                .into_inner();
            ctx.show(
                || app_json(&app),
                || format!("installed {}  {}", app.id, app.url),
            )?;
        }
        Cmd::List => {
            let r = c.list(call(pb::ListRequest {})).await?.into_inner();
            ctx.show_block(
                || json!({"apps": r.apps.iter().map(app_json).collect::<Vec<_>>()}),
                || list_text(&r.apps, now_unix_ms()),
            )?;
        }
        Cmd::Show { id } => {
            let a = c.show(call(pb::ShowRequest { id })).await?.into_inner();
            ctx.show_block(|| app_json(&a), || show_text(&a))?;
        }
        Cmd::Open { id, print } => {
            let o = c.open(call(pb::OpenRequest { id })).await?.into_inner();
            let argv = window_argv(&o, nix::unistd::geteuid().is_root());
            if print {
                ctx.show(
                    || json!({"url": o.url, "profile_dir": o.profile_dir, "command": argv}),
                    || format!("{}\n{}", o.url, argv.join(" ")),
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            if cfg!(target_os = "linux")
                && std::env::var_os("DISPLAY").is_none()
                && std::env::var_os("WAYLAND_DISPLAY").is_none()
            {
                bail!(
                    "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); \
                     the app is at {}",
                    o.url
                );
            }
            let pid = start_window(&argv, &PathBuf::from(&o.log_file))?;
            ctx.show(
                || json!({"url": plain(&o.url), "profile_dir": o.profile_dir, "pid": pid}),
                || {
                    format!(
                        "opened {} (Chromium pid {pid}, profile {})",
                        plain(&o.url),
                        o.profile_dir
                    )
                },
            )?;
        }
        Cmd::Audit { id, limit } => {
            let r = c
                .audit(call(pb::AuditRequest { id, limit }))
                .await?
                .into_inner();
            ctx.show_block(
                || json!({"entries": r.entries.iter().map(audit_json).collect::<Vec<_>>()}),
                || audit_text(&r.entries, now_unix_ms()),
            )?;
        }
        Cmd::Remove { id } => {
            let r = c.remove(call(pb::RemoveRequest { id })).await?.into_inner();
            ctx.show(
                || {
                    json!({"id": r.id, "files_deleted": r.files_deleted,
                           "conversations_deleted": r.conversations_deleted,
                           "messages_deleted": r.messages_deleted,
                           "audit_rows_deleted": r.audit_rows_deleted})
                },
                || {
                    format!(
                        "removed {}: {} files, {} conversations ({} messages), {} audit rows",
                        r.id,
                        r.files_deleted,
                        r.conversations_deleted,
                        r.messages_deleted,
                        r.audit_rows_deleted
                    )
                },
            )?;
        }
        Cmd::Status => {
            let s = c
                .get_status(call(pb::GetStatusRequest {}))
                .await?
                .into_inner();
            ctx.show_block(
                || {
                    json!({"port": s.port, "listening": s.listening, "error": s.error,
                           "installed": s.installed, "bundler": s.bundler,
                           "bundler_error": s.bundler_error})
                },
                || status_text(&s),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An app's URL without its launch code (used by then).
fn plain(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The window's Chromium command: an app window (`--app`) with the app's
/// own profile, so its storage and cookies are its own.
pub fn window_argv(o: &pb::OpenResponse, root: bool) -> Vec<String> {
    let mut a = vec![
        o.chromium.clone(),
        format!("--app={}", o.url),
        format!("--user-data-dir={}", o.profile_dir),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-sync".into(),
        "--class=cowork-app".into(),
    ];
    if root {
        // Chromium refuses to run as root with its sandbox.
        a.push("--no-sandbox".into());
    }
    a
}

/// Start the window in its own session (it outlives coworkctl), its stderr
/// in `log`; a Chromium that fails at once is reported with its exit
/// status and last lines.
fn start_window(argv: &[String], log: &PathBuf) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let err =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(err.try_clone()?)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (set [browser] executable, or install chromium)",
                argv[0]
            )
        })?;
    let started = Instant::now();
    while started.elapsed() < OPEN_WATCH {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                // Handed to the window already open on this profile.
                return Ok(child.id());
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} exited ({status}); its last lines:\n{}",
                argv[0],
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child.id())
}

/// What inspect found, and the disclosure (printed before the prompt).
pub fn inspect_text(r: &pb::InspectResponse) -> String {
    let m = r.manifest.clone().unwrap_or_default();
    let mut s = m.name.clone();
    if !m.version.is_empty() {
        let _ = write!(s, " {}", m.version);
    }
    if !m.category.is_empty() {
        let _ = write!(s, " ({})", m.category);
    }
    s.push('\n');
    if !m.description.is_empty() {
        let _ = writeln!(s, "  {}", m.description);
    }
    let _ = writeln!(
        s,
        "  {} files, {} unpacked; {}",
        r.files,
        human_bytes(r.unpacked_bytes),
        if r.entry.is_empty() {
            "a plain page (nothing to bundle)".to_owned()
        } else {
            format!(
                "{} bundled to {} in {} ms",
                r.entry,
                human_bytes(r.bundle_bytes),
                r.bundle_ms
            )
        }
    );
    s.push('\n');
    s.push_str(&r.disclosure);
    s
}

/// One app in `--json`.
pub fn app_json(a: &pb::App) -> Value {
    let m = a.manifest.clone().unwrap_or_default();
    json!({
        "id": a.id, "name": m.name, "description": m.description, "category": m.category,
        "data_use_description": m.data_use_description, "api_hosts": m.api_hosts,
        "version": m.version, "manifest_source": m.source, "url": a.url, "entry": a.entry,
        "bundle_bytes": a.bundle_bytes, "files": a.files, "sha256": a.sha256,
        "installed_unix_ms": a.installed_unix_ms, "last_opened_unix_ms": a.last_opened_unix_ms,
        "reads": a.reads, "conversations": a.conversations,
    })
}

/// The installed apps as a table.
pub fn list_text(apps: &[pb::App], now_ms: i64) -> String {
    if apps.is_empty() {
        return "no apps installed (coworkctl apps install FILE.zip)\n".into();
    }
    let mut s = format!(
        "{:<32} {:<24} {:>7} {:>10}  URL\n",
        "ID", "NAME", "READS", "INSTALLED"
    );
    for a in apps {
        let name = a.manifest.as_ref().map(|m| m.name.as_str()).unwrap_or("");
        let _ = writeln!(
            s,
            "{:<32} {:<24} {:>7} {:>10}  {}",
            a.id,
            clip(name, 24),
            a.reads,
            age(now_ms, a.installed_unix_ms),
            a.url
        );
    }
    s
}

/// One app, in full.
pub fn show_text(a: &pb::App) -> String {
    let m = a.manifest.clone().unwrap_or_default();
    let mut s = format!("{}  {}\n", a.id, m.name);
    let mut line = |k: &str, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(s, "  {k:<14} {v}");
        }
    };
    line("description", &m.description);
    line("category", &m.category);
    line("version", &m.version);
    line("url", &a.url);
    line("entry", &a.entry);
    line("bundle", &human_bytes(a.bundle_bytes));
    line("files", &a.files.to_string());
    line("api hosts", &m.api_hosts.join(", "));
    line("installed", &rfc3339_ms(a.installed_unix_ms));
    if a.last_opened_unix_ms > 0 {
        line("last opened", &rfc3339_ms(a.last_opened_unix_ms));
    }
    line("reads", &a.reads.to_string());
    line("conversations", &a.conversations.to_string());
    line("sha256", &a.sha256);
    s.push_str("\nWhat it may read (accepted at install):\n");
    s.push_str(&a.disclosure);
    s
}

fn audit_json(e: &pb::AuditEntry) -> Value {
    json!({"at_unix_ms": e.at_unix_ms, "method": e.method, "outcome": e.outcome,
           "items": e.items, "duration_ms": e.duration_ms, "error": e.error})
}

/// The audit as a table.
pub fn audit_text(entries: &[pb::AuditEntry], now_ms: i64) -> String {
    if entries.is_empty() {
        return "no read-lane calls yet\n".into();
    }
    let mut s = format!(
        "{:>6}  {:<24} {:<8} {:>5} {:>6}  ERROR\n",
        "WHEN", "METHOD", "OUTCOME", "ITEMS", "MS"
    );
    for e in entries {
        let _ = writeln!(
            s,
            "{:>6}  {:<24} {:<8} {:>5} {:>6}  {}",
            age(now_ms, e.at_unix_ms),
            e.method,
            e.outcome,
            e.items,
            e.duration_ms,
            clip(&e.error, 80)
        );
    }
    s
}

/// Where apps are served.
pub fn status_text(s: &pb::Status) -> String {
    let mut out = if s.listening {
        format!(
            "apps served on 127.0.0.1:{} ({} installed)\n",
            s.port, s.installed
        )
    } else if s.error.is_empty() {
        format!(
            "apps not served yet (port {}; {} installed)\n",
            s.port, s.installed
        )
    } else {
        format!("apps not served: {}\n", s.error)
    };
    if s.bundler.is_empty() {
        let _ = writeln!(out, "bundler: missing ({})", s.bundler_error);
    } else {
        let _ = writeln!(out, "bundler: {}", s.bundler);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_an_app_window_with_its_own_profile() {
        let o = pb::OpenResponse {
            url: "http://notes-aa11bb.apps.localhost:7340/".into(),
            profile_dir: "/h/apps/notes-aa11bb/profile".into(),
            chromium: "chromium".into(),
            log_file: String::new(),
        };
        let a = window_argv(&o, false);
        assert_eq!(a[0], "chromium");
        assert!(a.contains(&"--app=http://notes-aa11bb.apps.localhost:7340/".to_string()));
        assert!(a.contains(&"--user-data-dir=/h/apps/notes-aa11bb/profile".to_string()));
        assert!(!a.contains(&"--no-sandbox".to_string()));
        assert!(window_argv(&o, true).contains(&"--no-sandbox".to_string()));
    }

    #[test]
    fn renderers_show_what_matters() {
        let app = pb::App {
            id: "notes-aa11bb".into(),
            manifest: Some(pb::Manifest {
                name: "Notes".into(),
                api_hosts: vec!["generativelanguage.googleapis.com".into()],
                ..Default::default()
            }),
            url: "http://notes-aa11bb.apps.localhost:7340/".into(),
            reads: 3,
            disclosure: "Notes will be able to read".into(),
            ..Default::default()
        };
        let l = list_text(std::slice::from_ref(&app), 0);
        assert!(
            l.contains("notes-aa11bb") && l.contains("Notes") && l.contains(":7340/"),
            "{l}"
        );
        let s = show_text(&app);
        assert!(
            s.contains("generativelanguage.googleapis.com") && s.contains("will be able to read"),
            "{s}"
        );
        assert_eq!(app_json(&app)["reads"], 3);
        assert!(list_text(&[], 0).contains("no apps installed"));
        let e = pb::AuditEntry {
            method: "data.conversations".into(),
            outcome: "refused".into(),
            error: "an app reads only its own data".into(),
            ..Default::default()
        };
        assert!(audit_text(&[e], 0).contains("refused"));
        let st = pb::Status {
            port: 7340,
            listening: false,
            error: "cannot serve apps on 127.0.0.1:7340: Address in use".into(),
            ..Default::default()
        };
        assert!(
            status_text(&st).contains("Address in use")
                && status_text(&st).contains("bundler: missing")
        );
    }
}
