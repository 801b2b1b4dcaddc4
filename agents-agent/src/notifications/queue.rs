//! The queue between raising and dispatching, run inside one write
//! transaction: due candidates bundled (one per bundle key), each put
//! through the gates ([`super::throttle`]), held ones released as one
//! digest at the next context switch. No SQL here: the store's functions
//! and the pure gates.

use super::throttle::{decide, History, Limits, Tier, Verdict};
use super::{store, Row};
use crate::util::new_id;
use rusqlite::Connection;

const HOUR_MS: i64 = 3_600_000;
const WEEK_MS: i64 = 7 * 24 * HOUR_MS;

/// What the person is doing, from capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Focus {
    /// In deep work (one app in focus long enough).
    pub deep_work: bool,
    /// The app in focus changed since the last look.
    pub switched: bool,
}

fn history(c: &Connection, trigger_type: &str, now_ms: i64) -> rusqlite::Result<History> {
    let (last, dismissals, accepts) = store::answers(c, trigger_type, now_ms - WEEK_MS)?;
    Ok(History {
        delivered_last_hour: store::delivered_since(c, now_ms - HOUR_MS)?,
        last_dismissed_ms: last,
        dismissals_week: dismissals,
        accepts_week: accepts,
    })
}

/// Put one row through the gates and save its state; true when it is to
/// be shown now.
fn gate(
    c: &Connection,
    l: &Limits,
    n: &mut Row,
    focus: Focus,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let tier = Tier::parse(&n.tier).unwrap_or(Tier::Informational);
    let h = history(c, &n.trigger_type, now_ms)?;
    let show = match decide(l, tier, &h, focus.deep_work, now_ms) {
        Verdict::Deliver(t) => {
            n.state = "delivered".into();
            n.tier = t.name().into();
            n.delivered_ms = now_ms;
            if t != tier {
                n.note = format!("demoted to {}: often dismissed", t.name());
            }
            true
        }
        Verdict::Hold(why) => {
            n.state = "held".into();
            n.note = why;
            false
        }
        Verdict::Drop(why) => {
            n.state = "dropped".into();
            n.note = why;
            false
        }
    };
    store::update(c, n)?;
    Ok(show)
}

