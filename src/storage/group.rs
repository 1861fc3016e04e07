//! Group commit, for any backend: commits queue up, and one leader at a time commits what is
//! queued in batches — one storage transaction (one fsync) per batch — until the queue is
//! empty. Every request is answered only by the batch that committed it.
//!
//! A request is answered through its [`CommitTicket`], which a thread may wait on
//! ([`CommitTicket::wait`]) and an async task may await (it is a future): an HTTP request
//! that commits parks no thread while its batch is written.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{CommitError, Committed, StorageError};

/// What a commit returns.
pub type Outcome = std::result::Result<Committed, CommitError>;

/// The queue and leadership of one ledger's commits.
pub struct GroupCommit<R> {
    state: Mutex<State<R>>,
    /// Commits announced ([`GroupCommit::intent`]) and arrivals, for a gathering leader.
    signal: Arc<Signal>,
}

/// What a leader gathering a batch ([`Batch::gather`]) waits on.
#[derive(Default)]
struct Signal {
    /// Transactions that wrote and have not queued their commit yet: when each wrote first.
    intents: Mutex<HashMap<u64, Instant>>,
    next_intent: std::sync::atomic::AtomicU64,
    gathering: Mutex<Gathering>,
    /// Notified when what the gathering leader waits for may have come.
    come: Condvar,
}

/// A transaction that wrote longer ago than this without committing is not waited for (a
/// client that left it open, or a long transaction): only a commit about to come is.
const INTENT_FRESH: Duration = Duration::from_millis(25);

#[derive(Default)]
struct Gathering {
    /// Whether a leader is gathering, and how many queued requests it waits for.
    waiting: Option<usize>,
    /// Set (under the lock) when the leader should look again.
    woken: bool,
}

impl Signal {
    fn wake(&self, mut g: MutexGuard<'_, Gathering>) {
        g.woken = true;
        drop(g);
        self.come.notify_one();
    }

    /// A request was queued; `queued` are waiting now.
    fn arrived(&self, queued: usize) {
        let g = lock(&self.gathering);
        if g.waiting.is_some_and(|want| queued >= want) {
            self.wake(g);
        }
    }

    /// Transactions that wrote lately and have not queued their commit.
    fn fresh_intents(&self) -> usize {
        let now = Instant::now();
        lock(&self.intents)
            .values()
            .filter(|&&at| now.saturating_duration_since(at) < INTENT_FRESH)
            .count()
    }

    /// Intent `id` was let go.
    fn intent_ended(&self, id: u64) {
        lock(&self.intents).remove(&id);
        let g = lock(&self.gathering);
        if g.waiting.is_some() && self.fresh_intents() == 0 {
            self.wake(g);
        }
    }
}

/// A transaction that wrote and will probably commit soon, announced to its ledger's group
/// commit ([`GroupCommit::intent`]) until it is dropped (its commit queued, or the
/// transaction ended otherwise): a leader about to write a batch waits a little for it.
#[derive(Default)]
pub struct CommitIntent(Option<(Arc<Signal>, u64)>);

impl Drop for CommitIntent {
    fn drop(&mut self) {
        if let Some((signal, id)) = self.0.take() {
            signal.intent_ended(id);
        }
    }
}

struct State<R> {
    /// Commits waiting for a batch to take them.
    pending: Vec<Pending<R>>,
    /// Whether a leader is committing (or will commit) what is queued.
    leading: bool,
}

impl<R> Default for GroupCommit<R> {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                pending: Vec::new(),
                leading: false,
            }),
            signal: Default::default(),
        }
    }
}

/// Where a commit's answer is left by its batch.
#[derive(Default)]
struct Slot {
    answer: Mutex<Answer>,
    done: Condvar,
}

#[derive(Default)]
struct Answer {
    result: Option<Outcome>,
    /// Whether the batch has answered (the result may have been taken since).
    answered: bool,
    waker: Option<Waker>,
    /// Threads blocked in [`CommitTicket::answered`]: only they need the condvar, whose
    /// notification is a system call even when nobody waits (most answers go to futures).
    blocked: usize,
}

