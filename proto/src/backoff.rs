//! The restart policy (seed: "Startup Failure Policy") of every supervised
//! process, coworkd's workers and agents-agent's llama-server sessions: 2 s →
//! 4 s → 8 s → 16 s → 32 s, then `failed` after `max_restarts` failed restarts. Pure.

use std::time::Duration;

/// Exponential backoff with a cap and a restart budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay before the first restart.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Restarts allowed before giving up.
    pub max_restarts: u32,
}

/// What to do after a worker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Restart after this delay; this is restart number `attempt`.
    RestartIn {
        /// The wait before restarting.
        delay: Duration,
        /// 1-based restart attempt, at most `max_restarts`.
        attempt: u32,
    },
    /// The budget is spent: the worker is `failed` until retried by hand.
    GiveUp,
}

impl BackoffPolicy {
    /// The delay before restart number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// Decide after the `failures`-th consecutive failure (1-based).
    pub fn after_failure(&self, failures: u32) -> AfterFailure {
        if failures > self.max_restarts {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RestartIn {
                delay: self.delay(failures),
                attempt: failures,
            }
        }
    }
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(32),
            max_restarts: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_sequence_then_give_up() {
        let p = BackoffPolicy::default();
        let delays: Vec<u64> = (1..=5)
            .map(|n| match p.after_failure(n) {
                AfterFailure::RestartIn { delay, attempt } => {
                    assert_eq!(attempt, n);
                    delay.as_secs()
                }
                AfterFailure::GiveUp => panic!("gave up at {n}"),
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32]);
        assert_eq!(p.after_failure(6), AfterFailure::GiveUp);
    }

    #[test]
    fn capped_and_overflow_safe() {
        let p = BackoffPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(120),
            max_restarts: 100,
        };
        assert_eq!(p.delay(1), Duration::from_millis(50));
        assert_eq!(p.delay(2), Duration::from_millis(100));
        assert_eq!(p.delay(3), Duration::from_millis(120));
        assert_eq!(p.delay(99), Duration::from_millis(120));
        assert_eq!(p.delay(0), Duration::from_millis(50));
    }

    #[test]
    fn zero_budget_gives_up_at_once() {
        let p = BackoffPolicy {
            max_restarts: 0,
            ..Default::default()
        };
        assert_eq!(p.after_failure(1), AfterFailure::GiveUp);
    }
}
