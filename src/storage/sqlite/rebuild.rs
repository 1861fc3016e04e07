//! `qldb-local rebuild`: regenerates a ledger file from its journal.
//!
//! The journal (the `blocks` table, hash-chained and verified first) is the ledger; every
//! other table of the file is derived from it: the digest tree, the table and index
//! catalog, the current documents, the revisions and their side columns, index entries and
//! the OCC bookkeeping. Rebuild replays the verified blocks into a new file beside the old
//! one, verifies the new file completely, and only then swaps it in; the old file is kept
//! in `<data-dir>/rebuild-backups/`. It holds the data dir's lock while it works, so a
//! server cannot start on the data dir meanwhile (and rebuild refuses while one runs).
//!
//! Two things the journal holds only as hashes are recovered by matching hashes:
//! - a table's id appears in its system revisions' hashes only (and in the revisions of
//!   its documents): each `CREATE TABLE` is matched against the ids the old file, the
//!   journal's documents and `UNDROP TABLE` statements name;
//! - an index id appears in no block: it is taken from the old file's catalog, or made new
//!   (reported); a `DROP INDEX` of an id the replay does not know drops one of its table's
//!   indexes with made-up ids (the last created, reported when there was a choice).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::ion::binary::{decode, encode_one};
use crate::ion::{Data, Value};
use crate::journal::block::{Revision, RevisionBody, RevisionMetadata};
use crate::journal::hash::Hash;
use crate::names::LedgerName;
use crate::partiql::ast::Statement;
use crate::storage::index_key;
use crate::storage::sqlite::catalog::{ledgers_dir, lock_data_dir};
use crate::storage::sqlite::journal::{
    index_documents, index_no, node, NEXT_INDEX_NO, NEXT_TABLE_NO,
};
use crate::storage::sqlite::schema::{migrate, LEDGER_MIGRATIONS};
use crate::storage::sqlite::stored::{decode_block, repack_block, DATA_IN_BLOCK};
use crate::verify::{
    int_field as int, text_field as text, verify_file_reporting, Damage, Scope, Verified,
};

/// What a rebuild did.
#[derive(Debug)]
pub struct Rebuilt {
    pub verified: Verified,
    pub documents: u64,
    pub tables: u64,
    pub indexes: u64,
    /// Index ids the old file did not hold and the journal does not name: made new.
    pub new_index_ids: Vec<String>,
    /// Guesses the journal forced, in words.
    pub notes: Vec<String>,
    /// Where the previous data is kept.
    pub backup: Kept,
}

/// Where a rebuild kept the ledger's previous data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// A copy of the previous file (SQLite).
    File(PathBuf),
    /// The previous schema, which no ledger names any more (PostgreSQL).
    Schema(String),
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::File(p) => write!(f, "the previous file is kept as {}", p.display()),
            Kept::Schema(s) => write!(
                f,
                "the previous data is kept in schema {s} (DROP SCHEMA {s} CASCADE when it is no longer needed)"
            ),
        }
    }
}

fn fail(ledger: &str, block: Option<u64>, message: impl Into<String>) -> Damage {
    Damage {
        ledger: ledger.to_string(),
        block,
        message: message.into(),
    }
}

/// Rebuilds ledger `name` of `data_dir` (no server may be running on the data dir).
pub fn rebuild(data_dir: &Path, name: &str) -> Result<Rebuilt, Damage> {
    rebuild_reporting(data_dir, name, &mut |_, _, _| {})
}

