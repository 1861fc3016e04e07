//! One transaction: its digest, statements, write overlay, read set and result pages.

use std::collections::{HashMap, HashSet, VecDeque};

use base64::Engine as _;
use rand::RngCore;

use super::{Page, SessionConfig, SessionError, Usage, R};
use crate::api::qldb::Tags;
use crate::ion::binary::{encode_one, field_may_equal_string};
use crate::ion::Value;
use crate::journal::block::StatementInfo;
use crate::journal::hash::{CommitDigest, Hash};
use crate::names::new_unique_id;
use crate::partiql::ast::Statement;
use crate::partiql::exec::{self, Doc, ExecError, ScanCursor, TableMeta, TxnView};
use crate::partiql::parse_statement;
use crate::storage::{index_key, CommitRequest, DocWrite, ReadCheck, RevisionRef, StoredDoc};
use crate::storage::{LedgerStore, Snapshot, SCAN_START};

/// Asks whether the caller may do `qldb:<action>` on `<ledger ARN>/<resource suffix>`.
pub type Permit<'a> = dyn Fn(&str, &str) -> bool + 'a;

/// QLDB's answer to a statement the caller lacks a PartiQL permission for.
pub const ACCESS_DENIED: &str = "Access denied. Unable to run the statement due to insufficient \
permissions or an improper variable reference";

/// A document this transaction wrote, in its final state.
#[derive(Clone, Debug)]
pub struct PendingWrite {
    pub table_id: String,
    pub table_name: String,
    /// The committed version it replaces (`None`: inserted by this transaction).
    pub base_version: Option<u64>,
    pub data: Option<Value>,
    pub bytes: usize,
    pub statements: Vec<u32>,
}

pub struct Txn {
    pub id: String,
    pub started_ms: i64,
    pub digest: CommitDigest,
    statements: Vec<StatementInfo>,
    /// The read set, each document, index key, table and the catalog once (the first read).
    reads: Vec<ReadCheck>,
    /// What `reads` holds, without versions and tips ([`read_key`]).
    read_keys: HashSet<ReadCheck>,
    /// Written documents in first-write order.
    pub writes: Vec<(String, PendingWrite)>,
    new_tables: Vec<(String, String)>,
    new_indexes: Vec<(String, String, String)>,
    /// DROP TABLE / UNDROP TABLE: (table id, active), latest last.
    table_status: Vec<(String, bool)>,
    /// DROP INDEX: (index id, table id).
    dropped_indexes: Vec<(String, String)>,
    /// The checked `aws_tags` of tables created by this transaction: (table id, tags).
    pub new_table_tags: Vec<(String, Tags)>,
    redaction: Option<RevisionRef>,
    /// The rest of each result a client has not fetched yet, by page token.
    pages: HashMap<String, Rest>,
    /// Held from the first write on: the ledger's group commit may wait a little for this
    /// transaction's commit ([`crate::storage::group::CommitIntent`]).
    pub commit_intent: Option<crate::storage::group::CommitIntent>,
}

/// What is left of a statement's result after a page.
struct Rest {
    /// Rows made and not yet sent.
    ready: VecDeque<Value>,
    /// Where a paused SELECT goes on from ([`exec::execute_page`]), when it has more.
    paused: Option<Box<PausedSelect>>,
    /// How the SELECT failed when it was made whole ahead of its pages ([`Txn::settle`]).
    failed: Option<SessionError>,
    /// Read IOs of making rows ahead of their page, reported with the next page.
    ios: u64,
}

/// A SELECT whose result is made a page at a time, as the client fetches it.
pub struct PausedSelect {
    /// As parsed for the first page: its subqueries' rows are kept by their addresses.
    statement: Box<Statement>,
    params: Vec<Value>,
    /// Its index in the transaction, and its start time (what UTCNOW() gives).
    index: u32,
    started: i64,
    at: exec::Paused,
}

impl Txn {
    pub fn new(id: String, started_ms: i64) -> Self {
        Txn {
            digest: CommitDigest::new(&id),
            id,
            started_ms,
            statements: Vec::new(),
            reads: Vec::new(),
            read_keys: HashSet::new(),
            writes: Vec::new(),
            new_tables: Vec::new(),
            new_indexes: Vec::new(),
            table_status: Vec::new(),
            dropped_indexes: Vec::new(),
            new_table_tags: Vec::new(),
            redaction: None,
            pages: HashMap::new(),
            commit_intent: None,
        }
    }

