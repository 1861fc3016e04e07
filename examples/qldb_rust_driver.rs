//! The community Rust driver `qldb` 3.2.9 (crates.io; rusoto 0.48 with rustls), used
//! unchanged against qldb-local: DDL, every Ion type, indexed selects, updates, deletes,
//! multi-statement transactions, rollback, OCC conflicts, history, paging over 450
//! documents and its `count()` helper.
//!
//! The driver cannot be given an endpoint (rusoto's named regions only): it always talks to
//! `https://session.qldb.<region>.amazonaws.com`. `compat-tests/rust-driver/run.sh` runs this
//! program in a private network namespace where that name is 127.0.0.1 and qldb-local
//! serves HTTPS on port 443, trusted through `SSL_CERT_FILE`. The ledger is named by
//! `QLDB_LEDGER` and must exist (ALLOW_ALL). Exits non-zero at the first failed check.

use std::collections::HashMap;

use num_bigint::BigInt;
use qldb::ion::IonValue;
use qldb::{Document, QldbClient, QldbError};
use rusoto_core::RusotoError;
use rusoto_qldb_session::SendCommandError;

type Check = Result<(), String>;

fn fail<T>(what: impl Into<String>) -> Result<T, String> {
    Err(what.into())
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn qldb_err(context: &str) -> impl Fn(QldbError) -> String + '_ {
    move |e| format!("{context}: {e} ({e:?})")
}

