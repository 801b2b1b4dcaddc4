//! A search's time filter: relative durations (`2d`, `1h`), RFC 3339
//! times, and expressions inside the query ("yesterday", "last week",
//! "today", "this week", "last 3 days"). Pure; days are UTC days.

use crate::usage::period::{civil_from_days, days_from_civil, period_starts};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// A time range, each end optional (Unix ms; `until` exclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// From (inclusive).
    pub since_ms: Option<i64>,
    /// To (exclusive).
    pub until_ms: Option<i64>,
}

/// `2d`, `90m`, `1h`, `3w`, `45s` ago, or an RFC 3339 time
/// (`2026-12-01T09:00:00Z`, `2026-12-01`), as Unix ms.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Some(ago) = parse_duration(s) {
        return Ok(now_ms - ago);
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!("{s:?} is not a time: use a duration ago (30m, 2h, 2d, 1w) or an RFC 3339 time (2026-12-01T09:00:00Z)")
    })
}

/// `90s`, `30m`, `2h`, `2d`, `1w` in ms.
fn parse_duration(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let per = match unit {
        's' => 1000,
        'm' => MINUTE_MS,
        'h' => HOUR_MS,
        'd' => DAY_MS,
        'w' => 7 * DAY_MS,
        _ => return None,
    };
    n.checked_mul(per).filter(|v| *v >= 0)
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`) or a bare date
/// (midnight UTC), as Unix ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, mo as u32, d as u32);
    if b.len() == 10 {
        return Some(day * DAY_MS);
    }
    if b.len() < 19 || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        ms = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?;
    }
    let offset_min = match s.get(i..)?.as_bytes() {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let sign = if *sign == b'-' { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    Some(day * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + sec * 1000 + ms - offset_min * MINUTE_MS)
}

/// The query with a time expression taken out, and the range it names
/// (None when it names none). Recognised, case-insensitive: "today",
/// "yesterday", "this week", "last week", "last N days|hours|weeks",
/// "past N days|hours|weeks", and a weekday ("on Tuesday", "last
/// Tuesday": the latest such day, today included).
pub fn time_expression(query: &str, now_ms: i64) -> (String, Option<Range>) {
    let words: Vec<&str> = query.split_whitespace().collect();
    let lower: Vec<String> = words
        .iter()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let (today, week, _) = period_starts(now_ms);
    let mut found: Option<(usize, usize, Range)> = None;
    for i in 0..lower.len() {
        let w = lower[i].as_str();
        let next = lower.get(i + 1).map(String::as_str);
        let range = |since: i64, until: Option<i64>| Range {
            since_ms: Some(since),
            until_ms: until,
        };
        let hit = match (w, next) {
            ("today", _) => Some((1, range(today, None))),
            ("yesterday", _) => Some((1, range(today - DAY_MS, Some(today)))),
            ("this", Some("week")) => Some((2, range(week, None))),
            ("last", Some("week")) => Some((2, range(week - 7 * DAY_MS, Some(week)))),
            (day, _) if weekday(day).is_some() => weekday(day).map(|d| {
                let back = (days_of(today) + 3 - d).rem_euclid(7);
                let since = today - back * DAY_MS;
                (1, range(since, Some(since + DAY_MS)))
            }),
            ("last", Some(day)) if weekday(day).is_some() => weekday(day).map(|d| {
                let back = (days_of(today) + 3 - d).rem_euclid(7);
                let since = today - back * DAY_MS;
                (2, range(since, Some(since + DAY_MS)))
            }),
            ("last" | "past", Some(n)) => {
                let unit = lower.get(i + 2).map(String::as_str);
                match (n.parse::<i64>(), unit) {
                    (Ok(n), Some(u)) if n > 0 => {
                        let per = match u.trim_end_matches('s') {
                            "hour" => Some(HOUR_MS),
                            "day" => Some(DAY_MS),
                            "week" => Some(7 * DAY_MS),
                            _ => None,
                        };
                        per.map(|p| (3, range(now_ms - n.saturating_mul(p), None)))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((len, r)) = hit {
            found = Some((i, len, r));
            break;
        }
    }
    match found {
        None => (query.trim().to_owned(), None),
        Some((at, len, r)) => {
            let mut rest: Vec<&str> = words[..at].to_vec();
            rest.extend_from_slice(&words[at + len..]);
            // "what did I do yesterday?" → "what did I do": drop the
            // words that only led into the expression ("in the", "from").
            let mut cut = at;
            while cut > 0
                && matches!(
                    rest[cut - 1].to_lowercase().as_str(),
                    "from" | "on" | "in" | "during" | "since" | "the" | "over" | "within"
                )
            {
                cut -= 1;
                rest.remove(cut);
            }
            (rest.join(" "), Some(r))
        }
    }
}

/// Monday 0 … Sunday 6, from a weekday's name.
fn weekday(word: &str) -> Option<i64> {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter().position(|d| *d == word).map(|i| i as i64)
}

/// Days since 1970-01-01 of a UTC midnight.
fn days_of(midnight_ms: i64) -> i64 {
    midnight_ms.div_euclid(DAY_MS)
}

/// A time as a person reads it: "2026-12-01 Tue 14:05 UTC".
pub fn format_time(ms: i64) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let days = ms.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let rest = ms.rem_euclid(DAY_MS);
    // 1970-01-01 was a Thursday (3).
    let wd = NAMES[(days + 3).rem_euclid(7) as usize];
    format!(
        "{y:04}-{m:02}-{d:02} {wd} {:02}:{:02} UTC",
        rest / HOUR_MS,
        rest % HOUR_MS / MINUTE_MS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03T15:00:00Z, a Thursday.
    const NOW: i64 = 1_796_310_000_000;

    #[test]
    fn durations_and_rfc3339_times() {
        assert_eq!(parse_time("2d", NOW).unwrap(), NOW - 2 * DAY_MS);
        assert_eq!(parse_time("90m", NOW).unwrap(), NOW - 90 * MINUTE_MS);
        assert_eq!(
            parse_rfc3339("2026-12-03T15:00:00Z").unwrap(),
            NOW,
            "the constant is what it says"
        );
        assert_eq!(parse_rfc3339("2026-12-03T16:00:00+01:00").unwrap(), NOW);
        assert_eq!(
            parse_rfc3339("2026-12-03T15:00:00.250Z").unwrap(),
            NOW + 250
        );
        assert_eq!(parse_rfc3339("2026-12-03").unwrap(), NOW - 15 * HOUR_MS);
        for bad in [
            "",
            "tomorrow",
            "2026-13-01",
            "2026-12-03T25:00:00Z",
            "2026-12-03T15:00:00",
            "2026-12-03T15:00:00é0:00",
            "2026-12-03T15:00:00+0é:00",
            "2026-12-03T1é:00:00Z",
            "5x",
            "é",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad}");
        }
        let e = parse_time("soon", NOW).unwrap_err();
        assert!(e.contains("2d") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn weekdays_name_the_latest_such_day_and_times_read_with_theirs() {
        let day0 = NOW - NOW % DAY_MS;
        let (text, r) = time_expression("what was the invoice number I looked at on Tuesday?", NOW);
        assert_eq!(text, "what was the invoice number I looked at");
        let tuesday = day0 - 2 * DAY_MS;
        assert_eq!(
            r,
            Some(Range {
                since_ms: Some(tuesday),
                until_ms: Some(tuesday + DAY_MS)
            })
        );
        let (_, r) = time_expression("notes from last Thursday", NOW);
        assert_eq!(r.unwrap().since_ms, Some(day0), "today is Thursday");
        assert_eq!(format_time(NOW), "2026-12-03 Thu 15:00 UTC");
        assert_eq!(format_time(tuesday + 3_600_000), "2026-12-01 Tue 01:00 UTC");
    }

    #[test]
    fn time_words_in_a_query_become_a_range() {
        let day0 = NOW - 15 * HOUR_MS;
        let (text, r) = time_expression("what did I read yesterday?", NOW);
        assert_eq!(text, "what did I read");
        assert_eq!(
            r.unwrap(),
            Range {
                since_ms: Some(day0 - DAY_MS),
                until_ms: Some(day0)
            }
        );
        let (text, r) = time_expression("rust errors from last week", NOW);
        assert_eq!(text, "rust errors");
        // Monday 2026-11-30 00:00 UTC started this week.
        let monday = day0 - 3 * DAY_MS;
        assert_eq!(
            r.unwrap(),
            Range {
                since_ms: Some(monday - 7 * DAY_MS),
                until_ms: Some(monday)
            }
        );
        let (text, r) = time_expression("Invoices in the last 3 days", NOW);
        assert_eq!(text, "Invoices");
        assert_eq!(r.unwrap().since_ms, Some(NOW - 3 * DAY_MS));
        let (text, r) = time_expression("TODAY standup notes", NOW);
        assert_eq!(
            (text.as_str(), r.unwrap().since_ms),
            ("standup notes", Some(day0))
        );
        let (text, r) = time_expression("the last chapter", NOW);
        assert_eq!((text.as_str(), r), ("the last chapter", None));
    }
}