    /// Parses and runs one statement, started at `started` (ms since the epoch, from the
    /// server's clock). A failed statement leaves no trace but its digest.
    /// `permit` (STANDARD-mode ledgers with a policy-bound caller) is asked for every
    /// PartiQL action the statement needs before it runs.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &mut self,
        ledger: &dyn LedgerStore,
        cfg: &SessionConfig,
        check_tags: &TagCheck,
        permit: Option<&Permit<'_>>,
        statement: &str,
        params: &[Value],
        statement_digest: Hash,
        started: i64,
        budget: Option<u64>,
    ) -> R<(Vec<Value>, Option<Box<PausedSelect>>, Usage)> {
        let parsed = Box::new(
            parse_statement(statement).map_err(|e| SessionError::BadRequest(e.client_message()))?,
        );
        let paused_selects = self.pages.values().any(|r| r.paused.is_some());
        if budget.is_some() && paused_selects && !matches!(*parsed, Statement::Select(_)) {
            // Settling paused SELECTs reads without a bound.
            return Err(SessionError::Deferred);
        }
        if !matches!(*parsed, Statement::Select(_)) {
            // A paused SELECT must not see what this statement writes.
            self.settle(ledger, cfg);
        }
        // A failed statement leaves no trace. SELECTs cannot write, so only other statements
        // pay for a snapshot of the write set.
        let writes_before = (!matches!(*parsed, Statement::Select(_))).then(|| {
            (
                self.writes.clone(),
                (
                    self.new_tables.clone(),
                    self.new_indexes.clone(),
                    self.table_status.clone(),
                    self.dropped_indexes.clone(),
                    self.new_table_tags.clone(),
                ),
                self.redaction.clone(),
            )
        });
        let reads_before = self.reads.len();
        let index = self.statements.len() as u32;
        let mut ctx = Ctx {
            ledger,
            snap: None,
            stmt_tip: None,
            cfg,
            check_tags,
            txn: self,
            index,
            now: started,
            read_ios: 0,
            write_ios: 0,
            budget,
        };
        if let Some(permit) = permit {
            // Every PartiQL action the statement needs, before anything runs.
            let needed = crate::partiql::permissions::required(&parsed, params);
            if !needed.is_empty() {
                let tables = ctx
                    .tables()
                    .map_err(|e| SessionError::Internal(e.to_string()))?;
                for (action, target) in needed {
                    if let Some(suffix) = target.resource_suffix(&tables) {
                        if !permit(action, &suffix) {
                            return Err(SessionError::AccessDenied(ACCESS_DENIED.into()));
                        }
                    }
                }
            }
        }
        // One row more than a page: a result that fits its first page has no next page.
        let want = cfg.page_size.max(1) + 1;
        let result = exec::execute_page(&parsed, params, &mut ctx, want, None);
        let usage = Usage {
            read_ios: ctx.read_ios,
            write_ios: ctx.write_ios,
        };
        // Ends the statement's read snapshot.
        drop(ctx);
        match result {
            Ok((rows, at)) => {
                self.statements.push(StatementInfo {
                    statement: statement.to_string(),
                    start_time_ms: started,
                    statement_digest,
                });
                let paused = at.map(|at| {
                    Box::new(PausedSelect {
                        statement: parsed,
                        params: params.to_vec(),
                        index,
                        started,
                        at,
                    })
                });
                Ok((rows, paused, usage))
            }
            Err(e) => {
                if let Some((writes, catalog, redaction)) = writes_before {
                    self.writes = writes;
                    (
                        self.new_tables,
                        self.new_indexes,
                        self.table_status,
                        self.dropped_indexes,
                        self.new_table_tags,
                    ) = catalog;
                    self.redaction = redaction;
                }
                self.reads.truncate(reads_before);
                self.read_keys = self.reads.iter().map(read_key).collect();
                Err(e.into())
            }
        }
    }

    /// The plan of a statement in this transaction (see [`exec::explain`]).
    pub fn explain(
        &mut self,
        ledger: &dyn LedgerStore,
        cfg: &SessionConfig,
        statement: &str,
    ) -> R<Vec<String>> {
        let parsed =
            parse_statement(statement).map_err(|e| SessionError::BadRequest(e.client_message()))?;
        let index = self.statements.len() as u32;
        let mut ctx = self.reader(ledger, cfg, index, 0);
        exec::explain(&parsed, &mut ctx).map_err(|e| SessionError::Internal(e.to_string()))
    }

    /// The read set, a sorted line per read (see `Sessions::read_set`).
    pub fn describe_reads(&mut self, ledger: &dyn LedgerStore) -> R<Vec<String>> {
        let internal = |e: crate::storage::StorageError| SessionError::Internal(e.to_string());
        let tables = ledger.tables().map_err(internal)?;
        let table_name = |id: &str| {
            tables
                .iter()
                .find(|t| t.table_id == id)
                .map(|t| t.name.clone())
                .or_else(|| {
                    self.new_tables
                        .iter()
                        .find(|(t, _)| t == id)
                        .map(|(_, n)| n.clone())
                })
                .unwrap_or_else(|| id.to_string())
        };
        let mut out = Vec::new();
        for r in &self.reads {
            out.push(match r {
                ReadCheck::Table { table_id, .. } => format!("table {}", table_name(table_id)),
                ReadCheck::Catalog { .. } => "catalog".into(),
                ReadCheck::IndexKey { index_id, key, .. } => {
                    let (table, field) = tables
                        .iter()
                        .find_map(|t| {
                            t.indexes
                                .iter()
                                .find(|i| &i.index_id == index_id)
                                .map(|i| (t.name.clone(), i.field.clone()))
                        })
                        .unwrap_or_else(|| (index_id.clone(), String::new()));
                    let value = crate::ion::binary::decode(key)
                        .ok()
                        .and_then(|mut v| v.pop())
                        .map_or_else(|| "?".into(), |v| crate::ion::text::to_text_one(&v));
                    format!("key {table}.{field} = {value}")
                }
                ReadCheck::Doc { doc_id, .. } => {
                    match ledger.document(doc_id).map_err(internal)? {
                        Some(d) => format!("document of {}", table_name(&d.table_id)),
                        None => "document (none)".into(),
                    }
                }
            });
        }
        out.sort();
        Ok(out)
    }

    /// The first page of a statement's result; the rest (`results` beyond the page, and
    /// what `paused` has yet to make) waits under a fresh page token.
    pub fn page(
        &mut self,
        results: Vec<Value>,
        paused: Option<Box<PausedSelect>>,
        size: usize,
    ) -> Page {
        self.finish_page(
            Rest {
                ready: results.into(),
                paused,
                failed: None,
                ios: 0,
            },
            size,
        )
    }

    /// The page under `token` (`None`: no such token), and the read IOs of making it.
    pub fn next_page(
        &mut self,
        ledger: &dyn LedgerStore,
        cfg: &SessionConfig,
        token: &str,
        size: usize,
    ) -> Option<R<(Page, Usage)>> {
        let mut rest = self.pages.remove(token)?;
        if let Some(e) = rest.failed.take() {
            return Some(Err(e));
        }
        let mut usage = Usage {
            read_ios: std::mem::take(&mut rest.ios),
            ..Usage::default()
        };
        // One row more than the page, so that the last page has no next page token.
        if rest.ready.len() <= size.max(1) {
            if let Some(p) = rest.paused.take() {
                let want = size.max(1) + 1 - rest.ready.len();
                match self.resume(ledger, cfg, *p, want) {
                    Ok((rows, paused, ios)) => {
                        rest.ready.extend(rows);
                        rest.paused = paused;
                        usage.read_ios += ios;
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        Some(Ok((self.finish_page(rest, size), usage)))
    }

    /// The view of a statement that reads only (a plan to explain, a paused SELECT):
    /// statement `index`, started at `now`.
    fn reader<'a>(
        &'a mut self,
        ledger: &'a dyn LedgerStore,
        cfg: &'a SessionConfig,
        index: u32,
        now: i64,
    ) -> Ctx<'a> {
        Ctx {
            ledger,
            snap: None,
            stmt_tip: None,
            cfg,
            check_tags: &no_tags,
            index,
            txn: self,
            now,
            read_ios: 0,
            write_ios: 0,
            budget: None,
        }
    }

    /// Runs a paused SELECT on until it has `want` more rows (or its end).
    fn resume(
        &mut self,
        ledger: &dyn LedgerStore,
        cfg: &SessionConfig,
        p: PausedSelect,
        want: usize,
    ) -> R<(Vec<Value>, Option<Box<PausedSelect>>, u64)> {
        let mut ctx = self.reader(ledger, cfg, p.index, p.started);
        let (rows, at) = exec::execute_page(&p.statement, &p.params, &mut ctx, want, Some(p.at))?;
        let ios = ctx.read_ios;
        let paused = at.map(|at| Box::new(PausedSelect { at, ..p }));
        Ok((rows, paused, ios))
    }

    /// Makes the whole rest of every paused SELECT now, before a statement that may write:
    /// a result shows the transaction as it was when its statement ran. A SELECT that fails
    /// on the way fails the fetch of its next page.
    fn settle(&mut self, ledger: &dyn LedgerStore, cfg: &SessionConfig) {
        let tokens: Vec<String> = self
            .pages
            .iter()
            .filter(|(_, r)| r.paused.is_some())
            .map(|(t, _)| t.clone())
            .collect();
        for t in tokens {
            let Some(mut rest) = self.pages.remove(&t) else {
                continue;
            };
            if let Some(p) = rest.paused.take() {
                match self.resume(ledger, cfg, *p, usize::MAX) {
                    Ok((rows, _, ios)) => {
                        rest.ready.extend(rows);
                        rest.ios += ios;
                    }
                    Err(e) => rest.failed = Some(e),
                }
            }
            self.pages.insert(t, rest);
        }
    }

    fn finish_page(&mut self, mut rest: Rest, size: usize) -> Page {
        let page: Vec<Value> = rest
            .ready
            .drain(..rest.ready.len().min(size.max(1)))
            .collect();
        let next_page_token =
            if rest.ready.is_empty() && rest.paused.is_none() && rest.failed.is_none() {
                None
            } else {
                let mut b = [0u8; 24];
                rand::thread_rng().fill_bytes(&mut b);
                let t = base64::engine::general_purpose::STANDARD.encode(b);
                self.pages.insert(t.clone(), rest);
                Some(t)
            };
        Page {
            values: page.iter().map(encode_one).collect(),
            next_page_token,
        }
    }

    /// Whether the transaction writes nothing and read at most a few documents, index keys
    /// and tables: committing it is a short check of those reads.
    pub fn commits_quickly(&self) -> bool {
        const QUICK_READS: usize = 16;
        self.writes_nothing() && self.new_table_tags.is_empty() && self.reads.len() <= QUICK_READS
    }

    /// Whether the commit is a write that needs nothing but the ledger's group commit (no
    /// table tags to store in the catalog first): [`crate::session::Sessions::try_commit`]
    /// queues it without holding a thread while it waits.
    pub fn commits_by_queue(&self) -> bool {
        !self.writes_nothing() && self.new_table_tags.is_empty()
    }

    /// Whether the transaction writes nothing (its commit only checks its reads); as
    /// [`CommitRequest::writes_nothing`] of its commit.
    fn writes_nothing(&self) -> bool {
        self.writes.is_empty()
            && self.new_tables.is_empty()
            && self.new_indexes.is_empty()
            && self.table_status.is_empty()
            && self.dropped_indexes.is_empty()
            && self.redaction.is_none()
    }

    pub fn into_commit(self, commit_ms: i64) -> CommitRequest {
        let mut reads = self.reads;
        let mut writes = Vec::new();
        for (doc_id, w) in self.writes {
            if let Some(v) = w.base_version {
                let read = ReadCheck::Doc {
                    doc_id: doc_id.clone(),
                    version: None,
                };
                // A document read before it was written is checked once, at the version read.
                if !self.read_keys.contains(&read) {
                    reads.push(ReadCheck::Doc {
                        doc_id: doc_id.clone(),
                        version: Some(v),
                    });
                }
            }
            writes.push(DocWrite {
                doc_id,
                table_id: w.table_id,
                table_name: w.table_name,
                version: w.base_version.map_or(0, |v| v + 1),
                data: w.data,
                statements: w.statements,
            });
        }
        CommitRequest {
            transaction_id: self.id,
            commit_ms,
            statements: self.statements,
            reads,
            new_tables: self.new_tables,
            new_indexes: self.new_indexes,
            table_status: self.table_status,
            dropped_indexes: self.dropped_indexes,
            writes,
            redaction: self.redaction,
        }
    }

    /// Adds a read to the read set unless the same document, index key, table or catalog
    /// is there: the first read, made against the same or an older state, is the stricter.
    fn record(&mut self, check: ReadCheck) {
        if self.read_keys.insert(read_key(&check)) {
            self.reads.push(check);
        }
    }

    fn pending(&self, doc_id: &str) -> Option<&PendingWrite> {
        self.writes
            .iter()
            .find(|(id, _)| id == doc_id)
            .map(|(_, w)| w)
    }
}

/// Documents per page of a table scan: what a statement holds of a table at once.
const SCAN_PAGE: usize = 512;

/// What a read is about, without the version or tip it was made at.
fn read_key(check: &ReadCheck) -> ReadCheck {
    match check {
        ReadCheck::Doc { doc_id, .. } => ReadCheck::Doc {
            doc_id: doc_id.clone(),
            version: None,
        },
        ReadCheck::Table { table_id, .. } => ReadCheck::Table {
            table_id: table_id.clone(),
            as_of: 0,
        },
        ReadCheck::IndexKey { index_id, key, .. } => ReadCheck::IndexKey {
            index_id: index_id.clone(),
            key: key.clone(),
            as_of: 0,
        },
        ReadCheck::Catalog { .. } => ReadCheck::Catalog { as_of: 0 },
    }
}

/// The transaction's view of the ledger, for one statement.
/// Checks the `aws_tags` of a CREATE TABLE against the ledger (permissions mode, tag rules).
pub type TagCheck<'a> = dyn Fn(&[(String, String)]) -> Result<Tags, String> + 'a;

struct Ctx<'a> {
    ledger: &'a dyn LedgerStore,
    /// The statement's read snapshot (file ledgers), opened by its first read.
    snap: Option<Box<dyn Snapshot + 'a>>,
    /// The journal tip read before the statement's first read ([`Ctx::tip_seq`]).
    stmt_tip: Option<u64>,
    cfg: &'a SessionConfig,
    check_tags: &'a TagCheck<'a>,
    txn: &'a mut Txn,
    index: u32,
    now: i64,
    read_ios: u64,
    write_ios: u64,
    /// The documents the statement may still read ([`ExecError::Deferred`] past them), when it
    /// runs where it may not take long.
    budget: Option<u64>,
}

