//! Executes a parsed statement against a [`TxnView`]: the transaction's view of the
//! ledger (committed state overlaid with its own writes), which also records what was read
//! for OCC. Plans index and id lookups for equality predicates; everything else scans.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::ast::*;
use super::ops::{self, PV};
use super::plan::{self, source_alias, Access, Join, Keys, Plan};
use crate::ion::{Data, Value};
use crate::storage::index_key;

pub(super) use super::plan::is_user_tables;

/// A table as the transaction sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMeta {
    pub table_id: String,
    pub name: String,
    pub active: bool,
    /// (index id, field)
    pub indexes: Vec<(String, String)>,
}

/// A document as the transaction sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub id: String,
    pub version: u64,
    pub data: Value,
}

/// Why a statement failed. Every kind but [`ExecError::Internal`] is the statement's fault;
/// [`ExecError::code`] is the one mapping to the session API's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// It means nothing against the catalog or the dialect: an unknown table, index or
    /// procedure, a clause qldb-local does not support, an aggregate out of place.
    #[error("{0}")]
    Semantic(String),
    /// The data made it fail: a type error, an invalid value, a missing parameter.
    #[error("{0}")]
    Runtime(String),
    /// It went past a limit: rows examined, rows held, document or transaction size.
    #[error("{0}")]
    Limit(String),
    /// The server's fault (a storage failure), with what failed.
    #[error("internal: {0}")]
    Internal(String),
    /// Another transaction's commit changed what a result being paged reads (its table was
    /// dropped or replaced): the transaction must retry.
    #[error("{0}")]
    Conflict(String),
    /// The statement would read more than its caller allowed (a statement run on the HTTP
    /// layer's thread): it left no trace, and runs again where it may take its time. Never
    /// reaches a client.
    #[error("the statement reads more than a quick statement may")]
    Deferred,
}

impl ExecError {
    /// The session API's error code for it.
    pub fn code(&self) -> &'static str {
        match self {
            ExecError::Internal(_) | ExecError::Deferred => "InternalFailure",
            ExecError::Conflict(_) => "OccConflictException",
            _ => "BadRequestException",
        }
    }
}

pub type R<T> = Result<T, ExecError>;

/// A runtime error (the data's).
fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(ExecError::Runtime(msg.into()))
}

/// A semantic error (the statement means nothing here).
fn semantic<T>(msg: impl Into<String>) -> R<T> {
    Err(ExecError::Semantic(msg.into()))
}

/// A limit reached.
fn limit<T>(msg: impl Into<String>) -> R<T> {
    Err(ExecError::Limit(msg.into()))
}

/// Where a paged table scan is ([`TxnView::scan_page`]); start from the default.
#[derive(Clone, Debug, Default)]
pub struct ScanCursor {
    /// The position of the last committed document read; `None` before the first page.
    pub after: Option<i64>,
    /// Every committed document was read (the transaction's own inserts come last).
    pub committed_done: bool,
    pub done: bool,
}

/// The transaction a statement runs in.
pub trait TxnView {
    fn tables(&mut self) -> R<Vec<TableMeta>>;
    fn scan(&mut self, table: &TableMeta) -> R<Vec<Doc>>;
    /// The next page of a table scan from `cursor`, in the order of [`TxnView::scan`];
    /// `None` after the last. `probes` (field, string) say the caller keeps only documents
    /// whose top-level field equals the string: the view may leave out documents that
    /// surely do not (the caller checks the rest). By default the whole table is one page.
    fn scan_page(
        &mut self,
        table: &TableMeta,
        cursor: &mut ScanCursor,
        probes: &[(String, String)],
    ) -> R<Option<Vec<Doc>>> {
        let _ = probes;
        if cursor.done {
            return Ok(None);
        }
        cursor.done = true;
        self.scan(table).map(Some)
    }
    fn by_id(&mut self, table: &TableMeta, doc_id: &str) -> R<Option<Doc>>;
    fn by_index(&mut self, table: &TableMeta, index_id: &str, key: &Value) -> R<Vec<Doc>>;
    fn insert(&mut self, table: &TableMeta, data: Value) -> R<String>;
    fn update(&mut self, table: &TableMeta, doc: &Doc, data: Value) -> R<()>;
    fn delete(&mut self, table: &TableMeta, doc: &Doc) -> R<()>;
    /// CREATE TABLE, with the `aws_tags` of the statement (empty without a WITH clause).
    fn create_table(&mut self, name: &str, tags: &[(String, String)]) -> R<String>;
    fn create_index(&mut self, table: &TableMeta, field: &str) -> R<String>;
    /// DROP TABLE (false) or UNDROP TABLE (true) of a table checked by the caller.
    fn set_table_active(&mut self, table_id: &str, active: bool) -> R<()>;
    /// DROP INDEX of an index of `table` checked by the caller.
    fn drop_index(&mut self, table: &TableMeta, index_id: &str) -> R<()>;
    /// The committed view `_ql_committed_<table>`: the latest revision of each live document.
    fn committed_view(&mut self, table: &TableMeta) -> R<Vec<Value>>;
    /// Every revision of the table's documents (deletes and redactions included).
    fn history(&mut self, table: &TableMeta) -> R<Vec<Value>>;
    /// Schedules the redaction of the revision of `doc_id` in block `seq`; returns its version.
    fn redact(&mut self, strand_id: &str, seq: u64, table_id: &str, doc_id: &str) -> R<u64>;
    fn transaction_id(&self) -> String;
    fn now_ms(&self) -> i64;
    /// Read IOs charged to the statement so far (ConsumedIOs).
    fn read_ios(&self) -> u64 {
        0
    }
    /// Charges read IOs for work done once but billed as repeated (a join's shared side).
    fn charge_read_ios(&mut self, _n: u64) {}
    /// Takes back read IOs of work billed otherwise (a hashed join side's table read).
    fn refund_read_ios(&mut self, _n: u64) {}
    /// The most documents a transaction may write.
    fn max_documents_written(&self) -> usize {
        usize::MAX
    }
    /// Whether `index_id` of `table` is committed and the transaction has written nothing
    /// to the table (so a lookup reads only committed documents).
    fn unwritten_index(&mut self, table: &TableMeta, index_id: &str) -> bool {
        let _ = (table, index_id);
        false
    }
    /// How many documents a table has (committed and this transaction's), counting no
    /// further than `cap`; `None` if the view cannot tell cheaply.
    fn count_docs(&mut self, table: &TableMeta, cap: u64) -> R<Option<u64>> {
        let _ = (table, cap);
        Ok(None)
    }
}

/// Runs one statement with its parameters and returns the result rows.
pub fn execute(stmt: &Statement, params: &[Value], txn: &mut dyn TxnView) -> R<Vec<Value>> {
    execute_with_globals(stmt, params, &[], txn)
}

/// Where a paged SELECT stopped ([`execute_page`]): its scan's position and the budget
/// it has used.
#[derive(Clone, Debug)]
pub struct Paused {
    table_id: String,
    cursor: ScanCursor,
    examined: u64,
    work: u64,
    /// The rows of its uncorrelated subqueries, made once for all its pages. Keyed by
    /// their address: the caller resumes with the same parsed statement.
    subquery_rows: HashMap<usize, (Vec<Value>, u64)>,
    /// A paged join's hashed sides, likewise.
    hashed: HashMap<usize, Arc<Buckets>>,
}

/// Runs one statement, but a SELECT that scans one table (no aggregates) stops once it has
/// at least `rows` rows, at the end of a scan page: the rest of its result is computed when
/// asked for, by calling again with the same `stmt` (not a copy) and the [`Paused`] it
/// returned (`from`), so a large result is never held whole. Any other statement runs
/// whole (`None`).
pub fn execute_page(
    stmt: &Statement,
    params: &[Value],
    txn: &mut dyn TxnView,
    rows: usize,
    from: Option<Paused>,
) -> R<(Vec<Value>, Option<Paused>)> {
    let mut ex = executor(stmt, params, &[], txn)?;
    // A scan goes on as a scan, though an index committed meanwhile would make it a lookup.
    match (pausable(stmt, &ex.plan, from.is_some()), from) {
        (Some((s, src, name)), from) => ex.select_page(s, src, name, rows, from),
        (None, None) => ex.statement(stmt).map(|rows| (rows, None)),
        (None, Some(_)) => Err(ExecError::Internal(
            "a paused statement is no longer a one-table SELECT".into(),
        )),
    }
}

fn too_many_joined_rows<T>() -> R<T> {
    limit(format!(
        "Statement exceeds the limit of {MAX_JOIN_ROWS} joined rows held at once; \
         narrow the join with WHERE or ON conditions"
    ))
}

fn changed_under_result() -> ExecError {
    ExecError::Conflict(
        "Optimistic concurrency control (OCC) conflict: another transaction changed the table \
         this result reads while its pages were fetched; retry the transaction"
            .into(),
    )
}

/// Runs a statement with global variables bound (`None` = MISSING): how the PartiQL
/// conformance suite supplies its environments. QLDB itself has none.
pub fn execute_with_globals(
    stmt: &Statement,
    params: &[Value],
    globals: &[(String, Option<Value>)],
    txn: &mut dyn TxnView,
) -> R<Vec<Value>> {
    executor(stmt, params, globals, txn)?.statement(stmt)
}

fn executor<'a>(
    stmt: &Statement,
    params: &'a [Value],
    globals: &[(String, Option<Value>)],
    txn: &'a mut dyn TxnView,
) -> R<Executor<'a>> {
    let globals = Env {
        vars: globals
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().map_or(PV::Missing, PV::V)))
            .collect(),
        scopes: Vec::new(),
    };
    let catalog = txn.tables()?;
    let names: Vec<String> = globals.vars.iter().map(|(k, _)| k.clone()).collect();
    Ok(Executor {
        params,
        txn,
        globals,
        examined: 0,
        work: 0,
        plan: Rc::new(plan::plan(stmt, &catalog, &names)),
        catalog,
        subquery_rows: HashMap::new(),
        hashed: HashMap::new(),
        lead: None,
    })
}

/// The SELECT, its (first) FROM source and the table it names, if `stmt` is a SELECT
/// without aggregates that scans one table, or whose join starts with a scan (what
/// [`execute_page`] pauses; `resuming`, whatever the plan says of the table now).
fn pausable<'s>(
    stmt: &'s Statement,
    plan: &Plan,
    resuming: bool,
) -> Option<(&'s Select, &'s FromSource, &'s str)> {
    let Statement::Select(s) = stmt else {
        return None;
    };
    // A join is paged by its first source.
    let src = *from_sources(&s.from).first()?;
    let Expr::Var { name, .. } = &src.expr else {
        return None;
    };
    let aggregates = matches!(&s.projection, Projection::Items(items)
        if items.iter().any(|i| matches!(i, ProjectItem::Expr { expr, .. } if has_aggregate(expr))));
    let scanned = resuming
        || matches!(
            plan.source(src).and_then(|p| p.access.as_ref()),
            Some(Access::Scan)
        );
    (scanned && !aggregates && !name.starts_with("_ql_committed_")).then_some((s, src, name))
}

