//! Aliases: the requests a semantic hit answered, by their exact key, so that a repeat of
//! the same request (the same paraphrase again, as real traffic sends it) is served from
//! the same entry without embedding its prompt again.
//!
//! An alias is a hint, like an index candidate: the entry it names is re-read from the
//! store and served only if it is still there, in the request's partition, unchanged
//! (the same creation time: a replaced answer is a new entry) and fresh for this request.
//! An alias is made only where the decision cannot change while the process runs: not
//! under an error budget (whose certified thresholds move with its labels), and it is
//! used only by a request that asks no more than the hit it repeats (the same category
//! hint, no client threshold above the hit's similarity). The table is bounded; the
//! oldest alias is forgotten first.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::entry::EntryId;
use crate::key::ExactKey;
use crate::policy::CategoryId;

/// A request a semantic hit answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Alias {
    pub entry: EntryId,
    /// The entry's creation time when it was served: it must still be the same entry.
    pub created_at_ms: u64,
    /// The similarity it was served at.
    pub similarity: f32,
    /// The category hint the request carried.
    pub hint: Option<CategoryId>,
}

/// At most `max` aliases, the oldest forgotten first.
pub(super) struct Aliases {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Each alias with the sequence number it was made with.
    by_key: HashMap<ExactKey, (u64, Alias)>,
    /// Keys in the order they were made (an entry whose number no longer matches was
    /// forgotten or made again since).
    order: VecDeque<(ExactKey, u64)>,
    next: u64,
}

impl Aliases {
    pub fn new(max: usize) -> Aliases {
        Aliases {
            max,
            table: Mutex::new(Table::default()),
        }
    }

    pub fn get(&self, key: &ExactKey) -> Option<Alias> {
        if self.max == 0 {
            return None;
        }
        self.table.lock().by_key.get(key).map(|(_, a)| *a)
    }

    pub fn insert(&self, key: ExactKey, alias: Alias) {
        if self.max == 0 {
            return;
        }
        let mut t = self.table.lock();
        let seq = t.next;
        t.next += 1;
        t.by_key.insert(key, (seq, alias));
        t.order.push_back((key, seq));
        while t.by_key.len() > self.max || t.order.len() > 2 * self.max {
            let Some((old, seq)) = t.order.pop_front() else {
                break;
            };
            if t.by_key.get(&old).is_some_and(|(s, _)| *s == seq) {
                t.by_key.remove(&old);
            }
        }
    }

    /// Forgets `key`'s alias if it still names `entry`.
    pub fn forget(&self, key: &ExactKey, entry: EntryId) {
        let mut t = self.table.lock();
        if t.by_key.get(key).is_some_and(|(_, a)| a.entry == entry) {
            t.by_key.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.table.lock().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(n: u64) -> Alias {
        Alias {
            entry: EntryId(n),
            created_at_ms: n,
            similarity: 0.9,
            hint: None,
        }
    }

    fn key(n: u8) -> ExactKey {
        ExactKey([n; 16])
    }

    #[test]
    fn the_oldest_alias_is_forgotten_first() {
        let a = Aliases::new(2);
        a.insert(key(1), alias(1));
        a.insert(key(2), alias(2));
        a.insert(key(3), alias(3));
        assert_eq!(a.len(), 2);
        assert_eq!(a.get(&key(1)), None);
        assert_eq!(a.get(&key(3)), Some(alias(3)));
        // Made again, an alias is the newest: key 2 is now the oldest.
        a.insert(key(3), alias(4));
        a.insert(key(5), alias(5));
        assert_eq!(a.get(&key(2)), None);
        assert_eq!(a.get(&key(3)), Some(alias(4)));
        assert_eq!(a.get(&key(5)), Some(alias(5)));
    }

    #[test]
    fn forgetting_names_the_entry_and_zero_keeps_nothing() {
        let a = Aliases::new(4);
        a.insert(key(1), alias(1));
        a.forget(&key(1), EntryId(2));
        assert_eq!(a.get(&key(1)), Some(alias(1)));
        a.forget(&key(1), EntryId(1));
        assert_eq!(a.get(&key(1)), None);
        // Re-made after being forgotten, it is not dropped by its old place in the order.
        let a = Aliases::new(2);
        a.insert(key(1), alias(1));
        a.forget(&key(1), EntryId(1));
        a.insert(key(2), alias(2));
        a.insert(key(1), alias(1));
        a.insert(key(3), alias(3));
        assert_eq!(a.get(&key(1)), Some(alias(1)));
        assert_eq!(a.get(&key(2)), None);
        let off = Aliases::new(0);
        off.insert(key(1), alias(1));
        assert_eq!((off.get(&key(1)), off.len()), (None, 0));
    }
}
