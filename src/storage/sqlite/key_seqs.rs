//! The OCC versions of index keys, held in memory by the ledger's writer.
//!
//! An index lookup is checked at commit by asking whether its key changed (gained or lost a
//! document) after the block the lookup read at. Which block last changed each key used to be
//! a table written by every commit (63 bytes per document and a WAL page per commit); only the
//! writer needs it, and only for changes a live transaction can have missed, so it lives here:
//!
//! - changes are recorded by the writer before the SQLite commit that makes them (so a reader
//!   whose snapshot holds the commit finds them) and before the new tip is published (so a
//!   transaction that read at that tip finds them); a commit that fails takes its changes back;
//! - keys changed before the ledger was opened, or forgotten to bound memory, are covered by
//!   `floor`: a check as of an earlier block cannot be decided and is refused as a conflict
//!   (the driver retries the transaction). Transactions never outlive the process, so after
//!   an open only pruning raises the floor.

use std::collections::{HashMap, VecDeque};

/// Key changes remembered before the oldest half is forgotten (about 150 bytes each, so at
/// most ~15 MB per ledger under a heavy indexed write load).
const REMEMBERED: usize = 100_000;

pub(crate) struct KeySeqs {
    /// Index id and key (see [`entry`]) → the last block that changed it.
    last: HashMap<Vec<u8>, u64>,
    /// Changes in the order they were recorded, for forgetting the oldest.
    order: VecDeque<(u64, Vec<u8>)>,
    /// Changes at or before this block are not remembered.
    floor: u64,
}

/// The map key of `key` of index `index_id` (index ids are ASCII, so 0xFF cannot occur in
/// them and separates unambiguously).
pub(crate) fn entry(index_id: &str, key: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(index_id.len() + 1 + key.len());
    e.extend_from_slice(index_id.as_bytes());
    e.push(0xFF);
    e.extend_from_slice(key);
    e
}

impl KeySeqs {
    /// Nothing remembered; changes up to block `tip` (the tip at open) unknown.
    pub(crate) fn new(tip: u64) -> Self {
        KeySeqs {
            last: HashMap::new(),
            order: VecDeque::new(),
            floor: tip,
        }
    }

    /// Whether key `entry` may have changed after block `as_of`.
    pub(crate) fn changed_after(&self, entry: &[u8], as_of: u64) -> bool {
        as_of < self.floor || self.last.get(entry).is_some_and(|&seq| seq > as_of)
    }

    /// Records key changes `(block, key)` (in block order) made by a commit not yet made
    /// durable; [`KeySeqs::take_back`] undoes them if that commit fails.
    pub(crate) fn record(&mut self, changes: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Recorded {
        let mut previous = Vec::new();
        for (seq, e) in changes {
            previous.push((e.clone(), self.last.insert(e.clone(), seq)));
            self.order.push_back((seq, e));
        }
        Recorded { previous }
    }

    /// Undoes `recorded`, the last [`KeySeqs::record`] (its commit failed): a change that
    /// never happened would refuse every retry of a lookup of its key until the tip passed it.
    pub(crate) fn take_back(&mut self, recorded: Recorded) {
        for (e, previous) in recorded.previous.into_iter().rev() {
            self.order.pop_back();
            match previous {
                Some(seq) => self.last.insert(e, seq),
                None => self.last.remove(&e),
            };
        }
    }

    /// Forgets the oldest half of the changes once more than [`REMEMBERED`] are held, raising
    /// the floor past them. Called after a commit is durable, never between `record` and it.
    pub(crate) fn forget_oldest(&mut self) {
        if self.order.len() <= REMEMBERED {
            return;
        }
        while self.order.len() > REMEMBERED / 2 {
            let (seq, e) = self.order.pop_front().expect("longer than half");
            if self.last.get(&e) == Some(&seq) {
                self.last.remove(&e);
            }
            self.floor = self.floor.max(seq);
        }
    }
}

/// What one [`KeySeqs::record`] changed: each key with the block it had before.
pub(crate) struct Recorded {
    previous: Vec<(Vec<u8>, Option<u64>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_after_a_read_conflict_and_forgotten_ones_are_refused() {
        let mut k = KeySeqs::new(5);
        let a = entry("i1", b"a");
        let b = entry("i1", b"b");
        assert!(!k.changed_after(&a, 5));
        assert!(
            k.changed_after(&a, 4),
            "before the ledger was opened: undecidable"
        );
        let r = k.record([(7, a.clone()), (7, b.clone())]);
        k.take_back(r);
        assert!(
            !k.changed_after(&a, 6) && !k.changed_after(&b, 6),
            "a failed commit's keys are taken back"
        );
        k.record([(7, a.clone())]);
        k.forget_oldest();
        assert!(k.changed_after(&a, 6));
        assert!(!k.changed_after(&a, 7));
        assert!(!k.changed_after(&b, 6));
        // Forgetting raises the floor past every forgotten change.
        for seq in 8..8 + REMEMBERED as u64 + 1 {
            k.record([(seq, entry("i2", &seq.to_be_bytes()))]);
            k.forget_oldest();
        }
        assert!(k.order.len() <= REMEMBERED / 2 + 1);
        assert!(k.last.len() <= REMEMBERED / 2 + 1);
        assert!(k.changed_after(&a, 7), "a's change is forgotten: refused");
        let newest = 8 + REMEMBERED as u64;
        assert!(!k.changed_after(&a, newest));
        assert!(k.changed_after(&entry("i2", &newest.to_be_bytes()), newest - 1));
    }
}
