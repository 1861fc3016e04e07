//! `qldb-local import`: makes a ledger from a QLDB journal export, hash for hash.
//!
//! The export (journal-and-verification.md §5: completed manifests listing data objects of
//! hash-chained blocks) is read from S3 or from a local copy of it (`aws s3 sync`). Every
//! block is checked as AWS's verifiers check it before anything is written: contiguous from
//! sequence 0, each block's hashes recomputed and linked to the one before. The blocks are
//! then stored exactly as exported and every derived table is replayed from them, as
//! `rebuild` does, in a work file under `<data-dir>/import-work/<ledger>/`; the work file
//! is committed every few thousand blocks, so an interrupted import continues where it
//! stopped when run again. Only a ledger that verifies completely is moved into place and
//! entered in the catalog, so the new ledger's digest, blocks, revisions and proofs are the
//! exported ones and new transactions extend the same chain.
//!
//! QLDB's own system revisions (`{hash}` alone) cannot be recomputed, so blocks imported
//! are recorded (`imported_through` in the ledger's meta table): there a system revision
//! that matches no table change is accepted, and a table whose id appears only in such a
//! hash takes its id from its documents, or a new one (reported).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::ion::binary::{decode, encode_one};
use crate::ion::{Data, Value};
use crate::journal::hash::Hash;
use crate::names::LedgerName;
use crate::rebuild::{block_statements, create_file, set_imported_through, Hints, Replayer};
use crate::storage::sqlite::catalog::{ledgers_dir, Catalog};
use crate::storage::LedgerRecord;
use crate::verify::{check_block, text_field, verify_file, Damage, Scope, Verified};

/// Where the export is and what to make of it.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub data_dir: PathBuf,
    pub ledger: String,
    /// `s3://bucket/prefix` or a local directory.
    pub from: String,
    pub region: String,
    pub account_id: String,
    pub permissions_mode: String,
    pub s3_endpoint: Option<String>,
    pub s3_path_style: bool,
    /// Progress on standard error (a line that updates in place on a terminal).
    pub progress: bool,
    /// Import the data only, into a new chain with new hashes (for JSON exports, whose
    /// hashes cannot be recomputed).
    pub rehash: bool,
}

