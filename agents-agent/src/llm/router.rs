//! The complexity router (seed 003 "Complexity Router"): rule-based, no ML,
//! pure. Every decision carries its reason. Step 1 routes (preference,
//! simple/complex thresholds, "try harder"), step 1b resolves the cloud
//! provider by tier, step 2 checks the budget (free monthly token quota;
//! paid caps per interaction, day, week, month).

use super::tier::{for_tier, Tier};
use std::fmt;

/// Below this many tokens (and with no attachments or tools) a request is
/// simple.
pub const SIMPLE_MAX_TOKENS: u64 = 500;
/// Above this many tokens a request is complex (the local brain's context).
pub const LOCAL_MAX_TOKENS: u64 = 8_000;
/// Tools from which a request counts as multi-tool.
pub const MULTI_TOOL: u32 = 2;

/// Where the person wants answers to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// On this machine when the task allows.
    Local,
    /// Always the cloud.
    Cloud,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The local brain, with its `provider/model` id.
    Local(String),
    /// A cloud tier.
    Cloud(Tier),
}

impl Target {
    /// The `provider/model` id.
    pub fn model_id(&self) -> &str {
        match self {
            Target::Local(id) => id,
            Target::Cloud(t) => t.model_id(),
        }
    }
}

/// What the person pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The free monthly token quota on the free tier.
    Free,
    /// A paid plan up to this tier, under spend caps.
    Paid(Tier),
}

/// Spend caps of paid plans, in USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Caps {
    /// One interaction (including its retry chain).
    pub per_interaction: f64,
    /// Per calendar day.
    pub daily: f64,
    /// Per week.
    pub weekly: f64,
    /// Per month.
    pub monthly: f64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            per_interaction: 0.50,
            daily: 10.0,
            weekly: 50.0,
            monthly: 200.0,
        }
    }
}

/// What has been used so far (read from the usage ledger).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Free-tier tokens used this month.
    pub free_tokens_this_month: u64,
    /// USD spent today, this week, this month.
    pub spent_today: f64,
    /// See `spent_today`.
    pub spent_this_week: f64,
    /// See `spent_today`.
    pub spent_this_month: f64,
    /// USD already spent on this ask (its retry chain).
    pub spent_this_ask: f64,
}

/// The router's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The person's preference.
    pub preference: Preference,
    /// The person's plan.
    pub plan: Plan,
    /// The free plan's monthly token quota.
    pub free_monthly_tokens: u64,
    /// Paid caps.
    pub caps: Caps,
    /// Output tokens assumed when estimating cost.
    pub expected_output_tokens: u64,
    /// The local brain's model, when a local engine is reachable.
    pub local_model: Option<String>,
    /// Tiers whose cloud provider has an API key (default: all). A tier
    /// without one is never sent anything.
    pub cloud_tiers: Vec<Tier>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            preference: Preference::Local,
            plan: Plan::Free,
            free_monthly_tokens: 625_000,
            caps: Caps::default(),
            expected_output_tokens: 1_000,
            local_model: None,
            cloud_tiers: super::tier::TIERS.to_vec(),
        }
    }
}

/// One request, as the router sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Estimated prompt tokens (context included).
    pub tokens: u64,
    /// Attached files or images.
    pub attachments: u32,
    /// Tools offered to the model.
    pub tools: u32,
    /// "Try harder": the target of the response being retried.
    pub retry_of: Option<Target>,
}