/// The tag check of a statement that cannot create a table.
fn no_tags(_: &[(String, String)]) -> Result<Tags, String> {
    Ok(Tags::new())
}

impl Ctx<'_> {
    /// Whether the statement may read on: [`ExecError::Deferred`] if it has a budget and has
    /// spent it, or the read is `unbounded` (a whole table at once, a count, the catalog
    /// under the control plane's lock). With a budget, what is left of it: the read asks for
    /// one document more, so that [`Ctx::spend`] tells a read past it.
    fn may_read(&self, unbounded: bool) -> Result<Option<u64>, ExecError> {
        match self.budget {
            None => Ok(None),
            Some(b) if unbounded || b == 0 => Err(ExecError::Deferred),
            Some(b) => Ok(Some(b)),
        }
    }

    /// Spends `docs` documents of the budget, at least one (a read that finds nothing is
    /// still a query); [`ExecError::Deferred`] past it.
    fn spend(&mut self, docs: usize) -> Result<(), ExecError> {
        if let Some(b) = &mut self.budget {
            let docs = (docs as u64).max(1);
            if docs > *b {
                return Err(ExecError::Deferred);
            }
            *b -= docs;
        }
        Ok(())
    }
}

fn internal(e: impl std::fmt::Display) -> ExecError {
    ExecError::Internal(e.to_string())
}