impl ImportOptions {
    /// Options with the defaults of the command line: us-east-1, account 000000000000,
    /// STANDARD permissions, S3 from the environment, no progress, no rehash.
    pub fn new(data_dir: impl Into<PathBuf>, ledger: &str, from: impl Into<String>) -> Self {
        ImportOptions {
            data_dir: data_dir.into(),
            ledger: ledger.to_string(),
            from: from.into(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            permissions_mode: "STANDARD".into(),
            s3_endpoint: None,
            s3_path_style: true,
            progress: false,
            rehash: false,
        }
    }
}

/// What an import made.
#[derive(Debug)]
pub struct Imported {
    pub verified: Verified,
    pub documents: u64,
    pub tables: u64,
    pub indexes: u64,
    pub objects: usize,
    pub strand: String,
    /// The import continued an interrupted one whose blocks up to here were written.
    pub resumed_after: Option<u64>,
    /// Ids the export does not hold (tables created without documents, indexes).
    pub new_table_ids: Vec<String>,
    pub new_index_ids: Vec<String>,
    /// Guesses the journal forced, in words.
    pub notes: Vec<String>,
    /// Made with `rehash`: a new chain, not the exported one.
    pub rehashed: bool,
}

/// Blocks written per work-file transaction: what an interruption can cost.
const BLOCKS_PER_COMMIT: u64 = 5_000;

fn fail(ledger: &str, block: Option<u64>, message: impl Into<String>) -> Damage {
    Damage {
        ledger: ledger.to_string(),
        block,
        message: message.into(),
    }
}

/// Imports the export at `opts.from` as ledger `opts.ledger` of `opts.data_dir` (no server
/// may be running on the data dir).
pub fn import(opts: &ImportOptions) -> Result<Imported, Damage> {
    let name = opts.ledger.as_str();
    let err = |m: String| fail(name, None, m);
    LedgerName::parse(name).map_err(|v| err(format!("not a ledger name: {}", v.0)))?;
    let mut catalog = Catalog::open_as(
        &opts.data_dir,
        &format!("qldb-local import of ledger {name}"),
    )
    .map_err(|e| err(format!("{e}; stop it first")))?;
    if catalog
        .ledger(name)
        .map_err(|e| err(e.to_string()))?
        .is_some()
    {
        return Err(err(format!(
            "a ledger named {name} already exists in {}; import into a new name",
            opts.data_dir.display()
        )));
    }

    let source = Source::open(opts).map_err(|m| err(format!("cannot read {}: {m}", opts.from)))?;
    let objects = source.objects(name)?;
    let total = objects.last().map_or(0, |o| o.last + 1);

    let work = opts.data_dir.join("import-work").join(name);
    // A work dir holding blocks of an interrupted import continues only from the same export.
    let source_file = work.join("source");
    let earlier = std::fs::read_to_string(&source_file).ok();
    if earlier.as_deref().is_some_and(|s| s.trim() != opts.from) {
        if work.join("ledger.sqlite").exists() {
            return Err(err(format!(
                "an interrupted import of {name} from {} is in {}: run it again with that --from, \
                 or remove that directory to start over",
                earlier.unwrap_or_default().trim(),
                work.display()
            )));
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    std::fs::create_dir_all(&work)
        .and_then(|()| std::fs::write(&source_file, &opts.from))
        .map_err(|e| err(format!("cannot write {}: {e}", source_file.display())))?;
    let store = Store {
        source: &source,
        cache: matches!(source, Source::S3 { .. }).then(|| work.join("objects")),
        ledger: name,
    };

    if opts.rehash {
        return rehash::import(opts, &mut catalog, &store, &objects, total, &work);
    }

    // Pass 1: every block checked, in order, before anything is written.
    let mut progress = Progress::new(opts.progress, "checking", total);
    let mut hints = Hints::default();
    let mut hashes: Vec<Hash> = Vec::new();
    let mut strand = String::new();
    let mut created_ms = 0i64;
    for object in &objects {
        store.each_block(object, |seq, block| {
            let at = |m: String| fail(name, Some(seq), m);
            if seq < hashes.len() as u64 {
                // An object of an overlapping export: the same block, or a different journal.
                let again = check_block(block, seq, &strand, prev_of(&hashes, seq))
                    .map_err(|m| at(format!("in {}: {m}", object.key)))?;
                if again.hash != hashes[seq as usize] {
                    return Err(at(format!(
                        "differs between two exports ({} holds another block)",
                        object.key
                    )));
                }
                return Ok(());
            }
            if seq > hashes.len() as u64 {
                return Err(fail(
                    name,
                    Some(hashes.len() as u64),
                    format!("is missing: no completed export holds it (the next block is {seq})"),
                ));
            }
            if matches!(
                block.field("blockHash").map(|v| &v.data),
                Some(Data::String(_))
            ) {
                return Err(at(format!(
                    "{} is a JSON export: JSON loses Ion's types, so no hash of it can be \
                     recomputed; export the journal as ION_TEXT or ION_BINARY, or import its data \
                     only, into a new chain, with --rehash",
                    object.key
                )));
            }
            if seq == 0 {
                strand = block
                    .field("blockAddress")
                    .and_then(|a| text_field(a, "strandId"))
                    .ok_or_else(|| at("has no blockAddress.strandId".into()))?;
                created_ms =
                    crate::rebuild::millis(block.field("blockTimestamp")).ok_or_else(|| {
                        at("its blockTimestamp is not a UTC millisecond timestamp".into())
                    })?;
            }
            let checked = check_block(block, seq, &strand, prev_of(&hashes, seq))
                .map_err(|m| at(format!("{m} (in {})", object.key)))?;
            let parsed = block_statements(name, seq, block, true)?;
            hints.scan(seq, block, &parsed);
            hashes.push(checked.hash);
            progress.step(seq + 1);
            Ok(())
        })?;
    }
    progress.done(hashes.len() as u64);
    if hashes.is_empty() {
        return Err(err(format!("{} holds no blocks", opts.from)));
    }
    let tip = hashes.len() as u64 - 1;

    // Pass 2: the blocks and everything derived from them, into the work file.
    let partial = work.join("ledger.sqlite");
    let (conn, resumed_after) = if partial.exists() {
        let conn = Connection::open(&partial)
            .map_err(|e| err(format!("cannot open {}: {e}", partial.display())))?;
        let (own_strand, last): (String, Option<i64>) = conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'strand_id'), (SELECT max(seq) FROM blocks)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| err(format!("cannot read {}: {e}", partial.display())))?;
        let last = last.map(|l| l as u64);
        let same = own_strand == strand
            && last.is_none_or(|l| {
                l <= tip
                    && conn
                        .query_row(
                            "SELECT block_hash FROM blocks WHERE seq = ?1",
                            [l as i64],
                            |r| r.get::<_, Vec<u8>>(0),
                        )
                        .is_ok_and(|h| h == hashes[l as usize])
            });
        if !same {
            return Err(err(format!(
                "the interrupted import in {} is of another journal; remove that directory to start over",
                work.display()
            )));
        }
        (conn, last)
    } else {
        let tmp = work.join("ledger.sqlite.new");
        let _ = crate::storage::sqlite::ledger_db::remove_files(&tmp);
        let conn = create_file(&tmp, name, &strand, None)?;
        drop(conn);
        std::fs::rename(&tmp, &partial)
            .map_err(|e| err(format!("cannot create {}: {e}", partial.display())))?;
        let conn = Connection::open(&partial)
            .map_err(|e| err(format!("cannot open {}: {e}", partial.display())))?;
        (conn, None)
    };
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| err(e.to_string()))?;
    let lenient = Some(u64::MAX);
    let mut replayer = match resumed_after {
        Some(_) => Replayer::resume(name, &hints, lenient, &conn)
            .map_err(|e| err(format!("cannot continue the interrupted import: {e}")))?,
        None => Replayer::new(name, &hints, lenient),
    };
    let first = resumed_after.map_or(0, |l| l + 1);
    let mut progress = Progress::new(opts.progress, "writing", total);
    let sqlerr = |e: rusqlite::Error| err(format!("cannot write {}: {e}", partial.display()));
    // Batches of blocks, each one transaction; a failure drops the connection, which rolls
    // back the open batch.
    conn.execute_batch("BEGIN").map_err(sqlerr)?;
    let mut pending = 0u64;
    // Blocks before `next` are written (or held twice by overlapping exports).
    let mut next = first;
    for object in objects.iter().filter(|o| o.last >= first) {
        store.each_block(object, |seq, block| {
            if seq < next {
                return Ok(());
            }
            next = seq + 1;
            let parsed = block_statements(name, seq, block, true)?;
            replayer.apply(
                &conn,
                seq,
                &hashes[seq as usize],
                &encode_one(block),
                block,
                &parsed,
            )?;
            pending += 1;
            if pending == BLOCKS_PER_COMMIT {
                conn.execute_batch("COMMIT; BEGIN").map_err(sqlerr)?;
                pending = 0;
            }
            progress.step(seq + 1);
            Ok(())
        })?;
    }
    let counts = replayer.finish(&conn)?;
    set_imported_through(&conn, tip).map_err(sqlerr)?;
    conn.execute_batch("COMMIT").map_err(sqlerr)?;
    progress.done(tip + 1);
    drop(conn);
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| err(format!("cannot sync {}: {e}", partial.display())))?;

    let verified = install(opts, &mut catalog, &partial, created_ms, &work)?;
    Ok(Imported {
        verified,
        documents: counts.documents,
        tables: counts.tables,
        indexes: counts.indexes,
        objects: objects.len(),
        strand,
        resumed_after,
        new_table_ids: counts.new_table_ids,
        new_index_ids: counts.new_index_ids,
        notes: counts.notes,
        rehashed: false,
    })
}