impl Slot {
    fn fill(&self, outcome: Outcome) {
        let waker = {
            let mut a = lock(&self.answer);
            if a.answered {
                return;
            }
            a.result = Some(outcome);
            a.answered = true;
            if a.blocked > 0 {
                self.done.notify_all();
            }
            a.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A queued commit's answer: a future, or [`CommitTicket::wait`] on a thread that may block.
/// Clones share the answer; the first to take it gets it ([`CommitTicket::wait_answered`]
/// only waits).
#[derive(Clone)]
pub struct CommitTicket(Arc<Slot>);

impl CommitTicket {
    /// Blocks until the batch answers, and takes the answer.
    pub fn wait(self) -> Outcome {
        self.answered()
            .result
            .take()
            .unwrap_or_else(|| Err(taken()))
    }

    /// Blocks until the batch answers, leaving the answer to the ticket's other holder.
    pub fn wait_answered(&self) {
        drop(self.answered());
    }

    fn answered(&self) -> MutexGuard<'_, Answer> {
        let mut a = lock(&self.0.answer);
        while !a.answered {
            a.blocked += 1;
            a = self.0.done.wait(a).unwrap_or_else(|p| p.into_inner());
            a.blocked -= 1;
        }
        a
    }

    /// Whether the batch has answered.
    pub fn is_answered(&self) -> bool {
        lock(&self.0.answer).answered
    }
}

fn taken() -> CommitError {
    CommitError::Storage(StorageError::Corrupt(
        "the commit's answer was taken twice".into(),
    ))
}

impl Future for CommitTicket {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut a = lock(&self.0.answer);
        if a.answered {
            return Poll::Ready(a.result.take().unwrap_or_else(|| Err(taken())));
        }
        match &mut a.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// A commit request taken by a batch; the batch must [`Pending::answer`] it. One dropped
/// unanswered (its batch panicked) answers that its commit did not finish.
pub struct Pending<R> {
    pub req: R,
    slot: Arc<Slot>,
}

impl<R> Pending<R> {
    pub fn answer(&self, outcome: Outcome) {
        self.slot.fill(outcome);
    }
}

impl<R> Drop for Pending<R> {
    fn drop(&mut self) {
        self.slot
            .fill(Err(CommitError::Storage(StorageError::Corrupt(
                "the group commit that held this transaction did not finish".into(),
            ))));
    }
}

/// The requests queued when a leader asks for them ([`Batch::take`]).
pub struct Batch<'a, R>(&'a GroupCommit<R>);

impl<R> Batch<'_, R> {
    /// Takes every queued request (the batch's leader calls it once it may write).
    pub fn take(&self) -> Vec<Pending<R>> {
        self.take_up_to(usize::MAX)
    }

    /// Before a batch's first take: while transactions that wrote have not queued their
    /// commits yet ([`CommitIntent`]), waits up to `at_most` for them, or until `most`
    /// requests are queued. A batch that takes them too makes one durable write instead of
    /// several; a leader with no such transaction around does not wait at all.
    pub fn gather(&self, most: usize, at_most: Duration) {
        let signal = &self.0.signal;
        let mut g = lock(&signal.gathering);
        let expected = signal.fresh_intents();
        if expected == 0 {
            return;
        }
        let deadline = Instant::now() + at_most;
        let want = (lock(&self.0.state).pending.len() + expected).min(most);
        g.waiting = Some(want);
        loop {
            // Arrivals and ended intents are counted before they wake this (under the lock).
            if signal.fresh_intents() == 0 || lock(&self.0.state).pending.len() >= want {
                break;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            g.woken = false;
            g = signal
                .come
                .wait_timeout_while(g, left, |g| !g.woken)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        g.waiting = None;
    }

    /// Takes the first `most` queued requests; the rest wait for the next batch. A leader
    /// may take again while its batch is not committed yet: requests queued meanwhile join
    /// it instead of waiting for the next.
    pub fn take_up_to(&self, most: usize) -> Vec<Pending<R>> {
        let mut state = lock(&self.0.state);
        let at = most.min(state.pending.len());
        let rest = state.pending.split_off(at);
        std::mem::replace(&mut state.pending, rest)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends a leadership that panicked: the requests still queued are answered (that their
/// commit did not finish) and the next request leads again.
struct Leadership<'a, R>(&'a GroupCommit<R>);

impl<R> Drop for Leadership<'_, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let orphans = {
                let mut state = lock(&self.0.state);
                state.leading = false;
                std::mem::take(&mut state.pending)
            };
            drop(orphans);
        }
    }
}

impl<R> GroupCommit<R> {
    /// How many requests wait for a batch to take them.
    pub fn queued(&self) -> usize {
        lock(&self.state).pending.len()
    }

