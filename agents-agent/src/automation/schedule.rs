//! Cron-style schedules, pure: five fields (minute, hour, day of month,
//! month, day of week; `*`, lists, ranges, `/` steps), evaluated in the
//! machine's local time, and the missed-run policy applied when the
//! scheduler looks again after a gap (a restart, a sleep): `skip` runs
//! nothing that was missed, `coalesce` runs the latest missed occurrence
//! once.

use chrono::{DateTime, Datelike, Local, TimeZone, Timelike};

/// How far back a gap is looked through (a longer gap is treated as this).
const LOOKBACK_MINUTES: i64 = 400 * 24 * 60;
/// An occurrence this recent is due, not missed (the scheduler looks
/// every few seconds).
pub const DUE_GRACE_MS: i64 = 90_000;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: either may match (cron's rule).
    day_or: bool,
}

/// What to do with occurrences missed while nothing was looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Missed {
    /// Run nothing for them; wait for the next.
    #[default]
    Skip,
    /// Run once, for the latest of them.
    Coalesce,
}

fn field(spec: &str, lo: u32, hi: u32, name: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; (hi + 1) as usize];
    let mut star = false;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("the {name} field's step {s:?} is not a positive number")
                })?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            star = step == 1 && spec == "*";
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, name)?, num(b, name)?)
        } else {
            let a = num(range, name)?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("the {name} field {part:?} is outside {lo}-{hi}"));
        }
        let mut i = a;
        while i <= b {
            set[i as usize] = true;
            i += step;
        }
    }
    Ok((set, star))
}

fn num(s: &str, name: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("the {name} field has {s:?}, not a number"))
}

impl Cron {
    /// Parse `m h dom mon dow` (also `@hourly`, `@daily`, `@weekly`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = match spec.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            s => s,
        };
        let f: Vec<&str> = spec.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "a schedule has five fields (minute hour day month weekday), not {:?}",
                spec
            ));
        }
        let (minutes, _) = field(f[0], 0, 59, "minute")?;
        let (hours, _) = field(f[1], 0, 23, "hour")?;
        let (days, dstar) = field(f[2], 1, 31, "day")?;
        let (months, _) = field(f[3], 1, 12, "month")?;
        let (mut weekdays, wstar) = field(&f[4].replace('7', "0"), 0, 6, "weekday")?;
        weekdays.truncate(7);
        Ok(Self {
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_or: !dstar && !wstar,
        })
    }

    fn matches<T: TimeZone>(&self, t: &DateTime<T>) -> bool {
        let day = self.days[t.day() as usize];
        let wd = self.weekdays[t.weekday().num_days_from_sunday() as usize];
        let day_ok = if self.day_or { day || wd } else { day && wd };
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.months[t.month() as usize]
            && day_ok
    }

    /// The first occurrence strictly after `after_ms` (Unix ms), within
    /// the look-back horizon; in local time.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let start = (after_ms.div_euclid(60_000) + 1) * 60_000;
        let mut m = start;
        for _ in 0..LOOKBACK_MINUTES {
            let t = Local.timestamp_millis_opt(m).single();
            if let Some(t) = t {
                if self.matches(&t) {
                    return Some(m);
                }
                // Skip whole hours that cannot match.
                if !self.hours[t.hour() as usize] || !self.months[t.month() as usize] {
                    m += (60 - t.minute() as i64) * 60_000;
                    continue;
                }
            }
            m += 60_000;
        }
        None
    }
}

/// What the scheduler should run when it looks at `now_ms`, having last
/// looked at `last_ms`: the occurrence to run (its minute, Unix ms), if
/// any, and how many were missed (not run).
pub fn due(cron: &Cron, missed: Missed, last_ms: i64, now_ms: i64) -> (Option<i64>, u32) {
    let from = last_ms.max(now_ms - LOOKBACK_MINUTES * 60_000);
    let mut latest = None;
    let mut count = 0u32;
    let mut t = from;
    while let Some(o) = cron.next_after(t) {
        if o > now_ms {
            break;
        }
        latest = Some(o);
        count = count.saturating_add(1);
        t = o;
    }
    let Some(latest) = latest else {
        return (None, 0);
    };
    let fresh = now_ms - latest <= DUE_GRACE_MS;
    match (missed, fresh) {
        // The latest is due now; anything before it was missed.
        (Missed::Skip, true) => (Some(latest), count - 1),
        (Missed::Skip, false) => (None, count),
        (Missed::Coalesce, _) => (Some(latest), count - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Local
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn fields_parse_and_refuse() {
        assert!(Cron::parse("*/15 9-17 * * 1-5").is_ok());
        assert!(Cron::parse("@daily").is_ok());
        assert!(Cron::parse("0 0 * *").unwrap_err().contains("five fields"));
        assert!(Cron::parse("61 * * * *").unwrap_err().contains("minute"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
        assert!(Cron::parse("x * * * *")
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn next_occurrences() {
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // Friday 2026-12-04 17:50 → Monday 09:00.
        assert_eq!(
            c.next_after(at(2026, 12, 4, 17, 50)),
            Some(at(2026, 12, 7, 9, 0))
        );
        assert_eq!(
            c.next_after(at(2026, 12, 7, 9, 0)),
            Some(at(2026, 12, 7, 9, 15))
        );
        let daily = Cron::parse("30 6 * * *").unwrap();
        assert_eq!(
            daily.next_after(at(2026, 12, 31, 7, 0)),
            Some(at(2027, 1, 1, 6, 30))
        );
        // Day of month or weekday when both are set.
        let either = Cron::parse("0 0 1 * 1").unwrap();
        assert_eq!(
            either.next_after(at(2026, 12, 1, 0, 0)),
            Some(at(2026, 12, 7, 0, 0))
        );
    }

    #[test]
    fn missed_runs_skip_or_coalesce() {
        let c = Cron::parse("0 * * * *").unwrap();
        let last = at(2026, 12, 6, 8, 30);
        // Asleep until 12:20: 9, 10, 11 and 12 o'clock were missed.
        let now = at(2026, 12, 6, 12, 20);
        assert_eq!(due(&c, Missed::Skip, last, now), (None, 4));
        assert_eq!(
            due(&c, Missed::Coalesce, last, now),
            (Some(at(2026, 12, 6, 12, 0)), 3)
        );
        // Looking on time: the occurrence is due under either policy.
        let now = at(2026, 12, 6, 9, 0) + 5_000;
        assert_eq!(
            due(&c, Missed::Skip, last, now),
            (Some(at(2026, 12, 6, 9, 0)), 0)
        );
        // Nothing new.
        assert_eq!(due(&c, Missed::Skip, now, now + 1000), (None, 0));
    }
}