impl Ctx<'_> {
    /// The journal tip when the statement's reads began; the first call also opens the
    /// statement's snapshot, after reading the tip, so that the tip recorded with a read is
    /// never newer than what the read saw (OCC checks stay conservative).
    fn tip_seq(&mut self) -> Result<u64, ExecError> {
        if let Some(tip) = self.stmt_tip {
            return Ok(tip);
        }
        let tip = self.ledger.tip().map_err(internal)?.last_seq;
        self.snap = self.ledger.snapshot().map_err(internal)?;
        self.stmt_tip = Some(tip);
        Ok(tip)
    }

    fn committed_table(&self, table_id: &str) -> bool {
        !self.txn.new_tables.iter().any(|(id, _)| id == table_id)
    }

    /// Applies this transaction's writes to committed documents of a table, and adds the
    /// documents it inserted.
    fn overlay(&self, table_id: &str, committed: Vec<StoredDoc>) -> Vec<Doc> {
        let mut out = self.overlay_committed(committed);
        for (id, w) in &self.txn.writes {
            if w.table_id == table_id && w.base_version.is_none() {
                if let Some(data) = &w.data {
                    out.push(Doc {
                        id: id.clone(),
                        version: 0,
                        data: data.clone(),
                    });
                }
            }
        }
        out
    }

    /// Applies this transaction's updates and deletes to committed documents.
    fn overlay_committed(&self, committed: impl IntoIterator<Item = StoredDoc>) -> Vec<Doc> {
        let mut out: Vec<Doc> = Vec::new();
        for d in committed {
            match self.txn.pending(&d.doc_id) {
                Some(w) => {
                    if let Some(data) = &w.data {
                        out.push(Doc {
                            id: d.doc_id,
                            version: d.version,
                            data: data.clone(),
                        });
                    }
                }
                None => out.push(Doc {
                    id: d.doc_id,
                    version: d.version,
                    data: d.data,
                }),
            }
        }
        out
    }

    fn write(
        &mut self,
        table: &TableMeta,
        doc_id: &str,
        base: Option<u64>,
        data: Option<Value>,
    ) -> Result<(), ExecError> {
        let bytes = data.as_ref().map_or(0, |d| encode_one(d).len());
        if bytes > self.cfg.max_document_bytes {
            return Err(ExecError::Limit(format!(
                "Document size {bytes} bytes exceeds the limit of {} bytes",
                self.cfg.max_document_bytes
            )));
        }
        let index = self.index;
        match self.txn.writes.iter_mut().find(|(id, _)| id == doc_id) {
            Some((_, w)) => {
                w.data = data;
                w.bytes = bytes;
                if w.statements.last() != Some(&index) {
                    w.statements.push(index);
                }
            }
            None => {
                if self.txn.writes.len() >= self.cfg.max_documents_per_transaction {
                    return Err(ExecError::Limit(format!(
                        "Transaction exceeds the limit of {} documents written",
                        self.cfg.max_documents_per_transaction
                    )));
                }
                self.txn.writes.push((
                    doc_id.to_string(),
                    PendingWrite {
                        table_id: table.table_id.clone(),
                        table_name: table.name.clone(),
                        base_version: base,
                        data,
                        bytes,
                        statements: vec![index],
                    },
                ));
            }
        }
        // A document inserted and deleted in the same transaction leaves no revision.
        self.txn
            .writes
            .retain(|(_, w)| !(w.base_version.is_none() && w.data.is_none()));
        let total: usize = self.txn.writes.iter().map(|(_, w)| w.bytes).sum();
        if total > self.cfg.max_transaction_bytes {
            return Err(ExecError::Limit(format!(
                "Transaction size exceeds the limit of {} bytes",
                self.cfg.max_transaction_bytes
            )));
        }
        self.write_ios += 1;
        Ok(())
    }
}