/// [`rebuild`], calling `report(step, blocks done, blocks)` through its three passes over
/// the journal: "checking the journal", "replaying the journal", "verifying the result".
pub fn rebuild_reporting(
    data_dir: &Path,
    name: &str,
    report: &mut dyn FnMut(&str, u64, u64),
) -> Result<Rebuilt, Damage> {
    let err = |m: String| fail(name, None, m);
    LedgerName::parse(name).map_err(|v| err(format!("not a ledger name: {}", v.0)))?;
    crate::verify::ledger_names(data_dir, Some(name))?;
    let _lock = lock_data_dir(data_dir, &format!("qldb-local rebuild of ledger {name}"))
        .map_err(|e| err(format!("{e}; stop it first")))?;
    let dir = ledgers_dir(data_dir);
    let path = dir.join(format!("{name}.sqlite"));

    // Everything the old file holds goes into its main file (a crash or kill may have left
    // commits in its WAL), so that it can be copied and replaced as one file.
    {
        let conn = Connection::open(&path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
            .and_then(|()| conn.pragma_update(None, "journal_mode", "DELETE"))
            .map_err(|e| err(format!("cannot fold the WAL of {}: {e}", path.display())))?;
    }
    let journal = verify_file_reporting(&path, name, Scope::Journal, &mut |d, t| {
        report("checking the journal", d, t)
    })
    .map_err(|d| Damage {
        message: format!(
            "the journal itself is damaged, so it cannot be rebuilt from: {}",
            d.message
        ),
        ..d
    })?;

    // A journal that lost its last blocks still chains; the old file's other tables still
    // remember them. Rebuilding would silently drop committed transactions: refuse.
    {
        let old = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        let mut remembered = 0i64;
        for sql in [
            "SELECT max(idx) FROM merkle WHERE level = 0",
            "SELECT max(seq) FROM revisions",
        ] {
            if let Ok(Some(n)) = old.query_row(sql, [], |r| r.get::<_, Option<i64>>(0)) {
                remembered = remembered.max(n);
            }
        }
        if remembered > journal.tip as i64 {
            return Err(err(format!(
                "the journal ends at block {} but the file records block {remembered}: blocks \
                 were lost, and a rebuild would drop committed transactions",
                journal.tip
            )));
        }
    }

    let tmp = dir.join(format!(
        "{name}.sqlite.tmp-rebuild-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let built = (|| {
        let counts = write_new(&path, &tmp, name, &mut |d, t| {
            report("replaying the journal", d, t)
        })?;
        let verified = verify_file_reporting(&tmp, name, Scope::Everything, &mut |d, t| {
            report("verifying the result", d, t)
        })
        .map_err(|d| Damage {
            message: format!("the rebuilt file does not verify: {}", d.message),
            ..d
        })?;
        if verified.digest != journal.digest || verified.tip != journal.tip {
            return Err(err(
                "the rebuilt file's digest differs from the journal's".into()
            ));
        }
        Ok((counts, verified))
    })();
    let (counts, verified) = match built {
        Ok(b) => b,
        Err(e) => {
            let _ = crate::storage::sqlite::ledger_db::remove_files(&tmp);
            return Err(e);
        }
    };

    // The swap: the old file gets a second name in the backups folder, then the new file
    // takes the ledger's name in one rename. A crash before the rename leaves the old file
    // in place (and a temporary file the server removes at start).
    let backups = data_dir.join("rebuild-backups");
    std::fs::create_dir_all(&backups)
        .map_err(|e| err(format!("cannot create {}: {e}", backups.display())))?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let unique = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let backup = backups.join(format!("{name}-{stamp}-{unique}.sqlite"));
    let keep_fail = |e: std::io::Error| {
        err(format!(
            "cannot keep the old file as {}: {e}",
            backup.display()
        ))
    };
    if std::fs::hard_link(&path, &backup).is_err() {
        // Never over an existing file: a backup is only ever added.
        let mut to = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&backup)
            .map_err(keep_fail)?;
        std::fs::File::open(&path)
            .and_then(|mut from| std::io::copy(&mut from, &mut to))
            .and_then(|_| to.sync_all())
            .map_err(keep_fail)?;
    }
    crate::storage::sqlite::ledger_db::remove_files_except_main(&path)
        .map_err(|e| err(e.to_string()))?;
    std::fs::rename(&tmp, &path).map_err(|e| err(format!("cannot swap in the new file: {e}")))?;
    for d in [&dir, &backups] {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
    Ok(Rebuilt {
        verified,
        documents: counts.documents,
        tables: counts.tables,
        indexes: counts.indexes,
        new_index_ids: counts.new_index_ids,
        notes: counts.notes,
        backup: Kept::File(backup),
    })
}

/// What a replay made.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) documents: u64,
    pub(crate) tables: u64,
    pub(crate) indexes: u64,
    pub(crate) new_index_ids: Vec<String>,
    pub(crate) new_table_ids: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// A table of the catalog being rebuilt.
struct TableRow {
    id: String,
    name: String,
    active: bool,
    version: u64,
}

fn blob(v: &Value, name: &str) -> Option<Vec<u8>> {
    match v.field(name).map(|f| &f.data) {
        Some(Data::Blob(b)) => Some(b.clone()),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch of a block timestamp (which qldb-local writes at
/// millisecond precision in UTC).
pub(crate) fn millis(v: Option<&Value>) -> Option<i64> {
    let Some(Data::Timestamp(t)) = v.map(|v| &v.data) else {
        return None;
    };
    // Both instants in milliseconds from the same origin.
    let to_ms = |(c, e): (num_bigint::BigInt, i64)| {
        (-3..=0)
            .contains(&e)
            .then(|| c * num_traits::pow(num_bigint::BigInt::from(10), (3 + e) as usize))
    };
    let ms = to_ms(t.epoch_seconds())?
        - to_ms(crate::ion::Timestamp::from_millis_utc(0).epoch_seconds())?;
    let ms = i64::try_from(ms).ok()?;
    (crate::journal::block::ts(ms) == *v?).then_some(ms)
}

/// The statements, system-revision hashes and document tables of one block.
fn statements(block: &Value) -> Vec<String> {
    match block
        .field("transactionInfo")
        .and_then(|t| t.field("statements"))
        .map(|s| &s.data)
    {
        Some(Data::List(items)) => items.iter().filter_map(|i| text(i, "statement")).collect(),
        _ => Vec::new(),
    }
}

/// A stored block: sequence number, block hash, Ion.
type StoredBlock = (u64, Vec<u8>, Vec<u8>);

/// Every block of the old file, in order (verified by the caller).
fn blocks(old: &Connection) -> rusqlite::Result<Vec<StoredBlock>> {
    let mut stmt = old.prepare("SELECT seq, block_hash, ion FROM blocks ORDER BY seq")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// Best-effort reads of the old file's ids (it may be damaged: that is why it is rebuilt).
fn old_ids(old: &Connection, sql: &str) -> Vec<Vec<String>> {
    let Ok(mut stmt) = old.prepare(sql) else {
        return Vec::new();
    };
    let n = stmt.column_count();
    let Ok(rows) = stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    _ => String::new(),
                })
            })
            .collect::<rusqlite::Result<Vec<String>>>()
    }) else {
        return Vec::new();
    };
    rows.filter_map(|r| r.ok()).collect()
}

