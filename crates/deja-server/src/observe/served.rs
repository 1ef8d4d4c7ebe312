//! The semantic hits served under an error budget, remembered by request id so that a
//! client's verdict ([`crate::feedback`]) can name one: the last [`MAX_REMEMBERED`], each
//! with the tenant it was served to.

use std::collections::{HashMap, VecDeque};

use deja_core::{EntryId, LabelTicket};
use parking_lot::Mutex;

/// Most served hits remembered for feedback; the oldest are forgotten first.
pub const MAX_REMEMBERED: usize = 10_000;

/// One semantic hit served under an error budget.
pub struct ServedHit {
    pub tenant: String,
    pub entry: EntryId,
    pub ticket: LabelTicket,
}

/// The recent semantic hits a verdict may name, by request id.
#[derive(Default)]
pub struct ServedHits {
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    by_id: HashMap<String, ServedHit>,
    order: VecDeque<String>,
}

impl ServedHits {
    /// Remembers a hit served to `tenant` with `request_id`.
    pub fn record(&self, request_id: &str, tenant: &str, entry: EntryId, ticket: LabelTicket) {
        let mut r = self.inner.lock();
        let hit = ServedHit {
            tenant: tenant.to_string(),
            entry,
            ticket,
        };
        if r.by_id.insert(request_id.to_string(), hit).is_none() {
            r.order.push_back(request_id.to_string());
        }
        while r.order.len() > MAX_REMEMBERED {
            if let Some(old) = r.order.pop_front() {
                r.by_id.remove(&old);
            }
        }
    }

    /// Takes the hit `request_id` names, if it was served to `tenant`.
    pub fn take(&self, request_id: &str, tenant: &str) -> Option<ServedHit> {
        let mut r = self.inner.lock();
        if r.by_id.get(request_id)?.tenant != tenant {
            return None;
        }
        // The id stays in the order queue until it ages out; removing nothing then.
        r.by_id.remove(request_id)
    }
}