/// A budget refusal: a friendly message with what to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The free plan's monthly quota would be exceeded.
    FreeQuota {
        /// Tokens left this month.
        remaining: u64,
        /// Tokens this request needs.
        needed: u64,
    },
    /// The free plan cannot use a paid tier.
    NeedsPlan(Tier),
    /// A paid cap would be exceeded.
    Cap {
        /// "per-interaction", "daily", "weekly" or "monthly".
        cap: &'static str,
        /// The cap in USD.
        limit: f64,
        /// Already spent against it.
        spent: f64,
        /// This request's estimate.
        estimate: f64,
    },
    /// The cloud tier chosen has no provider key set up.
    CloudNotSetUp(Tier),
    /// Neither a local engine nor a cloud provider can answer.
    NoEngine,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::FreeQuota { remaining, needed } => write!(
                f,
                "this needs about {needed} tokens and {remaining} of this month's free tokens \
                 are left; switch to a local model, or upgrade to Boost for more"
            ),
            Refusal::NeedsPlan(t) => write!(
                f,
                "the {} tier needs a paid plan; upgrade to use {}",
                t.name(),
                t.model_id()
            ),
            Refusal::Cap {
                cap,
                limit,
                spent,
                estimate,
            } => write!(
                f,
                "this would cost about ${estimate:.4}, over the {cap} cap of ${limit:.2} \
                 (${spent:.4} spent); raise the cap or try a cheaper tier"
            ),
            Refusal::CloudNotSetUp(t) => {
                let (p, _) = for_tier(*t);
                write!(
                    f,
                    "the {} tier uses {}, which has no API key: set {} or \
                     [agents.providers.{}] api_key",
                    t.name(),
                    p.id,
                    p.key_env,
                    p.id
                )
            }
            Refusal::NoEngine => write!(
                f,
                "no model engine reachable: start a local engine (see `coworkctl engines`) \
                 or give a cloud provider a key (GEMINI_API_KEY)"
            ),
        }
    }
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Where the request goes.
    pub target: Target,
    /// Why, in words a person can read.
    pub reason: String,
    /// Shown to the person, e.g. "This one needed cloud".
    pub notice: Option<String>,
    /// Estimated cost in USD (0 for local and the free tier).
    pub cost_estimate: f64,
    /// Step 2: None when within budget.
    pub refusal: Option<Refusal>,
}

fn cloud_tier(policy: &Policy) -> Tier {
    match policy.plan {
        Plan::Free => Tier::Free,
        Plan::Paid(t) => t,
    }
}

/// Estimated USD cost of `req` on `tier` (list price; the free tier is free
/// to the person but its tokens count against the quota).
pub fn estimate_cost(policy: &Policy, req: &Request, tier: Tier) -> f64 {
    let (i, o) = tier.price_per_mtok();
    (req.tokens as f64 * i + policy.expected_output_tokens as f64 * o) / 1e6
}

/// Step 2 alone, for a request whose tier is already chosen (an agent
/// operation's model calls): None when `req` fits the plan's quota and
/// caps, given what `usage` has spent (`spent_this_ask`: the operation).
pub fn check_budget(policy: &Policy, req: &Request, usage: &Usage, tier: Tier) -> Option<Refusal> {
    let cost = if tier == Tier::Free {
        0.0
    } else {
        estimate_cost(policy, req, tier)
    };
    budget(policy, req, usage, tier, cost)
}

/// Route one request.
pub fn route(policy: &Policy, req: &Request, usage: &Usage) -> Decision {
    let simple = req.tokens < SIMPLE_MAX_TOKENS && req.attachments == 0 && req.tools == 0;
    let complex = req.tokens > LOCAL_MAX_TOKENS || req.attachments > 0 || req.tools >= MULTI_TOOL;
    // `automatic`: the cloud was the router's idea (complexity), not the
    // person's (preference, "try harder") — it may fall back to local.
    let (target, reason, mut notice, automatic) = match (&req.retry_of, policy.preference) {
        (Some(Target::Local(_)), _) => {
            let t = cloud_tier(policy);
            (
                Target::Cloud(t),
                format!("try harder: local → cloud {} tier", t.name()),
                None,
                false,
            )
        }
        (Some(Target::Cloud(t)), _) => match t.next() {
            Some(n) => (
                Target::Cloud(n),
                format!("try harder: {} → {} tier", t.name(), n.name()),
                None,
                false,
            ),
            None => (
                Target::Cloud(*t),
                "try harder: already at the top tier (max)".to_owned(),
                Some("This is already the smartest model".to_owned()),
                false,
            ),
        },
        (None, Preference::Cloud) => (
            Target::Cloud(cloud_tier(policy)),
            "prefers cloud: cloud always".to_owned(),
            None,
            false,
        ),
        (None, Preference::Local) if complex => {
            let why = if req.tokens > LOCAL_MAX_TOKENS {
                format!("{} tokens, over the local {LOCAL_MAX_TOKENS}", req.tokens)
            } else if req.attachments > 0 {
                format!("{} attachment(s)", req.attachments)
            } else {
                format!("{} tools", req.tools)
            };
            (
                Target::Cloud(cloud_tier(policy)),
                format!("prefers local, but complex ({why}) → cloud"),
                Some("This one needed cloud".to_owned()),
                true,
            )
        }
        (None, Preference::Local) => match &policy.local_model {
            Some(m) => (
                Target::Local(m.clone()),
                if simple {
                    format!(
                        "prefers local, simple ({} tokens < {SIMPLE_MAX_TOKENS}, no attachments, no tools) → local",
                        req.tokens
                    )
                } else {
                    format!(
                        "prefers local, within the local brain ({} tokens ≤ {LOCAL_MAX_TOKENS}, ≤ 1 tool) → local",
                        req.tokens
                    )
                },
                None,
                false,
            ),
            None => (
                Target::Cloud(cloud_tier(policy)),
                "prefers local, but no local engine is reachable → cloud".to_owned(),
                Some("No local model is running, so this went to the cloud".to_owned()),
                false,
            ),
        },
    };
    // Step 1c: a tier without a provider key is never used.
    let (target, reason, notice_unset, unavailable) = match target {
        Target::Cloud(t) if !policy.cloud_tiers.contains(&t) => {
            match (&policy.local_model, automatic) {
                (Some(m), true) => (
                    Target::Local(m.clone()),
                    format!("{reason}, but no cloud provider is set up → local"),
                    Some(
                        "This looked like one for the cloud, but no cloud provider is set up, \
                         so a local model answered"
                            .to_owned(),
                    ),
                    None,
                ),
                (None, _) if policy.preference == Preference::Local && req.retry_of.is_none() => {
                    (Target::Cloud(t), reason, None, Some(Refusal::NoEngine))
                }
                _ => (
                    Target::Cloud(t),
                    reason,
                    None,
                    Some(Refusal::CloudNotSetUp(t)),
                ),
            }
        }
        other => (other, reason, None, None),
    };
    if notice_unset.is_some() || unavailable.is_some() {
        notice = notice_unset;
    }
    let tier = match &target {
        Target::Local(_) => None,
        Target::Cloud(t) => Some(*t),
    };
    let cost_estimate = match tier {
        Some(t) if t != Tier::Free => estimate_cost(policy, req, t),
        _ => 0.0,
    };
    let refusal =
        unavailable.or_else(|| tier.and_then(|t| budget(policy, req, usage, t, cost_estimate)));
    if req.retry_of.is_some() && refusal.is_none() && cost_estimate > 0.0 {
        notice = Some(format!("Retry with a smarter model (~${cost_estimate:.4})"));
    }
    Decision {
        target,
        reason,
        notice,
        cost_estimate,
        refusal,
    }
}