/// Verifies the finished work file completely, moves it into the ledgers directory, enters
/// the ledger in the catalog and removes the work dir.
fn install(
    opts: &ImportOptions,
    catalog: &mut Catalog,
    partial: &Path,
    created_ms: i64,
    work: &Path,
) -> Result<Verified, Damage> {
    let name = opts.ledger.as_str();
    let err = |m: String| fail(name, None, m);
    let verified = verify_file(partial, name, Scope::Everything).map_err(|d| Damage {
        message: format!("the imported ledger does not verify: {}", d.message),
        ..d
    })?;
    let dir = ledgers_dir(&opts.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{name}.sqlite"));
    // A file without a catalog row is the remains of a create that crashed.
    crate::storage::sqlite::ledger_db::remove_files(&path).map_err(|e| err(e.to_string()))?;
    std::fs::rename(partial, &path).map_err(|e| {
        err(format!(
            "cannot move the ledger into {}: {e}",
            dir.display()
        ))
    })?;
    let _ = std::fs::File::open(&dir).and_then(|d| d.sync_all());
    let record = LedgerRecord {
        ord: 0,
        name: name.to_string(),
        arn: format!(
            "arn:aws:qldb:{}:{}:ledger/{name}",
            opts.region, opts.account_id
        ),
        permissions_mode: opts.permissions_mode.clone(),
        deletion_protection: true,
        kms_key_arn: None,
        created_ms,
        active_at_ms: created_ms,
        kms_updated_ms: None,
        deleting_since_ms: None,
        gone_at_ms: None,
    };
    catalog
        .insert_ledger(&record, &BTreeMap::new())
        .map_err(|e| err(format!("cannot enter the ledger in the catalog: {e}")))?;
    let _ = std::fs::remove_dir_all(work);
    Ok(verified)
}

fn prev_of(hashes: &[Hash], seq: u64) -> &[u8] {
    const ZERO: [u8; 32] = [0; 32];
    match seq {
        0 => &ZERO,
        s => &hashes[s as usize - 1],
    }
}

/// One data object a completed manifest lists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Object {
    first: u64,
    last: u64,
    /// Its S3 key, as the manifest lists it.
    key: String,
    /// The manifest that lists it.
    manifest: String,
}

