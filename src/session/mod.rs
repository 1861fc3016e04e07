//! The session API's semantics: sessions bound to an ACTIVE ledger, one transaction at a
//! time per session, the commit digest, result paging, timeouts, limits, and the
//! transaction's view of the ledger (committed state overlaid with its own writes, with
//! every read recorded for OCC validation at commit).
//!
//! All methods are synchronous. Most may block on storage, and the HTTP edge runs them with
//! `spawn_blocking`; the `try_` forms never wait (for storage, the network or their session)
//! and run on the HTTP edge's own thread, and [`Sessions::try_commit`] queues a write commit
//! whose answer the edge awaits. Requests of one session are serialized by the session's
//! mutex, and wait for the answer of a commit the session queued.

mod txn;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rand::RngCore;

use crate::control::ControlPlane;
use crate::iam::Principal;
use crate::names::{new_unique_id, LedgerName};
use crate::storage::group::{run_leader, CommitTicket};
use crate::storage::LedgerStore;
use crate::storage::{CommitError, CommitRequest};
pub use txn::Txn;

/// Limits and timers of the session API (QLDB's values by default).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub transaction_timeout_ms: i64,
    pub session_lifetime_ms: i64,
    pub page_size: usize,
    pub max_sessions_per_ledger: usize,
    pub max_documents_per_transaction: usize,
    pub max_document_bytes: usize,
    pub max_transaction_bytes: usize,
    pub max_statement_chars: usize,
    pub max_active_tables: usize,
    /// Active and inactive tables together (QLDB: 40).
    pub max_total_tables: usize,
    pub max_indexes_per_table: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            transaction_timeout_ms: 30_000,
            session_lifetime_ms: 15 * 60_000,
            page_size: 200,
            max_sessions_per_ledger: 1500,
            max_documents_per_transaction: 40,
            max_document_bytes: 128 * 1024,
            max_transaction_bytes: 4 * 1024 * 1024,
            max_statement_chars: 100_000,
            max_active_tables: 20,
            max_total_tables: 40,
            max_indexes_per_table: 5,
        }
    }
}

/// The session API's errors, one per QLDB exception type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidSession(String),
    #[error("{0}")]
    OccConflict(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// A missing IAM permission (STANDARD mode, `--credentials-file`).
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Internal(String),
    /// A statement run where it may not take long read more than it may there: it left no
    /// trace, and runs again on a thread that may block. Never reaches a client.
    #[error("the statement reads more than a quick statement may")]
    Deferred,
}

impl SessionError {
    /// The session API's error code: what the HTTP edge answers and the tests expect.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::BadRequest(_) => "BadRequestException",
            SessionError::InvalidSession(_) => "InvalidSessionException",
            SessionError::OccConflict(_) => "OccConflictException",
            SessionError::LimitExceeded(_) => "LimitExceededException",
            SessionError::AccessDenied(_) => "AccessDeniedException",
            SessionError::Internal(_) | SessionError::Deferred => "InternalFailure",
        }
    }
}

/// A statement's failure as the session API reports it ([`ExecError::code`]).
impl From<crate::partiql::exec::ExecError> for SessionError {
    fn from(e: crate::partiql::exec::ExecError) -> Self {
        match e {
            crate::partiql::exec::ExecError::Internal(_) => SessionError::Internal(e.to_string()),
            crate::partiql::exec::ExecError::Deferred => SessionError::Deferred,
            crate::partiql::exec::ExecError::Conflict(m) => SessionError::OccConflict(m),
            e => SessionError::BadRequest(e.to_string()),
        }
    }
}

type R<T> = Result<T, SessionError>;

fn bad<T>(msg: impl Into<String>) -> R<T> {
    Err(SessionError::BadRequest(msg.into()))
}

/// A statement parameter as received.
pub enum Param {
    Binary(Vec<u8>),
    Text(String),
}

/// A page of results.
pub struct Page {
    pub values: Vec<Vec<u8>>,
    pub next_page_token: Option<String>,
}

/// What a command returns besides its result.
#[derive(Default, Clone, Copy)]
pub struct Usage {
    pub read_ios: u64,
    pub write_ios: u64,
}