/// Release what is due at `now_ms`: returns the rows to show now.
pub fn release(
    c: &Connection,
    l: &Limits,
    focus: Focus,
    now_ms: i64,
) -> rusqlite::Result<Vec<Row>> {
    let mut out = Vec::new();
    let due = store::in_state(c, "pending", now_ms)?;
    // Bundles: rows sharing a bundle key become one (the oldest carries
    // the others), at the most urgent of their tiers.
    let mut groups: Vec<Vec<Row>> = Vec::new();
    for n in due {
        match groups
            .iter_mut()
            .find(|g| !n.bundle_key.is_empty() && g[0].bundle_key == n.bundle_key)
        {
            Some(g) => g.push(n),
            None => groups.push(vec![n]),
        }
    }
    for mut g in groups {
        let mut head = g.remove(0);
        if !g.is_empty() {
            let tier = std::iter::once(&head)
                .chain(g.iter())
                .filter_map(|n| Tier::parse(&n.tier))
                .min()
                .unwrap_or(Tier::Informational);
            let mut lines = vec![head.title.clone()];
            for m in &mut g {
                lines.push(m.title.clone());
                m.state = "bundled".into();
                m.note = format!("bundled into {}", head.id);
                store::update(c, m)?;
                head.members.push(m.id.clone());
            }
            head.body = lines.join("\n");
            head.title = format!("{} updates: {}", lines.len(), head.title);
            head.tier = tier.name().into();
        }
        if gate(c, l, &mut head, focus, now_ms)? {
            out.push(head);
        }
    }
    // The digest of what deep work held, at the next context switch.
    if focus.switched && !focus.deep_work {
        let held = store::in_state(c, "held", i64::MAX)?;
        if !held.is_empty() {
            let mut d = Row {
                id: new_id("nt"),
                trigger_type: "digest".into(),
                tier: Tier::Helpful.name().into(),
                title: format!("While you were focused: {} update(s)", held.len()),
                body: held
                    .iter()
                    .map(|n| n.title.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
                state: "pending".into(),
                members: held.iter().map(|n| n.id.clone()).collect(),
                created_ms: now_ms,
                release_ms: now_ms,
                ..Default::default()
            };
            store::insert(c, &d, None)?;
            if gate(c, l, &mut d, focus, now_ms)? {
                for mut n in held {
                    n.state = "bundled".into();
                    n.note = format!("in digest {}", d.id);
                    store::update(c, &n)?;
                }
                out.push(d);
            } else {
                // The cap is reached: keep them held for the next switch.
                d.state = "dropped".into();
                d.note = format!("{}; the updates stay held", d.note);
                store::update(c, &d)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raise(c: &Connection, id: &str, ty: &str, tier: &str, key: &str, now: i64, hold_ms: i64) {
        let n = Row {
            id: id.into(),
            trigger_type: ty.into(),
            tier: tier.into(),
            title: format!("{ty} {id}"),
            state: "pending".into(),
            bundle_key: key.into(),
            created_ms: now,
            release_ms: if tier == "urgent" { now } else { now + hold_ms },
            ..Default::default()
        };
        store::insert(c, &n, None).unwrap();
    }

    fn answer(c: &Connection, id: &str, state: &str, at: i64) {
        let mut n = store::get(c, id).unwrap().unwrap();
        n.state = state.into();
        n.answered_ms = at;
        store::update(c, &n).unwrap();
    }

    /// A week of activity replayed on a virtual clock: a working day of
    /// focus blocks and switches, triggers of every tier raised far more
    /// often than the caps allow, every delivery dismissed or accepted.
    #[test]
    fn a_simulated_week_keeps_every_promise() {
        let c = crate::db::migrated(&[store::OWNER]);
        let l = Limits::default();
        let hold = 30_000;
        let mut delivered: Vec<(i64, String, String)> = Vec::new();
        let mut dismissed_at: std::collections::HashMap<String, i64> = Default::default();
        let mut urgent_latency_max = 0i64;
        let mut n = 0u64;
        let start = 1_800_000_000_000i64;
        let tick = 5_000i64;
        let mut t = start;
        while t < start + 7 * 24 * HOUR_MS {
            let minute_of_day = ((t - start) / 60_000) % (24 * 60);
            let working = (9 * 60..18 * 60).contains(&minute_of_day);
            // 50-minute focus blocks, then a 10-minute switchy break.
            let block = minute_of_day % 60;
            let deep = working && (15..50).contains(&block);
            let switched = working && block == 50 && (t - start) % 60_000 < tick;
            if (t - start) % 120_000 == 0 {
                for (ty, tier) in [
                    ("mail", "helpful"),
                    ("calendar", "helpful"),
                    ("tip", "informational"),
                ] {
                    n += 1;
                    raise(&c, &format!("n{n}"), ty, tier, ty, t, hold);
                }
            }
            if (t - start) % (45 * 60_000) == 0 {
                n += 1;
                raise(&c, &format!("n{n}"), "approval", "urgent", "", t, hold);
            }
            let out = release(
                &c,
                &l,
                Focus {
                    deep_work: deep,
                    switched,
                },
                t,
            )
            .unwrap();
            for r in out {
                if r.tier == "urgent" {
                    urgent_latency_max = urgent_latency_max.max(t - r.created_ms);
                }
                // Nothing repeats inside a cooldown after a dismissal.
                if let Some(d) = dismissed_at.get(&r.trigger_type) {
                    if r.tier != "urgent" && r.trigger_type != "digest" {
                        assert!(
                            t - d >= l.cooldown_ms,
                            "{} repeated {} ms after a dismissal",
                            r.trigger_type,
                            t - d
                        );
                    }
                }
                delivered.push((t, r.tier.clone(), r.trigger_type.clone()));
                // The person dismisses tips, accepts calendar, ignores mail.
                match r.trigger_type.as_str() {
                    "tip" => {
                        answer(&c, &r.id, "dismissed", t);
                        dismissed_at.insert(r.trigger_type.clone(), t);
                    }
                    "calendar" => answer(&c, &r.id, "accepted", t),
                    _ => {}
                }
            }
            t += tick;
        }
        // Caps hold in every rolling hour.
        for (i, (at, _, _)) in delivered.iter().enumerate() {
            for tier in [Tier::Urgent, Tier::Helpful, Tier::Informational] {
                let in_hour = delivered[..=i]
                    .iter()
                    .filter(|(t2, ti, _)| at - t2 < HOUR_MS && ti == tier.name())
                    .count() as u32;
                assert!(
                    in_hour <= l.per_hour[tier.index()],
                    "{} cap broken at {at}",
                    tier.name()
                );
            }
        }
        // Urgent ones went out on the tick they were raised, focus or not.
        assert_eq!(urgent_latency_max, 0);
        assert!(delivered.iter().filter(|d| d.1 == "urgent").count() >= 7 * 24 * 60 / 45 - 1);
        // Bundling merged: far fewer deliveries than raises.
        let bundled: u32 = c
            .query_row(
                "SELECT count(*) FROM notifications WHERE state = 'bundled'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(bundled > 1000, "bundled {bundled}");
        // Digests went out after focus blocks.
        assert!(delivered.iter().any(|d| d.2 == "digest"));
        // Tips, always dismissed, were learned: demoted out entirely later.
        let late_tips = delivered
            .iter()
            .filter(|d| d.2 == "tip" && d.0 > start + 24 * HOUR_MS)
            .count();
        assert_eq!(
            late_tips, 0,
            "tips still delivered after a day of dismissals"
        );
    }

    #[test]
    fn held_during_focus_then_one_digest() {
        let c = crate::db::migrated(&[store::OWNER]);
        let l = Limits::default();
        raise(&c, "a", "mail", "helpful", "", 0, 0);
        raise(&c, "b", "tip", "informational", "", 0, 0);
        let deep = Focus {
            deep_work: true,
            switched: false,
        };
        assert!(release(&c, &l, deep, 10).unwrap().is_empty());
        assert_eq!(store::get(&c, "a").unwrap().unwrap().state, "held");
        let out = release(
            &c,
            &l,
            Focus {
                deep_work: false,
                switched: true,
            },
            20,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].members, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(store::get(&c, "b").unwrap().unwrap().state, "bundled");
    }
}