/// The system revision of a table version, as its block would hash it.
fn table_revision_hash(
    id: &str,
    version: u64,
    name: &str,
    active: bool,
    ms: i64,
    tx: &str,
) -> Hash {
    Revision {
        metadata: RevisionMetadata {
            id: id.to_string(),
            version,
            tx_time_ms: ms,
            tx_id: tx.to_string(),
        },
        body: RevisionBody::Data(Value::structure([
            ("name", Value::string(name)),
            (
                "status",
                Value::string(if active { "ACTIVE" } else { "INACTIVE" }),
            ),
        ])),
    }
    .hash()
}

/// What the whole journal (and an old file, when there is one) says about ids that blocks
/// hold only as hashes; gathered before the replay.
#[derive(Default)]
pub(crate) struct Hints {
    /// Table ids named anywhere: documents' tables, UNDROP statements, the old catalog.
    table_ids: HashSet<String>,
    /// (block, table id, table name) of each table's first document write, in journal order.
    doc_tables: Vec<(u64, String, String)>,
    doc_table_ids: HashSet<String>,
    /// The old catalog's tables: (table id, name, created_seq).
    old_tables: Vec<Vec<String>>,
    /// The old catalog's indexes: (index id, table id, field, created_seq).
    old_indexes: Vec<Vec<String>>,
}

impl Hints {
    /// Reads what a (possibly damaged) old ledger file knows, best effort.
    pub(crate) fn from_old_file(old: &Connection) -> Hints {
        let mut hints = Hints::default();
        for sql in [
            "SELECT table_id FROM tables",
            // Files before schema v8 (since then rows name tables by number only).
            "SELECT DISTINCT table_id FROM documents",
            "SELECT DISTINCT table_id FROM revisions",
            "SELECT DISTINCT table_id FROM indexes",
        ] {
            hints
                .table_ids
                .extend(old_ids(old, sql).into_iter().flatten());
        }
        hints.old_tables = old_ids(old, "SELECT table_id, name, created_seq FROM tables");
        hints.old_indexes = old_ids(
            old,
            "SELECT index_id, table_id, field, created_seq FROM indexes",
        );
        hints
    }

    /// The id of the first table named `name` whose documents are written at or after
    /// block `seq` and that `taken` does not hold.
    pub(crate) fn doc_table(
        &self,
        seq: u64,
        name: &str,
        taken: &dyn Fn(&String) -> bool,
    ) -> Option<String> {
        self.doc_tables
            .iter()
            .find(|(s, id, t)| *s >= seq && t == name && !taken(id))
            .map(|(_, id, _)| id.clone())
    }

    /// Gathers what one block names.
    pub(crate) fn scan(&mut self, seq: u64, block: &Value, parsed: &[Statement]) {
        if let Some(Data::Struct(docs)) = block
            .field("transactionInfo")
            .and_then(|t| t.field("documents"))
            .map(|d| &d.data)
        {
            for (_, d) in docs {
                if let (Some(id), Some(table)) = (text(d, "tableId"), text(d, "tableName")) {
                    self.table_ids.insert(id.clone());
                    if self.doc_table_ids.insert(id.clone()) {
                        self.doc_tables.push((seq, id, table));
                    }
                }
            }
        }
        for st in parsed {
            if let Statement::UndropTable { table_id } = st {
                self.table_ids.insert(table_id.clone());
            }
        }
    }
}