fn budget(policy: &Policy, req: &Request, usage: &Usage, tier: Tier, cost: f64) -> Option<Refusal> {
    match (policy.plan, tier) {
        (Plan::Free, Tier::Free) => {
            let needed = req.tokens + policy.expected_output_tokens;
            let remaining = policy
                .free_monthly_tokens
                .saturating_sub(usage.free_tokens_this_month);
            (needed > remaining).then_some(Refusal::FreeQuota { remaining, needed })
        }
        (Plan::Free, t) => Some(Refusal::NeedsPlan(t)),
        (Plan::Paid(max), t) if t > max => Some(Refusal::NeedsPlan(t)),
        (Plan::Paid(_), _) => {
            let c = &policy.caps;
            [
                ("per-interaction", c.per_interaction, usage.spent_this_ask),
                ("daily", c.daily, usage.spent_today),
                ("weekly", c.weekly, usage.spent_this_week),
                ("monthly", c.monthly, usage.spent_this_month),
            ]
            .into_iter()
            .find(|(_, limit, spent)| spent + cost > *limit)
            .map(|(cap, limit, spent)| Refusal::Cap {
                cap,
                limit,
                spent,
                estimate: cost,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::tier::actual_cost;

    #[test]
    fn an_operation_stops_at_the_per_interaction_cap() {
        let policy = Policy {
            plan: Plan::Paid(Tier::Pro),
            caps: Caps {
                per_interaction: 0.05,
                ..Caps::default()
            },
            ..Policy::default()
        };
        let req = Request {
            tokens: 2_000,
            attachments: 0,
            tools: 3,
            retry_of: None,
        };
        let mut usage = Usage::default();
        assert_eq!(check_budget(&policy, &req, &usage, Tier::Pro), None);
        usage.spent_this_ask = 0.049;
        assert!(matches!(
            check_budget(&policy, &req, &usage, Tier::Pro),
            Some(Refusal::Cap {
                cap: "per-interaction",
                ..
            })
        ));
        // The free plan's quota counts tokens, not dollars.
        let free = Policy {
            free_monthly_tokens: 1_000,
            ..Policy::default()
        };
        assert!(matches!(
            check_budget(&free, &req, &Usage::default(), Tier::Free),
            Some(Refusal::FreeQuota { .. })
        ));
    }

    fn local_policy() -> Policy {
        Policy {
            local_model: Some("ollama/deepseek-r1:8b".into()),
            ..Policy::default()
        }
    }

    fn req(tokens: u64, attachments: u32, tools: u32) -> Request {
        Request {
            tokens,
            attachments,
            tools,
            retry_of: None,
        }
    }

    #[test]
    fn the_routing_table() {
        let p = local_policy();
        let u = Usage::default();
        // (request, expected target, words the reason must contain)
        let local = Target::Local("ollama/deepseek-r1:8b".into());
        let cases = [
            (req(100, 0, 0), local.clone(), "simple"),
            (req(499, 0, 0), local.clone(), "simple"),
            (req(500, 0, 0), local.clone(), "within the local brain"),
            (req(8_000, 0, 1), local.clone(), "within the local brain"),
            (
                req(8_001, 0, 0),
                Target::Cloud(Tier::Free),
                "over the local",
            ),
            (req(10, 1, 0), Target::Cloud(Tier::Free), "attachment"),
            (req(10, 0, 2), Target::Cloud(Tier::Free), "2 tools"),
        ];
        for (r, want, words) in cases {
            let d = route(&p, &r, &u);
            assert_eq!(d.target, want, "{r:?}");
            assert!(d.reason.contains(words), "{r:?}: {}", d.reason);
            assert_eq!(d.refusal, None);
            if matches!(want, Target::Cloud(_)) {
                assert_eq!(d.notice.as_deref(), Some("This one needed cloud"));
            }
        }
    }

    #[test]
    fn cloud_preference_always_goes_to_the_plans_tier() {
        let p = Policy {
            preference: Preference::Cloud,
            plan: Plan::Paid(Tier::Pro),
            ..local_policy()
        };
        let d = route(&p, &req(5, 0, 0), &Usage::default());
        assert_eq!(d.target, Target::Cloud(Tier::Pro));
        assert_eq!(
            d.target.model_id(),
            "openrouter/anthropic/claude-sonnet-4.5"
        );
        assert!(d.cost_estimate > 0.0);
    }

    #[test]
    fn no_local_engine_falls_back_to_cloud_and_says_so() {
        let d = route(&Policy::default(), &req(5, 0, 0), &Usage::default());
        assert_eq!(d.target, Target::Cloud(Tier::Free));
        assert!(d.reason.contains("no local engine"));
    }

    #[test]
    fn try_harder_climbs_one_tier_with_a_cost_estimate() {
        let p = Policy {
            plan: Plan::Paid(Tier::Max),
            ..local_policy()
        };
        let u = Usage::default();
        let mut r = req(1_000, 0, 0);
        r.retry_of = Some(Target::Local("ollama/deepseek-r1:8b".into()));
        assert_eq!(route(&p, &r, &u).target, Target::Cloud(Tier::Max));
        for (from, to) in [
            (Tier::Free, Tier::Boost),
            (Tier::Boost, Tier::Pro),
            (Tier::Pro, Tier::Max),
        ] {
            r.retry_of = Some(Target::Cloud(from));
            let d = route(&p, &r, &u);
            assert_eq!(d.target, Target::Cloud(to));
            let want = estimate_cost(&p, &r, to);
            assert!((d.cost_estimate - want).abs() < 1e-12);
            assert!(d.notice.unwrap().contains(&format!("{want:.4}")));
        }
        r.retry_of = Some(Target::Cloud(Tier::Max));
        let d = route(&p, &r, &u);
        assert_eq!(d.target, Target::Cloud(Tier::Max));
        assert!(d.reason.contains("top tier"));
    }

    #[test]
    fn a_tier_without_a_key_is_never_used() {
        let no_cloud = Policy {
            cloud_tiers: vec![],
            ..local_policy()
        };
        let u = Usage::default();
        // Complex, local preference: falls back to local and says so.
        let d = route(&no_cloud, &req(9_000, 0, 0), &u);
        assert_eq!(d.target, Target::Local("ollama/deepseek-r1:8b".into()));
        assert!(d.reason.contains("no cloud provider"), "{}", d.reason);
        assert!(d.notice.unwrap().contains("no cloud provider"));
        assert_eq!(d.refusal, None);
        // The person asked for the cloud: refused with what to set.
        let cloud = Policy {
            preference: Preference::Cloud,
            ..no_cloud.clone()
        };
        let d = route(&cloud, &req(5, 0, 0), &u);
        assert_eq!(d.refusal, Some(Refusal::CloudNotSetUp(Tier::Free)));
        assert!(d.refusal.unwrap().to_string().contains("GEMINI_API_KEY"));
        let mut r = req(5, 0, 0);
        r.retry_of = Some(Target::Local("ollama/deepseek-r1:8b".into()));
        assert_eq!(
            route(&no_cloud, &r, &u).refusal,
            Some(Refusal::CloudNotSetUp(Tier::Free))
        );
        // Only OpenRouter set up: free is unavailable, boost is fine.
        let paid = Policy {
            plan: Plan::Paid(Tier::Boost),
            preference: Preference::Cloud,
            cloud_tiers: vec![Tier::Boost, Tier::Pro, Tier::Max],
            ..Policy::default()
        };
        let d = route(&paid, &req(5, 0, 0), &u);
        assert_eq!((d.target, d.refusal), (Target::Cloud(Tier::Boost), None));
        let d = route(
            &Policy {
                plan: Plan::Free,
                ..paid
            },
            &req(5, 0, 0),
            &u,
        );
        assert!(d.refusal.unwrap().to_string().contains("gemini"));
        // Nothing at all.
        let nothing = Policy {
            cloud_tiers: vec![],
            ..Policy::default()
        };
        let d = route(&nothing, &req(5, 0, 0), &u);
        assert_eq!(d.refusal, Some(Refusal::NoEngine));
        assert!(d
            .refusal
            .unwrap()
            .to_string()
            .starts_with("no model engine reachable"));
    }

    #[test]
    fn cost_estimate_is_list_price() {
        let p = Policy {
            expected_output_tokens: 1_000,
            ..Policy::default()
        };
        // Sonnet: 2,000 in × $3/M + 1,000 out × $15/M = $0.006 + $0.015.
        let c = estimate_cost(&p, &req(2_000, 0, 0), Tier::Pro);
        assert!((c - 0.021).abs() < 1e-12, "{c}");
        assert!((actual_cost(Tier::Pro, 2_000, 1_000) - 0.021).abs() < 1e-12);
        assert_eq!(actual_cost(Tier::Free, 2_000, 1_000), 0.0);
    }

    #[test]
    fn the_free_quota() {
        let p = Policy {
            preference: Preference::Cloud,
            ..Policy::default()
        };
        let mut u = Usage {
            free_tokens_this_month: 625_000 - 1_500,
            ..Usage::default()
        };
        assert_eq!(route(&p, &req(500, 0, 0), &u).refusal, None, "exactly fits");
        u.free_tokens_this_month += 1;
        let d = route(&p, &req(500, 0, 0), &u);
        assert_eq!(
            d.refusal,
            Some(Refusal::FreeQuota {
                remaining: 1_499,
                needed: 1_500
            })
        );
        assert!(d.refusal.unwrap().to_string().contains("upgrade"));
        let mut r = req(10, 0, 0);
        r.retry_of = Some(Target::Cloud(Tier::Free));
        assert_eq!(
            route(&p, &r, &Usage::default()).refusal,
            Some(Refusal::NeedsPlan(Tier::Boost))
        );
    }

    #[test]
    fn every_paid_cap() {
        let p = Policy {
            preference: Preference::Cloud,
            plan: Plan::Paid(Tier::Max),
            ..Policy::default()
        };
        let r = req(2_000, 0, 0);
        let cost = estimate_cost(&p, &r, Tier::Max); // $0.035
        assert_eq!(route(&p, &r, &Usage::default()).refusal, None);
        let over = |u: Usage, cap: &str| match route(&p, &r, &u).refusal {
            Some(Refusal::Cap { cap: c, .. }) => assert_eq!(c, cap),
            other => panic!("{cap}: {other:?}"),
        };
        over(
            Usage {
                spent_this_ask: 0.50 - cost + 0.0001,
                ..Usage::default()
            },
            "per-interaction",
        );
        over(
            Usage {
                spent_today: 10.0 - cost + 0.0001,
                ..Usage::default()
            },
            "daily",
        );
        over(
            Usage {
                spent_this_week: 50.0 - cost + 0.0001,
                ..Usage::default()
            },
            "weekly",
        );
        over(
            Usage {
                spent_this_month: 200.0 - cost + 0.0001,
                ..Usage::default()
            },
            "monthly",
        );
        let just_under = Usage {
            spent_today: 10.0 - cost - 0.0001,
            ..Usage::default()
        };
        assert_eq!(route(&p, &r, &just_under).refusal, None);
        // A Boost plan cannot retry into Pro.
        let boost = Policy {
            plan: Plan::Paid(Tier::Boost),
            ..p.clone()
        };
        let mut retry = r.clone();
        retry.retry_of = Some(Target::Cloud(Tier::Boost));
        assert_eq!(
            route(&boost, &retry, &Usage::default()).refusal,
            Some(Refusal::NeedsPlan(Tier::Pro))
        );
    }
}
