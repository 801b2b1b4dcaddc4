//! `coworkctl gateway`: the local OpenAI-compatible API on 127.0.0.1 (off
//! by default) and its key (`cowork.gateway.v1`).

use crate::context::{call, Ctx};
use anyhow::Result;
use clap::Subcommand;
use cowork_proto::pb::gateway::{self as pb, gateway_client::GatewayClient};
use serde_json::{json, Value};
use std::process::ExitCode;

/// `coworkctl gateway`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Turn it on (it stays on across restarts).
    Enable {
        /// Port on 127.0.0.1 (default: the one set before, else 7339).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Turn it off.
    Disable,
    /// Whether it is on, its URL, whether it is listening.
    Status,
    /// Print the API key clients send (Authorization: Bearer, or
    /// X-Api-Key).
    Key {
        /// Make a new key (the old one stops working).
        #[arg(long)]
        rotate: bool,
    },
}

/// Run a `gateway` command.
pub async fn run(cmd: Cmd, ctx: &mut Ctx) -> Result<ExitCode> {
    let mut c = GatewayClient::new(ctx.channel.clone());
    let s = match cmd {
        Cmd::Enable { port } => c
            .enable(call(pb::EnableRequest {
                port: port.map(u32::from).unwrap_or(0),
            }))
            .await?
            .into_inner(),
        Cmd::Disable => c.disable(call(pb::DisableRequest {})).await?.into_inner(),
        Cmd::Status => {
            let s = c
                .get_status(call(pb::GetStatusRequest {}))
                .await?
                .into_inner();
            ctx.show(|| gateway_json(&s), || gateway_text(&s))?;
            return Ok(if s.enabled && !s.listening {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        Cmd::Key { rotate } => {
            let k = c
                .get_key(call(pb::GetKeyRequest { rotate }))
                .await?
                .into_inner();
            ctx.show(|| json!({"key": k.key}), || k.key.clone())?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    ctx.show(|| gateway_json(&s), || gateway_text(&s))?;
    Ok(ExitCode::SUCCESS)
}

/// `gateway status --json`: at least `enabled` and `url`.
pub fn gateway_json(s: &pb::GatewayStatus) -> Value {
    json!({
        "enabled": s.enabled, "url": s.url, "port": s.port, "listening": s.listening,
        "error": if s.error.is_empty() { Value::Null } else { json!(s.error) },
        "requests": s.requests,
    })
}

/// `gateway status` in words.
pub fn gateway_text(s: &pb::GatewayStatus) -> String {
    match (s.enabled, s.listening) {
        (true, true) => format!(
            "on: {}/v1 (OpenAI-compatible; key: `coworkctl gateway key`), {} requests served",
            s.url, s.requests
        ),
        (true, false) => format!("on but not listening on {}: {}", s.url, s.error),
        (false, _) => format!("off (`coworkctl gateway enable` serves {}/v1)", s.url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_in_words_and_json() {
        let s = pb::GatewayStatus {
            enabled: true,
            listening: true,
            url: "http://127.0.0.1:7339".into(),
            requests: 3,
            ..Default::default()
        };
        assert!(gateway_text(&s).starts_with("on: http://127.0.0.1:7339/v1"));
        assert_eq!(gateway_json(&s)["error"], Value::Null);
        let off = pb::GatewayStatus {
            enabled: false,
            ..s.clone()
        };
        assert!(gateway_text(&off).starts_with("off"));
        let broken = pb::GatewayStatus {
            listening: false,
            error: "in use".into(),
            ..s
        };
        assert_eq!(
            gateway_text(&broken),
            "on but not listening on http://127.0.0.1:7339: in use"
        );
    }
}
