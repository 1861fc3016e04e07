//! The PostgreSQL backend (`--storage postgres://…`): the catalog in the schema
//! `qldb_catalog`, each ledger in a schema of its own, through a small pool of blocking
//! connections (the `postgres` crate, tokio-postgres's blocking client). Several qldb-local
//! processes may serve one database: each commit takes its ledger's row lock (`meta`'s
//! strand row, `FOR UPDATE`) inside the PostgreSQL transaction that validates and writes it,
//! so commits are serialized per ledger across processes and the journal stays one chain;
//! within a process, commits that wait are batched into one PostgreSQL transaction (group
//! commit). A commit is acknowledged only after PostgreSQL's COMMIT returns.
//!
//! Why one schema per ledger: a ledger's tables keep the SQLite file's shape (so `migrate`
//! copies rows as they are), a ledger is removed with one `DROP SCHEMA … CASCADE`, a late
//! handle of a removed ledger can never touch a successor of the same name (the successor
//! gets a new schema), and no query needs a ledger column.

pub mod catalog;
pub mod ledger;
pub mod migrate;
pub mod rebuild;
pub mod schema;
pub mod tls;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::postgres::types::ToSql;
use ::postgres::{Client, Row, Statement};

use super::{Backend, CatalogStore, LedgerStore, Result, StorageError};
use crate::names::LedgerName;

pub use catalog::PgCatalog;
pub use ledger::PgLedger;

/// Idle connections kept; more are opened while needed and closed after.
const IDLE_CONNECTIONS: usize = 16;

/// Prepared statements kept per connection (the statements of every ledger it served).
const STATEMENT_CACHE: usize = 1024;

/// One connection with its prepared statements.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query(&s, params)?)
    }

    pub fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let s = self.statement(sql)?;
        Ok(self.client.query_opt(&s, params)?)
    }

    pub fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        let s = self.statement(sql)?;
        Ok(self.client.query_one(&s, params)?)
    }

    /// Runs `sql` and hands `f` its rows as they arrive (never all of them in memory).
    pub fn for_each_row(&mut self, sql: &str, f: &mut dyn FnMut(&Row) -> Result<()>) -> Result<()> {
        use ::postgres::fallible_iterator::FallibleIterator as _;
        let s = self.statement(sql)?;
        let mut rows = self
            .client
            .query_raw(&s, Vec::<&(dyn ToSql + Sync)>::new())?;
        while let Some(r) = rows.next()? {
            f(&r)?;
        }
        Ok(())
    }

    pub fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let s = self.statement(sql)?;
        Ok(self.client.execute(&s, params)?)
    }

    /// Runs statements without parameters (simple query protocol).
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        Ok(self.client.batch_execute(sql)?)
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Closes connections on a thread of their own: a blocking client closes through its own
/// runtime, which must not run inside the server's async threads.
fn close(conns: Vec<PgConn>) {
    if conns.is_empty() {
        return;
    }
    // Should no thread start, the connections are let go without closing (the server
    // notices the socket end): dropping them here could be on an async thread.
    let holder = std::sync::Arc::new(std::sync::Mutex::new(Some(conns)));
    let theirs = holder.clone();
    let started = std::thread::Builder::new()
        .name("pg-close".into())
        .spawn(move || drop(theirs.lock().map(|mut c| c.take())));
    if started.is_err() {
        if let Some(conns) = holder.lock().ok().and_then(|mut c| c.take()) {
            std::mem::forget(conns);
        }
    }
}

/// Where the database is, and the idle connections to it.
pub struct Pool {
    config: ::postgres::Config,
    tls: tls::RustlsConnect,
    state: Mutex<PoolState>,
    /// Signalled when a connection is returned or closed.
    freed: std::sync::Condvar,
}

/// The idle connections, and how many connections exist (idle or in use).
#[derive(Default)]
struct PoolState {
    idle: Vec<PgConn>,
    open: usize,
}

/// The most connections one server opens (PostgreSQL's default `max_connections` is 100,
/// and several servers may share it).
const MAX_CONNECTIONS: usize = 64;

/// How long a request waits for a connection when all are in use.
const CONNECTION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Drop for Pool {
    fn drop(&mut self) {
        close(std::mem::take(&mut self.lock().idle));
    }
}

impl Pool {
    fn new(config: ::postgres::Config, tls: tls::RustlsConnect) -> Self {
        Pool {
            config,
            tls,
            state: Mutex::new(PoolState::default()),
            freed: std::sync::Condvar::new(),
        }
    }