    /// Queues `req`. True as the second value: no leader is committing, and the caller
    /// must now lead ([`GroupCommit::lead`]) on a thread that may block.
    pub fn queue(&self, req: R) -> (CommitTicket, bool) {
        let slot: Arc<Slot> = Default::default();
        let mut state = lock(&self.state);
        state.pending.push(Pending {
            req,
            slot: slot.clone(),
        });
        let lead = !state.leading;
        state.leading = true;
        let queued = state.pending.len();
        drop(state);
        self.signal.arrived(queued);
        (CommitTicket(slot), lead)
    }

    /// Announces a transaction that wrote and will probably commit soon (see
    /// [`CommitIntent`]).
    pub fn intent(&self) -> CommitIntent {
        let id = self
            .signal
            .next_intent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.signal.intents).insert(id, Instant::now());
        CommitIntent(Some((self.signal.clone(), id)))
    }

    /// The leader's work: `one_batch` takes from the queue ([`Batch::take`]) and answers
    /// every request it took, and is called again until the queue is empty; then the
    /// leadership ends and this returns true. With `until`, it returns false instead as soon
    /// as that ticket is answered while requests remain queued: the caller still leads, and
    /// must call this again (elsewhere, without `until`) for them.
    pub fn lead(
        &self,
        mut one_batch: impl FnMut(Batch<'_, R>),
        until: Option<&CommitTicket>,
    ) -> bool {
        let guard = Leadership(self);
        loop {
            one_batch(Batch(self));
            let mut state = lock(&self.state);
            if state.pending.is_empty() {
                state.leading = false;
                drop(state);
                drop(guard);
                return true;
            }
            drop(state);
            if until.is_some_and(|t| t.is_answered()) {
                drop(guard);
                return false;
            }
        }
    }
}

/// A leadership to run ([`run_leader`]).
type Job = Box<dyn FnOnce() + Send>;

/// Leader threads waiting for work, by id.
static IDLE: Mutex<Vec<(u64, std::sync::mpsc::Sender<Job>)>> = Mutex::new(Vec::new());

/// How long a leader thread waits for more work before it ends.
const IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `job` — a group commit's leadership ([`GroupCommit::lead`]) — on a thread of its own,
/// never on an async runtime's blocking pool (whose threads may all be waiting for commits
/// that only this leadership makes). A thread that finished a leadership waits a while for
/// the next one; if no thread can be started, `job` runs here.
pub fn run_leader(job: impl FnOnce() + Send + 'static) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let mut job: Job = Box::new(job);
    loop {
        let Some((_, worker)) = lock(&IDLE).pop() else {
            break;
        };
        match worker.send(job) {
            Ok(()) => return,
            // That thread has ended.
            Err(std::sync::mpsc::SendError(back)) => job = back,
        }
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let (first_tx, first_rx) = std::sync::mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("qldb-commit".into())
        .spawn(move || {
            let Ok(first) = first_rx.recv() else { return };
            leader_thread(id, tx, rx, first)
        });
    match started {
        Ok(_) => {
            if let Err(std::sync::mpsc::SendError(back)) = first_tx.send(job) {
                back();
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a commit thread; committing here");
            job();
        }
    }
}

fn leader_thread(
    id: u64,
    me: std::sync::mpsc::Sender<Job>,
    work: std::sync::mpsc::Receiver<Job>,
    mut job: Job,
) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        job();
        lock(&IDLE).push((id, me.clone()));
        job = match work.recv_timeout(IDLE_FOR) {
            Ok(next) => next,
            Err(RecvTimeoutError::Timeout) => {
                let mut idle = lock(&IDLE);
                if let Some(at) = idle.iter().position(|(i, _)| *i == id) {
                    idle.remove(at);
                    return;
                }
                drop(idle);
                // Taken off the idle list by a caller that is sending work now.
                match work.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(seq: u64) -> Outcome {
        Ok(Committed { sequence_no: seq })
    }

    /// Answers each request with its own number as the sequence number.
    fn answer_all(batch: Batch<'_, u64>) {
        for p in batch.take() {
            p.answer(ok(p.req));
        }
    }

    /// How many requests a batch takes after gathering for at most `wait`, and how long
    /// the gathering took.
    fn gathered(g: &GroupCommit<u64>, wait: std::time::Duration) -> (usize, std::time::Duration) {
        let started = std::time::Instant::now();
        let mut took = 0;
        g.lead(
            |batch| {
                batch.gather(64, wait);
                let taken = batch.take();
                took = taken.len();
                for p in taken {
                    p.answer(ok(p.req));
                }
            },
            None,
        );
        (took, started.elapsed())
    }

    #[test]
    fn a_batch_waits_for_announced_commits_and_only_for_them() {
        let long = std::time::Duration::from_secs(30);
        // Nothing announced: no wait, even a long one allowed.
        let g = GroupCommit::<u64>::default();
        g.queue(1);
        let (took, waited) = gathered(&g, long);
        assert_eq!(took, 1);
        assert!(waited < long / 2, "waited {waited:?}");

        // Two transactions announced: the batch waits until both have queued.
        let g = Arc::new(GroupCommit::<u64>::default());
        let (a, b) = (g.intent(), g.intent());
        g.queue(1);
        let g2 = g.clone();
        let other = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            g2.queue(2);
            drop(a);
            std::thread::sleep(std::time::Duration::from_millis(5));
            g2.queue(3);
            drop(b);
        });
        let (took, waited) = gathered(&g, long);
        other.join().unwrap();
        assert_eq!(took, 3, "the batch took the announced commits too");
        assert!(waited < long / 2, "waited {waited:?}");

        // A transaction that ends without committing ends the wait.
        let g = Arc::new(GroupCommit::<u64>::default());
        let a = g.intent();
        g.queue(1);
        let other = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(5));
            drop(a);
        });
        let (took, waited) = gathered(&g, long);
        other.join().unwrap();
        assert_eq!(took, 1);
        assert!(waited < long / 2, "waited {waited:?}");