fn strukt(fields: &[(&str, IonValue)]) -> IonValue {
    IonValue::Struct(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

fn text(v: Option<&IonValue>) -> String {
    match v {
        Some(IonValue::String(s)) | Some(IonValue::Symbol(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Runs one statement in its own transaction and returns its documents.
async fn run(
    client: &QldbClient,
    statement: &str,
    params: Vec<IonValue>,
) -> Result<Vec<Document>, String> {
    let statement = statement.to_string();
    client
        .transaction_within(|tx| async move {
            let mut q = tx.query(&statement);
            for p in params {
                q = q.param(p);
            }
            q.execute().await
        })
        .await
        .map(|c| c.into_inner())
        .map_err(qldb_err("statement"))
}

fn service_error(e: &QldbError) -> Option<&SendCommandError> {
    match e {
        QldbError::SendCommandError(RusotoError::Service(s)) => Some(s),
        _ => None,
    }
}

async fn ddl(client: &QldbClient) -> Check {
    for stmt in [
        "CREATE TABLE Vehicle",
        "CREATE INDEX ON Vehicle (VIN)",
        "CREATE TABLE Bulk",
    ] {
        let rows = run(client, stmt, vec![]).await?;
        ensure(rows.len() == 1 && rows[0].get("tableId").is_some(), || {
            format!("{stmt} should answer one {{tableId}}, got {rows:?}")
        })?;
    }
    let tables = run(
        client,
        "SELECT name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
        vec![],
    )
    .await?;
    let mut names: Vec<String> = tables.iter().map(|d| text(d.get("name"))).collect();
    names.sort();
    ensure(names == ["Bulk", "Vehicle"], || {
        format!("tables: {names:?}")
    })
}

/// Every Ion type the driver can encode goes in as a parameter and comes back equal; the
/// ones it can only decode (decimal, timestamp, annotations) come from Ion literals. The
/// driver computes the commit digest over its own encoding, so a commit is also a check
/// of qldb-local's statement hashing against an independent Ion hash implementation.
async fn ion_types(client: &QldbClient) -> Result<String, String> {
    let big = BigInt::parse_bytes(b"1180591620717411303424", 10).ok_or("bigint")?;
    let doc = strukt(&[
        ("VIN", IonValue::String("1N4AL11D75C109151".into())),
        ("Year", IonValue::Integer(2019)),
        ("Mileage", IonValue::BigInteger(big.clone())),
        ("Ratio", IonValue::Float(1.5)),
        ("Sold", IonValue::Bool(true)),
        ("Kind", IonValue::Symbol("sedan".into())),
        ("Photo", IonValue::Blob(b"hello world".to_vec())),
        ("Note", IonValue::Clob(b"plain text".to_vec())),
        ("Color", IonValue::Null(qldb::ion::NullIonValue::String)),
        ("Nothing", IonValue::Null(qldb::ion::NullIonValue::Null)),
        (
            "Owners",
            IonValue::List(vec![
                strukt(&[("PersonId", IonValue::String("p1".into()))]),
                strukt(&[("PersonId", IonValue::String("p2".into()))]),
            ]),
        ),
        (
            "Expr",
            IonValue::SExpr(vec![IonValue::Symbol("a".into()), IonValue::Integer(1)]),
        ),
    ]);
    let inserted = run(client, "INSERT INTO Vehicle ?", vec![doc.clone()]).await?;
    let [one] = inserted.as_slice() else {
        return fail(format!(
            "INSERT should answer one documentId, got {inserted:?}"
        ));
    };
    let id = text(one.get("documentId"));
    ensure(id.len() == 22, || format!("documentId {id:?}"))?;

    // An indexed lookup with a parameter returns the same document.
    let found = run(
        client,
        "SELECT * FROM Vehicle AS v WHERE v.VIN = ?",
        vec![IonValue::String("1N4AL11D75C109151".into())],
    )
    .await?;
    let [got] = found.as_slice() else {
        return fail(format!("indexed SELECT found {found:?}"));
    };
    let IonValue::Struct(want) = &doc else {
        unreachable!()
    };
    for (k, v) in want {
        ensure(got.get(k) == Some(v), || {
            format!("field {k}: sent {v:?}, got back {:?}", got.get(k))
        })?;
    }

    // Decimal, timestamp and annotations from literals.
    run(
        client,
        "INSERT INTO Vehicle `{VIN: \"LIT\", Price: 130.750, At: 2019-06-05T20:53:32.123-08:00, Tagged: ann::7}`",
        vec![],
    )
    .await?;
    let lit = run(
        client,
        "SELECT * FROM Vehicle AS v WHERE v.VIN = 'LIT'",
        vec![],
    )
    .await?;
    let [lit] = lit.as_slice() else {
        return fail(format!("literal document: {lit:?}"));
    };
    match lit.get("Price") {
        Some(IonValue::Decimal(d)) if d.to_string() == "130.750" => {}
        other => return fail(format!("Price: {other:?}")),
    }
    match lit.get("At") {
        Some(IonValue::DateTime(t)) if t.to_rfc3339() == "2019-06-05T20:53:32.123-08:00" => {}
        other => return fail(format!("At: {other:?}")),
    }
    match lit.get("Tagged") {
        Some(IonValue::Annotation(a, v)) if a == &["ann"] && **v == IonValue::Integer(7) => {}
        other => return fail(format!("Tagged: {other:?}")),
    }
    // The driver decodes a big integer as BigInteger and a small one as Integer.
    ensure(
        got.get("Mileage") == Some(&IonValue::BigInteger(big)),
        || "Mileage".into(),
    )?;
    Ok(id)
}

async fn updates_and_deletes(client: &QldbClient, id: &str) -> Check {
    // Two assignments: one {documentId} each (as QLDB answered).
    let updated = run(
        client,
        "UPDATE Vehicle AS v SET v.Year = ?, v.Color = ? WHERE v.VIN = ?",
        vec![
            IonValue::Integer(2020),
            IonValue::String("red".into()),
            IonValue::String("1N4AL11D75C109151".into()),
        ],
    )
    .await?;
    ensure(
        updated.len() == 2 && updated.iter().all(|d| text(d.get("documentId")) == id),
        || format!("UPDATE answered {updated:?}"),
    )?;
    let by_id = run(
        client,
        "SELECT v.Year, v.Color, vid FROM Vehicle AS v BY vid WHERE vid = ?",
        vec![IonValue::String(id.into())],
    )
    .await?;
    ensure(
        by_id.len() == 1
            && by_id[0].get("Year") == Some(&IonValue::Integer(2020))
            && text(by_id[0].get("Color")) == "red",
        || format!("after UPDATE: {by_id:?}"),
    )?;

    // history(): both revisions of the document, versions 0 and 1.
    let history = run(
        client,
        "SELECT h.metadata.version AS v FROM history(Vehicle) AS h WHERE h.metadata.id = ?",
        vec![IonValue::String(id.into())],
    )
    .await?;
    let mut versions: Vec<IonValue> = history.iter().filter_map(|d| d.get("v").cloned()).collect();
    versions.sort_by_key(|v| format!("{v:?}"));
    ensure(
        versions == [IonValue::Integer(0), IonValue::Integer(1)],
        || format!("history versions: {history:?}"),
    )?;

    let deleted = run(
        client,
        "DELETE FROM Vehicle AS v WHERE v.VIN = 'LIT'",
        vec![],
    )
    .await?;
    ensure(deleted.len() == 1, || {
        format!("DELETE answered {deleted:?}")
    })?;
    let left = run(client, "SELECT v.VIN FROM Vehicle AS v", vec![]).await?;
    ensure(left.len() == 1, || format!("after DELETE: {left:?}"))
}

async fn transactions(client: &QldbClient) -> Check {
    // Several statements, one commit: the second sees the first's write.
    let seen = client
        .transaction_within(|tx| async move {
            tx.query("INSERT INTO Bulk ?")
                .param(strukt(&[("n", IonValue::Integer(-1))]))
                .execute()
                .await?;
            tx.query("SELECT b.n FROM Bulk AS b WHERE b.n = -1")
                .execute()
                .await
        })
        .await
        .map_err(qldb_err("multi-statement transaction"))?;
    ensure(seen.len() == 1, || format!("own write not seen: {seen:?}"))?;

    // A closure that fails rolls back: nothing it wrote stays.
    let outcome: Result<(), QldbError> = client
        .transaction_within(|tx| async move {
            tx.query("INSERT INTO Bulk ?")
                .param(strukt(&[("n", IonValue::Integer(-2))]))
                .execute()
                .await?;
            Err(QldbError::TransactionCompleted)
        })
        .await;
    ensure(outcome.is_err(), || "the failing closure succeeded".into())?;
    let rolled = run(client, "SELECT b.n FROM Bulk AS b WHERE b.n = -2", vec![]).await?;
    ensure(rolled.is_empty(), || {
        format!("rolled back write is visible: {rolled:?}")
    })?;

    // An explicit rollback too.
    let tx = client
        .transaction()
        .await
        .map_err(qldb_err("transaction"))?;
    tx.query("DELETE FROM Bulk AS b WHERE b.n = -1")
        .execute()
        .await
        .map_err(qldb_err("delete"))?;
    tx.rollback().await.map_err(qldb_err("rollback"))?;
    let kept = run(client, "SELECT b.n FROM Bulk AS b WHERE b.n = -1", vec![]).await?;
    ensure(kept.len() == 1, || {
        format!("rollback lost the document: {kept:?}")
    })?;

    // OCC: two transactions read and update the same document; the second commit conflicts
    // and the driver surfaces the typed OccConflictException.
    let a = client
        .transaction()
        .await
        .map_err(qldb_err("transaction a"))?;
    let b = client
        .transaction()
        .await
        .map_err(qldb_err("transaction b"))?;
    for (tx, n) in [(&a, 10), (&b, 20)] {
        tx.query("SELECT b.n FROM Bulk AS b WHERE b.n = -1")
            .execute()
            .await
            .map_err(qldb_err("occ read"))?;
        tx.query("UPDATE Bulk AS b SET b.m = ? WHERE b.n = -1")
            .param(IonValue::Integer(n))
            .execute()
            .await
            .map_err(qldb_err("occ update"))?;
    }
    a.commit().await.map_err(qldb_err("first commit"))?;
    match b.commit().await {
        Err(e) if matches!(service_error(&e), Some(SendCommandError::OccConflict(_))) => {}
        other => {
            return fail(format!(
                "second commit should be an OCC conflict, got {other:?}"
            ))
        }
    }

    // A statement error is a typed BadRequestException with QLDB's message.
    let bad = client
        .transaction_within(
            |tx| async move { tx.query("SELECT * FROM NoSuchTable").execute().await },
        )
        .await;
    match bad {
        Err(e) => match service_error(&e) {
            Some(SendCommandError::BadRequest(m)) if m.contains("NoSuchTable") => Ok(()),
            _ => fail(format!("unknown table: expected BadRequest, got {e:?}")),
        },
        Ok(v) => fail(format!("unknown table answered {v:?}")),
    }
}

async fn paging_and_count(client: &QldbClient) -> Check {
    // 450 documents in batches of 30 (a list parameter inserts each element; QLDB allows
    // 40 documents written per transaction).
    for batch in 0..15 {
        let docs: Vec<IonValue> = (0..30)
            .map(|i| strukt(&[("n", IonValue::Integer(batch * 30 + i))]))
            .collect();
        let rows = run(client, "INSERT INTO Bulk ?", vec![IonValue::List(docs)]).await?;
        ensure(rows.len() == 30, || {
            format!("batch insert answered {}", rows.len())
        })?;
    }
    // execute() follows every NextPageToken (pages of 200).
    let all = run(client, "SELECT b.n FROM Bulk AS b WHERE b.n >= 0", vec![]).await?;
    ensure(all.len() == 450, || {
        format!("paged SELECT returned {}", all.len())
    })?;
    let mut ns: Vec<i64> = all
        .iter()
        .map(|d| d.get_value::<i64>("n").map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    ns.sort_unstable();
    ensure(ns == (0..450).collect::<Vec<_>>(), || {
        "paged values differ".into()
    })?;

    // The cursor, page by page.
    let pages = client
        .transaction_within(|tx| async move {
            let mut cursor = tx
                .query("SELECT b.n FROM Bulk AS b WHERE b.n >= 0")
                .get_cursor()?;
            let mut sizes = Vec::new();
            while let Some(page) = cursor.load_more().await? {
                sizes.push(page.len());
            }
            Ok(sizes)
        })
        .await
        .map_err(qldb_err("cursor"))?;
    ensure(
        pages.len() >= 3 && pages.iter().sum::<usize>() == 450,
        || format!("cursor pages {pages:?}"),
    )?;

    // count(): SELECT COUNT(*) answers {_1: n}.
    let n = client
        .transaction_within(|tx| async move {
            tx.query("SELECT COUNT(*) FROM Bulk AS b WHERE b.n >= 0")
                .count()
                .await
        })
        .await
        .map_err(qldb_err("count"))?;
    ensure(n == 450, || format!("count() = {n}"))
}

#[tokio::main]
async fn main() {
    let ledger = std::env::var("QLDB_LEDGER").unwrap_or_else(|_| "rust-driver".into());
    let client = match QldbClient::default(&ledger, 10).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL: cannot make the client: {e:?}");
            std::process::exit(1);
        }
    };
    let mut failed = 0;
    let mut step = |name: &str, r: Check| match r {
        Ok(()) => println!("ok   {name}"),
        Err(e) => {
            failed += 1;
            println!("FAIL {name}: {e}");
        }
    };
    step("DDL", ddl(&client).await);
    match ion_types(&client).await {
        Ok(id) => {
            step("Ion types", Ok(()));
            step(
                "updates, history, deletes",
                updates_and_deletes(&client, &id).await,
            );
        }
        Err(e) => step("Ion types", Err(e)),
    }
    step(
        "transactions, rollback, OCC, errors",
        transactions(&client).await,
    );
    step("paging and count()", paging_and_count(&client).await);
    if failed > 0 {
        println!("{failed} check(s) failed");
        std::process::exit(1);
    }
    println!("all checks passed");
}
