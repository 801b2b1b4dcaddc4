//! `coworkctl engines`: local model engines, each instance with its health
//! and models (`cowork.engines.v1`).

use crate::context::{call, Ctx};
use anyhow::Result;
use cowork_proto::pb::engines::{self as pb, engines_client::EnginesClient};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::process::ExitCode;

/// `coworkctl engines`.
pub async fn run(ctx: &mut Ctx) -> Result<ExitCode> {
    let r = EnginesClient::new(ctx.channel.clone())
        .list_engines(call(pb::ListEnginesRequest {}))
        .await?
        .into_inner();
    ctx.show_block(|| engines_json(&r), || engines_table(&r))?;
    Ok(ExitCode::SUCCESS)
}

/// `engines --json`: `{"engines":[{"key","engine","role","origin","api",
/// "base_url","health","models","error","latency_ms"}]}`.
pub fn engines_json(r: &pb::ListEnginesResponse) -> Value {
    json!({
        "engines": r.engines.iter().map(|e| json!({
            "key": e.key,
            "engine": e.engine,
            "role": e.role,
            "origin": e.origin,
            "api": e.api,
            "base_url": e.base_url,
            "health": e.health,
            "models": e.models,
            "error": if e.error.is_empty() { Value::Null } else { json!(e.error) },
            "latency_ms": e.latency_ms,
        })).collect::<Vec<_>>()
    })
}

/// `engines` as a table: engines that are up first.
pub fn engines_table(r: &pb::ListEnginesResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<5} {:<8} {:<36} MODELS",
        "ENGINE", "ROLE", "HEALTH", "URL"
    );
    let mut rows: Vec<&pb::EngineInstance> = r.engines.iter().collect();
    rows.sort_by_key(|e| (e.health != "up", e.health == "down"));
    for e in rows {
        let models = if e.health == "up" {
            format!("{} ({})", e.models.len(), e.models.join(", "))
        } else {
            e.error.clone()
        };
        let _ = writeln!(
            out,
            "{:<22} {:<5} {:<8} {:<36} {}",
            e.key, e.role, e.health, e.base_url, models
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_engines_come_first_with_their_models() {
        let r = pb::ListEnginesResponse {
            engines: vec![
                pb::EngineInstance {
                    key: "jan:1337".into(),
                    health: "down".into(),
                    error: "connect refused".into(),
                    ..Default::default()
                },
                pb::EngineInstance {
                    key: "ollama".into(),
                    health: "up".into(),
                    models: vec!["qwen3:8b".into()],
                    ..Default::default()
                },
            ],
        };
        let t = engines_table(&r);
        let up = t.find("ollama").unwrap();
        let down = t.find("jan:1337").unwrap();
        assert!(up < down, "{t}");
        assert!(
            t.contains("1 (qwen3:8b)") && t.contains("connect refused"),
            "{t}"
        );
        assert_eq!(engines_json(&r)["engines"][1]["error"], Value::Null);
    }
}
