//! The store's hot entries: the entries exact lookups found most recently, decoded, in
//! memory, so a repeated exact hit skips the read transaction, the B-tree walks and the
//! record's decoding.
//!
//! It is a copy of what the file holds, never a second truth:
//!
//! - every write that changes an entry forgets, after its commit and before it returns,
//!   the exact keys and ids it touched ([`HotEntries::forget`]); a re-opened file or a
//!   failed write forgets everything ([`HotEntries::clear`]);
//! - a read fills the table only with what it read in a transaction begun after the last
//!   such forgetting: it takes a [`Ticket`] (the table's generation) before its read
//!   transaction and [`HotEntries::fill`] refuses the entry once the generation has moved
//!   on, so a read that raced a write never puts back what the write removed;
//! - hit counts flushed to the file change the stored counts, so a flush forgets its ids
//!   too (the store adds hits still buffered in memory on every read, as it does for
//!   entries read from the file).
//!
//! An entry is kept only when it is read a second time while the first read is still
//! remembered ([`SEEN_SLOTS`] fingerprints), so reads spread over many entries do not pay
//! for copies nobody reads again. Bounded by the bytes of the entries it holds (an estimate
//! of their heap size); an entry larger than a sixteenth of the bound is not kept. Evicts
//! by CLOCK: a second chance for every entry read since the hand last passed it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use deja_core::{Answer, Entry, ExactKey};
use parking_lot::Mutex;

/// How many reads of entries not kept are remembered (by a fingerprint of their exact key,
/// one per slot, a newer read taking an older one's slot).
pub(super) const SEEN_SLOTS: usize = 4096;

/// The store's hot entries (see the module docs).
pub(super) struct HotEntries {
    max_bytes: usize,
    /// Moves on with every forgetting; see [`Ticket`].
    generation: AtomicU64,
    table: Mutex<Table>,
    /// Fingerprints of exact keys read recently and not kept (0: none).
    seen: Box<[AtomicU64]>,
}

/// The generation a read saw before it began its transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket(u64);

#[derive(Default)]
struct Table {
    by_key: HashMap<[u8; 16], usize>,
    by_id: HashMap<u64, usize>,
    slots: Vec<Option<Slot>>,
    /// Slots emptied by forgetting, reused before the table grows.
    free: Vec<usize>,
    /// The CLOCK hand: the next slot eviction looks at.
    hand: usize,
    bytes: usize,
}

struct Slot {
    entry: Arc<Entry>,
    bytes: usize,
    /// Read since the hand last passed.
    referenced: bool,
}

