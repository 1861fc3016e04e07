//! A file ledger's WAL is checkpointed on a thread of its own, never by a commit.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: the
//! ledger's writer (and every transaction of its group commit) would wait while the WAL is
//! copied into the database file and that file is synced. Instead, every
//! [`COMMITS_PER_CHECKPOINT`] SQLite commits this thread runs a PASSIVE checkpoint (which
//! never blocks a writer or a reader) on its own connection, beside the commits that follow.
//!
//! A checkpoint running beside commits never catches up with the newest frames, and SQLite
//! starts the WAL over only when a write begins after *every* frame was copied. So the
//! writer keeps an automatic checkpoint with a higher threshold ([`WRITER_CHECKPOINT_PAGES`]):
//! once the WAL reaches it, the writer's own checkpoint copies what this thread has not yet
//! copied (a few commits' pages) and the next commit starts the WAL over.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

use crate::storage::group::lock;

/// SQLite commits between checkpoints. A group commit of a few single-document transactions
/// writes about 20–40 pages, so this is about SQLite's own 1,000-page threshold.
pub(super) const COMMITS_PER_CHECKPOINT: u64 = 32;

/// The writer connection's `wal_autocheckpoint` (SQLite's default is 1,000 pages).
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 4_000;

/// The checkpoint thread of one file ledger, started at its first checkpoint.
pub(super) struct Checkpointer {
    path: PathBuf,
    commits: AtomicU64,
    stopped: AtomicBool,
    worker: Mutex<Option<Worker>>,
}

struct Worker {
    wake: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn new(path: PathBuf) -> Self {
        Checkpointer {
            path,
            commits: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            worker: Mutex::new(None),
        }
    }

    /// Counts a SQLite commit of the writer; every [`COMMITS_PER_CHECKPOINT`]th asks for a
    /// checkpoint (a request made while one is running is merged with it).
    pub(super) fn committed(&self) {
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(COMMITS_PER_CHECKPOINT) {
            self.request();
        }
    }

    fn request(&self) {
        // Under the lock that `stop` takes: no thread starts after it.
        let mut worker = lock(&self.worker);
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        if worker.is_none() {
            let (wake, asked) = sync_channel::<()>(1);
            let path = self.path.clone();
            let spawned = std::thread::Builder::new()
                .name("qldb-checkpoint".into())
                .spawn(move || run(path, asked));
            match spawned {
                Ok(thread) => *worker = Some(Worker { wake, thread }),
                // No thread: the WAL grows until one can be started (a later request), or
                // until the ledger's last connection closes and checkpoints it.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a checkpoint thread");
                    return;
                }
            }
        }
        if let Some(w) = worker.as_ref() {
            // Full: a request is waiting already, and this one is merged with it.
            let _ = w.wake.try_send(());
        }
    }

    /// Ends the thread (after the checkpoint it is running or was asked for, if any) and
    /// closes its connection; no checkpoint is started afterwards. Called when the ledger's
    /// files are removed, before an import folds its WAL, and when the ledger is closed.
    pub(super) fn stop(&self) {
        let worker = {
            let mut worker = lock(&self.worker);
            self.stopped.store(true, Ordering::SeqCst);
            worker.take()
        };
        if let Some(Worker { wake, thread }) = worker {
            drop(wake);
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: a PASSIVE checkpoint per request, on a connection opened at the first.
fn run(path: PathBuf, asked: Receiver<()>) {
    let mut conn: Option<Connection> = None;
    while asked.recv().is_ok() {
        if conn.is_none() {
            // Never created here: a ledger whose file is gone is not checkpointed.
            // Its own synchronous setting: FULL syncs the WAL before the database file is
            // written and the file after it, as the writer's automatic checkpoint did.
            let opened = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| c.pragma_update(None, "synchronous", "FULL").map(|()| c));
            match opened {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot open a ledger to checkpoint its WAL");
                    continue;
                }
            }
        }
        let c = conn.as_ref().expect("just opened");
        if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(file = %path.display(), error = %e, "a WAL checkpoint failed");
        }
    }
}
