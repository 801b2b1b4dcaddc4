//! Compiles proto/ with protox (pure Rust: no system `protoc` needed) and
//! writes the descriptor set that server reflection serves.
use prost::Message;
use std::path::PathBuf;

const FILES: &[&str] = &[
    "cowork/system/v1/system.proto",
    "cowork/worker/v1/worker.proto",
    "cowork/capture/v1/capture.proto",
    "cowork/chat/v1/chat.proto",
    "cowork/browser/v1/browser.proto",
    "cowork/engines/v1/engines.proto",
    "cowork/mcp/v1/mcp.proto",
    "cowork/agents/v1/agents.proto",
    "cowork/models/v1/models.proto",
    "cowork/gateway/v1/gateway.proto",
    "cowork/memory/v1/memory.proto",
    "cowork/automations/v1/automations.proto",
    "cowork/notifications/v1/notifications.proto",
    "cowork/thermal/v1/thermal.proto",
    "cowork/apps/v1/apps.proto",
    "cowork/audio/v1/audio.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(FILES, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("cowork_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