impl HotEntries {
    /// A table of at most `max_bytes` (0: it keeps nothing).
    pub(super) fn new(max_bytes: usize) -> HotEntries {
        HotEntries {
            max_bytes,
            generation: AtomicU64::new(0),
            table: Mutex::new(Table::default()),
            seen: (0..SEEN_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether `key` was read recently; remembers it if not. Exact keys are hashes, so
    /// their first eight bytes spread evenly.
    fn seen_before(&self, key: &ExactKey) -> bool {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key.0[..8]);
        let h = u64::from_le_bytes(head);
        let slot = &self.seen[(h % SEEN_SLOTS as u64) as usize];
        // Never 0, which marks an empty slot.
        let fingerprint = h | 1;
        slot.swap(fingerprint, Ordering::Relaxed) == fingerprint
    }

    pub(super) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// The entry stored under `key`, if it is hot. Its hit fields are those the file held
    /// when it was read.
    pub(super) fn get(&self, key: &ExactKey) -> Option<Entry> {
        self.read(|t| t.by_key.get(&key.0).copied())
    }

    /// The entry with `id`, if it is hot (see [`get`](Self::get)).
    pub(super) fn get_id(&self, id: u64) -> Option<Entry> {
        self.read(|t| t.by_id.get(&id).copied())
    }

    /// A copy of the entry in the slot `find` names, marked as read.
    fn read(&self, find: impl FnOnce(&Table) -> Option<usize>) -> Option<Entry> {
        if !self.enabled() {
            return None;
        }
        let found = {
            let mut t = self.table.lock();
            let i = find(&t)?;
            let slot = t.slots[i].as_mut()?;
            slot.referenced = true;
            Arc::clone(&slot.entry)
        };
        // The deep copy is made outside the lock.
        Some(Entry::clone(&found))
    }

    /// Taken before a read transaction whose entry may [`fill`](Self::fill) the table.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps `entry`, read in a transaction begun after `ticket` was taken, unless a write
    /// has forgotten anything since (then what was read may be older than the file).
    pub(super) fn fill(&self, ticket: Ticket, entry: &Entry) {
        if !self.enabled() {
            return;
        }
        let bytes = heap_bytes(entry);
        if bytes > self.max_bytes / 16 || !self.seen_before(&entry.exact_key) {
            return;
        }
        let entry = Arc::new(entry.clone());
        let mut t = self.table.lock();
        // Checked under the lock: forgetting moves the generation under it too, so a
        // forgetting either happened before (refused here) or comes after (and removes
        // this entry if it concerns it).
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        t.remove_key(&entry.exact_key.0);
        t.remove_id(entry.id.0);
        while t.bytes + bytes > self.max_bytes && t.evict_one() {}
        let i = match t.free.pop() {
            Some(i) => i,
            None => {
                t.slots.push(None);
                t.slots.len() - 1
            }
        };
        t.by_key.insert(entry.exact_key.0, i);
        t.by_id.insert(entry.id.0, i);
        t.bytes += bytes;
        t.slots[i] = Some(Slot {
            entry,
            bytes,
            referenced: false,
        });
    }

    /// Forgets the entries under `keys` and with `ids`: called by every write that changes
    /// entries (or their flushed hits), after its commit.
    pub(super) fn forget(&self, keys: &[[u8; 16]], ids: &[u64]) {
        if !self.enabled() {
            return;
        }
        let mut t = self.table.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        for k in keys {
            t.remove_key(k);
        }
        for &id in ids {
            t.remove_id(id);
        }
    }

    /// Forgets everything (the file was re-opened, or a write failed and what it changed
    /// is unknown).
    pub(super) fn clear(&self) {
        if !self.enabled() {
            return;
        }
        let mut t = self.table.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *t = Table::default();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().by_key.len()
    }
}

impl Table {
    fn remove_key(&mut self, key: &[u8; 16]) {
        if let Some(&i) = self.by_key.get(key) {
            self.remove_slot(i);
        }
    }

    fn remove_id(&mut self, id: u64) {
        if let Some(&i) = self.by_id.get(&id) {
            self.remove_slot(i);
        }
    }

    fn remove_slot(&mut self, i: usize) {
        let Some(slot) = self.slots[i].take() else {
            return;
        };
        self.by_key.remove(&slot.entry.exact_key.0);
        self.by_id.remove(&slot.entry.id.0);
        self.bytes -= slot.bytes;
        self.free.push(i);
    }

    /// Evicts the first entry the hand finds unread since it last passed (clearing the
    /// marks it passes); false when the table is empty.
    fn evict_one(&mut self) -> bool {
        if self.by_key.is_empty() {
            return false;
        }
        // Two turns at most: the first clears every mark.
        for _ in 0..2 * self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            match &mut self.slots[i] {
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(_) => {
                    self.remove_slot(i);
                    return true;
                }
                None => {}
            }
        }
        false
    }
}

/// What an entry holds on the heap, roughly (the table's bound counts this).
fn heap_bytes(e: &Entry) -> usize {
    let answer = match &e.answer {
        Answer::Body(b) => b.len(),
        Answer::Chunks(c) => c.iter().map(|c| c.len() + 24).sum(),
    };
    std::mem::size_of::<Entry>()
        + e.prompt.len()
        + e.model.len()
        + answer
        + e.category.len()
        + e.namespace.len()
        + e.tags.iter().map(|t| t.len() + 24).sum::<usize>()
        + e.embedder_id.len()
        + e.vector.len() * 4
        + e.request.as_ref().map_or(0, Vec::len)
        // Two map rows, the slot and the Arc's counts.
        + 128
}

#[cfg(test)]
mod tests {
    use super::*;
    use deja_core::{EntryId, PartitionKey, Usage};

    /// Fills as a second read does (the first is only remembered).
    fn fill_twice(hot: &HotEntries, e: &Entry) {
        hot.fill(hot.ticket(), e);
        hot.fill(hot.ticket(), e);
    }

    fn entry(id: u64, key: u8, answer_bytes: usize) -> Entry {
        Entry {
            id: EntryId(id),
            partition: PartitionKey([0; 16]),
            exact_key: ExactKey([key; 16]),
            prompt: format!("prompt {id}"),
            model: "m".into(),
            answer: Answer::Body(vec![b'x'; answer_bytes]),
            usage: Usage::default(),
            created_at_ms: 1,
            last_hit_ms: 0,
            hit_count: 0,
            category: "default".into(),
            namespace: String::new(),
            tags: Vec::new(),
            embedder_id: String::new(),
            vector: Vec::new(),
            request: None,
        }
    }