    /// A new connection, outside the pool's count.
    fn connect(&self) -> Result<PgConn> {
        Ok(PgConn {
            client: self.config.connect(self.tls.clone())?,
            statements: HashMap::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes connections that were counted as open.
    fn discard(&self, conns: Vec<PgConn>) {
        let n = conns.len();
        close(conns);
        self.lock().open -= n;
        self.freed.notify_all();
    }

    /// An idle connection, or a new one; waits while [`MAX_CONNECTIONS`] are in use, unless
    /// this thread already holds one (a statement's snapshot, then a read beside it): a
    /// second connection is never waited for, so holders never wait on each other.
    pub fn get(&self) -> Result<Pooled<'_>> {
        let nested = HELD.with(|h| h.get()) > 0;
        let deadline = std::time::Instant::now() + CONNECTION_WAIT;
        let mut state = self.lock();
        let conn = loop {
            if let Some(c) = state.idle.pop() {
                if !c.is_closed() {
                    break Some(c);
                }
                state.open -= 1;
                drop(state);
                close(vec![c]);
                state = self.lock();
                continue;
            }
            if state.open < MAX_CONNECTIONS || nested {
                state.open += 1;
                break None;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(StorageError::Unavailable(format!(
                    "all {MAX_CONNECTIONS} connections to PostgreSQL are busy"
                )));
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(state);
        let conn = match conn {
            Some(c) => c,
            None => match self.connect() {
                Ok(conn) => conn,
                Err(e) => {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                    return Err(e);
                }
            },
        };
        HELD.with(|h| h.set(h.get() + 1));
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
            in_transaction: false,
        })
    }
}

thread_local! {
    /// Pooled connections this thread holds.
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A connection taken from the pool, returned when dropped (a transaction left open is
/// rolled back first; a broken connection is closed instead).
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<PgConn>,
    in_transaction: bool,
}

impl Pooled<'_> {
    /// Begins a transaction (`how`: e.g. `ISOLATION LEVEL REPEATABLE READ READ ONLY`).
    /// `BEGIN how` (which may add statements: `; SET LOCAL …`). Marked open first, so that
    /// a failure after BEGIN still rolls back when the connection is returned.
    pub fn begin(&mut self, how: &str) -> Result<()> {
        self.in_transaction = true;
        self.batch(&format!("BEGIN {how}"))
    }

    pub fn commit(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.batch("COMMIT")
    }

    pub fn rollback(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.batch("ROLLBACK")
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = PgConn;
    fn deref(&self) -> &PgConn {
        self.conn.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut PgConn {
        self.conn.as_mut().expect("held until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        if self.in_transaction && conn.batch("ROLLBACK").is_err() {
            return self.pool.discard(vec![conn]);
        }
        if conn.is_closed() {
            // The server went away (a restart, a failover): the idle connections are most
            // likely cut too, so none of them is handed out again.
            let mut stale = std::mem::take(&mut self.pool.lock().idle);
            stale.push(conn);
            return self.pool.discard(stale);
        }
        let mut state = self.pool.lock();
        if state.idle.len() < IDLE_CONNECTIONS {
            state.idle.push(conn);
            drop(state);
            self.pool.freed.notify_one();
        } else {
            drop(state);
            self.pool.discard(vec![conn]);
        }
    }
}

/// A session-level advisory lock (a job's lease, a server's presence, a rebuild's exclusive
/// hold): its own connection, closed (off the async threads) when dropped.
pub struct HeldLock(Mutex<Option<PgConn>>);

/// A session-level lock ends with its connection: once that is closed, the lock may be
/// another's.
impl super::JobLease for HeldLock {
    fn lost(&self) -> bool {
        // A round trip: an idle blocking client notices a cut connection only when used.
        let mut conn = self.0.lock().unwrap_or_else(|p| p.into_inner());
        conn.as_mut().is_none_or(|c| {
            c.client
                .is_valid(std::time::Duration::from_secs(10))
                .is_err()
        })
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let conn = self.0.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        close(conn.into_iter().collect());
    }
}

/// The advisory lock of a database in service: every serving process holds it shared for
/// its lifetime, `rebuild` holds it exclusively while it works, so neither runs beside the
/// other.
pub(crate) const IN_SERVICE: &str = "7243013, 0";

/// The `application_name` of a serving process's connections.
const SERVING: &str = "qldb-local serve";

/// Ledgers and the catalog in one PostgreSQL database.
pub struct PgBackend {
    pool: Arc<Pool>,
    /// The URL without its password, for messages.
    shown: String,
    /// A serving process's shared hold of [`IN_SERVICE`].
    _in_service: Option<Box<HeldLock>>,
}

impl PgBackend {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or a key=value
    /// string) and brings the catalog schema up to date. Fails, with one line saying why,
    /// when the database cannot be reached, refuses the credentials, lacks the privileges
    /// to create schemas, or holds a catalog of a newer version.
    ///
    /// `relaxed_durability` (`--durability relaxed`) turns off `synchronous_commit` for
    /// qldb-local's connections: PostgreSQL then acknowledges a commit before its WAL is
    /// flushed (a crash of the database server may lose the last commits, never corrupt).
    pub fn connect(url: &str, relaxed_durability: bool) -> Result<Self> {
        Self::connect_as(url, relaxed_durability, "qldb-local")
    }

    /// [`PgBackend::connect`], naming the connections `application_name` (unless the URL
    /// names them) as `pg_stat_activity` shows them.
    fn connect_as(url: &str, relaxed_durability: bool, application: &str) -> Result<Self> {
        let options = tls::split_options(url);
        let mut config: ::postgres::Config = options.url.parse().map_err(|e| {
            StorageError::Unavailable(format!("the --storage URL is not a PostgreSQL URL: {e}"))
        })?;
        let tls = tls::connector(options.verify, options.root_cert.as_deref())
            .map_err(StorageError::Unavailable)?;
        // A request fails instead of hanging on an unreachable database, and a peer that
        // died holding a ledger's row lock is noticed (keepalives). A commit's transaction
        // also sets an idle timeout ([`ledger`]).
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name(application);
        }
        // Notices (`… already exists, skipping` from the idempotent schema set-up) are not
        // news; warnings and errors still come. Every statement is a prepared, fixed-shape
        // lookup: planned once per connection (a custom plan per execution would cost more
        // than the execution, for the OCC check's array parameters above all).
        // (`plan_cache_mode` needs PostgreSQL 12 or newer.) The URL's own `options` come
        // last, so that they win.
        let mut options =
            "-c client_min_messages=warning -c plan_cache_mode=force_generic_plan".to_string();
        if relaxed_durability {
            options.push_str(" -c synchronous_commit=off");
        }
        if let Some(theirs) = config.get_options() {
            options = format!("{options} {theirs}");
        }
        config.options(options.trim());
        let shown = show_url(&config);
        let backend = PgBackend {
            pool: Arc::new(Pool::new(config, tls)),
            shown,
            _in_service: None,
        };
        let mut conn = backend.pool.get().map_err(|e| backend.unreachable(e))?;
        conn.begin("").map_err(|e| backend.unreachable(e))?;
        let migrated = schema::migrate(&mut conn, schema::CATALOG, schema::CATALOG_MIGRATIONS)
            .and_then(|()| conn.commit());
        drop(conn);
        migrated.map_err(|e| match e {
            e @ StorageError::SchemaTooNew { .. } => e,
            e => StorageError::Unavailable(format!(
                "cannot set up qldb-local's schema in PostgreSQL at {}: {} (the user needs \
                     the CREATE privilege on the database)",
                backend.shown,
                describe(&e)
            )),
        })?;
        Ok(backend)
    }

    /// [`PgBackend::connect`] for a serving process: it also holds the database's
    /// in-service lock shared, and refuses while a `rebuild` holds it.
    pub fn serve(url: &str, relaxed_durability: bool) -> Result<Self> {
        let mut backend = Self::connect_as(url, relaxed_durability, SERVING)?;
        let held = backend
            .hold_lock(&format!("pg_try_advisory_lock_shared({IN_SERVICE})"), &[])
            .map_err(|e| backend.unreachable(e))?;
        backend._in_service = Some(Box::new(held.ok_or_else(|| {
            StorageError::Unavailable(format!(
                "a qldb-local rebuild is running on PostgreSQL at {}: wait for it to finish",
                backend.shown
            ))
        })?));
        Ok(backend)
    }

    /// The database's in-service lock, exclusively: none while any server runs on it (a
    /// server holds it shared; one whose lock connection was cut, by a restart of
    /// PostgreSQL, is still seen by its other connections).
    pub fn hold_exclusive(&self) -> Result<Option<HeldLock>> {
        let Some(held) = self.hold_lock(&format!("pg_try_advisory_lock({IN_SERVICE})"), &[])?
        else {
            return Ok(None);
        };
        // A server that just stopped may take a moment to leave the list.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let serving: i64 = self
                .pool
                .get()?
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = $1",
                    &[&SERVING],
                )?
                .get(0);
            if serving == 0 {
                return Ok(Some(held));
            }
            if std::time::Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Runs `try_lock` (a `pg_try_advisory_lock…` call) on a connection of its own, kept
    /// while the lock is held.
    fn hold_lock(
        &self,
        try_lock: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<HeldLock>> {
        let mut conn = self.pool.connect()?;
        let got: bool = conn
            .query_one(&format!("SELECT {try_lock}"), params)?
            .get(0);
        if !got {
            close(vec![conn]);
            return Ok(None);
        }
        Ok(Some(HeldLock(Mutex::new(Some(conn)))))
    }

    fn unreachable(&self, e: StorageError) -> StorageError {
        StorageError::Unavailable(format!(
            "cannot connect to PostgreSQL at {}: {}",
            self.shown,
            describe(&e)
        ))
    }

    /// The schema that holds ledger `name`'s data.
    pub(crate) fn schema_named(&self, name: &LedgerName) -> Result<String> {
        let mut conn = self.pool.get()?;
        conn.query_opt(
            "SELECT schema_name FROM qldb_catalog.ledger_data WHERE name = $1",
            &[&name.as_str()],
        )?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            StorageError::Corrupt(format!(
                "ledger {} has no data in PostgreSQL",
                name.as_str()
            ))
        })
    }
}

/// A PostgreSQL error in one line: the server's message (and detail) when it sent one.
fn describe(e: &StorageError) -> String {
    match e {
        StorageError::Postgres(pg) => match pg.as_db_error() {
            Some(db) => match db.detail() {
                Some(d) => format!("{} ({d})", db.message()),
                None => db.message().to_string(),
            },
            None => {
                let mut text = pg.to_string();
                let mut source = std::error::Error::source(pg);
                while let Some(s) = source {
                    text = format!("{text}: {s}");
                    source = s.source();
                }
                text
            }
        },
        e => e.to_string(),
    }
}

/// `user@host:port/database` of a `--storage` URL (never its password).
pub fn shown_url(url: &str) -> String {
    match tls::split_options(url).url.parse::<::postgres::Config>() {
        Ok(c) => show_url(&c),
        Err(_) => "(not a PostgreSQL URL)".into(),
    }
}

/// `user@host:port/database` of a config (never its password).
fn show_url(c: &::postgres::Config) -> String {
    use ::postgres::config::Host;
    let host = match c.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

impl Backend for PgBackend {
    fn open_catalog(&self) -> Result<Box<dyn CatalogStore>> {
        Ok(Box::new(PgCatalog::new(self.pool.clone())))
    }

    fn create_ledger(
        &self,
        name: &LedgerName,
        strand_id: &str,
        now_ms: i64,
    ) -> Result<Arc<dyn LedgerStore>> {
        Ok(Arc::new(PgLedger::create(
            self.pool.clone(),
            name,
            strand_id,
            now_ms,
        )?))
    }

    fn open_ledger(&self, name: &LedgerName) -> Result<Arc<dyn LedgerStore>> {
        let schema = self.schema_named(name)?;
        Ok(Arc::new(PgLedger::open(self.pool.clone(), name, schema)?))
    }

    /// A session-level advisory lock on a connection of its own, held while the lease
    /// lives; if the server holding it dies, its connection ends and the lock with it.
    fn job_lease(&self, job_id: &str) -> Result<Option<Box<dyn super::JobLease>>> {
        // A lease another server holds is seen on a pooled connection, without opening one
        // of its own (servers look for left jobs every few seconds).
        let held: bool = self
            .pool
            .get()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks
                    WHERE locktype = 'advisory' AND granted AND classid = 7243012
                      AND objid = hashtext($1)::oid AND objsubid = 2
                      AND database = (SELECT oid FROM pg_database
                                      WHERE datname = current_database()))",
                &[&job_id],
            )?
            .get(0);
        if held {
            return Ok(None);
        }
        Ok(self
            .hold_lock("pg_try_advisory_lock(7243012, hashtext($1))", &[&job_id])?
            .map(|held| Box::new(held) as Box<dyn super::JobLease>))
    }

    fn remove_orphans(&self, catalog: &dyn CatalogStore) -> Result<()> {
        let rows = self.pool.get()?.query(
            &format!(
                "SELECT name, schema_name FROM qldb_catalog.ledger_data
                 WHERE created_at < now() - interval '{}'",
                ledger::ORPHAN_AGE
            ),
            &[],
        )?;
        for r in rows {
            let (name, schema): (String, String) = (r.get(0), r.get(1));
            if catalog.ledger(&name)?.is_none() {
                ledger::drop_data(&self.pool, &name, &schema)?;
            }
        }
        Ok(())
    }
}
