//! What every command shares: the connection, `--json` or human output
//! decided in one place, request deadlines, exit codes, and the units
//! tables are written in.

use anyhow::Result;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::Channel;

/// Exit status when coworkd cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit status for bad usage.
pub const EXIT_USAGE: u8 = 2;
/// How long one call may take before coworkd counts as not answering.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call that may start an MCP server (npx, uvx) or wait for a
/// model may take.
pub const LONG_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// A running command's context: where it talks and how it prints.
pub struct Ctx {
    /// `--json`: one JSON value a line instead of tables and sentences.
    pub json: bool,
    /// The connection to coworkd's public socket.
    pub channel: Channel,
    /// Standard output, for commands that stream (flush as you go).
    pub out: std::io::StdoutLock<'static>,
}

impl Ctx {
    /// A context printing to standard output.
    pub fn new(json: bool, channel: Channel) -> Self {
        Self {
            json,
            channel,
            out: std::io::stdout().lock(),
        }
    }

    /// Print one result: `json()` with `--json`, else the line `text()`
    /// (a newline is added). Only the chosen one is built.
    pub fn show(
        &mut self,
        json: impl FnOnce() -> Value,
        text: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            writeln!(self.out, "{}", json())?;
        } else {
            writeln!(self.out, "{}", text())?;
        }
        Ok(())
    }

    /// Print one result: `json()` with `--json`, else `block()` as it is
    /// (a table or paragraph that ends its own lines).
    pub fn show_block(
        &mut self,
        json: impl FnOnce() -> Value,
        block: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            writeln!(self.out, "{}", json())?;
        } else {
            write!(self.out, "{}", block())?;
        }
        Ok(())
    }
}

/// A request with coworkctl's deadline, so a hung coworkd cannot hang us.
pub fn call<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// A request that may start an MCP server or wait for a model: no short
/// deadline.
pub fn long<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(LONG_CALL_TIMEOUT);
    r
}

/// Exit 0 on success, 1 otherwise.
pub fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Now, Unix ms.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "1h02m", "3m05s", "42s".
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// "12.3 MiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// "12s ago", "3m ago", "2h ago", "4d ago"; "in 5s" for a future time.
pub fn age(now_ms: i64, at_ms: i64) -> String {
    let d = now_ms - at_ms;
    let (future, d) = (d < 0, d.unsigned_abs() / 1000);
    let s = match d {
        0..=59 => format!("{d}s"),
        60..=3599 => format!("{}m", d / 60),
        3600..=86_399 => format!("{}h", d / 3600),
        _ => format!("{}d", d / 86_400),
    };
    if future {
        format!("in {s}")
    } else {
        format!("{s} ago")
    }
}

/// `s` on one line (control characters as spaces), cut to `max`
/// characters with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Milliseconds since the epoch as UTC `HH:MM:SS.mmm` with its date.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        tod / 3600,
        (tod % 3600) / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn units() {
        assert_eq!(human_duration(65), "1m05s");
        assert_eq!(human_duration(3_720), "1h02m");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
    }
}