/// The plan of a statement in the transaction, as text: how each FROM source is read.
pub fn explain(stmt: &Statement, txn: &mut dyn TxnView) -> R<Vec<String>> {
    Ok(plan::plan(stmt, &txn.tables()?, &[]).lines)
}

/// The most FROM bindings (documents, collection elements, join combinations) one
/// statement may examine (a few seconds of work at most); the bound keeps one statement from
/// running unbounded (a 5-way self-join of 30 documents is 24 million).
pub const MAX_ROWS_EXAMINED: u64 = 1_000_000;

/// The most evaluation work one statement may do beyond binding rows, in units of one LIKE
/// matching step; an IN list element costs [`IN_ELEMENT_WORK`]. Each side of the budget is a
/// second or two here. A 30,000-element IN list over a million documents, or a pattern like
/// `%aaaa…b` over long strings, would otherwise run for minutes.
pub const MAX_WORK: u64 = 500_000_000;

/// The work of one IN list element: built and compared per row.
const IN_ELEMENT_WORK: u64 = 20;

/// A join's index lookups into a table ([`HashSide`]) give way to reading the table whole
/// once when the table has at most this many documents per lookup: a lookup in a large
/// ledger costs about as much as reading and hashing eight documents.
const HASH_JOIN_FACTOR: u64 = 8;

/// Joins with fewer lookups keep them: their read set names only the keys and documents
/// they read, where a hashed table is read whole (any write to it fails the commit).
const HASH_JOIN_MIN_LOOKUPS: u64 = 1024;

/// The largest table a join holds in a hash table (decoded, about 100 MB of ~100-byte
/// documents).
const HASH_JOIN_MAX_DOCS: u64 = 250_000;

/// The right side of a join read by an index lookup per left row; after enough lookups,
/// the table read once and held by key ([`Executor::hash_rows`]).
struct HashSide<'f> {
    src: &'f FromSource,
    table: TableMeta,
    /// The indexed field.
    field: String,
    /// The key, in the left row's terms (`p.VIN`).
    key: Expr,
    lookups: u64,
    /// When to weigh the hash table again (`u64::MAX`: never).
    next_check: u64,
    buckets: Option<Arc<Buckets>>,
}

/// A hashed table's documents by the canonical key of the indexed field.
type Buckets = HashMap<Vec<u8>, Vec<Doc>>;

/// The most rows a SELECT with a join may hold in its result (a 4-way self-join of 30
/// documents, 810,000 rows, took 1.7 GB when joins held their rows); aggregates hold none.
pub const MAX_JOIN_ROWS: usize = 100_000;

struct Executor<'a> {
    params: &'a [Value],
    txn: &'a mut dyn TxnView,
    /// FROM bindings examined so far, against [`MAX_ROWS_EXAMINED`].
    examined: u64,
    /// Evaluation work so far, against [`MAX_WORK`].
    work: u64,
    globals: Env,
    /// The transaction's tables when the statement started: the statement's one catalog.
    catalog: Vec<TableMeta>,
    plan: Rc<Plan>,
    /// The rows of each uncorrelated subquery run so far, with the read IOs of its run.
    subquery_rows: HashMap<usize, (Vec<Value>, u64)>,
    /// The hash tables of hashed join sides ([`HashSide`]), by the address of their
    /// source: kept for every page of a paged result.
    hashed: HashMap<usize, Arc<Buckets>>,
    /// The scan of a paged join's first source ([`Executor::select_page`]).
    lead: Option<Lead>,
}

/// The scan of the first source of a join whose result is made a page at a time: it stops
/// after a scan page once the join has made `want` rows.
struct Lead {
    /// The source's address.
    src: usize,
    cursor: ScanCursor,
    want: usize,
    made: usize,
}

/// The rows of a one-table FROM that satisfy WHERE: the table, its alias, each document
/// with its bindings.
/// Variable bindings of one row.
#[derive(Clone, Debug, Default)]
struct Env {
    vars: Vec<(String, PV)>,
    /// Names whose fields unqualified identifiers may refer to (the FROM sources).
    scopes: Vec<String>,
}

impl Env {
    fn get(&self, name: &str) -> Option<&PV> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

fn table_name_ok(name: &str) -> bool {
    let mut c = name.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && name.len() <= 128
}

/// The tags of `WITH (aws_tags = `{'key': 'value', …}`)`: a struct of string values.
fn aws_tags(v: &Value) -> R<Vec<(String, String)>> {
    let Data::Struct(fields) = &v.data else {
        return err("aws_tags must be an Ion struct of tag keys to string values");
    };
    if fields.is_empty() {
        return err("aws_tags must hold at least one tag");
    }
    fields
        .iter()
        .map(|(k, v)| match (k, &v.data) {
            // `{'k': 'v'}` in backticks is Ion: the quoted value is a symbol.
            (Some(k), Data::String(s) | Data::Symbol(Some(s))) => Ok((k.clone(), s.clone())),
            _ => err(format!(
                "The value of tag '{}' in aws_tags must be a string or a symbol",
                k.as_deref().unwrap_or("$0")
            )),
        })
        .collect()
}

fn row(field: &str, value: &str) -> Value {
    Value::structure([(field, Value::string(value))])
}

impl Executor<'_> {
    fn table(&mut self, name: &str) -> R<TableMeta> {
        self.table_at(name, None)
    }

    /// The table a FROM source names; an unknown one is reported where the statement has it.
    fn source_table(&mut self, src: &FromSource, name: &str) -> R<TableMeta> {
        self.table_at(name, Some(src.pos))
    }

    fn table_at(&mut self, name: &str, pos: Option<(usize, usize)>) -> R<TableMeta> {
        let found = self.catalog.iter().find(|t| t.active && t.name == name);
        match (found, pos) {
            (Some(t), _) => Ok(t.clone()),
            (None, None) => semantic(format!("No such table: {name}")),
            (None, Some((line, column))) => semantic(format!(
                "No such table: {name} at line {line}, column {column}"
            )),
        }
    }

    fn statement(&mut self, stmt: &Statement) -> R<Vec<Value>> {
        match stmt {
            Statement::CreateTable { name, tags } => {
                let tags = match tags {
                    Some(v) => aws_tags(v)?,
                    None => Vec::new(),
                };
                if !table_name_ok(name) || name.starts_with("_ql_") {
                    return err(format!(
                        "Invalid table name '{name}': use 1-128 letters, digits and underscores, starting with a letter or underscore, not starting with _ql_"
                    ));
                }
                let id = self.txn.create_table(name, &tags)?;
                Ok(vec![row("tableId", &id)])
            }
            Statement::CreateIndex { table, field } => {
                let t = self.table(table)?;
                let id = self.txn.create_index(&t, field)?;
                let _ = id;
                Ok(vec![row("tableId", &t.table_id)])
            }
            Statement::Insert {
                table,
                value,
                is_value_form,
            } => {
                let t = self.table(table)?;
                let v = self.eval(value, &Env::default())?;
                let docs = match v {
                    PV::V(Value {
                        data: Data::Struct(_),
                        ..
                    }) => vec![match v {
                        PV::V(v) => v,
                        PV::Missing => unreachable!(),
                    }],
                    PV::V(Value {
                        data: Data::List(items),
                        ..
                    }) if !is_value_form => items,
                    _ => return err("INSERT needs a struct document, or a list or bag of them"),
                };
                let mut out = Vec::new();
                for doc in docs {
                    if !matches!(doc.data, Data::Struct(_)) {
                        return err("Every document inserted must be a struct");
                    }
                    let id = self.txn.insert(&t, strip_annotations(doc))?;
                    out.push(row("documentId", &id));
                }
                Ok(out)
            }
            Statement::Dml(dml) => self.dml(dml),
            Statement::Select(select) => {
                let globals = self.globals.clone();
                self.select(select, &globals)
            }
            Statement::Exec { procedure, args } => self.exec(procedure, args),
            Statement::DropTable { name } => {
                let t = self.table(name)?;
                self.txn.set_table_active(&t.table_id, false)?;
                Ok(vec![row("tableId", &t.table_id)])
            }
            Statement::UndropTable { table_id } => {
                let tables = self.txn.tables()?;
                let Some(t) = tables.iter().find(|t| &t.table_id == table_id) else {
                    return semantic(format!("No such table id: {table_id}"));
                };
                if t.active {
                    return err(format!("Table {table_id} ({}) is already active", t.name));
                }
                if tables.iter().any(|o| o.active && o.name == t.name) {
                    return err(format!(
                        "Cannot undrop table {table_id}: an active table named {} exists",
                        t.name
                    ));
                }
                self.txn.set_table_active(table_id, true)?;
                Ok(vec![row("tableId", table_id)])
            }
            Statement::DropIndex { index_id, table } => {
                let t = self.table(table)?;
                if !t.indexes.iter().any(|(id, _)| id == index_id) {
                    return semantic(format!("Table {table} has no index {index_id}"));
                }
                self.txn.drop_index(&t, index_id)?;
                Ok(vec![row("tableId", &t.table_id)])
            }
        }
    }

    fn exec(&mut self, procedure: &str, args: &[Expr]) -> R<Vec<Value>> {
        if !procedure.eq_ignore_ascii_case("redact_revision") {
            return semantic(format!("Unknown stored procedure {procedure}"));
        }
        let [address, table_id, doc_id] = args else {
            return semantic("REDACT_REVISION takes a block address, a table id and a document id");
        };
        let env = Env::default();
        let address = match self.eval(address, &env)? {
            PV::V(v) => v,
            PV::Missing => return err("The provided block address is not valid."),
        };
        let (
            Some(Value {
                data: Data::String(strand),
                ..
            }),
            Some(Value {
                data: Data::Int(seq),
                ..
            }),
        ) = (address.field("strandId"), address.field("sequenceNo"))
        else {
            return err("The provided block address is not valid.");
        };
        let Ok(seq) = u64::try_from(seq.clone()) else {
            return err("The provided block address is not valid.");
        };
        let text = |v: PV| match v {
            PV::V(Value {
                data: Data::String(s),
                ..
            }) => Some(s),
            _ => None,
        };
        let (Some(table_id), Some(doc_id)) = (
            text(self.eval(table_id, &env)?),
            text(self.eval(doc_id, &env)?),
        ) else {
            return err("REDACT_REVISION needs the table id and the document id as strings");
        };
        let version = self.txn.redact(strand, seq, &table_id, &doc_id)?;
        Ok(vec![Value::structure([
            (
                "blockAddress",
                Value::structure([
                    ("strandId", Value::string(strand.clone())),
                    ("sequenceNo", Value::int(seq)),
                ]),
            ),
            ("tableId", Value::string(table_id)),
            ("documentId", Value::string(doc_id)),
            ("version", Value::int(version)),
        ])])
    }