    #[test]
    fn keeps_what_was_read_until_a_write_forgets_it() {
        let hot = HotEntries::new(1 << 20);
        let e = entry(1, 7, 100);
        fill_twice(&hot, &e);
        assert_eq!(hot.get(&e.exact_key), Some(e.clone()));
        // A write of another key and id leaves it.
        hot.forget(&[[9; 16]], &[2]);
        assert_eq!(hot.get(&e.exact_key), Some(e.clone()));
        // By key …
        hot.forget(&[e.exact_key.0], &[]);
        assert_eq!(hot.get(&e.exact_key), None);
        // … and by id (the same id stored under another key).
        fill_twice(&hot, &e);
        hot.forget(&[], &[1]);
        assert_eq!(hot.get(&e.exact_key), None);
        fill_twice(&hot, &e);
        hot.clear();
        assert_eq!(hot.get(&e.exact_key), None);
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let hot = HotEntries::new(1 << 20);
        let e = entry(1, 7, 100);
        // Read once before: the next read would be kept.
        hot.fill(hot.ticket(), &e);
        let before = hot.ticket();
        // A write commits and forgets while the read is under way, whatever it touched.
        hot.forget(&[[9; 16]], &[]);
        hot.fill(before, &e);
        assert_eq!(hot.get(&e.exact_key), None);
        // A read begun after it is kept.
        hot.fill(hot.ticket(), &e);
        assert!(hot.get(&e.exact_key).is_some());
    }

    #[test]
    fn only_what_is_read_again_is_kept() {
        let hot = HotEntries::new(1 << 20);
        let (a, b) = (entry(1, 7, 100), entry(2, 8, 100));
        hot.fill(hot.ticket(), &a);
        assert_eq!(hot.get(&a.exact_key), None, "read once");
        hot.fill(hot.ticket(), &b);
        hot.fill(hot.ticket(), &a);
        assert!(hot.get(&a.exact_key).is_some(), "read again");
        assert_eq!(hot.get(&b.exact_key), None);
        // A read remembered is forgotten once another key takes its slot.
        let c = entry(3, 9, 100);
        hot.fill(hot.ticket(), &c);
        let mut taken = c.clone();
        for i in 0..SEEN_SLOTS as u64 * 8 {
            taken.exact_key = ExactKey::new(&PartitionKey([1; 16]), &i.to_string());
            let slot =
                |k: &ExactKey| u64::from_le_bytes(k.0[..8].try_into().unwrap()) % SEEN_SLOTS as u64;
            if slot(&taken.exact_key) == slot(&c.exact_key) {
                break;
            }
        }
        hot.fill(hot.ticket(), &taken);
        hot.fill(hot.ticket(), &c);
        assert_eq!(hot.get(&c.exact_key), None);
    }

    #[test]
    fn one_key_and_one_id_per_slot() {
        let hot = HotEntries::new(1 << 20);
        // The same id read again under another key (it was moved): only the new one stays.
        fill_twice(&hot, &entry(1, 7, 10));
        fill_twice(&hot, &entry(1, 8, 10));
        assert_eq!(hot.get(&ExactKey([7; 16])), None);
        assert!(hot.get(&ExactKey([8; 16])).is_some());
        // Another id under the same key (it was replaced): only the new one stays.
        fill_twice(&hot, &entry(2, 8, 10));
        assert_eq!(hot.get(&ExactKey([8; 16])).map(|e| e.id), Some(EntryId(2)));
        hot.forget(&[], &[1]);
        assert!(hot.get(&ExactKey([8; 16])).is_some());
        assert_eq!(hot.len(), 1);
    }

    #[test]
    fn bounded_by_bytes_and_evicts_what_was_not_read() {
        // Room for twenty (their prompts differ by a digit or two).
        let one = heap_bytes(&entry(0, 0, 1_000));
        let hot = HotEntries::new(one * 20 + 40);
        for k in 0..10u8 {
            fill_twice(&hot, &entry(u64::from(k), k, 1_000));
        }
        assert_eq!(hot.len(), 10);
        // Entries 0..5 are read; filling ten more evicts the unread ones first.
        for k in 0..5u8 {
            assert!(hot.get(&ExactKey([k; 16])).is_some());
        }
        for k in 10..25u8 {
            fill_twice(&hot, &entry(u64::from(k), k, 1_000));
            assert!(hot.table.lock().bytes <= one * 20 + 40);
        }
        assert_eq!(hot.len(), 20);
        let kept_read = (0..5u8)
            .filter(|&k| hot.get(&ExactKey([k; 16])).is_some())
            .count();
        let kept_unread = (5..10u8)
            .filter(|&k| hot.get(&ExactKey([k; 16])).is_some())
            .count();
        assert_eq!((kept_read, kept_unread), (5, 0));
        // An entry over a sixteenth of the bound is not kept.
        let big = entry(99, 99, one * 2);
        fill_twice(&hot, &big);
        assert_eq!(hot.get(&big.exact_key), None);
        // A table of 0 bytes keeps nothing.
        let off = HotEntries::new(0);
        fill_twice(&off, &entry(1, 1, 1));
        assert_eq!(off.get(&ExactKey([1; 16])), None);
    }
}