/// The parsed statements of a block. Every statement must parse: a DDL statement skipped
/// would lose its table or index. In a block imported from QLDB (`lenient`), a statement
/// this dialect does not parse is skipped unless it is DDL.
pub(crate) fn block_statements(
    ledger: &str,
    seq: u64,
    block: &Value,
    lenient: bool,
) -> Result<Vec<Statement>, Damage> {
    let mut out = Vec::new();
    for t in statements(block) {
        match crate::partiql::parse_statement(&t) {
            Ok(st) => out.push(st),
            Err(_) if lenient && !looks_like_ddl(&t) => {}
            Err(e) => {
                return Err(fail(
                    ledger,
                    Some(seq),
                    format!("its statement `{t}` does not parse: {e}"),
                ))
            }
        }
    }
    Ok(out)
}

fn looks_like_ddl(statement: &str) -> bool {
    let first = statement
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(first.as_str(), "CREATE" | "DROP" | "UNDROP")
}

/// Creates a new, empty ledger file at `path` holding `name` and `strand`.
pub(crate) fn create_file(
    path: &Path,
    name: &str,
    strand: &str,
    imported_through: Option<u64>,
) -> Result<Connection, Damage> {
    let sqlerr = |e: rusqlite::Error| fail(name, None, format!("cannot write: {e}"));
    let mut conn = Connection::open(path).map_err(sqlerr)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlerr)?;
    migrate(&mut conn, LEDGER_MIGRATIONS, &path.display().to_string())
        .map_err(|e| fail(name, None, e.to_string()))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('ledger_name', ?1), ('strand_id', ?2)",
        [name, strand],
    )
    .map_err(sqlerr)?;
    if let Some(t) = imported_through {
        set_imported_through(&conn, t).map_err(sqlerr)?;
    }
    Ok(conn)
}

/// Records that blocks up to `tip` came from QLDB (their system revisions are opaque).
pub(crate) fn set_imported_through(conn: &Connection, tip: u64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('imported_through', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [tip.to_string()],
    )
    .map(|_| ())
}

/// Replays verified blocks, in order, into a new ledger file: every derived table as the
/// commits of those blocks wrote it.
pub(crate) struct Replayer<'h> {
    name: String,
    hints: &'h Hints,
    /// Blocks up to here came from QLDB: system revisions that match nothing are QLDB's
    /// own, and a table whose id appears only in them gets its id from its documents, the
    /// old file, or a new one.
    lenient_through: Option<u64>,
    tables: Vec<TableRow>,
    used_index_ids: HashSet<String>,
    /// Documents whose current revision was redacted: their data is not in the journal.
    unknown_data: HashSet<String>,
    pub(crate) new_index_ids: Vec<String>,
    pub(crate) new_table_ids: Vec<String>,
    /// Guesses the journal forced, in words.
    pub(crate) notes: Vec<String>,
}

