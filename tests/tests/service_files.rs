//! The login-service files parse and start the right binary.

use cowork_e2e::*;
use std::process::Command;

#[test]
fn the_launch_agent_plist_parses_and_keeps_coworkd_alive() {
    // Parsed by Python's plistlib (not our code).
    let plist = repo_root().join("launchd/ai.cowork.coworkd.plist");
    let out = Command::new(python())
        .args([
            "-c",
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(&plist)
        .output()
        .unwrap();
    assert!(out.status.success(), "plistlib: {out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Label"], "ai.cowork.coworkd");
    let program = v["ProgramArguments"][0].as_str().unwrap();
    assert!(program.ends_with("/coworkd"), "{program}");
    assert_eq!(v["RunAtLoad"], true);
    assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
}

#[test]
fn the_systemd_unit_parses_and_starts_coworkd() {
    let text = std::fs::read_to_string(repo_root().join("launchd/coworkd.service")).unwrap();
    let mut section = String::new();
    let mut keys = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_owned();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `key=value`: {line}", n + 1));
        keys.insert(format!("{section}.{}", k.trim()), v.trim().to_owned());
    }
    let exec = &keys["Service.ExecStart"];
    assert!(
        exec.split_whitespace()
            .next()
            .unwrap()
            .ends_with("/coworkd"),
        "{exec}"
    );
    assert_eq!(keys["Service.Restart"], "on-failure");
    assert_eq!(keys["Install.WantedBy"], "default.target");
    // systemd's own checker, where the machine has it.
    if let Ok(out) = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(repo_root().join("launchd/coworkd.service"))
        .output()
    {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Unknown key") && !err.contains("Unknown section"),
            "{err}"
        );
    }
}

#[test]
fn the_install_script_points_the_files_at_the_built_binary() {
    let script = std::fs::read_to_string(repo_root().join("scripts/install-service.sh")).unwrap();
    for file in ["launchd/ai.cowork.coworkd.plist", "launchd/coworkd.service"] {
        let name = file.rsplit('/').next().unwrap();
        assert!(script.contains(name), "install script ignores {file}");
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert!(
            text.contains("/usr/local/bin/coworkd"),
            "{file} lost the path the script rewrites"
        );
    }
}