    /// Rows of `_ql_committed_<T>` or `history(T [, start [, end]])`, if `e` names one.
    fn system_view(&mut self, src: &FromSource, env: &Env) -> R<Option<Vec<Value>>> {
        match &src.expr {
            Expr::Var { name, .. } if name.starts_with("_ql_committed_") => {
                let t = self.source_table(src, &name["_ql_committed_".len()..])?;
                Ok(Some(self.txn.committed_view(&t)?))
            }
            Expr::Call {
                func: Func::History,
                args,
                ..
            } if !args.is_empty() && args.len() <= 3 => {
                let t = match &args[0] {
                    Expr::Var { name, .. } => self.source_table(src, name)?,
                    Expr::Lit(Value {
                        data: Data::String(id),
                        ..
                    }) => match self.txn.tables()?.into_iter().find(|t| &t.table_id == id) {
                        Some(t) => t,
                        None => return semantic(format!("No table with id {id}")),
                    },
                    _ => return semantic("history() takes a table name or a table id string"),
                };
                let mut bounds = Vec::new();
                for a in &args[1..] {
                    match self.eval(a, env)? {
                        PV::V(
                            v @ Value {
                                data: Data::Timestamp(_),
                                ..
                            },
                        ) => bounds.push(v),
                        _ => return err("history() time bounds must be timestamps"),
                    }
                }
                // start ≤ end ≤ now; only a start means up to now.
                let now: Value =
                    Data::Timestamp(crate::ion::Timestamp::from_millis_utc(self.txn.now_ms()))
                        .into();
                let later =
                    |a: &Value, b: &Value| ops::compare(a, b) == Some(std::cmp::Ordering::Greater);
                if let [start, rest @ ..] = bounds.as_slice() {
                    let end = rest.first().unwrap_or(&now);
                    if later(start, end) {
                        return err("history(): the start time is after the end time");
                    }
                    if later(end, &now) {
                        return err("history(): the end time is in the future");
                    }
                }
                let rows = self.txn.history(&t)?;
                Ok(Some(within(rows, bounds.first(), bounds.get(1))))
            }
            Expr::Path { root, .. }
                if matches!(&**root, Expr::Var { name, .. } if name == "information_schema")
                    && !is_user_tables(&src.expr) =>
            {
                semantic("information_schema has only the view user_tables")
            }
            _ => Ok(None),
        }
    }

    // ---------------------------------------------------------------- FROM and WHERE

    /// The documents of a table source, read as the plan says: by id or through an index
    /// (the keys evaluated in `env`, where the rows of earlier sources are bound), else a scan.
    fn table_docs(&mut self, src: &FromSource, t: &TableMeta, env: &Env) -> R<Vec<Doc>> {
        let plan = Rc::clone(&self.plan);
        let access = plan.source(src).and_then(|p| p.access.as_ref());
        match access {
            Some(Access::ById(keys)) => match self.key_values(keys, env)? {
                Some(ids) => {
                    let mut docs: Vec<Doc> = Vec::new();
                    for id in ids {
                        if let Data::String(id) = &id.data {
                            if let Some(d) = self.txn.by_id(t, id)? {
                                if !docs.iter().any(|x| x.id == d.id) {
                                    docs.push(d);
                                }
                            }
                        }
                    }
                    Ok(docs)
                }
                None => self.txn.scan(t),
            },
            Some(Access::Index { index_id, keys, .. }) => match self.key_values(keys, env)? {
                Some(keys) => {
                    let mut docs: Vec<Doc> = Vec::new();
                    for k in keys {
                        for d in self.txn.by_index(t, index_id, &k)? {
                            if !docs.iter().any(|x| x.id == d.id) {
                                docs.push(d);
                            }
                        }
                    }
                    Ok(docs)
                }
                None => self.txn.scan(t),
            },
            Some(Access::Scan) | None => self.txn.scan(t),
        }
    }

    /// The values of an access path's keys in `env` (null and MISSING match nothing);
    /// `None` when an IN list is not a list (the table is scanned instead).
    fn key_values(&mut self, keys: &Keys, env: &Env) -> R<Option<Vec<Value>>> {
        let not_null = |v: &Value| !matches!(v.data, Data::Null(_));
        Ok(match keys {
            Keys::Eq(e) => match self.eval(e, env)? {
                PV::V(v) if not_null(&v) => Some(vec![v]),
                _ => Some(Vec::new()),
            },
            Keys::In(e) => match self.eval(e, env)? {
                PV::V(Value {
                    data: Data::List(items) | Data::SExp(items),
                    ..
                }) => Some(items.into_iter().filter(not_null).collect()),
                _ => None,
            },
        })
    }

    /// The bindings of a FROM clause with joins (inner only), before WHERE.
    fn bind_from(&mut self, from: &FromClause, env: &Env) -> R<Vec<Env>> {
        let mut rows = Vec::new();
        self.each_row(from, None, env, &mut |_, r| {
            rows.push(r);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Hands each binding of a FROM clause for which `keep` (the WHERE clause) holds to
    /// `sink` as it is made: a join holds its left side's current row and the rows of a
    /// right side read once, never its product.
    fn each_row(
        &mut self,
        from: &FromClause,
        keep: Option<&Expr>,
        env: &Env,
        sink: &mut dyn FnMut(&mut Self, Env) -> R<()>,
    ) -> R<()> {
        match from {
            FromClause::Source(src) => {
                let mut each = |ex: &mut Self, r: Env| {
                    ex.examine(1)?;
                    if ex.keeps(keep, &r)? {
                        sink(ex, r)?;
                    }
                    Ok(())
                };
                match self.table_source(src, env)? {
                    Some(t) => self.each_table_row(src, &t, env, &[], &mut each),
                    None => {
                        for r in self.source_envs(src, env)? {
                            each(self, r)?;
                        }
                        Ok(())
                    }
                }
            }
            FromClause::Join {
                left, right, on, ..
            } => {
                // The plan says whether the right side is read per left row (keyed by it,
                // or a collection in it) or once for all of them.
                let once = match &**right {
                    FromClause::Source(src) => {
                        self.plan.source(src).is_some_and(|p| p.join == Join::Once)
                    }
                    FromClause::Join { .. } => true,
                };
                let mut shared: Option<(Vec<Env>, u64)> = None;
                let mut hashed = if once {
                    None
                } else {
                    self.hash_side(left, right, env)?
                };
                self.each_row(left, None, env, &mut |ex, l| {
                    let hashed_rows = match &mut hashed {
                        Some(h) => ex.hash_rows(h, &l)?,
                        None => None,
                    };
                    let rights = if let Some(rows) = hashed_rows {
                        rows
                    } else if once {
                        match &shared {
                            Some((rows, ios)) => {
                                // QLDB's nested loop read the inner side once per outer
                                // row: the Node.js and .NET drivers' tests assert those
                                // read IOs.
                                ex.txn.charge_read_ios(*ios);
                                ex.examine(rows.len())?;
                                rows.iter().map(|r| merge(&l, r)).collect()
                            }
                            None => {
                                let before = ex.txn.read_ios();
                                // Independent of the left rows: only the globals are bound.
                                let globals = ex.globals.clone();
                                let rows = ex.bind_from(right, &globals)?;
                                let ios = ex.txn.read_ios().saturating_sub(before);
                                ex.examine(rows.len())?;
                                let merged = rows.iter().map(|r| merge(&l, r)).collect();
                                shared = Some((rows, ios));
                                merged
                            }
                        }
                    } else {
                        ex.bind_from(right, &l)?
                    };
                    for r in rights {
                        if ex.keeps(on.as_ref(), &r)? && ex.keeps(keep, &r)? {
                            sink(ex, r)?;
                        }
                    }
                    Ok(())
                })
            }
        }
    }

    /// The right side of a join that is an index lookup keyed by each left row (`FROM P AS
    /// p, Q AS q WHERE q.VIN = p.VIN`, Q indexed on VIN), as a [`HashSide`]; `None` for
    /// any other right side.
    fn hash_side<'f>(
        &mut self,
        left: &FromClause,
        right: &'f FromClause,
        env: &Env,
    ) -> R<Option<HashSide<'f>>> {
        let FromClause::Source(src) = right else {
            return Ok(None);
        };
        let Some(plan::SourcePlan {
            access:
                Some(Access::Index {
                    index_id,
                    field,
                    keys: Keys::Eq(key),
                }),
            join: Join::PerRow,
        }) = self.plan.source(src).cloned()
        else {
            return Ok(None);
        };
        let Some(table) = self.table_source(src, env)? else {
            return Ok(None);
        };
        // The lookups' rows, ConsumedIOs and budget are the hashed table's only when the
        // transaction has not written the table (a lookup also returns its pending writes)
        // and the index is committed (a lookup in a new index scans the table).
        if !self.txn.unwritten_index(&table, &index_id) {
            return Ok(None);
        }
        let mut side = HashSide {
            src,
            table,
            field,
            key,
            lookups: 0,
            next_check: HASH_JOIN_MIN_LOOKUPS,
            buckets: None,
        };
        if self
            .hashed
            .contains_key(&(src as *const FromSource as usize))
        {
            // Hashed for an earlier page of this result.
            self.build_hash(&mut side)?;
            return Ok(Some(side));
        }
        // A scanned table on the left: each of its documents is one lookup.
        if let FromClause::Source(l) = left {
            let scanned = matches!(
                self.plan.source(l).and_then(|p| p.access.as_ref()),
                Some(Access::Scan)
            );
            if let (true, Some(lt)) = (scanned, self.table_source(l, env)?) {
                let cap = HASH_JOIN_MAX_DOCS / HASH_JOIN_FACTOR + 1;
                if let Some(n) = self.txn.count_docs(&lt, cap)? {
                    if n >= HASH_JOIN_MIN_LOOKUPS && self.hash_join_pays(&side.table, n)? {
                        self.build_hash(&mut side)?;
                    }
                }
            }
        }
        Ok(Some(side))
    }

    /// Whether reading `table` whole once costs less than `lookups` index lookups in it.
    fn hash_join_pays(&mut self, table: &TableMeta, lookups: u64) -> R<bool> {
        let cap = lookups
            .saturating_mul(HASH_JOIN_FACTOR)
            .min(HASH_JOIN_MAX_DOCS);
        Ok(self
            .txn
            .count_docs(table, cap + 1)?
            .is_some_and(|n| n <= cap))
    }

    /// Reads the table of a [`HashSide`] into its hash table, by the canonical key of its
    /// indexed field. The table read enters the read set (it covers every key); its read
    /// IOs are not charged: each lookup is, as an index lookup would be.
    fn build_hash(&mut self, side: &mut HashSide<'_>) -> R<()> {
        let addr = side.src as *const FromSource as usize;
        if let Some(b) = self.hashed.get(&addr) {
            // Built for an earlier page of this result.
            side.buckets = Some(Arc::clone(b));
            return Ok(());
        }
        let mut buckets = Buckets::new();
        let mut cursor = ScanCursor::default();
        let before = self.txn.read_ios();
        while let Some(page) = self.txn.scan_page(&side.table, &mut cursor, &[])? {
            for d in page {
                if let Some(v) = d.data.field(&side.field) {
                    buckets.entry(index_key(v)).or_default().push(d);
                }
            }
        }
        let ios = self.txn.read_ios().saturating_sub(before);
        self.txn.refund_read_ios(ios);
        let buckets = Arc::new(buckets);
        self.hashed.insert(addr, Arc::clone(&buckets));
        side.buckets = Some(buckets);
        Ok(())
    }

    /// The right rows of a [`HashSide`] for left row `l`, once its table is hashed (which
    /// it is once enough lookups show that reading it whole costs less); `None` while it
    /// is still read by index lookups.
    fn hash_rows(&mut self, side: &mut HashSide<'_>, l: &Env) -> R<Option<Vec<Env>>> {
        if side.buckets.is_none() {
            side.lookups += 1;
            if side.lookups == side.next_check {
                if self.hash_join_pays(&side.table, side.lookups)? {
                    self.build_hash(side)?;
                } else if side.lookups.saturating_mul(HASH_JOIN_FACTOR) >= HASH_JOIN_MAX_DOCS {
                    side.next_check = u64::MAX;
                } else {
                    side.next_check *= 2;
                }
            }
        }
        let Some(buckets) = &side.buckets else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        // As [`Executor::key_values`]: NULL and MISSING match nothing.
        let k = match self.eval(&side.key, l)? {
            PV::V(v) if !matches!(v.data, Data::Null(_)) => v,
            _ => return Ok(Some(rows)),
        };
        let docs = buckets.get(&index_key(&k)).map_or(&[][..], Vec::as_slice);
        // An index lookup's read IOs: the documents under the key.
        self.txn.charge_read_ios(docs.len() as u64);
        let alias = source_alias(side.src);
        for d in docs {
            self.examine(1)?;
            rows.push(bind_doc(l, &alias, side.src, d.clone()));
        }
        Ok(Some(rows))
    }

    /// Counts `n` more units of evaluation work (IN list elements compared, LIKE matching
    /// steps) against the statement's budget.
    fn work(&mut self, n: u64) -> R<()> {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            return limit(format!(
                "Statement exceeds the limit of {MAX_WORK} units of work (IN list elements \
                 compared, LIKE matching steps); narrow it with WHERE conditions, shorter \
                 lists or simpler patterns"
            ));
        }
        Ok(())
    }

