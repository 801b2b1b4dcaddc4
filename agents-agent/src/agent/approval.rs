//! The tool approval policy (seed 003 "Safety Rails"), pure: six phases in
//! the seed's order, security first, so no user preference can wave a
//! dangerous tool through. Every decision names the phase and the reason.
//!
//! 1. security denylist → always ask;
//! 2. mandatory approval (the tool's own config) → always ask;
//! 3. automation context → run;
//! 4. per-server policy (`auto` → run, `manual` → ask);
//! 5. auto-run ("trust this integration") → run;
//! 6. default mode: allow-list (listed → run, else block) or manual (ask).
//!
//! The policy governs calls a model asks for. A call the person makes
//! directly is their own action and is not put through it (it is audited).

use crate::mcp::ServerPolicy;
use std::collections::BTreeSet;

/// Tool-name patterns that always need a person's approval (`*` matches any
/// run of characters): deleting, sending, paying, executing.
pub const SECURITY_DENYLIST: &[&str] = &[
    "delete_*",
    "*_delete",
    "remove_*",
    "drop_*",
    "destroy_*",
    "send_email",
    "send_*",
    "execute_command",
    "exec_*",
    "run_command",
    "shell*",
    "*payment*",
    "*transfer*",
    "purchase*",
    "write_file",
    "move_file",
];

/// Phase 6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultMode {
    /// Ask for every remaining tool.
    Manual,
    /// Run `server/tool` entries (or `server/*`) in the list; block the rest.
    AllowList(BTreeSet<String>),
}

/// The person's and the servers' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Phase 1 patterns (default: [`SECURITY_DENYLIST`]).
    pub security_denylist: Vec<String>,
    /// Phase 2: `server/tool` whose config says `requiresApproval: always`.
    pub mandatory: BTreeSet<String>,
    /// Phase 4: per-server policies.
    pub server_policy: std::collections::BTreeMap<String, ServerPolicy>,
    /// Phase 5: servers the person trusts to run everything.
    pub auto_run: BTreeSet<String>,
    /// Phase 6.
    pub default_mode: DefaultMode,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            security_denylist: SECURITY_DENYLIST.iter().map(|s| s.to_string()).collect(),
            mandatory: BTreeSet::new(),
            server_policy: Default::default(),
            auto_run: BTreeSet::new(),
            default_mode: DefaultMode::Manual,
        }
    }
}

/// What a call is, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    /// The MCP server's name.
    pub server: &'a str,
    /// The tool's name.
    pub tool: &'a str,
    /// Whether it runs inside an automation flow.
    pub automation: bool,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run it now.
    Run,
    /// Wait for a person's approve or reject.
    Ask,
    /// Refuse it (allow-list mode, not listed).
    Block,
}

/// A verdict with the phase (1–6) that gave it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Run, ask or block.
    pub verdict: Verdict,
    /// The deciding phase, 1 to 6.
    pub phase: u8,
    /// Why, in words a person can read.
    pub reason: String,
}

/// Does `pattern` (with `*` wildcards) match `name` in full?
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A tool name in the denylist's terms: lower snake case, so `sendEmail`,
/// `Send-Email` and `send.email` are all `send_email`.
pub fn normalize_tool_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if matches!(c, '-' | '.' | ' ' | '/') {
            out.push('_');
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Decide one call.
pub fn decide(s: &Settings, call: Call<'_>) -> Decision {
    let d = |verdict, phase, reason: String| Decision {
        verdict,
        phase,
        reason,
    };
    let tool = normalize_tool_name(call.tool);
    if let Some(p) = s.security_denylist.iter().find(|p| glob_match(p, &tool)) {
        return d(
            Verdict::Ask,
            1,
            format!(
                "{} matches the security denylist ({p}): always asks",
                call.tool
            ),
        );
    }
    let key = format!("{}/{}", call.server, call.tool);
    if s.mandatory.contains(&key) {
        return d(
            Verdict::Ask,
            2,
            format!("{key} is configured to always require approval"),
        );
    }
    if call.automation {
        return d(
            Verdict::Run,
            3,
            "inside an automation: runs unattended".into(),
        );
    }
    match s
        .server_policy
        .get(call.server)
        .copied()
        .unwrap_or_default()
    {
        ServerPolicy::Auto => {
            return d(
                Verdict::Run,
                4,
                format!("server {} runs its tools automatically", call.server),
            )
        }
        ServerPolicy::Manual => {
            return d(
                Verdict::Ask,
                4,
                format!("server {} asks for every tool", call.server),
            )
        }
        ServerPolicy::Default => {}
    }
    if s.auto_run.contains(call.server) {
        return d(
            Verdict::Run,
            5,
            format!("you trust {} to run everything", call.server),
        );
    }
    match &s.default_mode {
        DefaultMode::Manual => d(Verdict::Ask, 6, "manual mode: asks".into()),
        DefaultMode::AllowList(list) => {
            let wildcard = format!("{}/*", call.server);
            if list.contains(&key) || list.contains(&wildcard) {
                d(Verdict::Run, 6, format!("{key} is on the allow-list"))
            } else {
                d(Verdict::Block, 6, format!("{key} is not on the allow-list"))
            }
        }
    }
}

/// Split a step's calls: those that run now and those that wait (mixed
/// execution: safe tools run while dangerous ones wait for a person).
/// Returns (run, ask, block) as indexes into `calls`.
pub fn partition(s: &Settings, calls: &[Call<'_>]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut run, mut ask, mut block) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in calls.iter().enumerate() {
        match decide(s, *c).verdict {
            Verdict::Run => run.push(i),
            Verdict::Ask => ask.push(i),
            Verdict::Block => block.push(i),
        }
    }
    (run, ask, block)
}

/// Who answered a call that waited for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// A person, through the API (`coworkctl approvals`, a client).
    Api,
    /// A person, through the desktop notification's button.
    Notification,
    /// Nobody within `[agents.approval] timeout_s`: rejected.
    Timeout,
}

