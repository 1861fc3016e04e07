//! Group commit, for any backend: commits that arrive while a batch is being committed wait
//! for it to end, and the first of them then leads the next batch, which commits everything
//! queued by then in one storage transaction (one fsync). Every request is answered only by
//! the batch that committed it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{CommitError, Committed, StorageError};

/// What a commit returns.
pub type Outcome = std::result::Result<Committed, CommitError>;

/// The queue and leadership of one ledger's commits.
pub struct GroupCommit<R> {
    /// Commits waiting for a batch to take them.
    pending: Mutex<Vec<Pending<R>>>,
    /// Whether a batch is being committed; waiters for its end wait on `batch_done`.
    leader: Mutex<Leader>,
    batch_done: Condvar,
}

impl<R> Default for GroupCommit<R> {
    fn default() -> Self {
        GroupCommit {
            pending: Default::default(),
            leader: Default::default(),
            batch_done: Default::default(),
        }
    }
}

/// Who commits: whether a batch is being committed, and how many have ended.
#[derive(Default)]
struct Leader {
    active: bool,
    batches: u64,
}

/// A commit's answer, filled by the batch that commits it.
type Slot = Arc<Mutex<Answer>>;

/// Whether a batch took the request, and its result once that batch has committed.
#[derive(Default)]
struct Answer {
    taken: bool,
    result: Option<Outcome>,
}

/// A commit request taken by a batch; the batch must [`Pending::answer`] it.
pub struct Pending<R> {
    pub req: R,
    slot: Slot,
}

impl<R> Pending<R> {
    pub fn answer(&self, outcome: Outcome) {
        lock(&self.slot).result = Some(outcome);
    }
}

/// The requests queued when a leader asks for them ([`Batch::take`]).
pub struct Batch<'a, R>(&'a GroupCommit<R>);

impl<R> Batch<'_, R> {
    /// Takes every queued request (the batch's leader calls it once it may write).
    pub fn take(&self) -> Vec<Pending<R>> {
        self.take_up_to(usize::MAX)
    }

    /// Takes the first `most` queued requests; the rest wait for the next batch. A leader
    /// may take again while its batch is not committed yet: requests queued meanwhile join
    /// it instead of waiting for the next.
    pub fn take_up_to(&self, most: usize) -> Vec<Pending<R>> {
        let batch = {
            let mut pending = lock(&self.0.pending);
            let at = most.min(pending.len());
            let rest = pending.split_off(at);
            std::mem::replace(&mut *pending, rest)
        };
        for p in &batch {
            lock(&p.slot).taken = true;
        }
        batch
    }
}

/// The leadership of one batch; its end (drop) wakes the requests waiting for it.
struct Leadership<'a, R>(&'a GroupCommit<R>);

impl<R> Drop for Leadership<'_, R> {
    fn drop(&mut self) {
        let mut leader = lock(&self.0.leader);
        leader.active = false;
        leader.batches += 1;
        drop(leader);
        self.0.batch_done.notify_all();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R> GroupCommit<R> {
    /// How many requests wait for a batch to take them.
    pub fn queued(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Queues `req` and returns its outcome. If no batch is being committed, this request
    /// leads one: `lead` takes the queue ([`Batch::take`]) when it may write and answers
    /// every request it took. Otherwise it waits for the running batch to end (an answered
    /// request returns at once instead of queueing behind the next batch), then finds its
    /// answer or, if it came too late for that batch, leads the next.
    pub fn submit(&self, req: R, lead: impl Fn(Batch<'_, R>)) -> Outcome {
        let slot: Slot = Default::default();
        lock(&self.pending).push(Pending {
            req,
            slot: slot.clone(),
        });
        loop {
            // The answer is checked under the leader lock: a batch fills its answers before
            // its end is recorded there, so an answered request never leads or waits again.
            let mut leader = lock(&self.leader);
            {
                let mut answer = lock(&slot);
                if let Some(done) = answer.result.take() {
                    return done;
                }
                // Taken by a batch that ended without answering it: that batch panicked.
                if answer.taken && !leader.active {
                    return Err(CommitError::Storage(StorageError::Corrupt(
                        "the group commit that held this transaction did not finish".into(),
                    )));
                }
            }
            if leader.active {
                let batch = leader.batches;
                while leader.batches == batch {
                    leader = self
                        .batch_done
                        .wait(leader)
                        .unwrap_or_else(|p| p.into_inner());
                }
                continue;
            }
            leader.active = true;
            drop(leader);
            // Ends the leadership even if the batch panics, so that waiters move on.
            let lead_guard = Leadership(self);
            lead(Batch(self));
            drop(lead_guard);
        }
    }
}
