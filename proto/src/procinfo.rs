//! Resource use of a process from the OS: resident memory and CPU time.
//! Linux reads /proc; elsewhere the figures are reported as unknown (0).

use std::time::Duration;

/// A resource sample of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcSample {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time consumed so far.
    pub cpu_time: Duration,
}

/// Sample `pid`; `None` when it does not exist or the OS gives nothing.
#[cfg(target_os = "linux")]
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .filter(|p| *p > 0)
        .unwrap_or(4096) as u64;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcSample {
        rss_bytes: resident * page,
        cpu_time: Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / hz),
    })
}

/// Sample `pid`; not implemented outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn sample(_pid: u32) -> Option<ProcSample> {
    None
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, counted
/// after the command name's last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 + 11 = 14
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU percent of one core between two samples `wall` apart.
pub fn cpu_percent(before: Duration, after: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    after.saturating_sub(before).as_secs_f64() / wall.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_after_hostile_names() {
        let tail: Vec<String> = (3..=20).map(|i| i.to_string()).collect();
        let line = format!("7 (a) b) c) {}", tail.join(" "));
        assert_eq!(cpu_ticks(&line), Some(14 + 15));
        assert_eq!(cpu_ticks("nonsense"), None);
    }

    #[test]
    fn percent_of_one_core() {
        let p = cpu_percent(
            Duration::from_millis(100),
            Duration::from_millis(350),
            Duration::from_secs(1),
        );
        assert!((p - 25.0).abs() < 1e-9);
        assert_eq!(
            cpu_percent(Duration::ZERO, Duration::ZERO, Duration::ZERO),
            0.0
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_bytes > 1 << 20, "{s:?}");
    }
}