/// `{strandId}.{first}-{last}.{ext}`: the block range of a data object's key.
fn key_range(key: &str) -> Option<(String, u64, u64)> {
    let file = key.rsplit('/').next()?;
    let mut parts = file.rsplitn(3, '.');
    let _ext = parts.next()?;
    let (first, last) = parts.next()?.split_once('-')?;
    let strand = parts.next()?;
    Some((strand.to_string(), first.parse().ok()?, last.parse().ok()?))
}

/// Ion text, Ion binary, or JSON (which Ion text reads) values.
fn parse_values(bytes: &[u8]) -> Result<Vec<Value>, String> {
    if bytes.starts_with(&[0xE0, 0x01, 0x00, 0xEA]) {
        decode(bytes).map_err(|e| format!("is not valid Ion binary: {e}"))
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| "is neither Ion binary nor text")?;
        crate::ion::text::from_text(text).map_err(|e| format!("is not valid Ion text: {e}"))
    }
}

/// Where the export is read from.
enum Source {
    Dir(PathBuf),
    S3 {
        rt: tokio::runtime::Runtime,
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

impl Source {
    fn open(opts: &ImportOptions) -> Result<Source, String> {
        if let Some(rest) = opts.from.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("an S3 location is s3://bucket/prefix".into());
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let sdk = rt.block_on(crate::aws::sdk_config(&opts.region));
            let client =
                crate::aws::s3_client(&sdk, opts.s3_endpoint.as_deref(), opts.s3_path_style);
            Ok(Source::S3 {
                rt,
                client,
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        } else {
            let dir = PathBuf::from(&opts.from);
            if !dir.is_dir() {
                return Err("no such directory (give a directory or s3://bucket/prefix)".into());
            }
            Ok(Source::Dir(dir))
        }
    }

    /// Every key (a path relative to the directory, with `/`) under the location.
    fn keys(&self) -> Result<Vec<String>, String> {
        match self {
            Source::Dir(dir) => {
                let mut out = Vec::new();
                let mut stack = vec![dir.clone()];
                while let Some(d) = stack.pop() {
                    let entries =
                        std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
                    for entry in entries {
                        let path = entry.map_err(|e| e.to_string())?.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if let Ok(rel) = path.strip_prefix(dir) {
                            let parts: Vec<String> = rel
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                                .collect();
                            out.push(parts.join("/"));
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
            Source::S3 {
                rt,
                client,
                bucket,
                prefix,
            } => rt.block_on(async {
                let mut out = Vec::new();
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        format!(
                            "listing s3://{bucket}/{prefix}: {}",
                            aws_sdk_s3::error::DisplayErrorContext(&e)
                        )
                    })?;
                    out.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(String::from)),
                    );
                }
                Ok(out)
            }),
        }
    }

    /// An object's bytes; `None` if it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Source::Dir(dir) => match std::fs::read(dir.join(key)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{key}: {e}")),
            },
            Source::S3 {
                rt, client, bucket, ..
            } => rt.block_on(async {
                match client.get_object().bucket(bucket).key(key).send().await {
                    Ok(out) => out
                        .body
                        .collect()
                        .await
                        .map(|b| Some(b.into_bytes().to_vec()))
                        .map_err(|e| format!("reading s3://{bucket}/{key}: {e}")),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(format!(
                        "s3://{bucket}/{key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    )),
                }
            }),
        }
    }

    /// The data objects of every completed export under the location, in block order.
    fn objects(&self, ledger: &str) -> Result<Vec<Object>, Damage> {
        let err = |m: String| fail(ledger, None, m);
        let keys = self.keys().map_err(err)?;
        let manifests: Vec<&String> = keys
            .iter()
            .filter(|k| k.ends_with(".completed.manifest"))
            .collect();
        if manifests.is_empty() {
            return Err(err(
                "no completed export is there (no *.completed.manifest): only an export QLDB \
                 finished can be imported"
                    .into(),
            ));
        }
        // In a local copy, a listed S3 key is found by its longest trailing path (its last
        // path components) that a file under the directory ends with.
        let mut by_tail: std::collections::HashMap<&str, &str> = Default::default();
        if matches!(self, Source::Dir(_)) {
            for k in &keys {
                let mut tail: &str = k;
                loop {
                    let e = by_tail.entry(tail).or_insert(k);
                    if k.len() < e.len() {
                        *e = k;
                    }
                    match tail.split_once('/') {
                        Some((_, rest)) => tail = rest,
                        None => break,
                    }
                }
            }
        }
        let local = |key: &str| -> String {
            let mut tail = key;
            loop {
                if let Some(k) = by_tail.get(tail) {
                    return k.to_string();
                }
                match tail.split_once('/') {
                    Some((_, rest)) => tail = rest,
                    None => return key.to_string(),
                }
            }
        };
        let mut objects = Vec::new();
        let mut strands = std::collections::BTreeSet::new();
        for manifest in manifests {
            let bytes = self
                .get(manifest)
                .map_err(err)?
                .ok_or_else(|| err(format!("{manifest} vanished while reading")))?;
            let value = parse_values(&bytes)
                .ok()
                .and_then(|mut v| (v.len() == 1).then(|| v.remove(0)))
                .ok_or_else(|| err(format!("{manifest} is not one Ion or JSON struct")))?;
            let Some(Data::List(listed)) = value.field("keys").map(|k| &k.data) else {
                return Err(err(format!("{manifest} has no list of keys")));
            };
            for k in listed {
                let Data::String(key) = &k.data else {
                    return Err(err(format!("{manifest} lists a key that is not a string")));
                };
                let (strand, first, last) = key_range(key).ok_or_else(|| {
                    err(format!(
                        "{manifest} lists {key}, which is not named {{strandId}}.{{first}}-{{last}}.{{ext}}"
                    ))
                })?;
                if first > last {
                    return Err(err(format!("{manifest} lists {key}, an empty range")));
                }
                strands.insert(strand);
                objects.push(Object {
                    first,
                    last,
                    key: local(key),
                    manifest: manifest.clone(),
                });
            }
        }
        if strands.len() > 1 {
            return Err(err(format!(
                "the exports there are of {} journals (strands {}): import one ledger's exports",
                strands.len(),
                strands.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        objects.sort();
        objects.dedup_by(|a, b| a.key == b.key);
        match objects.first() {
            None => Err(err("the completed exports there list no data object".into())),
            Some(o) if o.first != 0 => Err(fail(
                ledger,
                Some(0),
                format!(
                    "is not in the export, which starts at block {}: only a journal exported from its \
                     first block (sequenceNo 0) can be imported with its hashes",
                    o.first
                ),
            )),
            Some(_) => Ok(objects),
        }
    }
}

/// Reads data objects, keeping S3 objects in the work dir so that a second pass or an
/// interrupted import reads them once.
struct Store<'a> {
    source: &'a Source,
    cache: Option<PathBuf>,
    ledger: &'a str,
}

impl Store<'_> {
    fn bytes(&self, object: &Object) -> Result<Vec<u8>, Damage> {
        let missing = || {
            fail(
                self.ledger,
                Some(object.first),
                format!(
                    "is in {}, which {} lists, but that object is missing (blocks {}-{} cannot be read)",
                    object.key, object.manifest, object.first, object.last
                ),
            )
        };
        let cached = self.cache.as_ref().map(|dir| {
            use sha2::Digest;
            let id = sha2::Sha256::digest(object.key.as_bytes());
            dir.join(format!("{}-{}-{:x}", object.first, object.last, id))
        });
        if let Some(path) = &cached {
            if let Ok(b) = std::fs::read(path) {
                return Ok(b);
            }
        }
        let bytes = self
            .source
            .get(&object.key)
            .map_err(|m| fail(self.ledger, Some(object.first), m))?
            .ok_or_else(missing)?;
        if let Some(path) = &cached {
            let keep = || -> std::io::Result<()> {
                std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
                let tmp = path.with_extension("part");
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, path)
            };
            let _ = keep();
        }
        Ok(bytes)
    }

    /// Calls `f` with each block of `object`, checking that the object holds exactly the
    /// blocks its key names.
    fn each_block(
        &self,
        object: &Object,
        mut f: impl FnMut(u64, &Value) -> Result<(), Damage>,
    ) -> Result<(), Damage> {
        let at = |seq: u64, m: String| fail(self.ledger, Some(seq), m);
        let values = parse_values(&self.bytes(object)?)
            .map_err(|m| at(object.first, format!("is in {}, which {m}", object.key)))?;
        let mut expected = object.first;
        for block in &values {
            let seq = block
                .field("blockAddress")
                .and_then(|a| crate::verify::int_field(a, "sequenceNo"))
                .and_then(|s| u64::try_from(s).ok());
            if seq != Some(expected) {
                return Err(at(
                    expected,
                    format!(
                        "should be next in {} (blocks {}-{}), which holds {} there instead",
                        object.key,
                        object.first,
                        object.last,
                        seq.map_or("something that is not a block".into(), |s| format!(
                            "block {s}"
                        ))
                    ),
                ));
            }
            if expected > object.last {
                return Err(at(
                    expected,
                    format!(
                        "is in {}, which should end at block {}",
                        object.key, object.last
                    ),
                ));
            }
            f(expected, block)?;
            expected += 1;
        }
        if expected != object.last + 1 {
            return Err(at(
                expected,
                format!(
                    "is missing from {}, which should hold blocks {}-{}",
                    object.key, object.first, object.last
                ),
            ));
        }
        Ok(())
    }
}

/// Progress on standard error: a line that updates in place on a terminal, a plain line
/// every few seconds otherwise.
struct Progress {
    on: bool,
    tty: bool,
    phase: &'static str,
    total: u64,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(on: bool, phase: &'static str, total: u64) -> Self {
        let now = Instant::now();
        Progress {
            on,
            tty: std::io::stderr().is_terminal(),
            phase,
            total,
            start: now,
            last: now,
        }
    }

    fn line(&self, done: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{}: {done}/{} blocks ({:.0}%), {:.0} blocks/s",
            self.phase,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            done as f64 / secs
        )
    }

    fn step(&mut self, done: u64) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if !self.on || self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{}\x1b[K", self.line(done))
        } else {
            writeln!(err, "{}", self.line(done))
        };
    }