impl TxnView for Ctx<'_> {
    fn read_ios(&self) -> u64 {
        self.read_ios
    }

    fn charge_read_ios(&mut self, n: u64) {
        self.read_ios = self.read_ios.saturating_add(n);
    }

    fn max_documents_written(&self) -> usize {
        self.cfg.max_documents_per_transaction
    }

    fn unwritten_index(&mut self, table: &TableMeta, index_id: &str) -> bool {
        self.committed_table(&table.table_id)
            && !self.txn.new_indexes.iter().any(|(id, _, _)| id == index_id)
            && !self
                .txn
                .writes
                .iter()
                .any(|(_, w)| w.table_id == table.table_id)
    }

    fn refund_read_ios(&mut self, n: u64) {
        self.read_ios = self.read_ios.saturating_sub(n);
    }

    fn count_docs(&mut self, table: &TableMeta, cap: u64) -> Result<Option<u64>, ExecError> {
        let inserted = self
            .txn
            .writes
            .iter()
            .filter(|(_, w)| {
                w.table_id == table.table_id && w.base_version.is_none() && w.data.is_some()
            })
            .count() as u64;
        let committed = if self.committed_table(&table.table_id) {
            self.may_read(true)?;
            self.ledger
                .count_docs(&table.table_id, cap)
                .map_err(internal)?
        } else {
            0
        };
        Ok(Some(committed.saturating_add(inserted).min(cap)))
    }

    fn tables(&mut self) -> Result<Vec<TableMeta>, ExecError> {
        let mut out: Vec<TableMeta> = self
            .ledger
            .tables()
            .map_err(internal)?
            .into_iter()
            .map(|t| TableMeta {
                table_id: t.table_id,
                name: t.name,
                active: t.active,
                indexes: t
                    .indexes
                    .into_iter()
                    .map(|i| (i.index_id, i.field))
                    .collect(),
            })
            .collect();
        for (id, name) in &self.txn.new_tables {
            out.push(TableMeta {
                table_id: id.clone(),
                name: name.clone(),
                active: true,
                indexes: Vec::new(),
            });
        }
        for (index_id, table_id, field) in &self.txn.new_indexes {
            if let Some(t) = out.iter_mut().find(|t| &t.table_id == table_id) {
                t.indexes.push((index_id.clone(), field.clone()));
            }
        }
        for (table_id, active) in &self.txn.table_status {
            if let Some(t) = out.iter_mut().find(|t| &t.table_id == table_id) {
                t.active = *active;
            }
        }
        for (index_id, table_id) in &self.txn.dropped_indexes {
            if let Some(t) = out.iter_mut().find(|t| &t.table_id == table_id) {
                t.indexes.retain(|(id, _)| id != index_id);
            }
        }
        Ok(out)
    }

    fn scan(&mut self, table: &TableMeta) -> Result<Vec<Doc>, ExecError> {
        let mut cursor = ScanCursor::default();
        let mut docs = Vec::new();
        while let Some(page) = self.scan_page(table, &mut cursor, &[])? {
            docs.extend(page);
        }
        Ok(docs)
    }

    fn scan_page(
        &mut self,
        table: &TableMeta,
        cursor: &mut ScanCursor,
        probes: &[(String, String)],
    ) -> Result<Option<Vec<Doc>>, ExecError> {
        if cursor.done {
            return Ok(None);
        }
        if cursor.committed_done || !self.committed_table(&table.table_id) {
            // This transaction's own inserts come after the committed documents.
            cursor.done = true;
            return Ok(Some(self.overlay(&table.table_id, Vec::new())));
        }
        let after = match cursor.after {
            Some(after) => after,
            None => {
                // Checked at commit: any change to the table after the scan began.
                let as_of = self.tip_seq()?;
                self.txn.record(ReadCheck::Table {
                    table_id: table.table_id.clone(),
                    as_of,
                });
                SCAN_START
            }
        };
        // With a budget, a page past it defers the statement: a quick scan reads the same
        // page as any other, or none.
        let limit = self
            .may_read(false)?
            .map_or(SCAN_PAGE, |b| (b as usize).saturating_add(1).min(SCAN_PAGE));
        // A document this transaction wrote is judged by what it wrote, not by what is stored.
        let txn = &*self.txn;
        let keep = |doc_id: &str, stored: &[u8]| {
            txn.pending(doc_id).is_some()
                || probes
                    .iter()
                    .all(|(field, text)| field_may_equal_string(stored, field, text))
        };
        let keep: Option<crate::storage::KeepDoc<'_>> =
            if probes.is_empty() { None } else { Some(&keep) };
        let page = match &self.snap {
            Some(snap) => snap.scan_page(&table.table_id, after, limit, keep),
            None => self.ledger.scan_page(&table.table_id, after, limit, keep),
        }
        .map_err(internal)?;
        self.spend(page.read)?;
        cursor.committed_done = page.read < limit;
        cursor.after = Some(page.last);
        self.read_ios += page.read as u64;
        Ok(Some(self.overlay_committed(page.docs)))
    }

    fn by_id(&mut self, table: &TableMeta, doc_id: &str) -> Result<Option<Doc>, ExecError> {
        self.may_read(false)?;
        self.spend(1)?;
        self.tip_seq()?;
        let committed = match &self.snap {
            Some(snap) => snap.document(doc_id),
            None => self.ledger.document(doc_id),
        }
        .map_err(internal)?
        .filter(|d| d.table_id == table.table_id);
        if self.txn.pending(doc_id).is_none() {
            self.txn.record(ReadCheck::Doc {
                doc_id: doc_id.to_string(),
                version: committed.as_ref().map(|d| d.version),
            });
        }
        self.read_ios += 1;
        let mut docs = self.overlay(&table.table_id, committed.into_iter().collect());
        docs.retain(|d| d.id == doc_id);
        if docs.is_empty() {
            if let Some(w) = self.txn.pending(doc_id) {
                if w.table_id == table.table_id && w.base_version.is_none() {
                    if let Some(data) = &w.data {
                        return Ok(Some(Doc {
                            id: doc_id.to_string(),
                            version: 0,
                            data: data.clone(),
                        }));
                    }
                }
            }
        }
        Ok(docs.pop())
    }

    fn by_index(
        &mut self,
        table: &TableMeta,
        index_id: &str,
        key: &Value,
    ) -> Result<Vec<Doc>, ExecError> {
        let index_committed = !self.txn.new_indexes.iter().any(|(id, _, _)| id == index_id);
        if !index_committed || !self.committed_table(&table.table_id) {
            return self.scan(table);
        }
        let limit = self
            .may_read(false)?
            .map_or(usize::MAX, |b| (b as usize).saturating_add(1));
        let k = index_key(key);
        let as_of = self.tip_seq()?;
        self.txn.record(ReadCheck::IndexKey {
            index_id: index_id.to_string(),
            key: k.clone(),
            as_of,
        });
        let committed = match &self.snap {
            Some(snap) => snap.index_lookup(index_id, &k, limit),
            None => self.ledger.index_lookup(index_id, &k, limit),
        }
        .map_err(internal)?;
        self.spend(committed.len())?;
        for d in &committed {
            if self.txn.pending(&d.doc_id).is_none() {
                self.txn.record(ReadCheck::Doc {
                    doc_id: d.doc_id.clone(),
                    version: Some(d.version),
                });
            }
        }
        self.read_ios += committed.len() as u64;
        // Pending writes may move documents in or out of this key; WHERE re-checks them.
        let mut docs = self.overlay(&table.table_id, committed);
        for (id, w) in &self.txn.writes {
            if w.table_id == table.table_id
                && w.base_version.is_some()
                && !docs.iter().any(|d| &d.id == id)
            {
                if let Some(data) = &w.data {
                    docs.push(Doc {
                        id: id.clone(),
                        version: w.base_version.unwrap_or(0),
                        data: data.clone(),
                    });
                }
            }
        }
        Ok(docs)
    }

    fn insert(&mut self, table: &TableMeta, data: Value) -> Result<String, ExecError> {
        let id = crate::names::new_document_id();
        self.write(table, &id, None, Some(data))?;
        Ok(id)
    }

    fn update(&mut self, table: &TableMeta, doc: &Doc, data: Value) -> Result<(), ExecError> {
        let base = self
            .txn
            .pending(&doc.id)
            .map_or(Some(doc.version), |w| w.base_version);
        self.write(table, &doc.id, base, Some(data))
    }

    fn delete(&mut self, table: &TableMeta, doc: &Doc) -> Result<(), ExecError> {
        let base = self
            .txn
            .pending(&doc.id)
            .map_or(Some(doc.version), |w| w.base_version);
        self.write(table, &doc.id, base, None)
    }

    fn create_table(&mut self, name: &str, tags: &[(String, String)]) -> Result<String, ExecError> {
        let tags = if tags.is_empty() {
            None
        } else {
            // The check reads the catalog under the control plane's lock.
            self.may_read(true)?;
            Some((self.check_tags)(tags).map_err(ExecError::Semantic)?)
        };
        let tables = self.tables()?;
        if tables.iter().any(|t| t.active && t.name == name) {
            return Err(ExecError::Semantic(format!("Table {name} already exists")));
        }
        let active = tables.iter().filter(|t| t.active).count();
        if active >= self.cfg.max_active_tables {
            return Err(ExecError::Limit(format!(
                "Exceeded tables limit: Ledger has {active} active tables, and cannot create another."
            )));
        }
        if tables.len() >= self.cfg.max_total_tables {
            return Err(ExecError::Limit(format!(
                "Exceeded tables limit: Ledger has {} total tables, and cannot create another.",
                tables.len()
            )));
        }
        let id = new_unique_id();
        self.txn.new_tables.push((id.clone(), name.to_string()));
        if let Some(tags) = tags {
            self.txn.new_table_tags.push((id.clone(), tags));
        }
        self.write_ios += 1;
        Ok(id)
    }

    fn set_table_active(&mut self, table_id: &str, active: bool) -> Result<(), ExecError> {
        let live = self.tables()?.iter().filter(|t| t.active).count();
        if active && live >= self.cfg.max_active_tables {
            return Err(ExecError::Limit(format!(
                "Exceeded tables limit: Ledger has {live} active tables, and cannot undrop another."
            )));
        }
        let as_of = self.tip_seq()?;
        self.txn.record(ReadCheck::Catalog { as_of });
        self.txn.table_status.push((table_id.to_string(), active));
        self.write_ios += 1;
        Ok(())
    }

    fn drop_index(&mut self, table: &TableMeta, index_id: &str) -> Result<(), ExecError> {
        let as_of = self.tip_seq()?;
        self.txn.record(ReadCheck::Catalog { as_of });
        let before = self.txn.new_indexes.len();
        self.txn.new_indexes.retain(|(id, _, _)| id != index_id);
        if self.txn.new_indexes.len() == before {
            self.txn
                .dropped_indexes
                .push((index_id.to_string(), table.table_id.clone()));
        }
        self.write_ios += 1;
        Ok(())
    }

    fn create_index(&mut self, table: &TableMeta, field: &str) -> Result<String, ExecError> {
        if field.is_empty() || field.chars().count() > 128 {
            return Err(ExecError::Runtime(
                "An index field name must have 1 to 128 characters".into(),
            ));
        }
        if table.indexes.iter().any(|(_, f)| f == field) {
            return Err(ExecError::Semantic(format!(
                "Table {} already has an index on {field}",
                table.name
            )));
        }
        if table.indexes.len() >= self.cfg.max_indexes_per_table {
            return Err(ExecError::Limit(format!(
                "Exceeded the limit of {} indexes on table {}",
                self.cfg.max_indexes_per_table, table.name
            )));
        }
        let id = new_unique_id();
        self.txn
            .new_indexes
            .push((id.clone(), table.table_id.clone(), field.to_string()));
        self.write_ios += 1;
        Ok(id)
    }

    fn committed_view(&mut self, table: &TableMeta) -> Result<Vec<Value>, ExecError> {
        self.may_read(true)?;
        let as_of = self.tip_seq()?;
        self.txn.record(ReadCheck::Table {
            table_id: table.table_id.clone(),
            as_of,
        });
        let rows = self
            .ledger
            .committed_view(&table.table_id)
            .map_err(internal)?;
        self.read_ios += rows.len() as u64;
        Ok(rows)
    }

    fn history(&mut self, table: &TableMeta) -> Result<Vec<Value>, ExecError> {
        self.may_read(true)?;
        let as_of = self.tip_seq()?;
        self.txn.record(ReadCheck::Table {
            table_id: table.table_id.clone(),
            as_of,
        });
        let rows = self.ledger.history(&table.table_id).map_err(internal)?;
        self.read_ios += rows.len() as u64;
        Ok(rows)
    }

    fn redact(
        &mut self,
        strand_id: &str,
        seq: u64,
        table_id: &str,
        doc_id: &str,
    ) -> Result<u64, ExecError> {
        if self.txn.redaction.is_some() {
            return Err(ExecError::Runtime(
                "Only one revision can be redacted per transaction".into(),
            ));
        }
        let tip = self.ledger.tip().map_err(internal)?;
        if strand_id != tip.strand_id || seq > tip.last_seq {
            return Err(ExecError::Runtime(
                "The provided block address is not valid.".into(),
            ));
        }
        self.may_read(false)?;
        self.spend(1)?;
        let found = self.ledger.revision_at(seq, doc_id).map_err(internal)?;
        let Some(r) = found.filter(|r| r.table_id == table_id) else {
            return Err(ExecError::Runtime(format!(
                "No revision of document {doc_id} in table {table_id} was committed in block {seq}"
            )));
        };
        if r.redacted {
            return Err(ExecError::Runtime(format!(
                "Revision {} of document {doc_id} is already redacted",
                r.version
            )));
        }
        if !r.has_data {
            return Err(ExecError::Runtime(format!(
                "Revision {} of document {doc_id} has no data to redact",
                r.version
            )));
        }
        if r.is_latest {
            return Err(ExecError::Runtime(format!(
                "Revision {} is the latest revision of document {doc_id}; only earlier revisions can be redacted",
                r.version
            )));
        }
        let version = r.version;
        self.txn.redaction = Some(r);
        self.write_ios += 1;
        Ok(version)
    }

    fn transaction_id(&self) -> String {
        self.txn.id.clone()
    }

    fn now_ms(&self) -> i64 {
        self.now
    }
}