    /// Counts `n` more FROM bindings against the statement's budget.
    fn examine(&mut self, n: usize) -> R<()> {
        self.examined = self.examined.saturating_add(n as u64);
        if self.examined > MAX_ROWS_EXAMINED {
            return limit(format!(
                "Statement exceeds the limit of {MAX_ROWS_EXAMINED} rows examined; \
                 narrow it with WHERE or ON conditions"
            ));
        }
        Ok(())
    }

    /// The table a FROM source reads, unless it is a view, a collection or a variable in
    /// scope (an outer query's alias).
    fn table_source(&mut self, src: &FromSource, env: &Env) -> R<Option<TableMeta>> {
        match &src.expr {
            Expr::Var { name, .. }
                if env.get(name).is_none() && !name.starts_with("_ql_committed_") =>
            {
                self.source_table(src, name).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Binds one FROM source: a table, a system view, or a collection — possibly nested in
    /// an earlier variable (`r.Owners.SecondaryOwners AS o AT i`).
    fn source_envs(&mut self, src: &FromSource, env: &Env) -> R<Vec<Env>> {
        let alias = source_alias(src);
        if is_user_tables(&src.expr) {
            let items: Vec<Value> = self.txn.tables()?.iter().map(user_tables_row).collect();
            return Ok(items.into_iter().map(|v| bind(env, &alias, v)).collect());
        }
        if let Some(t) = self.table_source(src, env)? {
            let mut rows = Vec::new();
            self.each_table_row(src, &t, env, &[], &mut |_, e| {
                rows.push(e);
                Ok(())
            })?;
            return Ok(rows);
        }
        let items = match self.system_view(src, env)? {
            Some(rows) => rows,
            None => match self.eval(&src.expr, env)? {
                PV::V(Value {
                    data: Data::List(items) | Data::SExp(items),
                    ..
                }) => items,
                PV::V(v) if matches!(v.data, Data::Null(_)) => Vec::new(),
                PV::V(v) => vec![v],
                PV::Missing => Vec::new(),
            },
        };
        Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let mut e = bind(env, &alias, v);
                if let Some(at) = &src.at {
                    e.vars.push((at.clone(), PV::V(Value::int(i as i64))));
                }
                e
            })
            .collect())
    }

    fn keeps(&mut self, where_: Option<&Expr>, e: &Env) -> R<bool> {
        match where_ {
            Some(w) => Ok(self.eval(w, e)?.truth() == Some(true)),
            None => Ok(true),
        }
    }

