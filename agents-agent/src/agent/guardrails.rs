//! Guardrails over one task chain (seed 003 "Guardrail Conditions"), pure:
//! given what the chain has done so far, whether the next step may go on.
//!
//! - the same tool with the same input 3 times → pause ("I seem to be stuck");
//! - more than half of the tool calls failed (from 2 calls on) → abort with
//!   the errors;
//! - more than $1.00 spent in the last 10 minutes → pause, tap to continue;
//! - every 5 minutes of running → check in ("Still working on …?").

/// Calls with the same tool and input that mean "stuck".
pub const SAME_CALL_LIMIT: usize = 3;
/// Spend allowed in [`SPEND_WINDOW_MS`], in USD.
pub const SPEND_LIMIT_USD: f64 = 1.00;
/// The spend window.
pub const SPEND_WINDOW_MS: i64 = 10 * 60 * 1000;
/// The check-in period.
pub const CHECK_IN_MS: i64 = 5 * 60 * 1000;

/// One step of the chain, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// When it ended, Unix ms.
    pub at_ms: i64,
    /// `server/tool` for a tool call; empty for a model call.
    pub tool: String,
    /// The tool's input, canonical JSON (empty for a model call).
    pub input: String,
    /// Whether a tool call failed.
    pub failed: bool,
    /// USD the step cost.
    pub cost_usd: f64,
    /// An error message, for the abort summary.
    pub error: String,
}

/// What the chain must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Stop until the person says go on.
    Pause(String),
    /// Ask whether to keep going (the chain may go on when answered).
    CheckIn(String),
    /// Stop for good, with a summary.
    Abort(String),
}

/// Judge the chain `steps` (oldest first) of a task started at `started_ms`,
/// about `task`, at `now_ms`; `last_check_in_ms` is when the person last
/// answered a check-in (or the start).
pub fn check(
    steps: &[Step],
    task: &str,
    started_ms: i64,
    last_check_in_ms: i64,
    now_ms: i64,
) -> Verdict {
    let tools: Vec<&Step> = steps.iter().filter(|s| !s.tool.is_empty()).collect();
    let failed = tools.iter().filter(|s| s.failed).count();
    if tools.len() >= 2 && failed * 2 > tools.len() {
        let errors: Vec<String> = tools
            .iter()
            .filter(|s| s.failed)
            .map(|s| format!("{}: {}", s.tool, s.error))
            .collect();
        return Verdict::Abort(format!(
            "{failed} of {} tool calls failed: {}",
            tools.len(),
            errors.join("; ")
        ));
    }
    if let Some(last) = tools.last() {
        let same = tools
            .iter()
            .filter(|s| s.tool == last.tool && s.input == last.input)
            .count();
        if same >= SAME_CALL_LIMIT {
            return Verdict::Pause(format!(
                "I seem to be stuck: {} was called {same} times with the same input",
                last.tool
            ));
        }
    }
    let spent: f64 = steps
        .iter()
        .filter(|s| s.at_ms > now_ms - SPEND_WINDOW_MS)
        .map(|s| s.cost_usd)
        .sum();
    if spent > SPEND_LIMIT_USD {
        return Verdict::Pause(format!(
            "this task spent ${spent:.2} in the last 10 minutes (limit ${SPEND_LIMIT_USD:.2}); \
             tap to continue"
        ));
    }
    if now_ms - last_check_in_ms.max(started_ms) >= CHECK_IN_MS {
        let minutes = (now_ms - started_ms) / 60_000;
        return Verdict::CheckIn(format!("Still working on {task} ({minutes} min so far)?"));
    }
    Verdict::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at_ms: i64, tool: &str, input: &str, failed: bool, cost: f64) -> Step {
        Step {
            at_ms,
            tool: tool.into(),
            input: input.into(),
            failed,
            cost_usd: cost,
            error: if failed { "boom".into() } else { String::new() },
        }
    }

    #[test]
    fn each_condition() {
        let ok = |steps: &[Step]| check(steps, "t", 0, 0, 1_000);
        assert_eq!(ok(&[]), Verdict::Continue);
        // Same tool, same input: the third time pauses; other inputs don't.
        let mut s = vec![step(1, "a/x", "{\"q\":1}", false, 0.0); 2];
        assert_eq!(ok(&s), Verdict::Continue);
        s.push(step(2, "a/x", "{\"q\":2}", false, 0.0));
        assert_eq!(ok(&s), Verdict::Continue);
        s.push(step(3, "a/x", "{\"q\":1}", false, 0.0));
        assert!(matches!(ok(&s), Verdict::Pause(m) if m.contains("stuck")));
        // Error rate over 50 %: abort with the errors; exactly 50 % goes on.
        let half = [
            step(1, "a/x", "1", true, 0.0),
            step(2, "a/y", "2", false, 0.0),
        ];
        assert_eq!(ok(&half), Verdict::Continue);
        let most = [
            step(1, "a/x", "1", true, 0.0),
            step(2, "a/y", "2", false, 0.0),
            step(3, "a/z", "3", true, 0.0),
        ];
        assert!(
            matches!(ok(&most), Verdict::Abort(m) if m.contains("2 of 3") && m.contains("boom"))
        );
        // Spend: over $1.00 within 10 minutes pauses; older spend is out.
        let now = 20 * 60_000;
        let spend = [
            step(now - 11 * 60_000, "", "", false, 0.90),
            step(now - 60_000, "", "", false, 0.60),
        ];
        assert_eq!(
            check(&spend, "t", now - 60_000, now - 60_000, now),
            Verdict::Continue
        );
        let spend = [
            step(now - 9 * 60_000, "", "", false, 0.50),
            step(now - 60_000, "", "", false, 0.51),
        ];
        assert!(matches!(
            check(&spend, "t", now - 60_000, now - 60_000, now),
            Verdict::Pause(m) if m.contains("$1.01")
        ));
        // Check-in every 5 minutes from the start or the last answer.
        assert!(matches!(
            check(&[], "triage", 0, 0, CHECK_IN_MS),
            Verdict::CheckIn(m) if m.contains("triage") && m.contains("5 min")
        ));
        assert_eq!(
            check(&[], "t", 0, CHECK_IN_MS, CHECK_IN_MS + 1),
            Verdict::Continue
        );
    }
}
