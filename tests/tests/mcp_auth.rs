//! MCP credentials and bundled servers end to end, against a REAL server
//! built on the official Python MCP SDK that refuses to work without its
//! token (`tests/python/auth_mcp_server.py`): over stdio the token must be
//! in its environment, over streamable HTTP in an `Authorization: Bearer`
//! header (and `X-Org: acme` in a plain header).
//!
//! - The connection flow of a bundled definition: SELECT_SERVICE →
//!   CONFIG_REQUIRED (nothing runs) → `mcp configure` → AUTHENTICATING →
//!   STARTING_SERVER → CONNECTED; a refused token stops at AUTHENTICATING.
//! - Secrets are read from stdin, kept in the OS credential store, found in
//!   no file under the home, and survive an agents-agent restart.

use cowork_e2e::*;
use serde_json::{json, Value};
use sha2::Digest;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn server_script() -> String {
    repo_root()
        .join("tests/python/auth_mcp_server.py")
        .display()
        .to_string()
}

/// A definition file in the person's catalog.d (how a definition the
/// product does not bundle is added).
fn write_definition(suite: &Suite, file: &str, def: Value) {
    let dir = suite.home.path().join("mcp/catalog.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), def.to_string()).unwrap();
}

#[tokio::test]
async fn a_bundled_server_waits_for_its_secret_then_connects() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    let token = format!("tok-{}-stdio", std::process::id());
    write_definition(
        &suite,
        "demo.json",
        json!({
            "id": "demo",
            "title": "Auth demo",
            "description": "needs DEMO_TOKEN",
            "command": [python().display().to_string(), server_script(), "stdio", sha256_hex(&token)],
            "config": [{"key": "token", "title": "Demo token", "secret": true,
                        "required": true, "env": "DEMO_TOKEN"}]
        }),
    );
    // The catalog: the bundled definitions and this one, each with its
    // config schema.
    let cat = stdout_json(&suite.ctl(&["--json", "mcp", "catalog"]));
    let ids: Vec<&str> = cat["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for id in ["demo", "time", "github", "filesystem"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let demo = cat["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "demo")
        .unwrap();
    assert_eq!(demo["config_schema"]["required"], json!(["token"]));
    assert_eq!(
        demo["config_schema"]["properties"]["token"]["writeOnly"],
        true
    );
    assert_eq!(cat["problems"], json!([]));

    // Added without its token: CONFIG_REQUIRED, nothing started.
    let added = suite.ctl(&["--json", "mcp", "add", "d", "--from", "demo"]);
    assert!(!added.status.success(), "{added:?}");
    let s = stdout_json(&added);
    assert_eq!(s["connection_state"], "CONFIG_REQUIRED", "{s}");
    assert_eq!(s["status"], "stopped");
    assert_eq!(s["pid"], Value::Null);
    assert!(
        s["error"].as_str().unwrap().contains("token (Demo token)"),
        "{s}"
    );
    let call = suite.ctl(&["mcp", "call", "d", "whoami"]);
    assert!(!call.status.success());
    assert!(
        String::from_utf8_lossy(&call.stderr).contains("needs configuration"),
        "{call:?}"
    );

    // A wrong token: the server refuses to start; the flow stops there.
    let wrong = suite.ctl_with_stdin(
        &["--json", "mcp", "configure", "d", "--config", "token"],
        "not-the-token\n",
    );
    let s = stdout_json(&wrong);
    assert_eq!(s["status"], "error", "{s}");
    assert_ne!(s["connection_state"], "CONNECTED");

    // The right one (from stdin): AUTHENTICATING → ... → CONNECTED.
    let s = stdout_json(&suite.ctl_with_stdin(
        &["--json", "mcp", "configure", "d", "--config", "token"],
        &format!("{token}\n"),
    ));
    assert_eq!(
        (s["status"].as_str(), s["connection_state"].as_str()),
        (Some("running"), Some("CONNECTED")),
        "{s}"
    );
    assert_eq!(s["catalog_id"], "demo");
    assert_eq!(s["secret_env"], json!(["DEMO_TOKEN"]));
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "d", "whoami"])).trim(),
        "authorized"
    );
    let leaked = files_containing(suite.home.path(), token.as_bytes());
    assert!(leaked.is_empty(), "the token is in {leaked:?}");

    // A fresh agents-agent starts the server with the stored token.
    ok(&suite.ctl(&["retry", "agents"]));
    suite.wait_state("agents", "running", T).await;
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "d", "whoami"])).trim(),
        "authorized"
    );
    // Settings a definition does not have are refused by name.
    let bad = suite.ctl(&["mcp", "configure", "d", "--config", "colour=blue"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no setting \"colour\""),
        "{bad:?}"
    );
    // An id the catalog does not have is named as such.
    let unknown = suite.ctl(&["mcp", "add", "x", "--from", "no-such-thing"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no bundled MCP server"));
}

/// The auth demo over streamable HTTP on a free loopback port.
fn start_http(token: &str) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python())
        .args([
            &server_script(),
            "http",
            &port.to_string(),
            &sha256_hex(token),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the HTTP MCP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port)
}

