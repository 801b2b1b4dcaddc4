//! Calendar periods of the budget caps, in UTC: the day, the ISO week
//! (from Monday) and the calendar month containing a moment. Pure.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Starts (Unix ms, UTC) of the day, ISO week and month containing `now_ms`.
pub fn period_starts(now_ms: i64) -> (i64, i64, i64) {
    let days = now_ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7.
    let week = days - (days + 3).rem_euclid(7);
    let (y, m, _) = civil_from_days(days);
    (
        days * DAY_MS,
        week * DAY_MS,
        days_from_civil(y, m, 1) * DAY_MS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_math() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for d in [-800_000i64, -1, 0, 59, 11_016, 20_000, 20_779, 2_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{d}");
        }
        // Sunday 2026-11-22 12:00 UTC: day, week from Monday 11-16, month 11-01.
        let now = days_from_civil(2026, 11, 22) * DAY_MS + 12 * 3_600_000;
        let (day, week, month) = period_starts(now);
        assert_eq!(day, days_from_civil(2026, 11, 22) * DAY_MS);
        assert_eq!(week, days_from_civil(2026, 11, 16) * DAY_MS);
        assert_eq!(month, days_from_civil(2026, 11, 1) * DAY_MS);
        // A Monday starts its own week.
        let monday = days_from_civil(2026, 11, 16) * DAY_MS;
        assert_eq!(period_starts(monday).1, monday);
    }
}
