//! What the live audit ([`crate::audit`]) spent today: calls and tokens against its daily
//! budget (`cache.audit_max_calls_per_day`, `cache.audit_max_tokens_per_day`), per UTC day
//! of the cache's clock, counted since this process started.

use deja_core::Usage;
use parking_lot::Mutex;
use rand::Rng;

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Today's spending.
#[derive(Default)]
pub struct AuditBudget {
    spent: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    day: u64,
    calls: u64,
    tokens: u64,
}

impl AuditBudget {
    /// Whether to audit a hit whose entry recorded `usage`: sampled at `share`, within
    /// the day's budget (the call is counted now, its tokens when it answers).
    pub fn admit(&self, now_ms: u64, usage: Usage, share: f64, calls: u64, tokens: u64) -> bool {
        if share <= 0.0 || !rand::thread_rng().gen_bool(share.min(1.0)) {
            return false;
        }
        let mut s = self.spent.lock();
        let day = now_ms / DAY_MS;
        if s.day != day {
            *s = Spent {
                day,
                ..Spent::default()
            };
        }
        let expected = usage.prompt_tokens.saturating_add(usage.completion_tokens);
        if s.calls >= calls || s.tokens.saturating_add(expected) > tokens {
            return false;
        }
        s.calls += 1;
        true
    }

    pub fn spend(&self, usage: Usage) {
        let mut s = self.spent.lock();
        s.tokens = s
            .tokens
            .saturating_add(usage.prompt_tokens.saturating_add(usage.completion_tokens));
    }
}