impl<'h> Replayer<'h> {
    pub(crate) fn new(name: &str, hints: &'h Hints, lenient_through: Option<u64>) -> Self {
        Replayer {
            name: name.to_string(),
            hints,
            lenient_through,
            tables: Vec::new(),
            used_index_ids: HashSet::new(),
            unknown_data: HashSet::new(),
            new_index_ids: Vec::new(),
            new_table_ids: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A replayer that continues a partial replay whose blocks up to its last are in `tx`.
    pub(crate) fn resume(
        name: &str,
        hints: &'h Hints,
        lenient_through: Option<u64>,
        tx: &Connection,
    ) -> rusqlite::Result<Self> {
        let mut r = Replayer::new(name, hints, lenient_through);
        let mut stmt =
            tx.prepare("SELECT table_id, name, status, version FROM tables ORDER BY created_seq")?;
        let rows = stmt.query_map([], |row| {
            Ok(TableRow {
                id: row.get(0)?,
                name: row.get(1)?,
                active: row.get::<_, String>(2)? == "ACTIVE",
                version: row.get::<_, i64>(3)? as u64,
            })
        })?;
        r.tables = rows.collect::<rusqlite::Result<_>>()?;
        let mut stmt = tx.prepare("SELECT index_id FROM indexes ORDER BY created_seq, rowid")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        let indexes: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
        // An import (the one resumer) has no old catalog: every id so far was made up.
        r.used_index_ids = indexes.iter().cloned().collect();
        r.new_index_ids = indexes;
        r.new_table_ids = r
            .tables
            .iter()
            .filter(|t| !hints.table_ids.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        let mut stmt = tx.prepare(
            "SELECT d.doc_id FROM documents d JOIN revisions v ON v.doc_id = d.doc_id AND v.version = d.version
             WHERE v.data IS NULL",
        )?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        r.unknown_data = rows.collect::<rusqlite::Result<_>>()?;
        Ok(r)
    }

    /// Applies one verified block (`hash` its block hash, `ion` its stored bytes).
    pub(crate) fn apply(
        &mut self,
        tx: &Connection,
        seq: u64,
        hash: &[u8],
        ion: &[u8],
        block: &Value,
        parsed: &[Statement],
    ) -> Result<(), Damage> {
        let name = self.name.clone();
        let name = name.as_str();
        let lenient = self.lenient_through.is_some_and(|t| seq <= t);
        let at = |m: String| fail(name, Some(seq), m);
        let e = |x: rusqlite::Error| fail(name, Some(seq), format!("cannot write: {x}"));
        let tx_id =
            text(block, "transactionId").ok_or_else(|| at("has no transactionId".into()))?;
        let ms = millis(block.field("blockTimestamp"))
            .ok_or_else(|| at("its blockTimestamp is not a UTC millisecond timestamp".into()))?;
        tx.prepare_cached(
            "INSERT INTO blocks (seq, tx_id, ts_ms, block_hash, ion) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| s.execute(params![seq as i64, tx_id, ms, hash, repack_block(ion)]))
        .map_err(e)?;
        let nodes =
            crate::journal::merkle::append(seq, hash.to_vec(), |level, idx| node(tx, level, idx))
                .map_err(|x| at(x.to_string()))?;
        for (level, idx, h) in nodes {
            tx.prepare_cached(super::journal::INSERT_NODE)
                .and_then(|mut s| s.execute(params![level, idx as i64, h]))
                .map_err(e)?;
        }

        let revisions: Vec<&Value> = match block.field("revisions").map(|r| &r.data) {
            Some(Data::List(r)) => r.iter().collect(),
            _ => Vec::new(),
        };
        let mut system: Vec<Hash> = revisions
            .iter()
            .filter(|r| r.field("metadata").is_none())
            .filter_map(|r| blob(r, "hash"))
            .collect();
        let mut take_system = |h: Hash| -> bool {
            match system.iter().position(|x| *x == h) {
                Some(i) => {
                    system.swap_remove(i);
                    true
                }
                None => false,
            }
        };

        // The catalog, in the order a commit applies it: new tables, status changes,
        // dropped indexes, new indexes.
        for st in parsed {
            let Statement::CreateTable { name: tname, .. } = st else {
                continue;
            };
            let known = |id: &String| self.tables.iter().any(|t| t.id == *id);
            let matched = self
                .hints
                .table_ids
                .iter()
                .filter(|id| !known(id))
                .find(|id| take_system(table_revision_hash(id, 0, tname, true, ms, &tx_id)))
                .cloned();
            let id = match matched {
                Some(id) => id,
                None if lenient => {
                    let from_old = self.hints.old_tables.iter().find(|r| {
                        r.len() == 3 && r[1] == *tname && r[2] == seq.to_string() && !known(&r[0])
                    });
                    let from_docs = || self.hints.doc_table(seq, tname, &known);
                    match from_old.map(|r| r[0].clone()).or_else(from_docs) {
                        Some(id) => id,
                        None => {
                            let id = crate::names::new_unique_id();
                            self.new_table_ids.push(id.clone());
                            id
                        }
                    }
                }
                None => {
                    return Err(at(format!(
                        "the id of table {tname} appears nowhere but in the hash of its creation \
                         (no document, old catalog row or UNDROP names it): it cannot be recovered"
                    )))
                }
            };
            tx.execute(
                &format!("INSERT INTO tables (table_id, name, status, created_seq, modified_seq, table_no) VALUES (?1, ?2, 'ACTIVE', ?3, ?3, {NEXT_TABLE_NO})"),
                params![id, tname, seq as i64],
            )
            .map_err(e)?;
            self.tables.push(TableRow {
                id,
                name: tname.clone(),
                active: true,
                version: 0,
            });
        }
        for st in parsed {
            let (found, active) = match st {
                Statement::DropTable { name: tname } => (
                    self.tables
                        .iter_mut()
                        .find(|t| t.active && t.name == *tname),
                    false,
                ),
                Statement::UndropTable { table_id } => (
                    self.tables
                        .iter_mut()
                        .find(|t| !t.active && t.id == *table_id),
                    true,
                ),
                _ => continue,
            };
            let t = found.ok_or_else(|| at(format!("`{st:?}` names no table of the catalog")))?;
            t.active = active;
            t.version += 1;
            if !take_system(table_revision_hash(
                &t.id, t.version, &t.name, active, ms, &tx_id,
            )) && !lenient
            {
                return Err(at(format!(
                    "table {}'s status change is not a revision of the block",
                    t.id
                )));
            }
            tx.execute(
                "UPDATE tables SET status = ?2, modified_seq = ?3, version = ?4 WHERE table_id = ?1",
                params![t.id, if active { "ACTIVE" } else { "INACTIVE" }, seq as i64, t.version as i64],
            )
            .map_err(e)?;
        }
        if !system.is_empty() && !lenient {
            return Err(at(format!(
                "{} table revisions of the block match no statement of it",
                system.len()
            )));
        }
        for st in parsed {
            if let Statement::DropIndex { index_id, table } = st {
                let known: Option<String> = tx
                    .query_row(
                        "SELECT table_id FROM indexes WHERE index_id = ?1",
                        [index_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(e)?;
                let (index_id, table_id) = match known {
                    Some(t) => (index_id.clone(), t),
                    None => self.dropped_index(tx, seq, index_id, table)?,
                };
                let index_id = &index_id;
                let index_no = index_no(tx, index_id).map_err(|x| at(x.to_string()))?;
                tx.execute("DELETE FROM index_entries WHERE index_no = ?1", [index_no])
                    .map_err(e)?;
                tx.execute("DELETE FROM indexes WHERE index_id = ?1", [index_id])
                    .map_err(e)?;
                tx.execute(
                    "UPDATE tables SET modified_seq = ?2 WHERE table_id = ?1",
                    params![table_id, seq as i64],
                )
                .map_err(e)?;
            }
        }
        for st in parsed {
            let Statement::CreateIndex {
                table: tname,
                field,
            } = st
            else {
                continue;
            };
            let table_id = self
                .tables
                .iter()
                .find(|t| t.active && t.name == *tname)
                .map(|t| t.id.clone())
                .ok_or_else(|| {
                    at(format!(
                        "CREATE INDEX on {tname}, which is not an active table"
                    ))
                })?;
            let used = &self.used_index_ids;
            let from_old = self.hints.old_indexes.iter().find(|r| {
                r.len() == 4
                    && r[1] == table_id
                    && r[2] == *field
                    && r[3] == seq.to_string()
                    && !used.contains(&r[0])
            });
            let index_id = match from_old.map(|r| r[0].clone()) {
                Some(id) => id,
                None => {
                    let id = crate::names::new_unique_id();
                    self.new_index_ids.push(id.clone());
                    id
                }
            };
            self.used_index_ids.insert(index_id.clone());
            tx.execute(
                &format!("INSERT INTO indexes (index_id, table_id, field, status, created_seq, index_no) VALUES (?1, ?2, ?3, 'ONLINE', ?4, {NEXT_INDEX_NO})"),
                params![index_id, table_id, field, seq as i64],
            )
            .map_err(e)?;
            index_documents(tx, &index_id, &table_id, field).map_err(|x| at(x.to_string()))?;
        }

        // Document revisions, in block order.
        for (position, rev) in revisions.iter().enumerate() {
            let Some(meta) = rev.field("metadata") else {
                continue;
            };
            let (Some(doc_id), Some(version)) = (text(meta, "id"), int(meta, "version")) else {
                return Err(at("a revision's metadata has no id or version".into()));
            };
            let table_id = block
                .field("transactionInfo")
                .and_then(|t| t.field("documents"))
                .and_then(|d| d.field(&doc_id))
                .and_then(|d| text(d, "tableId"))
                .ok_or_else(|| {
                    at(format!(
                        "document {doc_id} is not listed in transactionInfo.documents"
                    ))
                })?;
            let tx_ms = millis(meta.field("txTime")).ok_or_else(|| {
                at(format!(
                    "the txTime of document {doc_id} is not a UTC millisecond timestamp"
                ))
            })?;
            let rev_hash = blob(rev, "hash").ok_or_else(|| at("a revision has no hash".into()))?;
            // `Some(Some(data))`: written; `Some(None)`: redacted since; `None`: deleted.
            let data: Option<Option<&Value>> = match (rev.field("data"), blob(rev, "dataHash")) {
                (Some(d), _) => Some(Some(d)),
                (None, Some(_)) => Some(None),
                (None, None) => None,
            };
            let table_no: i64 = tx
                .prepare_cached(
                    "UPDATE tables SET modified_seq = ?2 WHERE table_id = ?1 RETURNING table_no",
                )
                .and_then(|mut s| {
                    s.query_row(params![table_id, seq as i64], |r| r.get(0))
                        .optional()
                })
                .map_err(e)?
                .ok_or_else(|| {
                    at(format!(
                        "document {doc_id} is written to table {table_id}, which does not exist"
                    ))
                })?;
            apply_write(tx, &doc_id, table_no, version, data, &mut self.unknown_data).map_err(e)?;
            // As a commit stores it: the transaction's id and time only where they are not
            // the block's (schema v8).
            let rev_tx_id = text(meta, "txId").unwrap_or_default();
            tx.prepare_cached(
                "INSERT INTO revisions (doc_id, version, table_no, seq, position, tx_time_ms, tx_id, hash, data, data_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    doc_id,
                    version,
                    table_no,
                    seq as i64,
                    position as i64,
                    (tx_ms != ms).then_some(tx_ms),
                    (rev_tx_id != tx_id).then_some(&rev_tx_id),
                    rev_hash,
                    // As a commit stores it: the data stays in the block; a redacted
                    // revision keeps its data hash.
                    data.flatten().map(|_| DATA_IN_BLOCK),
                    match data {
                        Some(None) => blob(rev, "dataHash"),
                        _ => None,
                    },
                ])
            })
            .map_err(e)?;
        }
        if let Some(Data::List(items)) = block
            .field("redactionInfo")
            .and_then(|r| r.field("revisions"))
            .map(|r| &r.data)
        {
            for r in items {
                tx.execute(
                    "UPDATE revisions SET redacted_seq = ?3, data = NULL WHERE doc_id = ?1 AND version = ?2",
                    params![text(r, "documentId"), int(r, "version"), seq as i64],
                )
                .map_err(e)?;
            }
        }
        Ok(())
    }

    /// The index a `DROP INDEX` of an id the replay does not know drops. Blocks never
    /// name index ids, so the indexes of the table whose ids were made up are the
    /// candidates; of several, the one created last is taken (and reported).
    fn dropped_index(
        &mut self,
        tx: &Connection,
        seq: u64,
        index_id: &str,
        table: &str,
    ) -> Result<(String, String), Damage> {
        let name = self.name.as_str();
        let at = |m: String| fail(name, Some(seq), m);
        let gone = || {
            at(format!(
                "DROP INDEX names index {index_id}, which does not exist"
            ))
        };
        let table_id = self
            .tables
            .iter()
            .find(|t| t.active && t.name == table)
            .map(|t| t.id.clone())
            .ok_or_else(gone)?;
        let candidates: Vec<(String, String)> = tx
            .prepare(
                "SELECT index_id, field FROM indexes WHERE table_id = ?1
                 ORDER BY created_seq DESC, rowid DESC",
            )
            .and_then(|mut s| {
                s.query_map([&table_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|x| at(format!("cannot read: {x}")))?
            .into_iter()
            .filter(|(id, _)| self.new_index_ids.contains(id))
            .collect();
        let (chosen, field) = candidates.first().cloned().ok_or_else(gone)?;
        if candidates.len() > 1 {
            self.notes.push(format!(
                "block {seq} drops index {index_id} of table {table}, which the journal does not \
                 tie to a field; taken to be the index on {field}, the last created of {}",
                candidates.len()
            ));
        }
        self.new_index_ids.retain(|id| *id != chosen);
        Ok((chosen, table_id))
    }

    /// Ends the replay: every current document's data must be known.
    pub(crate) fn finish(self, tx: &Connection) -> Result<Counts, Damage> {
        let name = self.name.as_str();
        if let Some(doc) = self.unknown_data.iter().next() {
            return Err(fail(
                name,
                None,
                format!("the current revision of document {doc} is redacted: its data is not in the journal"),
            ));
        }
        let count = |sql: &str| -> Result<u64, Damage> {
            tx.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| fail(name, None, format!("cannot read: {e}")))
        };
        Ok(Counts {
            documents: count("SELECT count(*) FROM documents")?,
            tables: count("SELECT count(*) FROM tables")?,
            indexes: count("SELECT count(*) FROM indexes")?,
            new_index_ids: self.new_index_ids,
            new_table_ids: self.new_table_ids,
            notes: self.notes,
        })
    }
}

fn write_new(
    old_path: &Path,
    new_path: &Path,
    name: &str,
    report: &mut dyn FnMut(u64, u64),
) -> Result<Counts, Damage> {
    let sqlerr = |block: Option<u64>| {
        move |e: rusqlite::Error| fail(name, block, format!("cannot write: {e}"))
    };
    let old = Connection::open_with_flags(old_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlerr(None))?;
    let blocks = blocks(&old).map_err(sqlerr(None))?;
    let meta = |key: &str| {
        old.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, String>(0)
        })
        .optional()
    };
    let strand: String = meta("strand_id")
        .map_err(sqlerr(None))?
        .ok_or_else(|| fail(name, None, "the file names no strand"))?;
    let imported_through: Option<u64> = meta("imported_through")
        .map_err(sqlerr(None))?
        .and_then(|t| t.parse().ok());
    let mut hints = Hints::from_old_file(&old);
    let mut decoded = Vec::with_capacity(blocks.len());
    for (seq, hash, ion) in blocks {
        let block =
            decode_block(&ion).map_err(|_| fail(name, Some(seq), "its Ion cannot be decoded"))?;
        let lenient = imported_through.is_some_and(|t| seq <= t);
        let parsed = block_statements(name, seq, &block, lenient)?;
        hints.scan(seq, &block, &parsed);
        decoded.push((seq, hash, ion, block, parsed));
    }
    drop(old);

    let mut conn = create_file(new_path, name, &strand, imported_through)?;
    let tx = conn.transaction().map_err(sqlerr(None))?;
    let mut replayer = Replayer::new(name, &hints, imported_through);
    let total = decoded.len() as u64;
    for (i, (seq, hash, ion, block, parsed)) in decoded.iter().enumerate() {
        replayer.apply(&tx, *seq, hash, ion, block, parsed)?;
        report(i as u64 + 1, total);
    }
    let counts = replayer.finish(&tx)?;
    tx.commit().map_err(sqlerr(None))?;
    drop(conn);
    std::fs::File::open(new_path)
        .and_then(|f| f.sync_all())
        .map_err(|x| {
            fail(
                name,
                None,
                format!("cannot sync {}: {x}", new_path.display()),
            )
        })?;
    Ok(counts)
}

/// One document revision's effect on the current state, as a commit applies it: the
/// documents row and the index entries of every index of its table.
/// A revision whose data was redacted since leaves the document's data unknown until a
/// later revision replaces it (only earlier revisions can be redacted).
fn apply_write(
    tx: &Connection,
    doc_id: &str,
    table_no: i64,
    version: i64,
    data: Option<Option<&Value>>,
    unknown_data: &mut HashSet<String>,
) -> rusqlite::Result<()> {
    let old: Option<Option<Value>> = tx
        .query_row(
            "SELECT data FROM documents WHERE doc_id = ?1",
            [doc_id],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .map(|bytes| {
            if unknown_data.contains(doc_id) {
                None
            } else {
                decode(&bytes).ok().and_then(|mut v| v.pop())
            }
        });
    let indexes: Vec<(i64, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT i.index_no, i.field FROM indexes i
             JOIN tables t ON t.table_id = i.table_id WHERE t.table_no = ?1",
        )?;
        let rows = stmt.query_map([table_no], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // A key: `Ok(None)` no key, `Ok(Some)` a key, `Err` unknown (redacted data).
    let key = |d: Option<Option<&Value>>, field: &str| -> Result<Option<Vec<u8>>, ()> {
        match d {
            None => Ok(None),
            Some(None) => Err(()),
            Some(Some(v)) => Ok(v.field(field).map(index_key)),
        }
    };
    for (index_no, field) in &indexes {
        let (a, b) = (
            key(old.as_ref().map(|o| o.as_ref()), field),
            key(data, field),
        );
        if a == b && a.is_ok() {
            continue;
        }
        if let Ok(Some(k)) = &a {
            tx.execute(
                "DELETE FROM index_entries WHERE index_no = ?1 AND key = ?2 AND doc_id = ?3",
                params![index_no, k, doc_id],
            )?;
        }
        if let Ok(Some(k)) = &b {
            tx.execute(
                "INSERT OR IGNORE INTO index_entries (index_no, key, doc_id) VALUES (?1, ?2, ?3)",
                params![index_no, k, doc_id],
            )?;
        }
    }
    match data {
        Some(d) => {
            // Unknown data is held as an empty struct (no field, so no index key) until a
            // later revision replaces it.
            let bytes = encode_one(d.unwrap_or(&Value::structure(Vec::<(String, Value)>::new())));
            tx.execute(
                "INSERT INTO documents (doc_id, table_no, version, data) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (doc_id) DO UPDATE SET version = excluded.version, data = excluded.data",
                params![doc_id, table_no, version, bytes],
            )?;
            if d.is_none() {
                unknown_data.insert(doc_id.to_string());
            } else {
                unknown_data.remove(doc_id);
            }
        }
        None => {
            tx.execute("DELETE FROM documents WHERE doc_id = ?1", [doc_id])?;
            unknown_data.remove(doc_id);
        }
    }
    Ok(())
}