        // One that never commits is waited for at most the time given.
        let g = GroupCommit::<u64>::default();
        let _idle = g.intent();
        g.queue(1);
        let short = std::time::Duration::from_millis(10);
        let (took, waited) = gathered(&g, short);
        assert_eq!(took, 1);
        assert!(waited >= short, "waited {waited:?}");

        // One that wrote long ago (left open by its client) is not waited for.
        let g = GroupCommit::<u64>::default();
        let _left_open = g.intent();
        std::thread::sleep(INTENT_FRESH + std::time::Duration::from_millis(5));
        g.queue(1);
        let (took, waited) = gathered(&g, long);
        assert_eq!(took, 1);
        assert!(waited < long / 2, "waited {waited:?}");
    }

    #[test]
    fn the_first_queued_leads_and_a_leader_commits_until_the_queue_is_empty() {
        let g = GroupCommit::<u64>::default();
        let (a, lead_a) = g.queue(1);
        let (b, lead_b) = g.queue(2);
        assert!(lead_a && !lead_b, "only the first leads");
        assert!(!a.is_answered());
        let mut batches = 0;
        assert!(g.lead(
            |batch| {
                batches += 1;
                // One request per batch: the leader goes on while any is queued.
                if let Some(p) = batch.take_up_to(1).pop() {
                    p.answer(ok(p.req));
                }
            },
            None
        ));
        assert_eq!(batches, 2);
        assert_eq!(a.wait().unwrap().sequence_no, 1);
        assert_eq!(b.wait().unwrap().sequence_no, 2);
        // The leadership ended with the queue: the next request leads again.
        let (c, lead_c) = g.queue(3);
        assert!(lead_c);
        g.lead(answer_all, None);
        assert_eq!(c.wait().unwrap().sequence_no, 3);
    }

    #[test]
    fn a_leader_waiting_for_its_own_commit_stops_once_it_is_answered() {
        let g = GroupCommit::<u64>::default();
        let (mine, lead) = g.queue(1);
        assert!(lead);
        let (later, _) = g.queue(2);
        // Its own request is answered by the first batch; one is still queued.
        let done = g.lead(
            |batch| {
                if let Some(p) = batch.take_up_to(1).pop() {
                    p.answer(ok(p.req));
                }
            },
            Some(&mine),
        );
        assert!(!done, "the leadership is handed on");
        assert!(mine.is_answered() && !later.is_answered());
        assert_eq!(g.queued(), 1);
        // Still led: a new request does not lead.
        let (_, lead_again) = g.queue(3);
        assert!(!lead_again);
        assert!(g.lead(answer_all, None));
        assert_eq!(later.wait().unwrap().sequence_no, 2);
    }

    #[test]
    fn a_batch_that_panics_answers_every_request_and_the_next_leads() {
        let g = GroupCommit::<u64>::default();
        let (taken, _) = g.queue(1);
        let (queued, _) = g.queue(2);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            g.lead(
                |batch| {
                    let _took = batch.take_up_to(1);
                    panic!("a bug in the writer");
                },
                None,
            )
        }));
        assert!(panicked.is_err());
        for t in [taken, queued] {
            match t.wait() {
                Err(CommitError::Storage(StorageError::Corrupt(m))) => {
                    assert!(m.contains("did not finish"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        }
        let (next, lead) = g.queue(3);
        assert!(lead, "the leadership ended with the panic");
        g.lead(answer_all, None);
        assert_eq!(next.wait().unwrap().sequence_no, 3);
    }

    #[test]
    fn a_thread_blocked_on_its_ticket_is_woken_by_the_answer() {
        let g = std::sync::Arc::new(GroupCommit::<u64>::default());
        let (ticket, lead) = g.queue(4);
        assert!(lead);
        let (blocked, (answered, answer)) = (ticket.clone(), std::sync::mpsc::channel());
        std::thread::spawn(move || answered.send(blocked.wait()));
        // Answered only once the waiter waits on the condvar (it counts itself under the
        // lock the wait releases).
        while lock(&ticket.0.answer).blocked == 0 {
            std::thread::yield_now();
        }
        assert!(g.lead(answer_all, None));
        let got = answer.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got.expect("the waiter was woken").unwrap().sequence_no, 4);
        assert_eq!(lock(&ticket.0.answer).blocked, 0);
    }

    #[test]
    fn a_ticket_is_a_future_woken_by_its_answer() {
        let g = std::sync::Arc::new(GroupCommit::<u64>::default());
        let (ticket, lead) = g.queue(7);
        assert!(lead);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let leader = {
            let g = g.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                g.lead(answer_all, None)
            })
        };
        let got = rt.block_on(ticket);
        assert_eq!(got.unwrap().sequence_no, 7);
        assert!(leader.join().unwrap());
    }

    #[test]
    fn leaderships_run_on_threads_of_their_own() {
        let (done, finished) = std::sync::mpsc::channel();
        for i in 0..3 {
            let done = done.clone();
            run_leader(move || done.send((i, std::thread::current().id())).unwrap());
            let (got, _) = finished.recv().unwrap();
            assert_eq!(got, i);
        }
        // A leadership never runs on its caller's thread (which may be an async runtime's).
        let caller = std::thread::current().id();
        let done2 = done.clone();
        run_leader(move || done2.send((9, std::thread::current().id())).unwrap());
        let (_, ran_on) = finished.recv().unwrap();
        assert_ne!(ran_on, caller);
    }
}