    fn done(&self, done: u64) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = if self.tty {
                writeln!(err, "\r{}\x1b[K", self.line(done))
            } else {
                writeln!(err, "{}", self.line(done))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_name_their_range() {
        assert_eq!(
            key_range("exports/2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.1-4.ion"),
            Some(("JdxjkR9bSYB5jMHWcI464T".into(), 1, 4))
        );
        assert_eq!(
            key_range("x/2019/04/15/22/S.0-999.json").map(|r| r.2),
            Some(999)
        );
        assert_eq!(key_range("x/S.manifest"), None);
        assert_eq!(key_range("x/S.a-b.ion"), None);
    }
}

/// `--rehash`: the export's data, transaction by transaction, committed into a new chain.
mod rehash {
    use std::collections::HashMap;
    use std::path::Path;

    use super::{fail, install, ImportOptions, Imported, Object, Progress, Store};
    use crate::ion::{Data, Value};
    use crate::journal::block::StatementInfo;
    use crate::names::LedgerName;
    use crate::partiql::ast::Statement;
    use crate::rebuild::{block_statements, millis, Hints};
    use crate::storage::sqlite::catalog::Catalog;
    use crate::storage::sqlite::{LedgerDb, LedgerLocation};
    use crate::storage::{CommitRequest, DocWrite, RevisionRef};
    use crate::verify::{int_field, text_field, Damage};