#[tokio::test]
async fn an_http_server_gets_its_secret_header() {
    let suite = Suite::start(FAST);
    suite.wait_state("agents", "running", T).await;
    let token = format!("tok-{}-http", std::process::id());
    let (mut server, port) = start_http(&token);
    let url = format!("http://127.0.0.1:{port}/mcp");

    // By URL: the token from stdin into a secret header, the org in a
    // plain one.
    let s = stdout_json(&suite.ctl_with_stdin(
        &[
            "--json",
            "mcp",
            "add",
            "web",
            "--url",
            &url,
            "--header",
            "X-Org: acme",
            "--secret-header",
            "Authorization",
        ],
        &format!("Bearer {token}\n"),
    ));
    assert_eq!(
        (s["status"].as_str(), s["connection_state"].as_str()),
        (Some("running"), Some("CONNECTED")),
        "{s}"
    );
    assert_eq!(s["secret_headers"], json!(["Authorization"]));
    assert_eq!(s["headers"], json!({"X-Org": "acme"}));
    assert_eq!(s["tool_count"], 1);
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "web", "whoami"])).trim(),
        "authorized"
    );

    // A refused token fails at AUTHENTICATING with the server's 401.
    let s = stdout_json(&suite.ctl(&[
        "--json",
        "mcp",
        "add",
        "web-wrong",
        "--url",
        &url,
        "--header",
        "X-Org: acme",
        "--secret-header",
        "Authorization=Bearer nope",
    ]));
    assert_eq!(s["status"], "error", "{s}");
    assert_eq!(s["connection_state"], "AUTHENTICATING", "{s}");
    assert!(s["error"].as_str().unwrap().contains("401"), "{s}");

    // The same through a definition: a non-secret setting in the URL, the
    // token in the header with its "Bearer " prefix.
    write_definition(
        &suite,
        "web.json",
        json!([{
            "id": "demo-web",
            "title": "Auth demo over HTTP",
            "url": "http://127.0.0.1:${port}/mcp",
            "config": [
                {"key": "port", "title": "Port", "required": true},
                {"key": "org", "title": "Org", "default": "acme", "header": "X-Org"},
                {"key": "token", "title": "Token", "secret": true, "required": true,
                 "header": "Authorization", "value_prefix": "Bearer "}
            ]
        }]),
    );
    let s = stdout_json(&suite.ctl_with_stdin(
        &[
            "--json",
            "mcp",
            "add",
            "w2",
            "--from",
            "demo-web",
            "--config",
            &format!("port={port}"),
            "--config",
            "token",
        ],
        &format!("{token}\n"),
    ));
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(
        s["config"],
        json!({"port": port.to_string(), "org": "acme"})
    );
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "w2", "whoami"])).trim(),
        "authorized"
    );
    // A new port only: the stored token is kept.
    ok(&suite.ctl(&[
        "mcp",
        "configure",
        "w2",
        "--config",
        &format!("port={port}"),
    ]));
    assert_eq!(
        ok(&suite.ctl(&["mcp", "call", "w2", "whoami"])).trim(),
        "authorized"
    );

    let leaked = files_containing(suite.home.path(), token.as_bytes());
    assert!(leaked.is_empty(), "the token is in {leaked:?}");
    // A token is never sent in clear off this machine.
    let off = suite.ctl(&[
        "mcp",
        "add",
        "far",
        "--url",
        "http://mcp.example.com/mcp",
        "--secret-header",
        "Authorization=Bearer x",
    ]);
    assert!(
        String::from_utf8_lossy(&off.stderr).contains("only sent over https"),
        "{off:?}"
    );
    // Removing a server is clean (its secret goes with it).
    ok(&suite.ctl(&["mcp", "remove", "web"]));
    let _ = server.kill();
    let _ = server.wait();
}
