//! `coworkctl ui`: the web UI in a browser tab (`System/OpenUi`). The first
//! run turns it on (a port written to config.toml); every run mints a
//! one-time sign-in code and opens (or prints) the address that carries it.

use crate::context::{call, rfc3339_ms, Ctx};
use anyhow::Result;
use cowork_proto::pb::system::{self as pb, system_client::SystemClient};
use serde_json::json;
use std::process::ExitCode;

/// `coworkctl ui`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the address only; do not start a browser.
    #[arg(long)]
    pub no_open: bool,
    /// Make a new per-install token first: every browser signed in with
    /// the old one is signed out.
    #[arg(long)]
    pub reset: bool,
}

/// Run `ui`.
pub async fn run(a: Args, ctx: &mut Ctx) -> Result<ExitCode> {
    let o = SystemClient::new(ctx.channel.clone())
        .open_ui(call(pb::OpenUiRequest { reset: a.reset }))
        .await?
        .into_inner();
    // The browser is given the 0600 page that leads to the address, not the
    // address: a command line is readable by every user of the machine.
    let opened = if a.no_open {
        None
    } else {
        open_browser(&o.open_file)
    };
    ctx.show_block(
        || {
            json!({
                "url": o.url, "port": o.port, "origin": o.origin,
                "started": o.started, "port_written": o.port_written,
                "code_expires_unix_ms": o.code_expires_unix_ms,
                "opened_with": opened, "open_file": o.open_file,
            })
        },
        || text(&o, opened),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `ui` in words.
pub fn text(o: &pb::OpenUiResponse, opened: Option<&str>) -> String {
    let mut out = String::new();
    if o.port_written {
        out.push_str(&format!(
            "web UI turned on: [ui] port = {} written to config.toml\n",
            o.port
        ));
    } else if o.started {
        out.push_str(&format!("web UI started on port {}\n", o.port));
    }
    match opened {
        Some(how) => out.push_str(&format!("opened in your browser ({how}):\n")),
        None => out.push_str("open this address in your browser:\n"),
    }
    out.push_str(&format!("  {}\n", o.url));
    out.push_str(&format!(
        "the code in it signs in one browser once, until {}\n",
        rfc3339_ms(o.code_expires_unix_ms)
    ));
    out
}

/// Start the desktop's browser on `file` where there is a desktop; the
/// opener's name when it started.
fn open_browser(file: &str) -> Option<&'static str> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        "xdg-open"
    } else {
        return None;
    };
    std::process::Command::new(opener)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
        .map(|_| opener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_run_says_what_it_wrote_and_always_prints_the_address() {
        let o = pb::OpenUiResponse {
            url: "http://127.0.0.1:7737/#code=code-ab".into(),
            port: 7737,
            started: true,
            port_written: true,
            code_expires_unix_ms: 1_800_000_000_000,
            origin: "http://127.0.0.1:7737".into(),
            open_file: "/home/me/.local/share/cowork/run/ui-open.html".into(),
        };
        let t = text(&o, None);
        assert!(t.contains("[ui] port = 7737 written"), "{t}");
        assert!(t.contains("  http://127.0.0.1:7737/#code=code-ab\n"), "{t}");
        let again = pb::OpenUiResponse {
            started: false,
            port_written: false,
            ..o
        };
        let t = text(&again, Some("xdg-open"));
        assert!(!t.contains("written") && t.contains("xdg-open"), "{t}");
    }
}