impl DecidedBy {
    /// As traces and timelines show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Api => "person (api)",
            Self::Notification => "person (notification)",
            Self::Timeout => "timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(server: &'a str, tool: &'a str, automation: bool) -> Call<'a> {
        Call {
            server,
            tool,
            automation,
        }
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("delete_*", "delete_ticket", true),
            ("delete_*", "undelete_ticket", false),
            ("*payment*", "make_payment_now", true),
            ("send_email", "send_email", true),
            ("send_email", "send_emails", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }

    /// Every phase, and that earlier phases win over later ones.
    #[test]
    fn the_six_phases_in_order() {
        let mut s = Settings::default();
        s.mandatory.insert("zendesk/update_ticket".into());
        s.server_policy.insert("time".into(), ServerPolicy::Auto);
        s.server_policy.insert("gmail".into(), ServerPolicy::Manual);
        s.auto_run.insert("notes".into());
        s.auto_run.insert("time".into());
        let cases = [
            // Phase 1 beats automation, server auto and auto-run.
            (call("time", "delete_everything", true), Verdict::Ask, 1),
            (call("notes", "send_email", false), Verdict::Ask, 1),
            (call("x", "Execute_Command", false), Verdict::Ask, 1),
            // Spelled other ways, still denylisted.
            (call("notes", "sendEmail", false), Verdict::Ask, 1),
            (call("notes", "delete-file", false), Verdict::Ask, 1),
            (call("notes", "Send.Email", false), Verdict::Ask, 1),
            // Phase 2 beats automation.
            (call("zendesk", "update_ticket", true), Verdict::Ask, 2),
            // Phase 3.
            (call("gmail", "list_messages", true), Verdict::Run, 3),
            // Phase 4 beats auto-run.
            (call("time", "get_current_time", false), Verdict::Run, 4),
            (call("gmail", "list_messages", false), Verdict::Ask, 4),
            // Phase 5.
            (call("notes", "list_notes", false), Verdict::Run, 5),
            // Phase 6, manual.
            (call("zendesk", "list_tickets", false), Verdict::Ask, 6),
        ];
        for (c, verdict, phase) in cases {
            let d = decide(&s, c);
            assert_eq!(
                (d.verdict, d.phase),
                (verdict, phase),
                "{c:?}: {}",
                d.reason
            );
            assert!(!d.reason.is_empty());
        }
        s.default_mode = DefaultMode::AllowList(
            ["zendesk/list_tickets".to_string(), "jira/*".to_string()]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            decide(&s, call("zendesk", "list_tickets", false)).verdict,
            Verdict::Run
        );
        assert_eq!(
            decide(&s, call("jira", "search", false)).verdict,
            Verdict::Run
        );
        let blocked = decide(&s, call("zendesk", "list_users", false));
        assert_eq!((blocked.verdict, blocked.phase), (Verdict::Block, 6));
        assert!(blocked.reason.contains("not on the allow-list"));
    }

    #[test]
    fn mixed_execution_splits_a_step() {
        let s = Settings::default();
        let calls = [
            call("fs", "read_file", true),
            call("fs", "delete_file", true),
            call("mail", "send_email", true),
            call("time", "get_current_time", true),
        ];
        assert_eq!(partition(&s, &calls), (vec![0, 3], vec![1, 2], vec![]));
    }
}
