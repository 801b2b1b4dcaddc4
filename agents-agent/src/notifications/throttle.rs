//! The throttling gates (seed 003 "Proactive Notifications"), pure: every
//! candidate passes the cooldown after a dismissal, dismissal learning
//! (a type dismissed again and again drops a tier), flow-state
//! suppression (deep work holds all but urgent ones for a digest at the
//! next context switch), and the hourly cap of its tier. Bundling (hold
//! 30 s, merge related) happens before: candidates of one bundle key that
//! became due together arrive here as one.

/// Priority tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Delivered at once, even in deep work (its own cap still holds).
    Urgent,
    /// Worth acting on.
    Helpful,
    /// Good to know.
    Informational,
}

impl Tier {
    /// Parse a tier's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "urgent" => Some(Self::Urgent),
            "helpful" => Some(Self::Helpful),
            "informational" => Some(Self::Informational),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Urgent => "urgent",
            Self::Helpful => "helpful",
            Self::Informational => "informational",
        }
    }

    /// Its index in per-tier arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The settings (`[notifications]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries per rolling hour, per tier (urgent, helpful, informational).
    pub per_hour: [u32; 3],
    /// After a dismissal, the same trigger type waits this long (ms).
    pub cooldown_ms: i64,
    /// Dismissals (without an accept) in the last week that demote a type.
    pub demote_after: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_hour: [10, 4, 2],
            cooldown_ms: 30 * 60_000,
            demote_after: 3,
        }
    }
}

/// What the store knows about a candidate's type and the last hour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Deliveries in the last hour, per tier.
    pub delivered_last_hour: [u32; 3],
    /// When this trigger type was last dismissed (Unix ms).
    pub last_dismissed_ms: Option<i64>,
    /// Dismissals of this type in the last week.
    pub dismissals_week: u32,
    /// Accepts or expands of this type in the last week.
    pub accepts_week: u32,
}

/// A gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Show it now, at this tier.
    Deliver(Tier),
    /// Keep it for the digest at the next context switch.
    Hold(String),
    /// Never show it; why.
    Drop(String),
}

/// The tier a type ends at after dismissal learning: dismissed
/// `demote_after` times with no accept in a week drops one tier
/// (informational drops out). Urgent ones are never demoted.
pub fn effective_tier(l: &Limits, tier: Tier, h: &History) -> Option<Tier> {
    if tier == Tier::Urgent || l.demote_after == 0 {
        return Some(tier);
    }
    let demoted = h.dismissals_week >= l.demote_after && h.dismissals_week > h.accepts_week * 2;
    match (tier, demoted) {
        (t, false) => Some(t),
        (Tier::Helpful, true) => Some(Tier::Informational),
        _ => None,
    }
}

/// Decide one candidate at `now_ms`.
pub fn decide(l: &Limits, tier: Tier, h: &History, deep_work: bool, now_ms: i64) -> Verdict {
    if tier != Tier::Urgent {
        if let Some(d) = h.last_dismissed_ms {
            if now_ms - d < l.cooldown_ms {
                return Verdict::Drop(format!(
                    "cooldown: this kind was dismissed {} min ago",
                    (now_ms - d) / 60_000
                ));
            }
        }
    }
    let Some(tier) = effective_tier(l, tier, h) else {
        return Verdict::Drop("you dismissed this kind repeatedly".into());
    };
    if deep_work && tier != Tier::Urgent {
        return Verdict::Hold(
            "held while you are focused; a digest follows at your next switch".into(),
        );
    }
    if h.delivered_last_hour[tier.index()] >= l.per_hour[tier.index()] {
        return Verdict::Drop(format!(
            "the {} cap ({} an hour) is reached",
            tier.name(),
            l.per_hour[tier.index()]
        ));
    }
    Verdict::Deliver(tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_passes_focus_and_cooldown() {
        let l = Limits::default();
        let h = History {
            last_dismissed_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(
            decide(&l, Tier::Urgent, &h, true, 1000),
            Verdict::Deliver(Tier::Urgent)
        );
        assert!(
            matches!(decide(&l, Tier::Helpful, &h, false, 1000), Verdict::Drop(r) if r.contains("cooldown"))
        );
        assert!(matches!(
            decide(&l, Tier::Helpful, &History::default(), true, 1000),
            Verdict::Hold(_)
        ));
    }

    #[test]
    fn caps_and_dismissal_learning() {
        let l = Limits::default();
        let mut h = History::default();
        h.delivered_last_hour[Tier::Helpful.index()] = 4;
        assert!(
            matches!(decide(&l, Tier::Helpful, &h, false, 0), Verdict::Drop(r) if r.contains("cap"))
        );
        let h = History {
            dismissals_week: 3,
            ..Default::default()
        };
        assert_eq!(
            effective_tier(&l, Tier::Helpful, &h),
            Some(Tier::Informational)
        );
        assert_eq!(effective_tier(&l, Tier::Informational, &h), None);
        assert_eq!(effective_tier(&l, Tier::Urgent, &h), Some(Tier::Urgent));
        // Accepted often enough: not demoted.
        let h = History {
            dismissals_week: 3,
            accepts_week: 2,
            ..Default::default()
        };
        assert_eq!(effective_tier(&l, Tier::Helpful, &h), Some(Tier::Helpful));
    }
}