    /// A timestamp as Ion holds it or as JSON down-converted it (a string of Ion text).
    fn ms_of(v: Option<&Value>) -> Option<i64> {
        match v.map(|v| &v.data) {
            Some(Data::String(s)) => millis(crate::ion::text::from_text_one(s).ok().as_ref()),
            _ => millis(v),
        }
    }

    /// A hash as Ion holds it (a blob) or as JSON down-converted it (base64).
    fn bytes_of(v: Option<&Value>) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match v.map(|v| &v.data) {
            Some(Data::Blob(b)) => Some(b.clone()),
            Some(Data::String(s)) => base64::engine::general_purpose::STANDARD.decode(s).ok(),
            _ => None,
        }
    }

    struct Table {
        id: String,
        name: String,
        active: bool,
        /// (index id, field), in creation order.
        indexes: Vec<(String, String)>,
    }

    pub(super) fn import(
        opts: &ImportOptions,
        catalog: &mut Catalog,
        store: &Store<'_>,
        objects: &[Object],
        total: u64,
        work: &Path,
    ) -> Result<Imported, Damage> {
        let name = opts.ledger.as_str();
        let err = |m: String| fail(name, None, m);
        // Pass 1: the blocks are contiguous; what names table ids.
        let mut hints = Hints::default();
        let mut next = 0u64;
        let mut created_ms = None;
        for object in objects {
            store.each_block(object, |seq, block| {
                if seq < next {
                    return Ok(());
                }
                if seq > next {
                    return Err(fail(
                        name,
                        Some(next),
                        format!(
                            "is missing: no completed export holds it (the next block is {seq})"
                        ),
                    ));
                }
                if seq == 0 {
                    created_ms = ms_of(block.field("blockTimestamp"));
                }
                hints.scan(seq, block, &block_statements(name, seq, block, true)?);
                next += 1;
                Ok(())
            })?;
        }
        let created_ms = created_ms
            .ok_or_else(|| fail(name, Some(0), "its blockTimestamp is not a timestamp"))?;

        let ledger = LedgerName::parse(name).map_err(|v| err(v.0))?;
        // Named as the ledger: opening a ledger file checks that its name is the ledger's.
        let partial = work.join(format!("{name}.sqlite"));
        let db = LedgerDb::create(
            LedgerLocation::File(partial.clone()),
            &ledger,
            &crate::names::new_unique_id(),
        )
        .and_then(|db| db.set_relaxed_durability(true).map(|()| db))
        .map_err(|e| err(format!("cannot create {}: {e}", partial.display())))?;

        // Pass 2: one commit per exported transaction.
        let mut tables: Vec<Table> = Vec::new();
        let mut new_table_ids = Vec::new();
        let mut new_index_ids = Vec::new();
        let mut notes = Vec::new();
        // Exported block → the block of the new chain that holds its transaction.
        let mut blocks: HashMap<u64, u64> = HashMap::new();
        let mut progress = Progress::new(opts.progress, "rehashing", total);
        let mut next = 0u64;
        for object in objects {
            store.each_block(object, |seq, block| {
                if seq < next {
                    return Ok(());
                }
                next = seq + 1;
                let at = |m: String| fail(name, Some(seq), m);
                let parsed = block_statements(name, seq, block, true)?;
                let mut req = CommitRequest {
                    transaction_id: text_field(block, "transactionId").unwrap_or_default(),
                    commit_ms: ms_of(block.field("blockTimestamp"))
                        .ok_or_else(|| at("its blockTimestamp is not a timestamp".into()))?,
                    ..CommitRequest::default()
                };
                let info = block.field("transactionInfo");
                if let Some(Data::List(items)) =
                    info.and_then(|t| t.field("statements")).map(|s| &s.data)
                {
                    for item in items {
                        let statement = text_field(item, "statement").unwrap_or_default();
                        req.statements.push(StatementInfo {
                            start_time_ms: ms_of(item.field("startTime")).unwrap_or(req.commit_ms),
                            statement_digest: bytes_of(item.field("statementDigest"))
                                .unwrap_or_else(|| {
                                    crate::journal::hash::statement_digest(&statement, &[])
                                }),
                            statement,
                        });
                    }
                }
                for st in &parsed {
                    match st {
                        Statement::CreateTable { name: t, .. } => {
                            let known = |id: &String| tables.iter().any(|x| x.id == *id);
                            let id = hints
                                .doc_table(seq, t, &known)
                                .unwrap_or_else(|| {
                                    let id = crate::names::new_unique_id();
                                    new_table_ids.push(id.clone());
                                    id
                                });
                            req.new_tables.push((id.clone(), t.clone()));
                            tables.push(Table {
                                id,
                                name: t.clone(),
                                active: true,
                                indexes: Vec::new(),
                            });
                        }
                        Statement::DropTable { name: t } => {
                            let x = tables
                                .iter_mut()
                                .find(|x| x.active && x.name == *t)
                                .ok_or_else(|| at(format!("DROP TABLE {t}: no such active table")))?;
                            x.active = false;
                            req.table_status.push((x.id.clone(), false));
                        }
                        Statement::UndropTable { table_id } => {
                            match tables.iter_mut().find(|x| !x.active && x.id == *table_id) {
                                Some(x) => {
                                    x.active = true;
                                    req.table_status.push((x.id.clone(), true));
                                }
                                None => notes.push(format!(
                                    "block {seq}: UNDROP TABLE of {table_id}, whose id the export does not tie to a table, was skipped"
                                )),
                            }
                        }
                        Statement::CreateIndex { table: t, field } => {
                            let x = tables
                                .iter_mut()
                                .find(|x| x.active && x.name == *t)
                                .ok_or_else(|| at(format!("CREATE INDEX on {t}: no such active table")))?;
                            let id = crate::names::new_unique_id();
                            new_index_ids.push(id.clone());
                            x.indexes.push((id.clone(), field.clone()));
                            req.new_indexes.push((id, x.id.clone(), field.clone()));
                        }
                        Statement::DropIndex { index_id, table: t } => {
                            let x = tables
                                .iter_mut()
                                .find(|x| x.active && x.name == *t)
                                .ok_or_else(|| at(format!("DROP INDEX on {t}: no such active table")))?;
                            let (id, field) = x
                                .indexes
                                .pop()
                                .ok_or_else(|| at(format!("DROP INDEX {index_id}: {t} has no index")))?;
                            if !x.indexes.is_empty() {
                                notes.push(format!(
                                    "block {seq} drops index {index_id} of table {t}, which the export does not tie to a field; taken to be the index on {field}, the last created"
                                ));
                            }
                            new_index_ids.retain(|i| *i != id);
                            req.dropped_indexes.push((id, x.id.clone()));
                        }
                        _ => {}
                    }
                }
                let docs = info.and_then(|t| t.field("documents"));
                if let Some(Data::List(revs)) = block.field("revisions").map(|r| &r.data) {
                    for rev in revs {
                        let Some(meta) = rev.field("metadata") else {
                            continue;
                        };
                        let (Some(doc_id), Some(version)) =
                            (text_field(meta, "id"), int_field(meta, "version"))
                        else {
                            return Err(at("a revision's metadata has no id or version".into()));
                        };
                        let doc = docs.and_then(|d| d.field(&doc_id)).ok_or_else(|| {
                            at(format!("document {doc_id} is not listed in transactionInfo.documents"))
                        })?;
                        let table_id = text_field(doc, "tableId").unwrap_or_default();
                        let table_name = text_field(doc, "tableName").unwrap_or_default();
                        if !tables.iter().any(|x| x.id == table_id) {
                            return Err(at(format!(
                                "document {doc_id} is in table {table_id} ({table_name}), which no CREATE TABLE of the export made"
                            )));
                        }
                        let data = match (rev.field("data"), rev.field("dataHash")) {
                            (Some(d), _) => Some(d.clone()),
                            (None, Some(_)) => {
                                notes.push(format!(
                                    "document {doc_id} version {version} was redacted: its data is not in the export, and the new chain holds an empty struct in its place"
                                ));
                                Some(Value::structure(Vec::<(String, Value)>::new()))
                            }
                            (None, None) => None,
                        };
                        let statements = match doc.field("statements").map(|s| &s.data) {
                            Some(Data::List(l)) => l
                                .iter()
                                .filter_map(|i| match &i.data {
                                    Data::Int(n) => u32::try_from(n.clone()).ok(),
                                    _ => None,
                                })
                                .collect(),
                            _ => Vec::new(),
                        };
                        req.writes.push(DocWrite {
                            doc_id,
                            table_id,
                            table_name,
                            version: version as u64,
                            data,
                            statements,
                        });
                    }
                }
                if let Some(Data::List(items)) = block
                    .field("redactionInfo")
                    .and_then(|r| r.field("revisions"))
                    .map(|r| &r.data)
                {
                    if let Some(r) = items.first() {
                        let old = r
                            .field("blockAddress")
                            .and_then(|a| int_field(a, "sequenceNo"))
                            .and_then(|s| u64::try_from(s).ok());
                        match old.and_then(|o| blocks.get(&o)) {
                            Some(&seq) => {
                                req.redaction = Some(RevisionRef {
                                    seq,
                                    table_id: text_field(r, "tableId").unwrap_or_default(),
                                    doc_id: text_field(r, "documentId").unwrap_or_default(),
                                    version: int_field(r, "version").unwrap_or_default() as u64,
                                    has_data: true,
                                    redacted: false,
                                    is_latest: false,
                                })
                            }
                            None => return Err(at("its redactionInfo names a revision the export does not hold".into())),
                        }
                    }
                }
                if req.statements.is_empty() && req.writes.is_empty() && req.redaction.is_none() {
                    return Ok(()); // a block of no transaction (a genesis block)
                }
                let committed = db
                    .commit(req)
                    .map_err(|e| at(format!("cannot commit its transaction in the new chain: {e}")))?;
                blocks.insert(seq, committed.sequence_no);
                progress.step(seq + 1);
                Ok(())
            })?;
        }
        progress.done(next);
        db.stop_checkpoints();
        {
            let conn = db.conn();
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .and_then(|()| conn.pragma_update(None, "journal_mode", "DELETE"))
                .map_err(|e| err(format!("cannot write {}: {e}", partial.display())))?;
        }
        drop(db);
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| err(format!("cannot sync {}: {e}", partial.display())))?;
        let (strand, documents) = {
            let conn = rusqlite::Connection::open(&partial).map_err(|e| err(e.to_string()))?;
            conn.query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'strand_id'), (SELECT count(*) FROM documents)",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| err(e.to_string()))?
        };
        let verified = install(opts, catalog, &partial, created_ms, work)?;
        Ok(Imported {
            documents,
            tables: tables.len() as u64,
            indexes: tables.iter().map(|t| t.indexes.len() as u64).sum(),
            objects: objects.len(),
            strand,
            resumed_after: None,
            new_table_ids,
            new_index_ids,
            notes,
            rehashed: true,
            verified,
        })
    }
}