struct Session {
    id: String,
    ledger_name: String,
    ledger: Arc<dyn LedgerStore>,
    expires_ms: i64,
    txn: Option<Txn>,
    /// A commit queued by [`Sessions::try_commit`] that may not be answered yet: the
    /// session's next command waits for its answer.
    in_commit: Option<CommitTicket>,
}

/// A session-table entry: what counting and expiry need, readable without locking the
/// session (which may be busy with a long command).
struct OpenSession {
    ledger_name: String,
    expires_ms: i64,
    session: Arc<Mutex<Session>>,
}

/// Every open session of the server.
pub struct Sessions {
    cfg: SessionConfig,
    control: Arc<ControlPlane>,
    /// Lock order: this table is never locked while waiting for a session's mutex.
    open: Mutex<HashMap<String, OpenSession>>,
    /// Ids of sessions that ended by expiry, for the `Session <id> has expired` message.
    expired: Mutex<HashMap<String, String>>,
}

/// The most documents a statement run on the HTTP layer's thread reads
/// ([`Sessions::try_execute_statement_as`]): a few index lookups' worth.
pub const QUICK_STATEMENT_READS: u64 = 64;

/// The tags of the tables a transaction creates, by table name.
type TableTags = Vec<(String, crate::api::qldb::Tags)>;

/// A CommitTransaction run by [`Sessions::try_commit`].
pub enum Commit {
    /// Committed.
    Done(Usage),
    /// Queued for the ledger's group commit.
    Queued(QueuedCommit),
}

/// A commit queued for its ledger's group commit: await [`QueuedCommit::outcome`].
pub struct QueuedCommit {
    ticket: CommitTicket,
    usage: Usage,
}

impl QueuedCommit {
    /// The commit's answer, once its batch is durable (or failed).
    pub async fn outcome(self) -> R<Usage> {
        commit_outcome(self.ticket.await.map(|_| ())).map(|()| self.usage)
    }
}

/// Starts the leadership of `ledger`'s group commit on a thread of its own ([`run_leader`]).
fn start_leader(ledger: Arc<dyn LedgerStore>) {
    run_leader(move || {
        ledger.lead_commits(None);
    });
}

/// Commits `req` on this thread, which may block: it waits for its batch, or leads the
/// ledger's group commit until its own commit is answered and hands what is still queued to
/// a thread of its own.
fn commit_here(ledger: Arc<dyn LedgerStore>, req: CommitRequest) -> Result<(), CommitError> {
    let (ticket, lead) = ledger.queue_commit(req);
    if lead && !ledger.lead_commits(Some(&ticket)) {
        start_leader(ledger);
    }
    ticket.wait().map(|_| ())
}

/// A commit's result as the session API answers it.
fn commit_outcome(result: Result<(), CommitError>) -> R<()> {
    match result {
        Ok(()) => Ok(()),
        Err(CommitError::Conflict(why)) => Err(SessionError::OccConflict(format!(
            "Optimistic concurrency control (OCC) conflict: the transaction's reads changed before it committed ({why}); retry the transaction"
        ))),
        Err(CommitError::Storage(e)) => Err(SessionError::Internal(e.to_string())),
    }
}

