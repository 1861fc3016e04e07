//! The parser accepts every statement form of partiql-dialect.md §1 (including the ones
//! AWS's sample applications send) and rejects what QLDB rejected, with positions.

use qldb_local::partiql::ast::*;
use qldb_local::partiql::parse_statement;

fn ok(s: &str) -> Statement {
    parse_statement(s).unwrap_or_else(|e| panic!("{s}\n  -> {e}"))
}

fn err(s: &str) -> String {
    match parse_statement(s) {
        Ok(st) => panic!("{s} should be rejected, parsed as {st:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn accepts_every_documented_form() {
    for s in [
        "CREATE TABLE Vehicle",
        "create table VehicleRegistration;",
        "CREATE TABLE Vehicle WITH (aws_tags = `{'environment': 'production'}`)",
        "DROP TABLE Vehicle",
        "UNDROP TABLE \"5PLf9SXwndd63lPaSIa0O6\"",
        "CREATE INDEX ON VehicleRegistration (VIN)",
        "CREATE INDEX on Person (GovId)",
        "DROP INDEX \"4tPW3fUhaVhDinRgKRLhGU\" ON Vehicle WITH (purge = true)",
        "INSERT INTO Person VALUE {'FirstName': 'Raul', 'LastName': 'Lewis', 'DOB': `1963-08-19T`}",
        "INSERT INTO Person << {'a': 1}, {'a': 2} >>",
        "INSERT INTO Person ?",
        "INSERT INTO t <<?,?>>",
        "INSERT INTO Person {'a': UTCNOW()}",
        "UPDATE Person AS p SET p.LastName = 'Doe' WHERE p.GovId = 'P626-168-229-765'",
        "UPDATE Person SET LastName = ? WHERE GovId = ?",
        "UPDATE Person p SET p.x = 1, p.y.z = ?",
        "UPDATE VehicleRegistration AS r INSERT INTO r.Owners.SecondaryOwners VALUE ? WHERE r.VIN = ?",
        "UPDATE Vehicle AS v INSERT INTO v VALUE 'red' AT 'Color' WHERE v.VIN = '1N4AL11D75C109151'",
        "UPDATE VehicleRegistration AS r REMOVE r.Owners.SecondaryOwners[0] WHERE r.VIN = ?",
        "UPDATE t SET col = ?",
        "UPDATE Person AS p BY pid SET p.x = 1 WHERE pid = ?",
        "DELETE FROM VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'",
        "DELETE FROM t",
        "DELETE FROM Person BY pid WHERE pid = ?",
        "FROM VehicleRegistration AS v WHERE v.VIN = ? INSERT INTO v.Owners.SecondaryOwners VALUE ?",
        "FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o WHERE o.PersonId = ? REMOVE o",
        "FROM Person AS p WHERE p.GovId = ? SET p.Address = ?",
        "SELECT * FROM Vehicle",
        "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = ?",
        "SELECT VALUE name FROM information_schema.user_tables WHERE status = 'ACTIVE'",
        "SELECT VALUE indexes[0] FROM information_schema.user_tables",
        "SELECT Owners.PrimaryOwner.PersonId FROM VehicleRegistration AS v WHERE v.VIN = ?",
        "SELECT * FROM _ql_committed_VehicleRegistration WHERE data.VIN = ?",
        "SELECT p.* FROM Person AS p BY pid WHERE pid = ?",
        "SELECT r.metadata.id, r.data FROM _ql_committed_VehicleRegistration AS r",
        "SELECT h.data.Owners.PrimaryOwner, h.metadata.version FROM history(VehicleRegistration, `2019-06-05T00:00:00Z`, `2019-06-06T00:00:00Z`) AS h WHERE h.metadata.id = ?",
        "SELECT * FROM history('5PLf9SXwndd63lPaSIa0O6') AS h",
        "SELECT Vehicle FROM Vehicle INNER JOIN VehicleRegistration AS r ON Vehicle.VIN = r.VIN WHERE r.VIN = ?",
        "SELECT v.Make, r.Owners FROM Vehicle AS v, VehicleRegistration AS r WHERE v.VIN = r.VIN",
        "SELECT * FROM a CROSS JOIN b JOIN c ON b.x = c.x",
        "SELECT o FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o AT i",
        "SELECT COUNT(*) FROM Vehicle",
        "SELECT COUNT(v.x) AS n, SUM(v.p), AVG(v.p), MIN(v.p), MAX(v.p) FROM Vehicle v",
        "SELECT * FROM t WHERE x IN (1, 2, 3) AND y NOT IN ? AND z IN ('only')",
        "SELECT * FROM t WHERE x IN (SELECT VALUE y FROM u)",
        "SELECT * FROM t WHERE name LIKE 'A%' ESCAPE '\\' AND v NOT LIKE '_b%'",
        "SELECT * FROM t WHERE x BETWEEN 1 AND 10 AND y NOT BETWEEN ? AND ?",
        "SELECT * FROM t WHERE a IS NULL OR b IS NOT MISSING OR NOT c = 1",
        "SELECT * FROM t WHERE a.b[0].c = `2017-09-14T` AND a['k'] <> 3 AND a != 4",
        "SELECT t.a[*].b, t.s.* FROM t",
        "SELECT UTCNOW() FROM << 0 >>",
        "SELECT TXID() FROM << 0 >>",
        "SELECT CAST(x AS INT), CAST(y AS DECIMAL(5,2)), CAST(z AS DOUBLE PRECISION) FROM t",
        "SELECT EXTRACT(YEAR FROM `2017-01-10T05:30:55Z`) FROM << 0 >>",
        "SELECT DATE_ADD(day, 5, `2017-01-10T`), DATE_DIFF(month, a, b) FROM t",
        "SELECT TRIM(BOTH FROM '  x  '), TRIM(LEADING 'x' FROM 'xxy'), TRIM('  y ') FROM << 0 >>",
        "SELECT SUBSTRING('abcdef', 2, 3), SUBSTRING('abc' FROM 2 FOR 1) FROM << 0 >>",
        "SELECT TO_STRING(`2017-01-10T`, 'MMMM d, y'), TO_TIMESTAMP('2017', 'y') FROM << 0 >>",
        "SELECT CHAR_LENGTH(x), CHARACTER_LENGTH(x), LOWER(x), UPPER(x), SIZE(l), EXISTS(l), COALESCE(a, b), NULLIF(a, b) FROM t",
        "SELECT a || b, -x, +y, 1 + 2 * 3 % 4 - 5 / 6, -130.750, 1.5e3 FROM t",
        "SELECT \"user\".\"select\" FROM \"user\"",
        "SELECT {'a': 1, 'b': [1, 2, <<3>>]} AS s FROM << 0 >>",
        "SELECT @x.y FROM t AS x",
        "-- a comment\nSELECT /* inline */ * FROM t",
        "EXEC REDACT_REVISION `{strandId:\"JdxjkR9bSYB5jMHWcI464T\", sequenceNo:17}`, '5PLf9SXwndd63lPaSIa0O6', '8F0TPCmdNQ6JTRpiLj2TmW'",
        "EXEC redact_revision ?, 'tid', 'did'",
    ] {
        ok(s);
    }
}

#[test]
fn shapes_of_key_statements() {
    match ok("INSERT INTO Person ?") {
        Statement::Insert {
            table,
            value: Expr::Param(0),
            is_value_form: false,
        } => assert_eq!(table, "Person"),
        other => panic!("{other:?}"),
    }
    match ok("SELECT * FROM t WHERE a = ? AND b = ?") {
        Statement::Select(Select {
            where_:
                Some(Expr::Binary {
                    op: BinaryOp::And,
                    left,
                    right,
                }),
            ..
        }) => {
            assert!(
                matches!(*left, Expr::Binary { op: BinaryOp::Eq, right: ref r, .. } if **r == Expr::Param(0))
            );
            assert!(
                matches!(*right, Expr::Binary { op: BinaryOp::Eq, right: ref r, .. } if **r == Expr::Param(1))
            );
        }
        other => panic!("{other:?}"),
    }
    match ok("SELECT COUNT(*) FROM t") {
        Statement::Select(Select {
            projection: Projection::Items(items),
            ..
        }) => {
            assert!(matches!(
                &items[0],
                ProjectItem::Expr {
                    expr: Expr::Call {
                        func: Func::Count,
                        star: true,
                        ..
                    },
                    alias: None
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    // IN with one parenthesised element is still a list.
    match ok("SELECT * FROM t WHERE z IN ('only')") {
        Statement::Select(Select {
            where_: Some(Expr::In { list, .. }),
            ..
        }) => {
            assert!(matches!(*list, Expr::List(ref l) if l.len() == 1));
        }
        other => panic!("{other:?}"),
    }
    // Precedence: 1 + 2 * 3 is 1 + (2 * 3); NOT binds looser than =.
    match ok("SELECT VALUE 1 + 2 * 3 FROM t") {
        Statement::Select(Select {
            projection:
                Projection::Value(Expr::Binary {
                    op: BinaryOp::Add,
                    right,
                    ..
                }),
            ..
        }) => {
            assert!(matches!(
                *right,
                Expr::Binary {
                    op: BinaryOp::Mul,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    match ok("SELECT VALUE -130.750 FROM t") {
        Statement::Select(Select {
            projection: Projection::Value(Expr::Lit(v)),
            ..
        }) => {
            assert_eq!(qldb_local::ion::text::to_text_one(&v), "-130.750");
        }
        other => panic!("{other:?}"),
    }
    match ok("FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o WHERE o.PersonId = ? REMOVE o") {
        Statement::Dml(Dml { from, action: DmlAction::Remove(_), where_: Some(_) }) => {
            assert_eq!(from.len(), 2);
            assert_eq!(from[1].alias.as_deref(), Some("o"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_what_qldb_rejected() {
    for (s, needle) in [
        ("SELECT * FROM t ORDER BY a", "ORDER BY"),
        ("SELECT * FROM t GROUP BY a", "GROUP BY"),
        ("SELECT * FROM t LIMIT 1", "LIMIT"),
        ("SELECT DISTINCT a FROM t", "DISTINCT"),
        (
            "SELECT * FROM a LEFT JOIN b ON a.x = b.x",
            "only inner joins",
        ),
        ("SELECT * FROM a UNION SELECT * FROM b", "UNION"),
        ("SELECT 1", "FROM clause"),
        ("SELECT * FROM user", "reserved word"),
        ("SELECT CASE WHEN a THEN 1 END FROM t", "CASE"),
        ("DROP INDEX \"x\" ON t", "purge"),
        ("DROP INDEX \"x\" ON t WITH (PURGE = true)", "purge"),
        ("CREATE INDEX ON t (a, b)", "exactly one"),
        ("TRUNCATE t", "does not start a statement"),
        ("SELECT * FROM t WHERE", "expected an expression"),
        ("SELECT * FROM t; SELECT * FROM u", "end of the statement"),
        ("SELECT * FROM t WHERE a = `{{not base64`", "Ion literal"),
        ("SELECT * FROM t WHERE a = 'unterminated", "unterminated"),
        ("SELECT * FROM t WHERE a = 1abc", "invalid number"),
        ("SELECT # FROM t", "unexpected character"),
    ] {
        let e = err(s);
        assert!(e.contains(needle), "{s}: {e}");
    }
}

#[test]
fn errors_point_at_line_and_column() {
    let e = parse_statement("SELECT *\nFROM t\nWHERE a = ").unwrap_err();
    assert_eq!((e.line, e.column), (3, 11));
    let e = parse_statement("SELECT * FROM t ORDER BY x").unwrap_err();
    assert_eq!((e.line, e.column), (1, 17));
}

#[test]
fn hostile_input_errors_without_overflowing_the_stack() {
    let deep = format!(
        "SELECT VALUE {}1{} FROM t",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    assert!(err(&deep).contains("nested"));
    let deep = format!("SELECT VALUE {}1 FROM t", "- ".repeat(50_000));
    assert!(err(&deep).contains("nested"));
    let deep = format!("SELECT VALUE {}1 FROM t", "NOT ".repeat(50_000));
    assert!(err(&deep).contains("nested"));
    let long = format!("SELECT * FROM t WHERE a = '{}'", "x".repeat(100_000));
    ok(&long);
    // Every prefix of a rich statement parses or errors, never panics.
    let s = "SELECT a.b[0], COUNT(*) FROM t AS a AT i BY d, a.c AS x WHERE x IN (1, ?) AND NOT a.d LIKE 'x%' ESCAPE '!' OR CAST(a.e AS DECIMAL(5,2)) BETWEEN -1.5 AND `2e0`";
    for i in 0..s.len() {
        let _ = parse_statement(&s[..i]);
    }
    for junk in [
        "\u{0}",
        "'",
        "\"",
        "`",
        "``",
        "((((",
        "SELECT * FROM t WHERE a = @",
        "EXEC",
        "INSERT INTO",
    ] {
        let _ = parse_statement(junk);
    }
}