    /// Binds each item to `alias` and keeps the rows where WHERE is true.
    fn filter_rows(
        &mut self,
        items: Vec<Value>,
        alias: &str,
        where_: Option<&Expr>,
        env: &Env,
    ) -> R<Vec<Env>> {
        let mut out = Vec::new();
        for item in items {
            let e = bind(env, alias, item);
            if self.keeps(where_, &e)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- SELECT

    fn select(&mut self, s: &Select, env: &Env) -> R<Vec<Value>> {
        let aggregates = match &s.projection {
            Projection::Items(items)
                if items.iter().any(
                    |i| matches!(i, ProjectItem::Expr { expr, .. } if has_aggregate(expr)),
                ) =>
            {
                Some(items)
            }
            _ => None,
        };
        let mut out = Output {
            rows: Vec::new(),
            aggregates: match aggregates {
                Some(items) => Some(self.aggregates(items)?),
                None => None,
            },
        };
        let sources = from_sources(&s.from);
        match &s.from {
            FromClause::Source(src) if is_user_tables(&src.expr) => {
                let alias = source_alias(src);
                let items = self.txn.tables()?.iter().map(user_tables_row).collect();
                for e in self.filter_rows(items, &alias, s.where_.as_ref(), env)? {
                    self.emit(s, &sources, &e, env, &mut out)?;
                }
            }
            FromClause::Source(src) => match &src.expr {
                // A table, unless the name is a variable in scope (an outer query's alias).
                Expr::Var { name, .. }
                    if !name.starts_with("_ql_committed_") && env.get(name).is_none() =>
                {
                    self.stream_table(s, src, name, &sources, env, &mut out)?;
                }
                // A system view, or a literal collection such as << 0 >>.
                _ => {
                    for e in self.source_envs(src, env)? {
                        if self.keeps(s.where_.as_ref(), &e)? {
                            self.emit(s, &sources, &e, env, &mut out)?;
                        }
                    }
                }
            },
            FromClause::Join { .. } => {
                self.each_row(&s.from, s.where_.as_ref(), env, &mut |ex, e| {
                    if out.rows.len() == MAX_JOIN_ROWS {
                        return too_many_joined_rows();
                    }
                    ex.emit(s, &sources, &e, env, &mut out)?;
                    ex.made(sources[0], &out);
                    Ok(())
                })?;
            }
        }
        match (aggregates, out.aggregates) {
            (Some(items), Some(accs)) => Ok(vec![self.aggregate(items, accs, env)?]),
            _ => Ok(out.rows),
        }
    }

    /// The next rows of a SELECT that scans its (first) table ([`pausable`]), from where
    /// `from` left off: scan pages until at least `want` rows are made, then the place to go
    /// on from (`None` once the scan is over).
    fn select_page(
        &mut self,
        s: &Select,
        src: &FromSource,
        name: &str,
        want: usize,
        from: Option<Paused>,
    ) -> R<(Vec<Value>, Option<Paused>)> {
        let mut cursor = ScanCursor::default();
        let t = match from {
            None => self.source_table(src, name)?,
            Some(p) => {
                // The table the first page read, or a conflict (dropped, or replaced by
                // another of its name).
                let t = self.source_table(src, name).ok();
                let Some(t) = t.filter(|t| t.table_id == p.table_id) else {
                    return Err(changed_under_result());
                };
                cursor = p.cursor;
                self.examined = p.examined;
                self.work = p.work;
                self.subquery_rows = p.subquery_rows;
                self.hashed = p.hashed;
                t
            }
        };
        // The SELECT runs as it does whole; its (first) source's scan (`each_doc`) stops
        // after a scan page once `want` rows are made.
        self.lead = Some(Lead {
            src: src as *const FromSource as usize,
            cursor,
            want,
            made: 0,
        });
        let globals = self.globals.clone();
        let rows = self.select(s, &globals)?;
        let cursor = self.lead.take().map(|l| l.cursor).unwrap_or_default();
        let paused = (!cursor.done).then(|| self.paused(t.table_id, cursor));
        Ok((rows, paused))
    }

    /// Counts the rows made so far by the SELECT whose first source is `src`, if it is the
    /// one being paged ([`Lead`]).
    fn made(&mut self, src: &FromSource, out: &Output) {
        let addr = src as *const FromSource as usize;
        if let Some(l) = self.lead.as_mut().filter(|l| l.src == addr) {
            l.made = out.rows.len();
        }
    }

    /// Where a paged SELECT goes on from.
    fn paused(&mut self, table_id: String, cursor: ScanCursor) -> Paused {
        Paused {
            table_id,
            cursor,
            examined: self.examined,
            work: self.work,
            subquery_rows: std::mem::take(&mut self.subquery_rows),
            hashed: std::mem::take(&mut self.hashed),
        }
    }

    /// The rows of a one-table SELECT, each filtered and projected (or aggregated) as it is
    /// read: a scan holds one page of documents at a time, never the table.
    fn stream_table(
        &mut self,
        s: &Select,
        src: &FromSource,
        name: &str,
        sources: &[&FromSource],
        env: &Env,
        out: &mut Output,
    ) -> R<()> {
        let t = self.source_table(src, name)?;
        let probes = match &s.where_ {
            Some(w) => self.probes(w, &source_alias(src), env)?,
            None => Vec::new(),
        };
        self.each_table_row(src, &t, env, &probes, &mut |ex, e| {
            if ex.keeps(s.where_.as_ref(), &e)? {
                ex.emit(s, sources, &e, env, out)?;
                ex.made(src, out);
            }
            Ok(())
        })
    }

    /// The conjuncts of WHERE that a scan can test on a stored document before decoding
    /// it: `alias.field = 'string'` (a literal or a parameter), as (field, string).
    fn probes(&mut self, where_: &Expr, alias: &str, env: &Env) -> R<Vec<(String, String)>> {
        let mut out = Vec::new();
        for c in plan::conjuncts(where_) {
            let Expr::Binary {
                op: BinaryOp::Eq,
                left,
                right,
            } = c
            else {
                continue;
            };
            let field_of = |e: &Expr| match e {
                Expr::Path { root, steps } => match (&**root, steps.as_slice()) {
                    (Expr::Var { name, .. }, [PathStep::Field { name: field, .. }])
                        if name == alias =>
                    {
                        Some(field.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            let (field, other) = match (field_of(left), field_of(right)) {
                (Some(f), _) => (f, right),
                (_, Some(f)) => (f, left),
                _ => continue,
            };
            if !matches!(**other, Expr::Lit(_) | Expr::Param(_)) {
                continue;
            }
            if let PV::V(Value {
                annotations,
                data: Data::String(text),
            }) = self.eval(other, env)?
            {
                if annotations.is_empty() {
                    out.push((field, text));
                }
            }
        }
        Ok(out)
    }

    /// Binds each document of a table source (with its BY variable) as it is read: a scan
    /// a page at a time (leaving out what `probes` rule out), a lookup all at once.
    fn each_table_row(
        &mut self,
        src: &FromSource,
        t: &TableMeta,
        env: &Env,
        probes: &[(String, String)],
        f: &mut dyn FnMut(&mut Self, Env) -> R<()>,
    ) -> R<()> {
        let alias = source_alias(src);
        self.each_doc(src, t, env, probes, &mut |ex, d| {
            f(ex, bind_doc(env, &alias, src, d))?;
            Ok(true)
        })
    }

    /// Hands each document of a table source to `f` as it is read (a scan a page at a
    /// time, a lookup all at once) until `f` says to stop (`false`).
    fn each_doc(
        &mut self,
        src: &FromSource,
        t: &TableMeta,
        env: &Env,
        probes: &[(String, String)],
        f: &mut dyn FnMut(&mut Self, Doc) -> R<bool>,
    ) -> R<()> {
        // The first source of a paged join starts where the last page stopped (a scan,
        // whatever the plan says of the table now).
        let addr = src as *const FromSource as usize;
        let lead = self.lead.as_ref().is_some_and(|l| l.src == addr);
        let scan = lead
            || matches!(
                self.plan.source(src).and_then(|p| p.access.as_ref()),
                Some(Access::Scan) | None
            );
        if !scan {
            for d in self.table_docs(src, t, env)? {
                if !f(self, d)? {
                    break;
                }
            }
            return Ok(());
        }
        let mut cursor = match &self.lead {
            Some(l) if lead => l.cursor.clone(),
            _ => ScanCursor::default(),
        };
        while let Some(page) = self.txn.scan_page(t, &mut cursor, probes)? {
            for d in page {
                if !f(self, d)? {
                    return Ok(());
                }
            }
            if let Some(l) = self.lead.as_mut().filter(|_| lead) {
                l.cursor = cursor.clone();
                // As a one-table scan: the transaction's own inserts are read with the
                // last committed page.
                if l.made >= l.want && !cursor.committed_done {
                    return Ok(());
                }
            }
        }
        if let Some(l) = self.lead.as_mut().filter(|_| lead) {
            l.cursor = cursor;
        }
        Ok(())
    }

    /// Adds a row that passed WHERE to the output: projected, or into the aggregates.
    fn emit(
        &mut self,
        s: &Select,
        sources: &[&FromSource],
        e: &Env,
        env: &Env,
        out: &mut Output,
    ) -> R<()> {
        if let Some(accs) = &mut out.aggregates {
            for acc in accs.iter_mut() {
                let v = match &acc.arg {
                    None => PV::V(Value::int(1)),
                    Some(a) => self.eval(a, e)?,
                };
                acc.add(v)?;
            }
            return Ok(());
        }
        let out = &mut out.rows;
        match &s.projection {
            Projection::Star => {
                // Each FROM variable's fields; a non-struct value is field `_n`
                // (its 1-based position among the variables). Then its AT and BY
                // variables as fields of their own name, as Kotlin's rewrite of `*`
                // does (`SELECT * FROM t BY id` has `id`).
                // Only this query's own FROM variables: an outer query's (in a
                // correlated subquery) are not part of its rows.
                let mut fields = Vec::new();
                for (i, scope) in e.scopes.iter().skip(env.scopes.len()).enumerate() {
                    match e.get(scope) {
                        Some(PV::V(Value {
                            data: Data::Struct(f),
                            ..
                        })) => fields.extend(f.iter().cloned()),
                        Some(PV::V(v)) => fields.push((Some(format!("_{}", i + 1)), v.clone())),
                        _ => {}
                    }
                    let extra = sources.get(i).map(|s| [s.at.as_ref(), s.by.as_ref()]);
                    for name in extra.into_iter().flatten().flatten() {
                        if let Some(PV::V(v)) = e.get(name) {
                            fields.push((Some(name.clone()), v.clone()));
                        }
                    }
                }
                out.push(Data::Struct(fields).into());
            }
            Projection::Value(x) => {
                if let PV::V(v) = self.eval(x, e)? {
                    out.push(v);
                }
            }
            Projection::Items(items) => {
                let mut fields = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        ProjectItem::Expr { expr, alias } => {
                            let name = alias.clone().unwrap_or_else(|| implicit_name(expr, i));
                            if let PV::V(v) = self.eval(expr, e)? {
                                fields.push((Some(name), v));
                            }
                        }
                        ProjectItem::All(x) => {
                            if let PV::V(Value {
                                data: Data::Struct(f),
                                ..
                            }) = self.eval(x, e)?
                            {
                                fields.extend(f);
                            }
                        }
                    }
                }
                out.push(Data::Struct(fields).into());
            }
        }
        Ok(())
    }

    /// A select list with aggregates (no GROUP BY): one row. Each item is an expression over
    /// aggregates (`AVG(v * 2) + SUM(v)`), evaluated in the enclosing scope (`env`).
    fn aggregate(&mut self, items: &[ProjectItem], accs: Vec<Aggregate>, env: &Env) -> R<Value> {
        let mut values = accs.into_iter().map(Aggregate::finish);
        let mut fields = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ProjectItem::Expr { expr, alias } = item else {
                unreachable!("checked by aggregates()");
            };
            let folded = fold_aggregates(expr, &mut |_, _, _| {
                values.next().unwrap_or_else(|| Ok(Value::null()))
            })?;
            if uses_var(&folded, &|name| env.get(name).is_none()) {
                return semantic(
                    "Without GROUP BY, a select list with an aggregate may hold only aggregates",
                );
            }
            let name = alias.clone().unwrap_or_else(|| format!("_{}", i + 1));
            if let PV::V(v) = self.eval(&folded, env)? {
                fields.push((Some(name), v));
            }
        }
        Ok(Data::Struct(fields).into())
    }

    /// The aggregate calls of a select list, in order, each ready for rows.
    fn aggregates(&mut self, items: &[ProjectItem]) -> R<Vec<Aggregate>> {
        let mut accs = Vec::new();
        for item in items {
            let ProjectItem::Expr { expr, .. } = item else {
                return semantic(
                    "Without GROUP BY, a select list with an aggregate may hold only aggregates",
                );
            };
            if !has_aggregate(expr) {
                return semantic(
                    "Without GROUP BY, a select list with an aggregate may hold only aggregates",
                );
            }
            fold_aggregates(expr, &mut |func, args, star| {
                if !star && args.len() != 1 {
                    return err(format!(
                        "{}() takes exactly one argument",
                        func.name().to_uppercase()
                    ));
                }
                accs.push(Aggregate {
                    func,
                    arg: (!star).then(|| args[0].clone()),
                    count: 0,
                    acc: None,
                });
                Ok(Value::null())
            })?;
        }
        Ok(accs)
    }

    // ---------------------------------------------------------------- DML

    fn dml(&mut self, dml: &Dml) -> R<Vec<Value>> {
        let nested = &dml.from[1..];
        // With nested FROM items the WHERE clause may name their aliases: each binding is
        // checked in `dml_write` (the documents are found by the conjuncts that name none).
        let filter = if nested.is_empty() {
            dml.where_.as_ref()
        } else {
            None
        };
        let src = &dml.from[0];
        let Expr::Var {
            name, at: false, ..
        } = &src.expr
        else {
            return semantic(
                "Only a table name is supported as this FROM source by qldb-local yet",
            );
        };
        let t = self.source_table(src, name)?;
        let alias = source_alias(src);
        let env = Env::default();
        let probes = match filter {
            Some(w) => self.probes(w, &alias, &env)?,
            None => Vec::new(),
        };
        // Each document's write is worked out as the table is read, and made once the read
        // is over (a statement never reads its own writes). Twice as many documents as a
        // transaction may write end the read: the writes then fail on the limit (deleting
        // the transaction's own inserts, at most the limit of them, frees room; every other
        // write keeps its place).
        let most = self.txn.max_documents_written().saturating_mul(2);
        let mut planned: Vec<(Doc, Option<Value>)> = Vec::new();
        self.each_doc(src, &t, &env, &probes, &mut |ex, doc| {
            let e = bind_doc(&env, &alias, src, doc.clone());
            if ex.keeps(filter, &e)? {
                if let Some(write) = ex.dml_write(dml, &alias, &doc, e)? {
                    planned.push((doc, write));
                }
            }
            Ok(planned.len() <= most)
        })?;
        let mut out = Vec::new();
        for (doc, write) in planned {
            match write {
                None => self.txn.delete(&t, &doc)?,
                Some(data) => self.txn.update(&t, &doc, data)?,
            }
            // One result per DML operation of the statement (each SET assignment is one;
            // Kotlin PartiQL's DML op list), as QLDB returned: AWS's Node.js DMV sample
            // asserts two equal `{documentId}` values for a two-assignment UPDATE.
            let ops = match &dml.action {
                DmlAction::Set(assignments) => assignments.len().max(1),
                _ => 1,
            };
            for _ in 0..ops {
                out.push(row("documentId", &doc.id));
            }
        }
        Ok(out)
    }

    /// What a DML statement writes for one document of its table, bound in `env`: `None`
    /// if no binding of its nested FROM items passes WHERE, `Some(None)` to delete it,
    /// `Some(Some(data))` for its new data.
    fn dml_write(
        &mut self,
        dml: &Dml,
        alias: &str,
        doc: &Doc,
        env: Env,
    ) -> R<Option<Option<Value>>> {
        let nested = &dml.from[1..];
        let mut bindings = vec![(env, vec![(alias.to_string(), Vec::new())])];
        for item in nested {
            bindings = self.unnest_for_dml(item, bindings)?;
        }
        let mut data = doc.data.clone();
        let mut removals: Vec<Vec<Key>> = Vec::new();
        let mut matched = false;
        for (env, paths) in &bindings {
            if !nested.is_empty() && !self.keeps(dml.where_.as_ref(), env)? {
                continue;
            }
            matched = true;
            match &dml.action {
                DmlAction::Delete => removals.push(Vec::new()),
                DmlAction::Set(assignments) => {
                    for (target, value) in assignments {
                        let v = self.eval(value, env)?;
                        let steps = self.target_keys(target, paths, env)?;
                        match v {
                            // `SET p = ?` with p the document's alias replaces the
                            // document's data (it keeps its id; the ORMs' save()).
                            PV::V(v) if steps.is_empty() => match v.data {
                                Data::Struct(_) => data = strip_annotations(v),
                                _ => {
                                    return err(format!(
                                        "SET of the whole document needs a struct, not {}",
                                        type_name(&v)
                                    ))
                                }
                            },
                            PV::V(v) => set_path(&mut data, &steps, v)?,
                            PV::Missing if steps.is_empty() => {
                                return err("SET of the whole document needs a struct, not MISSING")
                            }
                            PV::Missing => remove_path(&mut data, &steps),
                        }
                    }
                }
                DmlAction::Remove(target) => {
                    removals.push(self.target_keys(target, paths, env)?);
                }
                DmlAction::InsertInto { target, value, at } => {
                    let steps = self.target_keys(target, paths, env)?;
                    // A nested value keeps its annotations, as inside INSERT's document.
                    let v = match self.eval(value, env)? {
                        PV::V(v) => v,
                        PV::Missing => {
                            return err("INSERT INTO … VALUE needs a value, not MISSING")
                        }
                    };
                    let at = match at {
                        Some(e) => match self.eval(e, env)? {
                            PV::V(k) => Some(k),
                            PV::Missing => return err("The AT position is MISSING"),
                        },
                        None => None,
                    };
                    insert_at_path(&mut data, &steps, v, at)?;
                }
            }
        }
        if !matched {
            return Ok(None);
        }
        if removals.iter().any(Vec::is_empty) {
            return Ok(Some(None));
        }
        // Later list elements first, so earlier indexes stay valid.
        removals.sort_by(|a, b| b.cmp(a));
        removals.dedup();
        for steps in &removals {
            remove_path(&mut data, steps);
        }
        Ok(Some(Some(data)))
    }

    /// Binds a nested FROM item of a DML statement (`r.Owners.SecondaryOwners AS o AT i`)
    /// for each binding so far, remembering where in the document each alias points.
    fn unnest_for_dml(
        &mut self,
        item: &FromSource,
        bindings: Vec<DmlBinding>,
    ) -> R<Vec<DmlBinding>> {
        let name = item.alias.clone().ok_or_else(|| {
            ExecError::Semantic("A nested FROM item needs an alias (AS name)".into())
        })?;
        let mut out = Vec::new();
        for (env, paths) in bindings {
            let base = self.target_keys(&item.expr, &paths, &env)?;
            let elements = match self.eval(&item.expr, &env)? {
                PV::V(Value {
                    data: Data::List(items) | Data::SExp(items),
                    ..
                }) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (Some(i), v))
                    .collect(),
                PV::V(v) if !matches!(v.data, Data::Null(_)) => vec![(None, v)],
                _ => Vec::new(),
            };
            for (i, v) in elements {
                let mut e = bind(&env, &name, v);
                let mut at = base.clone();
                if let Some(i) = i {
                    at.push(Key::Index(i));
                    if let Some(pos) = &item.at {
                        e.vars.push((pos.clone(), PV::V(Value::int(i as i64))));
                    }
                }
                let mut p = paths.clone();
                p.push((name.clone(), at));
                out.push((e, p));
            }
        }
        Ok(out)
    }

    /// Where a DML target (or a nested FROM item) points in the document: a path rooted
    /// at a FROM alias, or an unqualified field of the one document.
    fn target_keys(
        &mut self,
        target: &Expr,
        paths: &[(String, Vec<Key>)],
        env: &Env,
    ) -> R<Vec<Key>> {
        let (root, steps): (&Expr, &[PathStep]) = match target {
            Expr::Path { root, steps } => (root, steps),
            other => (other, &[]),
        };
        let Expr::Var { name, .. } = root else {
            return semantic("A DML target must be a path into the document");
        };
        let mut keys = match paths.iter().rev().find(|(a, _)| a == name) {
            Some((_, base)) => base.clone(),
            None => vec![Key::Field(name.clone())],
        };
        keys.extend(self.resolve_steps(steps, env)?);
        Ok(keys)
    }

    fn resolve_steps(&mut self, steps: &[PathStep], env: &Env) -> R<Vec<Key>> {
        steps
            .iter()
            .map(|s| match s {
                PathStep::Field { name, .. } => Ok(Key::Field(name.clone())),
                PathStep::Index(e) => match self.eval(e, env)? {
                    PV::V(v) => match (&v.data, ops::as_index(&v)) {
                        (_, Some(i)) => Ok(Key::Index(i)),
                        (Data::String(s), _) => Ok(Key::Field(s.clone())),
                        _ => err("A path index must be a non-negative integer or a string"),
                    },
                    PV::Missing => err("A path index is MISSING"),
                },
                _ => semantic("Wildcards cannot be assigned to"),
            })
            .collect()
    }

    // ---------------------------------------------------------------- expressions

    fn eval(&mut self, e: &Expr, env: &Env) -> R<PV> {
        Ok(match e {
            Expr::Lit(v) => PV::V(v.clone()),
            Expr::Missing => PV::Missing,
            Expr::Param(i) => match self.params.get(*i) {
                Some(v) => PV::V(v.clone()),
                None => {
                    return err(format!(
                        "The statement uses parameter {} but only {} were given",
                        i + 1,
                        self.params.len()
                    ))
                }
            },
            Expr::Var { name, .. } => self.var(name, env),
            // `alias.a.b`: walked by reference, so only the value reached is copied.
            Expr::Path { root, steps }
                if matches!(&**root, Expr::Var { .. })
                    && steps.iter().all(|s| matches!(s, PathStep::Field { .. })) =>
            {
                let Expr::Var { name, .. } = &**root else {
                    unreachable!("matched above")
                };
                let mut cur = self.var_ref(name, env);
                for step in steps {
                    if let PathStep::Field { name, .. } = step {
                        cur = cur.and_then(|v| v.field(name));
                    }
                }
                cur.cloned().map_or(PV::Missing, PV::V)
            }
            Expr::Path { root, steps } => {
                // After a wildcard (`[*]`, `.*`) the path ranges over many values and
                // yields them as a bag; before, it is one value.
                let mut cur = vec![self.eval(root, env)?];
                let mut many = false;
                for s in steps {
                    let ix = match s {
                        PathStep::Index(ix) => Some(self.eval(ix, env)?),
                        _ => None,
                    };
                    let mut next = Vec::with_capacity(cur.len());
                    for c in cur {
                        let PV::V(v) = c else {
                            next.push(PV::Missing);
                            continue;
                        };
                        match (s, &v.data) {
                            (PathStep::Field { name, .. }, _) => {
                                next.push(v.field(name).cloned().map_or(PV::Missing, PV::V))
                            }
                            (PathStep::AllElements, Data::List(items) | Data::SExp(items)) => {
                                next.extend(items.iter().cloned().map(PV::V))
                            }
                            (PathStep::AllFields, Data::Struct(fields)) => {
                                next.extend(fields.iter().map(|(_, f)| PV::V(f.clone())))
                            }
                            (PathStep::AllElements | PathStep::AllFields, _) => {}
                            (PathStep::Index(_), Data::List(items) | Data::SExp(items)) => next
                                .push(
                                    ix.as_ref()
                                        .and_then(|i| match i {
                                            PV::V(i) => ops::as_index(i),
                                            PV::Missing => None,
                                        })
                                        .and_then(|i| items.get(i))
                                        .cloned()
                                        .map_or(PV::Missing, PV::V),
                                ),
                            (PathStep::Index(_), _) => next.push(match &ix {
                                Some(PV::V(Value {
                                    data: Data::String(k),
                                    ..
                                })) => v.field(k).cloned().map_or(PV::Missing, PV::V),
                                _ => PV::Missing,
                            }),
                        }
                    }
                    many |= matches!(s, PathStep::AllElements | PathStep::AllFields);
                    if many {
                        next.retain(|v| *v != PV::Missing);
                    }
                    cur = next;
                }
                if many {
                    PV::V(Value::list(
                        cur.into_iter()
                            .filter_map(|v| match v {
                                PV::V(v) => Some(v),
                                PV::Missing => None,
                            })
                            .collect(),
                    ))
                } else {
                    cur.pop().unwrap_or(PV::Missing)
                }
            }
            Expr::Struct(fields) => {
                let mut out = Vec::new();
                for (k, v) in fields {
                    let key = match self.eval(k, env)? {
                        PV::V(Value {
                            data: Data::String(s) | Data::Symbol(Some(s)),
                            ..
                        }) => s,
                        _ => return err("A struct field name must be a string"),
                    };
                    if let PV::V(v) = self.eval(v, env)? {
                        out.push((Some(key), v));
                    }
                }
                PV::V(Data::Struct(out).into())
            }
            Expr::List(items) | Expr::Bag(items) => {
                let mut out = Vec::new();
                for i in items {
                    if let PV::V(v) = self.eval(i, env)? {
                        out.push(v);
                    }
                }
                PV::V(Value::list(out))
            }
            Expr::Unary { op, expr } => {
                let v = self.eval(expr, env)?;
                match (op, v) {
                    (_, PV::Missing) => PV::Missing,
                    (UnaryOp::Not, PV::V(v)) => match v.data {
                        Data::Bool(b) => PV::bool(!b),
                        Data::Null(_) => PV::null(),
                        _ => return err("NOT needs a boolean"),
                    },
                    (_, PV::V(v)) if matches!(v.data, Data::Null(_)) => PV::null(),
                    (UnaryOp::Neg, PV::V(v)) => PV::V(ops::negate(&v).map_err(ExecError::Runtime)?),
                    (UnaryOp::Plus, PV::V(v)) => PV::V(v),
                }
            }
            Expr::Binary { op, left, right } => self.binary(*op, left, right, env)?,
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let x = self.eval(expr, env)?;
                let l = self.eval(list, env)?;
                let items = match l {
                    PV::V(Value {
                        data: Data::List(items) | Data::SExp(items),
                        ..
                    }) => items,
                    PV::Missing => return Ok(PV::Missing),
                    PV::V(v) => vec![v],
                };
                self.work(IN_ELEMENT_WORK.saturating_mul(items.len() as u64))?;
                let mut result = PV::bool(false);
                for i in items {
                    match ops::eq(&x, &PV::V(i)) {
                        r @ PV::V(Value {
                            data: Data::Bool(true),
                            ..
                        }) => {
                            result = r;
                            break;
                        }
                        PV::V(Value {
                            data: Data::Bool(false),
                            ..
                        }) => {}
                        _ => result = PV::null(),
                    }
                }
                not_if(result, *negated)
            }
            Expr::IsNull {
                expr,
                missing,
                negated,
            } => {
                let v = self.eval(expr, env)?;
                let is = if *missing {
                    v == PV::Missing
                } else {
                    v.is_absent()
                };
                PV::bool(is != *negated)
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let x = self.eval(expr, env)?;
                let lo = self.eval(low, env)?;
                let hi = self.eval(high, env)?;
                let a = cmp_pv(&x, &lo, |o| o != std::cmp::Ordering::Less)?;
                let b = cmp_pv(&x, &hi, |o| o != std::cmp::Ordering::Greater)?;
                not_if(and(a, b), *negated)
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let x = self.eval(expr, env)?;
                let p = self.eval(pattern, env)?;
                let esc = match escape {
                    Some(e) => Some(self.eval(e, env)?),
                    None => None,
                };
                let text = |v: &PV| match v {
                    PV::V(Value {
                        data: Data::String(s) | Data::Symbol(Some(s)),
                        ..
                    }) => Some(s.clone()),
                    _ => None,
                };
                if x == PV::Missing || p == PV::Missing || esc.as_ref() == Some(&PV::Missing) {
                    PV::Missing
                } else if x.is_absent() || p.is_absent() || esc.as_ref().is_some_and(PV::is_absent)
                {
                    PV::null()
                } else {
                    let (Some(t), Some(pat)) = (text(&x), text(&p)) else {
                        return err("LIKE needs a string and a string pattern");
                    };
                    let esc_char = match esc.as_ref().map(text) {
                        None => None,
                        Some(Some(e)) if e.chars().count() == 1 => e.chars().next(),
                        Some(_) => return err("The LIKE escape must be a single character"),
                    };
                    let left = MAX_WORK.saturating_sub(self.work);
                    let (matched, steps) = like(&t, &pat, esc_char, left);
                    self.work(steps)?;
                    not_if(PV::bool(matched), *negated)
                }
            }
            Expr::Call { func, args, .. } => self.call(*func, args, env)?,
            Expr::Keyword(k) => PV::V(Value::symbol(k.clone())),
            Expr::Cast { expr, to } => {
                let v = self.eval(expr, env)?;
                super::funcs::cast(v, to).map_err(ExecError::Runtime)?
            }
            // A nested SELECT is a bag of its rows; it sees the outer bindings (correlated).
            Expr::Subquery(select) => PV::V(Value::list(self.subquery(select, env)?)),
        })
    }

    /// The rows of a subquery. One that reads no outer row runs once per statement; each
    /// later use is charged the read IOs of that run again, as QLDB ran it per use.
    fn subquery(&mut self, select: &Select, env: &Env) -> R<Vec<Value>> {
        if !self.plan.once(select) {
            return self.select(select, env);
        }
        let key = select as *const Select as usize;
        if let Some((rows, ios)) = self.subquery_rows.get(&key) {
            let (rows, ios) = (rows.clone(), *ios);
            self.txn.charge_read_ios(ios);
            return Ok(rows);
        }
        let before = self.txn.read_ios();
        let rows = self.select(select, env)?;
        let ios = self.txn.read_ios().saturating_sub(before);
        self.subquery_rows.insert(key, (rows.clone(), ios));
        Ok(rows)
    }

    /// [`Self::var`] by reference (`None`: MISSING).
    fn var_ref<'e>(&self, name: &str, env: &'e Env) -> Option<&'e Value> {
        if let Some(v) = env.get(name) {
            return match v {
                PV::V(v) => Some(v),
                PV::Missing => None,
            };
        }
        env.scopes
            .iter()
            .rev()
            .find_map(|scope| match env.get(scope) {
                Some(PV::V(v)) => v.field(name),
                _ => None,
            })
    }

    /// A variable's value, else (implicit scoping) a field of a FROM source.
    fn var(&mut self, name: &str, env: &Env) -> PV {
        self.var_ref(name, env).cloned().map_or(PV::Missing, PV::V)
    }

    fn binary(&mut self, op: BinaryOp, left: &Expr, right: &Expr, env: &Env) -> R<PV> {
        let l = self.eval(left, env)?;
        if op == BinaryOp::And && l.truth() == Some(false) {
            return Ok(PV::bool(false));
        }
        if op == BinaryOp::Or && l.truth() == Some(true) {
            return Ok(PV::bool(true));
        }
        let r = self.eval(right, env)?;
        use std::cmp::Ordering::*;
        Ok(match op {
            BinaryOp::And => and(l, r),
            BinaryOp::Or => or(l, r),
            BinaryOp::Eq => ops::eq(&l, &r),
            BinaryOp::Ne => not_if(ops::eq(&l, &r), true),
            BinaryOp::Lt => cmp_pv(&l, &r, |o| o == Less)?,
            BinaryOp::Le => cmp_pv(&l, &r, |o| o != Greater)?,
            BinaryOp::Gt => cmp_pv(&l, &r, |o| o == Greater)?,
            BinaryOp::Ge => cmp_pv(&l, &r, |o| o != Less)?,
            BinaryOp::Concat => match (l, r) {
                (PV::Missing, _) | (_, PV::Missing) => PV::Missing,
                (PV::V(a), PV::V(b)) => match (&a.data, &b.data) {
                    (
                        Data::String(x) | Data::Symbol(Some(x)),
                        Data::String(y) | Data::Symbol(Some(y)),
                    ) => PV::V(Value::string(format!("{x}{y}"))),
                    (Data::Null(_), _) | (_, Data::Null(_)) => PV::null(),
                    _ => return err("'||' needs two strings"),
                },
            },
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                match (l, r) {
                    (PV::Missing, _) | (_, PV::Missing) => PV::Missing,
                    (PV::V(a), PV::V(b))
                        if matches!(a.data, Data::Null(_)) || matches!(b.data, Data::Null(_)) =>
                    {
                        PV::null()
                    }
                    (PV::V(a), PV::V(b)) => {
                        let c = match op {
                            BinaryOp::Add => '+',
                            BinaryOp::Sub => '-',
                            BinaryOp::Mul => '*',
                            BinaryOp::Div => '/',
                            _ => '%',
                        };
                        PV::V(ops::arith(c, &a, &b).map_err(ExecError::Runtime)?)
                    }
                }
            }
        })
    }

    fn call(&mut self, func: Func, args: &[Expr], env: &Env) -> R<PV> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a, env)?);
        }
        super::funcs::call(func, &vals, &*self.txn)
    }
}