fn token() -> String {
    let mut b = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

impl Sessions {
    pub fn new(cfg: SessionConfig, control: Arc<ControlPlane>) -> Self {
        Sessions {
            cfg,
            control,
            open: Mutex::new(HashMap::new()),
            expired: Mutex::new(HashMap::new()),
        }
    }

    /// Milliseconds since the epoch, from the control plane's clock (one clock for the
    /// server, which tests replace).
    fn now_ms(&self) -> i64 {
        self.control.now()
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn start_session(&self, ledger_name: &str) -> R<String> {
        if let Err(v) = LedgerName::parse(ledger_name) {
            return bad(v.message(ledger_name, "startSession.ledgerName"));
        }
        let ledger = self.control.active_ledger(ledger_name).map_err(|_| {
            SessionError::BadRequest(format!(
                "Ledger {ledger_name} does not exist or is not ACTIVE"
            ))
        })?;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now_ms();
        let mut count = 0;
        open.retain(|_, e| {
            let live = e.expires_ms > now;
            if live && e.ledger_name == ledger_name {
                count += 1;
            }
            live
        });
        if count >= self.cfg.max_sessions_per_ledger {
            return Err(SessionError::LimitExceeded(format!(
                "Exceeded the session limit of {} active sessions on ledger {ledger_name}",
                self.cfg.max_sessions_per_ledger
            )));
        }
        let t = token();
        let expires_ms = now + self.cfg.session_lifetime_ms;
        open.insert(
            t.clone(),
            OpenSession {
                ledger_name: ledger_name.to_string(),
                expires_ms,
                session: Arc::new(Mutex::new(Session {
                    id: new_unique_id(),
                    ledger_name: ledger_name.to_string(),
                    ledger,
                    expires_ms,
                    txn: None,
                    in_commit: None,
                })),
            },
        );
        Ok(t)
    }

    /// Runs `f` on the session of `token`, serialized with the session's other commands.
    fn with_session<T>(&self, token: &str, f: impl FnOnce(&mut Session) -> R<T>) -> R<T> {
        self.session_call(token, true, f)
            .expect("a call that may wait always runs")
    }

    /// As [`Sessions::with_session`]; when `wait` is false and another command of the
    /// session is running, returns `None` at once instead of waiting for it.
    fn session_call<T>(
        &self,
        token: &str,
        wait: bool,
        f: impl FnOnce(&mut Session) -> R<T>,
    ) -> Option<R<T>> {
        let valid = (4..=1024).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=-".contains(&b));
        if !valid {
            return Some(bad("The parameter SessionToken is not valid"));
        }
        let session = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.get(token).map(|e| e.session.clone())
        };
        let Some(session) = session else {
            let expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
            return Some(Err(SessionError::InvalidSession(
                match expired.get(token) {
                    Some(id) => format!("Session {id} has expired"),
                    None => "No such session".into(),
                },
            )));
        };
        let mut s = if wait {
            session.lock().unwrap_or_else(|p| p.into_inner())
        } else {
            match session.try_lock() {
                Ok(s) => s,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        };
        // A commit queued by the session's previous command is answered first.
        while let Some(t) = s.in_commit.clone() {
            if t.is_answered() {
                s.in_commit = None;
                break;
            }
            if !wait {
                return None;
            }
            drop(s);
            t.wait_answered();
            s = session.lock().unwrap_or_else(|p| p.into_inner());
        }
        // The session may have ended while this request waited for it.
        if !self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(token)
        {
            return Some(Err(SessionError::InvalidSession("No such session".into())));
        }
        if s.ledger.is_closed() {
            let id = s.id.clone();
            drop(s);
            self.discard(token, &id);
            return Some(Err(SessionError::InvalidSession("No such session".into())));
        }
        if s.expires_ms <= self.now_ms() {
            let id = s.id.clone();
            drop(s);
            self.discard(token, &id);
            return Some(Err(SessionError::InvalidSession(format!(
                "Session {id} has expired"
            ))));
        }
        let result = f(&mut s);
        if let Err(SessionError::InvalidSession(_)) = &result {
            let id = s.id.clone();
            drop(s);
            self.discard(token, &id);
        }
        Some(result)
    }

    fn discard(&self, token: &str, id: &str) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
        let mut expired = self.expired.lock().unwrap_or_else(|p| p.into_inner());
        if expired.len() > 10_000 {
            expired.clear();
        }
        expired.insert(token.to_string(), id.to_string());
    }

    /// The open transaction `txid` of the session, checked for expiry.
    fn open_txn<'s>(&self, s: &'s mut Session, txid: &str) -> R<&'s mut Txn> {
        let Some(txn) = s.txn.as_mut() else {
            return bad("No open transaction");
        };
        if txn.id != txid {
            return bad(format!(
                "Transaction {txid} is not the open transaction of this session"
            ));
        }
        if self.now_ms() - txn.started_ms > self.cfg.transaction_timeout_ms {
            let id = txn.id.clone();
            s.txn = None;
            return Err(SessionError::InvalidSession(format!(
                "Transaction {id} has expired"
            )));
        }
        Ok(s.txn.as_mut().expect("checked above"))
    }

    pub fn start_transaction(&self, token: &str) -> R<String> {
        self.start_transaction_if(token, true)
            .expect("a call that may wait always runs")
    }

    /// StartTransaction, AbortTransaction and EndSession touch only memory, so the HTTP
    /// layer runs them on its own thread — unless another command of the same session is
    /// running: then these return `None` and the caller runs the waiting form elsewhere.
    pub fn try_start_transaction(&self, token: &str) -> Option<R<String>> {
        self.start_transaction_if(token, false)
    }

    /// See [`Sessions::try_start_transaction`].
    pub fn try_abort(&self, token: &str) -> Option<R<()>> {
        self.abort_if(token, false)
    }

    /// See [`Sessions::try_start_transaction`].
    pub fn try_end_session(&self, token: &str) -> Option<R<()>> {
        self.end_session_if(token, false)
    }

    fn start_transaction_if(&self, token: &str, wait: bool) -> Option<R<String>> {
        self.session_call(token, wait, |s| {
            if let Some(t) = &s.txn {
                if self.now_ms() - t.started_ms > self.cfg.transaction_timeout_ms {
                    // An abandoned transaction expired: the session goes with it, but never
                    // with a "Transaction … has expired" text (drivers would not retry).
                    return Err(SessionError::InvalidSession(format!(
                        "Session {} has expired",
                        s.id
                    )));
                }
                return bad("Transaction already open");
            }
            let id = new_unique_id();
            s.txn = Some(Txn::new(id.clone(), self.now_ms()));
            Ok(id)
        })
    }

    pub fn execute_statement(
        &self,
        token: &str,
        txid: &str,
        statement: &str,
        params: Vec<Param>,
    ) -> R<(Page, Usage)> {
        self.execute_statement_as(token, txid, statement, params, None)
    }

    /// The ledger a session is on, if the session is open.
    pub fn ledger_of(&self, token: &str) -> Option<String> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(token).map(|e| e.ledger_name.clone())
    }

    /// ExecuteStatement on behalf of `caller`: in a STANDARD-mode ledger, the statement
    /// runs only if the caller's policies allow every PartiQL action it needs.
    pub fn execute_statement_as(
        &self,
        token: &str,
        txid: &str,
        statement: &str,
        params: Vec<Param>,
        caller: Option<&Principal>,
    ) -> R<(Page, Usage)> {
        self.execute_statement_if(token, txid, statement, &params, caller, true)
            .expect("a call that may wait always runs")
    }

    /// ExecuteStatement where it may not take long (the HTTP layer's thread, as
    /// StartTransaction): it runs if its session is free, unless it would read more than
    /// [`QUICK_STATEMENT_READS`] documents, or a whole table at once, or must first finish a
    /// paused SELECT. `None` — the caller then runs [`Sessions::execute_statement_as`] on a
    /// blocking thread — when it does not run; it leaves no trace then.
    pub fn try_execute_statement_as(
        &self,
        token: &str,
        txid: &str,
        statement: &str,
        params: &[Param],
        caller: Option<&Principal>,
    ) -> Option<R<(Page, Usage)>> {
        self.execute_statement_if(token, txid, statement, params, caller, false)
    }

    fn execute_statement_if(
        &self,
        token: &str,
        txid: &str,
        statement: &str,
        params: &[Param],
        caller: Option<&Principal>,
        wait: bool,
    ) -> Option<R<(Page, Usage)>> {
        let ran = self.session_call(token, wait, |s| {
            // Only reads that never wait (a file ledger's), and no policy to consult.
            let policies = caller.is_some_and(|p| p.policies.is_some());
            if !wait && (policies || !s.ledger.reads_without_waiting()) {
                return Err(SessionError::Deferred);
            }
            let ledger = s.ledger.clone();
            let ledger_name = s.ledger_name.clone();
            let txn = self.open_txn(s, txid)?;
            let chars = statement.chars().count();
            if chars == 0 || chars > self.cfg.max_statement_chars {
                return bad(format!(
                    "The statement must have 1 to {} characters, it has {chars}",
                    self.cfg.max_statement_chars
                ));
            }
            let mut values = Vec::with_capacity(params.len());
            for (i, p) in params.iter().enumerate() {
                let (size, limit, unit) = match p {
                    Param::Binary(b) => (b.len(), 131_072, "bytes of IonBinary"),
                    Param::Text(t) => (t.chars().count(), 1_048_576, "characters of IonText"),
                };
                if size == 0 || size > limit {
                    return bad(format!(
                        "Parameter {} must have 1 to {limit} {unit}, it has {size}",
                        i + 1
                    ));
                }
            }
            for (i, p) in params.iter().enumerate() {
                let parsed = match p {
                    Param::Binary(b) => crate::ion::binary::decode(b).map_err(|e| e.to_string()),
                    Param::Text(t) => crate::ion::text::from_text(t).map_err(|e| e.to_string()),
                };
                match parsed {
                    Ok(mut v) if v.len() == 1 => values.push(v.pop().expect("one value")),
                    Ok(v) => {
                        return bad(format!(
                            "Parameter {} must hold exactly one Ion value, it holds {}",
                            i + 1,
                            v.len()
                        ))
                    }
                    Err(e) => return bad(format!("Parameter {} is not valid Ion: {e}", i + 1)),
                }
            }
            // Every statement accepted for the open transaction is folded into the digest,
            // whatever its outcome (drivers fold before sending).
            let digest = crate::journal::hash::statement_digest(statement, &values);
            let digest_before = (!wait).then(|| txn.digest.clone());
            txn.digest.add_statement_digest(&digest);
            let check_tags =
                |tags: &[(String, String)]| self.control.check_table_tags(&ledger_name, tags);
            // Only a policy-bound caller in a STANDARD ledger is checked per statement.
            let policy_caller = caller.filter(|p| p.policies.is_some());
            let enforced = match policy_caller {
                Some(_) => self
                    .control
                    .ledger_is_standard(&ledger_name)
                    .map_err(|e| SessionError::Internal(e.to_string()))?,
                None => false,
            };
            let ledger_arn;
            let permit_fn;
            let permit: Option<&txn::Permit<'_>> = match policy_caller {
                Some(p) if enforced => {
                    ledger_arn = self.control.ledger_arn(&ledger_name);
                    permit_fn = move |action: &str, suffix: &str| {
                        p.is_allowed(&format!("qldb:{action}"), &format!("{ledger_arn}/{suffix}"))
                    };
                    Some(&permit_fn)
                }
                _ => None,
            };
            let executed = txn.execute(
                &*ledger,
                &self.cfg,
                &check_tags,
                permit,
                statement,
                &values,
                digest,
                self.now_ms(),
                (!wait).then_some(QUICK_STATEMENT_READS),
            );
            let (results, paused, usage) = match executed {
                Err(SessionError::Deferred) => {
                    // It runs again elsewhere, and is folded into the digest there.
                    if let Some(d) = digest_before {
                        txn.digest = d;
                    }
                    return Err(SessionError::Deferred);
                }
                other => other?,
            };
            if txn.commit_intent.is_none() && !txn.writes.is_empty() {
                txn.commit_intent = Some(ledger.commit_intent());
            }
            let page = txn.page(results, paused, self.cfg.page_size);
            Ok((page, usage))
        });
        match ran? {
            Err(SessionError::Deferred) if !wait => None,
            done => Some(done),
        }
    }

    pub fn fetch_page(&self, token: &str, txid: &str, page_token: &str) -> R<(Page, Usage)> {
        self.with_session(token, |s| {
            let ledger = s.ledger.clone();
            let txn = self.open_txn(s, txid)?;
            match txn.next_page(&*ledger, &self.cfg, page_token, self.cfg.page_size) {
                Some(page) => page,
                None => bad(format!(
                    "Invalid NextPageToken '{page_token}' for transaction {txid}"
                )),
            }
        })
    }

    /// The plan of `statement` in the open transaction, as text: how each FROM source of
    /// it and of its subqueries is read. Nothing runs; for tests and diagnostics.
    pub fn explain(&self, token: &str, txid: &str, statement: &str) -> R<Vec<String>> {
        self.with_session(token, |s| {
            let ledger = s.ledger.clone();
            let txn = self.open_txn(s, txid)?;
            txn.explain(&*ledger, &self.cfg, statement)
        })
    }

    /// The open transaction's read set so far (what its commit re-checks), a sorted line
    /// per read: `table T`, `key T.field = value`, `document of T`, `catalog`.
    pub fn read_set(&self, token: &str, txid: &str) -> R<Vec<String>> {
        self.with_session(token, |s| {
            let ledger = s.ledger.clone();
            let txn = self.open_txn(s, txid)?;
            txn.describe_reads(&*ledger)
        })
    }

    pub fn commit(&self, token: &str, txid: &str, digest: &[u8]) -> R<Usage> {
        self.with_session(token, |s| self.commit_in(s, txid, digest))
    }

    /// CommitTransaction without waiting for a thread that may block, where it can be: a
    /// transaction that [`Txn::commits_quickly`] on a ledger that
    /// [`LedgerStore::reads_without_waiting`] commits here, where it is called (the HTTP
    /// layer's thread, as StartTransaction); one that [`Txn::commits_by_queue`] is queued
    /// for the ledger's group commit, its answer left to await ([`QueuedCommit`]). `None`
    /// — the caller then runs [`Sessions::commit`] on a blocking thread — for any other,
    /// or while another command of the session runs.
    pub fn try_commit(&self, token: &str, txid: &str, digest: &[u8]) -> Option<R<Commit>> {
        self.session_call(token, false, |s| {
            let (quick, queued) = match &s.txn {
                Some(t) if t.id == txid => (t.commits_quickly(), t.commits_by_queue()),
                _ => (false, false),
            };
            if quick && s.ledger.reads_without_waiting() {
                return self
                    .commit_in(s, txid, digest)
                    .map(|u| Some(Commit::Done(u)));
            }
            if !queued {
                return Ok(None);
            }
            // Let go once the commit is queued, not before: a batch gathering for it would
            // otherwise stop waiting just before it arrives.
            let intent = s.txn.as_mut().and_then(|t| t.commit_intent.take());
            let (req, usage, tags) = self.take_commit(s, txid, digest)?;
            debug_assert!(
                tags.is_empty(),
                "a commit with table tags is not queued here"
            );
            let (ticket, lead) = s.ledger.queue_commit(req);
            drop(intent);
            if lead {
                start_leader(s.ledger.clone());
            }
            s.in_commit = Some(ticket.clone());
            Ok(Some(Commit::Queued(QueuedCommit { ticket, usage })))
        })?
        .transpose()
    }

    /// Takes the open transaction `txid` out of its session for its commit, once its digest
    /// matches: its commit request, the usage CommitTransaction reports, and the tags of the
    /// tables it creates.
    fn take_commit(
        &self,
        s: &mut Session,
        txid: &str,
        digest: &[u8],
    ) -> R<(CommitRequest, Usage, TableTags)> {
        let txn = self.open_txn(s, txid)?;
        if txn.digest.bytes() != digest {
            s.txn = None;
            return bad("Digests don't match");
        }
        let mut txn = s.txn.take().expect("open");
        let usage = Usage {
            read_ios: 0,
            write_ios: txn.writes.len() as u64,
        };
        let table_tags = std::mem::take(&mut txn.new_table_tags);
        Ok((txn.into_commit(self.now_ms()), usage, table_tags))
    }

    fn commit_in(&self, s: &mut Session, txid: &str, digest: &[u8]) -> R<Usage> {
        let ledger = s.ledger.clone();
        let (req, usage, table_tags) = self.take_commit(s, txid, digest)?;
        // Tags of new tables go to the catalog first: a table never exists untagged.
        if !table_tags.is_empty() {
            self.control
                .set_table_tags(&s.ledger_name, &table_tags)
                .map_err(|e| SessionError::Internal(e.to_string()))?;
        }
        let result = if req.writes_nothing() {
            ledger.validate(&req.reads)
        } else {
            commit_here(ledger, req)
        };
        if result.is_err() && !table_tags.is_empty() {
            if let Err(e) = self.control.unset_table_tags(&s.ledger_name, &table_tags) {
                tracing::warn!(error = %e, "could not remove the tags of an uncommitted table");
            }
        }
        commit_outcome(result).map(|()| usage)
    }

    pub fn abort(&self, token: &str) -> R<()> {
        self.abort_if(token, true)
            .expect("a call that may wait always runs")
    }

    fn abort_if(&self, token: &str, wait: bool) -> Option<R<()>> {
        self.session_call(token, wait, |s| {
            s.txn = None;
            Ok(())
        })
    }

    pub fn end_session(&self, token: &str) -> R<()> {
        self.end_session_if(token, true)
            .expect("a call that may wait always runs")
    }

    fn end_session_if(&self, token: &str, wait: bool) -> Option<R<()>> {
        let checked = self.session_call(token, wait, |_| Ok(()))?;
        Some(checked.map(|()| {
            self.open
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(token);
        }))
    }
}