// -------------------------------------------------------------------- helpers

/// The bindings of `left` followed by those of `right`.
/// The FROM sources of a clause, left to right (the order their variables are bound in).
fn from_sources(from: &FromClause) -> Vec<&FromSource> {
    match from {
        FromClause::Source(s) => vec![s],
        FromClause::Join { left, right, .. } => {
            let mut v = from_sources(left);
            v.extend(from_sources(right));
            v
        }
    }
}

fn merge(left: &Env, right: &Env) -> Env {
    let mut e = left.clone();
    e.vars.extend(right.vars.iter().cloned());
    e.scopes.extend(right.scopes.iter().cloned());
    e
}

/// SQL LIKE: `%` any run, `_` any one character, `escape` makes the next one literal.
/// Also returns the steps taken; gives up (false) after `max_steps`.
fn like(text: &str, pattern: &str, escape: Option<char>, max_steps: u64) -> (bool, u64) {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Lit(char),
    }
    let mut pat = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        pat.push(match c {
            c if Some(c) == escape => P::Lit(chars.next().unwrap_or(c)),
            '%' => P::Any,
            '_' => P::One,
            c => P::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with backtracking to the last `%` (linear in practice).
    let (mut ti, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    let mut steps: u64 = (pat.len() + t.len()) as u64;
    while ti < t.len() {
        steps += 1;
        if steps > max_steps {
            return (false, steps);
        }
        match pat.get(pi) {
            Some(P::One) => {
                ti += 1;
                pi += 1;
            }
            Some(P::Lit(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            Some(P::Any) => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            _ => match star {
                Some(sp) => {
                    pi = sp + 1;
                    mark += 1;
                    ti = mark;
                }
                None => return (false, steps),
            },
        }
    }
    (pat[pi..].iter().all(|p| *p == P::Any), steps)
}

/// `env` plus one FROM variable whose fields unqualified names may refer to.
/// `env` with a table source's document bound to `alias`, and its id to the source's BY
/// variable.
fn bind_doc(env: &Env, alias: &str, src: &FromSource, d: Doc) -> Env {
    let mut e = bind(env, alias, d.data);
    if let Some(by) = &src.by {
        e.vars.push((by.clone(), PV::V(Value::string(d.id))));
    }
    e
}

fn bind(env: &Env, alias: &str, value: Value) -> Env {
    let mut e = env.clone();
    e.vars.push((alias.to_string(), PV::V(value)));
    e.scopes.push(alias.to_string());
    e
}

fn strip_annotations(mut v: Value) -> Value {
    v.annotations.clear();
    v
}

fn not_if(v: PV, negate: bool) -> PV {
    match (v.truth(), negate) {
        (Some(b), true) => PV::bool(!b),
        _ => v,
    }
}

fn and(a: PV, b: PV) -> PV {
    match (a.truth(), b.truth()) {
        (Some(false), _) | (_, Some(false)) => PV::bool(false),
        (Some(true), Some(true)) => PV::bool(true),
        _ if a == PV::Missing || b == PV::Missing => PV::Missing,
        _ => PV::null(),
    }
}

fn or(a: PV, b: PV) -> PV {
    match (a.truth(), b.truth()) {
        (Some(true), _) | (_, Some(true)) => PV::bool(true),
        (Some(false), Some(false)) => PV::bool(false),
        _ if a == PV::Missing || b == PV::Missing => PV::Missing,
        _ => PV::null(),
    }
}

fn cmp_pv(a: &PV, b: &PV, f: impl Fn(std::cmp::Ordering) -> bool) -> R<PV> {
    Ok(match (a, b) {
        (PV::Missing, _) | (_, PV::Missing) => PV::Missing,
        (PV::V(x), PV::V(y))
            if matches!(x.data, Data::Null(_)) || matches!(y.data, Data::Null(_)) =>
        {
            PV::null()
        }
        (PV::V(x), PV::V(y)) if !ops::comparable(x, y) => {
            return err(format!(
                "Cannot compare values of types {} and {}",
                type_name(x),
                type_name(y)
            ))
        }
        // NaN is unordered: every comparison with it is false.
        (PV::V(x), PV::V(y)) => PV::bool(ops::compare(x, y).is_some_and(f)),
    })
}

/// The PartiQL name of a value's type, for messages.
fn type_name(v: &Value) -> &'static str {
    match &v.data {
        Data::Null(_) => "NULL",
        Data::Bool(_) => "BOOL",
        Data::Int(_) => "INT",
        Data::Float(_) => "FLOAT",
        Data::Decimal(_) => "DECIMAL",
        Data::Timestamp(_) => "TIMESTAMP",
        Data::Symbol(_) => "SYMBOL",
        Data::String(_) => "STRING",
        Data::Clob(_) => "CLOB",
        Data::Blob(_) => "BLOB",
        Data::List(_) => "LIST",
        Data::SExp(_) => "SEXP",
        Data::Struct(_) => "STRUCT",
    }
}

fn user_tables_row(t: &TableMeta) -> Value {
    Value::structure([
        ("tableId", Value::string(t.table_id.clone())),
        ("name", Value::string(t.name.clone())),
        (
            "indexes",
            Value::list(
                t.indexes
                    .iter()
                    .map(|(id, f)| {
                        Value::structure([
                            ("indexId", Value::string(id.clone())),
                            ("expr", Value::string(format!("[{f}]"))),
                            ("status", Value::string("ONLINE")),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "status",
            Value::string(if t.active { "ACTIVE" } else { "INACTIVE" }),
        ),
    ])
}

/// The revisions active at some moment in [start, end] (both inclusive): a revision is
/// active from its txTime until the next revision of the same document.
fn within(rows: Vec<Value>, start: Option<&Value>, end: Option<&Value>) -> Vec<Value> {
    if start.is_none() {
        return rows;
    }
    let meta = |r: &Value, f: &str| r.field("metadata").and_then(|m| m.field(f)).cloned();
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let (Some(id), Some(t)) = (meta(r, "id"), meta(r, "txTime")) else {
            continue;
        };
        let next = rows[i + 1..]
            .iter()
            .find(|n| meta(n, "id").as_ref() == Some(&id))
            .and_then(|n| meta(n, "txTime"));
        let before_end =
            end.is_none_or(|e| ops::compare(&t, e) != Some(std::cmp::Ordering::Greater));
        let after_start = match (start, &next) {
            (Some(s), Some(n)) => ops::compare(n, s) == Some(std::cmp::Ordering::Greater),
            _ => true,
        };
        if before_end && after_start {
            out.push(r.clone());
        }
    }
    out
}

/// Whether `e` names a variable for which `pick` holds (outside nested queries).
fn uses_var(e: &Expr, pick: &dyn Fn(&str) -> bool) -> bool {
    match e {
        Expr::Var { name, .. } => pick(name),
        Expr::Path { root, steps } => {
            uses_var(root, pick)
                || steps
                    .iter()
                    .any(|s| matches!(s, PathStep::Index(i) if uses_var(i, pick)))
        }
        Expr::Unary { expr, .. } | Expr::Cast { expr, .. } => uses_var(expr, pick),
        Expr::Binary { left, right, .. } => uses_var(left, pick) || uses_var(right, pick),
        Expr::Call { args, .. } | Expr::List(args) | Expr::Bag(args) => {
            args.iter().any(|a| uses_var(a, pick))
        }
        Expr::Struct(fields) => fields
            .iter()
            .any(|(k, v)| uses_var(k, pick) || uses_var(v, pick)),
        Expr::Like {
            expr,
            pattern,
            escape,
            ..
        } => {
            uses_var(expr, pick)
                || uses_var(pattern, pick)
                || escape.as_ref().is_some_and(|x| uses_var(x, pick))
        }
        Expr::Between {
            expr, low, high, ..
        } => uses_var(expr, pick) || uses_var(low, pick) || uses_var(high, pick),
        Expr::In { expr, list, .. } => uses_var(expr, pick) || uses_var(list, pick),
        Expr::IsNull { expr, .. } => uses_var(expr, pick),
        _ => false,
    }
}

/// Whether an aggregate call appears in `e` (not counting nested queries, which aggregate
/// their own rows).
fn has_aggregate(e: &Expr) -> bool {
    match e {
        _ if is_aggregate(e) => true,
        Expr::Unary { expr, .. } | Expr::Cast { expr, .. } => has_aggregate(expr),
        Expr::Binary { left, right, .. } => has_aggregate(left) || has_aggregate(right),
        Expr::Call { args, .. } | Expr::List(args) | Expr::Bag(args) => {
            args.iter().any(has_aggregate)
        }
        Expr::Struct(fields) => fields.iter().any(|(_, v)| has_aggregate(v)),
        _ => false,
    }
}

fn is_aggregate(e: &Expr) -> bool {
    matches!(e, Expr::Call { func, .. } if func.is_aggregate())
}

fn implicit_name(e: &Expr, i: usize) -> String {
    match e {
        Expr::Var { name, .. } => name.clone(),
        Expr::Path { steps, .. } => match steps.last() {
            Some(PathStep::Field { name, .. }) => name.clone(),
            _ => format!("_{}", i + 1),
        },
        _ => format!("_{}", i + 1),
    }
}

/// A binding of a DML statement's FROM items, with where each alias points in the document.
type DmlBinding = (Env, Vec<(String, Vec<Key>)>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Field(String),
    Index(usize),
}

fn set_path(data: &mut Value, steps: &[Key], v: Value) -> R<()> {
    let Some((first, rest)) = steps.split_first() else {
        return err("SET needs a path below the document");
    };
    match (first, &mut data.data) {
        (Key::Field(name), Data::Struct(fields)) => {
            let pos = fields.iter().position(|(k, _)| k.as_deref() == Some(name));
            if rest.is_empty() {
                match pos {
                    Some(p) => fields[p].1 = v,
                    None => fields.push((Some(name.clone()), v)),
                }
                return Ok(());
            }
            let p = match pos {
                Some(p) => p,
                None => {
                    fields.push((
                        Some(name.clone()),
                        Value::structure(Vec::<(String, Value)>::new()),
                    ));
                    fields.len() - 1
                }
            };
            set_path(&mut fields[p].1, rest, v)
        }
        (Key::Index(i), Data::List(items)) if *i < items.len() => {
            if rest.is_empty() {
                items[*i] = v;
                Ok(())
            } else {
                set_path(&mut items[*i], rest, v)
            }
        }
        _ => err("SET path does not lead into a struct or an existing list element"),
    }
}

/// `INSERT INTO path VALUE v [AT pos]`: appends to (or inserts at `pos` in) the list at
/// `path`, or adds field `pos` to the struct at `path`.
fn insert_at_path(data: &mut Value, steps: &[Key], v: Value, at: Option<Value>) -> R<()> {
    let mut target = data;
    for step in steps {
        target = match (step, &mut target.data) {
            (Key::Field(name), Data::Struct(fields)) => {
                match fields
                    .iter_mut()
                    .find(|(k, _)| k.as_deref() == Some(name.as_str()))
                {
                    Some((_, child)) => child,
                    None => return err(format!("INSERT INTO: the path has no field {name}")),
                }
            }
            (Key::Index(i), Data::List(items)) if *i < items.len() => &mut items[*i],
            _ => return err("INSERT INTO: the path does not exist in the document"),
        };
    }
    match (&mut target.data, at) {
        (Data::List(items), None) => items.push(v),
        (Data::List(items), Some(pos)) => match ops::as_index(&pos) {
            Some(i) if i <= items.len() => items.insert(i, v),
            _ => return err("INSERT INTO a list: AT must be a position within the list"),
        },
        (
            Data::Struct(fields),
            Some(Value {
                data: Data::String(key) | Data::Symbol(Some(key)),
                ..
            }),
        ) => {
            if fields
                .iter()
                .any(|(k, _)| k.as_deref() == Some(key.as_str()))
            {
                return err(format!("INSERT INTO: the struct already has a field {key}"));
            }
            fields.push((Some(key), v));
        }
        (Data::Struct(_), _) => return err("INSERT INTO a struct needs AT '<field name>'"),
        _ => return err("INSERT INTO needs a path to a list or a struct"),
    }
    Ok(())
}

fn remove_path(data: &mut Value, steps: &[Key]) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    match (first, &mut data.data) {
        (Key::Field(name), Data::Struct(fields)) => {
            if rest.is_empty() {
                fields.retain(|(k, _)| k.as_deref() != Some(name));
            } else if let Some((_, child)) =
                fields.iter_mut().find(|(k, _)| k.as_deref() == Some(name))
            {
                remove_path(child, rest);
            }
        }
        (Key::Index(i), Data::List(items)) if *i < items.len() => {
            if rest.is_empty() {
                items.remove(*i);
            } else {
                remove_path(&mut items[*i], rest);
            }
        }
        _ => {}
    }
}

/// What a SELECT has produced so far: its projected rows, or its aggregates' state.
struct Output {
    rows: Vec<Value>,
    aggregates: Option<Vec<Aggregate>>,
}

/// One aggregate call (COUNT, SUM, AVG, MIN, MAX) over the rows so far; NULL and MISSING
/// inputs are skipped.
struct Aggregate {
    func: Func,
    /// `None` for `COUNT(*)`.
    arg: Option<Expr>,
    /// Inputs counted.
    count: u64,
    /// The sum (SUM, AVG) or the best value (MIN, MAX) so far.
    acc: Option<Value>,
}

impl Aggregate {
    fn add(&mut self, v: PV) -> R<()> {
        let PV::V(v) = v else { return Ok(()) };
        if matches!(v.data, Data::Null(_)) {
            return Ok(());
        }
        self.count += 1;
        self.acc = match (self.func, self.acc.take()) {
            (Func::Count, _) => None,
            (Func::Sum | Func::Avg, None) => {
                Some(ops::arith('+', &Value::int(0), &v).map_err(ExecError::Runtime)?)
            }
            (Func::Sum | Func::Avg, Some(acc)) => {
                Some(ops::arith('+', &acc, &v).map_err(ExecError::Runtime)?)
            }
            (_, None) => Some(v),
            (func, Some(best)) => {
                let ord = ops::compare(&v, &best);
                let better = if func == Func::Min {
                    ord == Some(std::cmp::Ordering::Less)
                } else {
                    ord == Some(std::cmp::Ordering::Greater)
                };
                Some(if better { v } else { best })
            }
        };
        Ok(())
    }

    fn finish(self) -> R<Value> {
        Ok(match (self.func, self.acc) {
            (Func::Count, _) => Value::int(self.count as i64),
            (Func::Avg, Some(acc)) => {
                let n = Data::Decimal(crate::ion::Decimal::new(self.count.into(), 0)).into();
                let acc = match acc.data {
                    Data::Int(i) => Data::Decimal(crate::ion::Decimal::new(i, 0)).into(),
                    _ => acc,
                };
                ops::arith('/', &acc, &n).map_err(ExecError::Runtime)?
            }
            (_, acc) => acc.unwrap_or_else(Value::null),
        })
    }
}

/// What an aggregate call (function, arguments, `*`) is replaced by.
type AggregateValue<'a> = dyn FnMut(Func, &[Expr], bool) -> R<Value> + 'a;

/// `e` with each aggregate call replaced by what `f` gives for it, left to right.
fn fold_aggregates(e: &Expr, f: &mut AggregateValue<'_>) -> R<Expr> {
    Ok(match e {
        Expr::Call { func, args, star } if is_aggregate(e) => Expr::Lit(f(*func, args, *star)?),
        Expr::Unary { op, expr } => Expr::Unary {
            op: *op,
            expr: Box::new(fold_aggregates(expr, f)?),
        },
        Expr::Binary { op, left, right } => Expr::Binary {
            op: *op,
            left: Box::new(fold_aggregates(left, f)?),
            right: Box::new(fold_aggregates(right, f)?),
        },
        Expr::Cast { expr, to } => Expr::Cast {
            expr: Box::new(fold_aggregates(expr, f)?),
            to: to.clone(),
        },
        Expr::Call { func, args, star } => Expr::Call {
            func: *func,
            args: args
                .iter()
                .map(|a| fold_aggregates(a, f))
                .collect::<R<_>>()?,
            star: *star,
        },
        Expr::List(items) => Expr::List(
            items
                .iter()
                .map(|a| fold_aggregates(a, f))
                .collect::<R<_>>()?,
        ),
        Expr::Bag(items) => Expr::Bag(
            items
                .iter()
                .map(|a| fold_aggregates(a, f))
                .collect::<R<_>>()?,
        ),
        Expr::Struct(fields) => Expr::Struct(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), fold_aggregates(v, f)?)))
                .collect::<R<_>>()?,
        ),
        other => other.clone(),
    })
}
