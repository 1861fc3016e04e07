//! The PartiQL conformance suite (partiql-tests, as shipped in the source of the
//! `partiql-conformance-tests` crate, a dev-dependency) run against qldb-local's engine.
//!
//! Only what applies to QLDB's dialect runs: syntax acceptance and rejection, and evaluation
//! in EvalModeError (QLDB's typing mode raises on type errors), minus cases that use what
//! QLDB never supported (GROUP BY, ORDER BY, LIMIT, set operators, outer joins, CASE, PIVOT,
//! date/time constructors, …). A bare expression is evaluated as
//! `SELECT VALUE (<expr>) FROM << 0 >>`, since QLDB requires a FROM clause.
//!
//! Pass counts per folder are compared with tests/conformance/baseline.txt: the test fails
//! on any regression. `QLDB_CONFORMANCE_CASE=<part of a name>` prints what the matching
//! cases expect and get. `QLDB_CONFORMANCE_WRITE_BASELINE=1` rewrites the baseline, and the
//! figures in docs/compatibility.md come from that file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qldb_local::ion::{text, Data, Value};
use qldb_local::partiql::exec::{self, Doc, ExecError, TableMeta, TxnView};
use qldb_local::partiql::{ops, parse_statement, parse_syntax};

const CRATE_DIR: &str = "partiql-conformance-tests-0.15.0";

/// The suite's data, in the cargo registry where the dev-dependency was unpacked.
fn data_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo")
        });
    let src = home.join("registry/src");
    let found = std::fs::read_dir(&src).ok().and_then(|dirs| {
        dirs.filter_map(|d| d.ok())
            .map(|d| d.path().join(CRATE_DIR).join("partiql-tests"))
            .find(|p| p.is_dir())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{CRATE_DIR} is not unpacked under {}: run `cargo fetch` (it is a dev-dependency)",
            src.display()
        )
    })
}

/// Folders (relative to the suite root) that apply to QLDB, and the files skipped in them.
const INCLUDE: &[&str] = &[
    "partiql-tests-data/success/syntax",
    "partiql-tests-data/fail/syntax",
    "partiql-tests-data/eval/primitives",
    "partiql-tests-data/eval/query/select",
    "partiql-tests-data/eval/query/join",
    "partiql-tests-data/eval/query/undefined-variable-behavior.ion",
    "partiql-tests-data/eval/ion",
    "partiql-tests-data/eval/misc.ion",
    "partiql-tests-data/eval/spec-tests.ion",
    "partiql-tests-data-extended/eval/primitives",
];
const SKIP_FILES: &[&str] = &[
    // Dumps of other databases' test suites, with tables of thousands of rows.
    "mysql",
    "postgresql",
    "date-time.ion",
    "coll-aggregate-function.ion",
    "int8.ion",
    "group-by",
    "order-by",
    "limit",
    "pivot",
    "setop",
    "graph",
    "interval",
    "bit-length",
    "octet-length",
    "position",
    "overlay",
    "abs.ion",
    "mod.ion",
    "cardinality",
    "time",
    "date",
    "bag-op",
    "case",
    "distinct",
    "window",
    "let",
    "dml",
    "ddl",
    "exec",
];
/// Words of features QLDB never had; a case using one does not apply.
const NOT_QLDB: &[&str] = &[
    "group by",
    "order by",
    "limit ",
    "offset ",
    "distinct",
    "union",
    "intersect",
    "except",
    "pivot",
    "unpivot",
    "left join",
    "right join",
    "full join",
    "outer join",
    "left cross",
    "outer ",
    "case ",
    " let ",
    "date '",
    "time '",
    "timestamp '",
    "interval",
    "over (",
    "with time zone",
    "mod(",
    "abs(",
    "position(",
    "overlay(",
    "cardinality(",
    "bit_length",
    "octet_length",
    "coll_",
    "match ",
    "<<>>",
    "sql_",
    "@",
    "date_format",
    "make_date",
    "make_time",
    "utcnow",
    "current_",
    "filter_",
    "exclude",
    "any(",
    "every(",
    "some(",
    "having",
];

/// A context without tables: the suite binds its data as global variables.
struct Globals;

fn no_table<T>() -> Result<T, ExecError> {
    Err(ExecError::Runtime(
        "no tables in the conformance environment".into(),
    ))
}

impl TxnView for Globals {
    fn tables(&mut self) -> Result<Vec<TableMeta>, ExecError> {
        Ok(Vec::new())
    }
    fn scan(&mut self, _: &TableMeta) -> Result<Vec<Doc>, ExecError> {
        no_table()
    }
    fn by_id(&mut self, _: &TableMeta, _: &str) -> Result<Option<Doc>, ExecError> {
        no_table()
    }
    fn by_index(&mut self, _: &TableMeta, _: &str, _: &Value) -> Result<Vec<Doc>, ExecError> {
        no_table()
    }
    fn insert(&mut self, _: &TableMeta, _: Value) -> Result<String, ExecError> {
        no_table()
    }
    fn update(&mut self, _: &TableMeta, _: &Doc, _: Value) -> Result<(), ExecError> {
        no_table()
    }
    fn delete(&mut self, _: &TableMeta, _: &Doc) -> Result<(), ExecError> {
        no_table()
    }
    fn create_table(&mut self, _: &str, _: &[(String, String)]) -> Result<String, ExecError> {
        no_table()
    }
    fn create_index(&mut self, _: &TableMeta, _: &str) -> Result<String, ExecError> {
        no_table()
    }
    fn set_table_active(&mut self, _: &str, _: bool) -> Result<(), ExecError> {
        no_table()
    }
    fn drop_index(&mut self, _: &TableMeta, _: &str) -> Result<(), ExecError> {
        no_table()
    }
    fn committed_view(&mut self, _: &TableMeta) -> Result<Vec<Value>, ExecError> {
        no_table()
    }
    fn history(&mut self, _: &TableMeta) -> Result<Vec<Value>, ExecError> {
        no_table()
    }
    fn redact(&mut self, _: &str, _: u64, _: &str, _: &str) -> Result<u64, ExecError> {
        no_table()
    }
    fn transaction_id(&self) -> String {
        "conformance".into()
    }
    fn now_ms(&self) -> i64 {
        0
    }
}

/// What one case expects in EvalModeError.
#[derive(Debug)]
enum Expect {
    SyntaxOk,
    SyntaxFail,
    Eval(Value),
    EvalFail,
}

struct Case {
    folder: String,
    name: String,
    statement: String,
    env: Vec<(String, Option<Value>)>,
    expect: Expect,
}

fn annotated(v: &Value, a: &str) -> bool {
    v.annotations.first().and_then(|x| x.as_deref()) == Some(a)
}

fn text_of(v: Option<&Value>) -> Option<&str> {
    match v.map(|v| &v.data) {
        Some(Data::String(s) | Data::Symbol(Some(s))) => Some(s),
        _ => None,
    }
}

/// `$missing::null` is MISSING; anything else is a value.
fn decode(v: &Value) -> Option<Value> {
    if annotated(v, "$missing") {
        None
    } else {
        Some(v.clone())
    }
}

fn env_of(v: Option<&Value>) -> Vec<(String, Option<Value>)> {
    match v.map(|v| &v.data) {
        Some(Data::Struct(fields)) => fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone()?, decode(v))))
            .collect(),
        _ => Vec::new(),
    }
}

fn expectation(assert: &Value) -> Option<Expect> {
    let asserts: Vec<&Value> = match &assert.data {
        Data::List(items) => items.iter().collect(),
        _ => vec![assert],
    };
    for a in asserts {
        let error_mode = match a.field("evalMode").map(|m| &m.data) {
            Some(Data::List(modes)) => modes
                .iter()
                .any(|m| text_of(Some(m)) == Some("EvalModeError")),
            Some(_) => text_of(a.field("evalMode")) == Some("EvalModeError"),
            None => true,
        };
        match text_of(a.field("result")) {
            Some("SyntaxSuccess") => return Some(Expect::SyntaxOk),
            Some("SyntaxFail") => return Some(Expect::SyntaxFail),
            Some("EvaluationSuccess") if error_mode => {
                return Some(Expect::Eval(a.field("output")?.clone()))
            }
            Some("EvaluationFail") if error_mode => return Some(Expect::EvalFail),
            _ => {}
        }
    }
    None
}

/// Walks a file's values: test cases, `ns::[…]` namespaces, `envs::{…}` for what follows.
fn collect(
    folder: &str,
    values: &[Value],
    prefix: &str,
    env: &mut Vec<(String, Option<Value>)>,
    out: &mut Vec<Case>,
) {
    for v in values {
        if annotated(v, "envs") {
            *env = env_of(Some(v));
            continue;
        }
        match &v.data {
            Data::List(items) => {
                let ns = v.annotations.first().cloned().flatten().unwrap_or_default();
                let mut inner_env = env.clone();
                collect(
                    folder,
                    items,
                    &format!("{prefix}{ns}/"),
                    &mut inner_env,
                    out,
                );
            }
            Data::Struct(_) => {
                let (Some(name), Some(statement), Some(assert)) = (
                    text_of(v.field("name")),
                    text_of(v.field("statement")),
                    v.field("assert"),
                ) else {
                    continue;
                };
                let Some(expect) = expectation(assert) else {
                    continue;
                };
                let lower = statement.to_lowercase();
                if NOT_QLDB.iter().any(|w| lower.contains(w)) {
                    continue;
                }
                let env = match v.field("env") {
                    Some(e) => env_of(Some(e)),
                    None => env.clone(),
                };
                out.push(Case {
                    folder: folder.to_string(),
                    name: format!("{prefix}{name}"),
                    statement: statement.to_string(),
                    env,
                    expect,
                });
            }
            _ => {}
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if SKIP_FILES.iter().any(|s| name.contains(s)) {
            continue;
        }
        if p.is_dir() {
            files(&p, out);
        } else if name.ends_with(".ion") {
            out.push(p);
        }
    }
}

/// The folder a case is reported under: the include entry, cut after its third part.
fn report_folder(include: &str) -> String {
    include
        .trim_end_matches(".ion")
        .split('/')
        .take(4)
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses a statement, or a bare expression wrapped in `SELECT VALUE … FROM << 0 >>`: by
/// the grammar alone for the syntax suites, with the semantic checks (function names and
/// arities, INT literal range) for evaluation, where they are evaluation errors.
fn parse(statement: &str, semantic: bool) -> Option<(qldb_local::partiql::ast::Statement, bool)> {
    let parse_one = |text: &str| {
        if semantic {
            parse_statement(text)
        } else {
            parse_syntax(text)
        }
    };
    let direct = parse_one(statement);
    if let Ok(s) = direct {
        return Some((s, false));
    }
    let wrapped = format!("SELECT VALUE ({statement}) FROM << 0 >>");
    match parse_one(&wrapped) {
        Ok(s) => Some((s, true)),
        Err(_) => None,
    }
}

/// PartiQL equivalence for expected outputs: bags compare without order, numbers by value.
fn same(got: &Value, want: &Value) -> bool {
    match (&got.data, &want.data) {
        (Data::List(g), Data::List(w)) if annotated(want, "$bag") => {
            let mut used = vec![false; g.len()];
            g.len() == w.len()
                && w.iter().all(|x| {
                    g.iter().enumerate().any(|(i, y)| {
                        let ok = !used[i] && same(y, x);
                        if ok {
                            used[i] = true;
                        }
                        ok
                    })
                })
        }
        (Data::List(g), Data::List(w)) | (Data::SExp(g), Data::SExp(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b))
        }
        (Data::Struct(g), Data::Struct(w)) => {
            g.len() == w.len()
                && w.iter()
                    .all(|(k, x)| g.iter().any(|(k2, y)| k == k2 && same(y, x)))
        }
        // Typed and untyped nulls are all NULL to PartiQL.
        (Data::Null(_), Data::Null(_)) => true,
        _ => got.ion_type() == want.ion_type() && ops::equal(got, want),
    }
}

fn run(case: &Case) -> bool {
    let syntax_only = matches!(case.expect, Expect::SyntaxOk | Expect::SyntaxFail);
    let parsed = parse(&case.statement, !syntax_only);
    if let Some(pat) = std::env::var_os("QLDB_CONFORMANCE_CASE") {
        if case.name.contains(pat.to_str().unwrap_or_default()) {
            let got = parsed.as_ref().map(|(stmt, _)| {
                exec::execute_with_globals(stmt, &[], &case.env, &mut Globals)
                    .map(|rows| rows.iter().map(text::to_text_one).collect::<Vec<_>>())
            });
            eprintln!(
                "CASE {} :: {}\n  expect {:?}\n  got {got:?}",
                case.name, case.statement, case.expect
            );
        }
    }
    match (&case.expect, parsed) {
        (Expect::SyntaxOk, p) => p.is_some(),
        (Expect::SyntaxFail, p) => p.is_none(),
        (Expect::EvalFail, None) => true,
        (Expect::EvalFail, Some((stmt, _))) => {
            exec::execute_with_globals(&stmt, &[], &case.env, &mut Globals).is_err()
        }
        (Expect::Eval(_), None) => false,
        (Expect::Eval(want), Some((stmt, wrapped))) => {
            let Ok(rows) = exec::execute_with_globals(&stmt, &[], &case.env, &mut Globals) else {
                return false;
            };
            let want_value = decode(want);
            if wrapped {
                match (rows.as_slice(), &want_value) {
                    ([], None) => true,
                    ([v], Some(w)) => same(v, w),
                    _ => false,
                }
            } else {
                let got = Value {
                    annotations: Vec::new(),
                    data: Data::List(rows),
                };
                match &want_value {
                    Some(w) if matches!(w.data, Data::List(_)) => {
                        let mut w = w.clone();
                        if w.annotations.is_empty() {
                            // A query's result is a bag whatever the file says.
                            w.annotations = vec![Some("$bag".into())];
                        }
                        same(&got, &w)
                    }
                    _ => false,
                }
            }
        }
    }
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/baseline.txt")
}

fn read_baseline() -> BTreeMap<String, (usize, usize)> {
    let text = std::fs::read_to_string(baseline_path()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let folder = parts.next()?.to_string();
            let (p, t) = parts.next()?.split_once('/')?;
            Some((folder, (p.parse().ok()?, t.parse().ok()?)))
        })
        .collect()
}

#[test]
fn partiql_conformance_suite() {
    let root = data_dir();
    let mut cases = Vec::new();
    for inc in INCLUDE {
        if std::env::var_os("QLDB_CONFORMANCE_TRACE").is_some() {
            eprintln!("include {inc} in {}", root.display());
        }
        let mut fs = Vec::new();
        files(&root.join(inc), &mut fs);
        fs.sort();
        for f in fs {
            if std::env::var_os("QLDB_CONFORMANCE_TRACE").is_some() {
                eprintln!("file {}", f.display());
            }
            let src = std::fs::read_to_string(&f).unwrap();
            let values = match text::from_text(&src) {
                Ok(v) => v,
                Err(e) => panic!("{}: {e}", f.display()),
            };
            collect(
                &report_folder(inc),
                &values,
                "",
                &mut Vec::new(),
                &mut cases,
            );
        }
    }
    let mut results: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let trace = std::env::var_os("QLDB_CONFORMANCE_TRACE").is_some();
    for case in &cases {
        if trace {
            eprintln!("{} :: {}", case.name, case.statement);
        }
        // A panic in the engine is a failure of the case, and a bug to fix.
        let ok = std::panic::catch_unwind(|| run(case)).unwrap_or(false);
        let r = results.entry(case.folder.clone()).or_default();
        r.1 += 1;
        if ok {
            r.0 += 1;
        } else {
            failures
                .entry(case.folder.clone())
                .or_default()
                .push(format!("{} :: {}", case.name, case.statement));
        }
    }
    let mut report = String::from(
        "# PartiQL conformance: passed/applicable cases per folder (tests/conformance.rs)\n",
    );
    let (mut pass, mut total) = (0, 0);
    for (folder, (p, t)) in &results {
        report.push_str(&format!("{folder} {p}/{t}\n"));
        pass += p;
        total += t;
    }
    println!("{report}total {pass}/{total}");
    if std::env::var_os("QLDB_CONFORMANCE_SHOW_FAILURES").is_some() {
        for (folder, list) in &failures {
            for f in list {
                println!("FAIL {folder}: {f}");
            }
        }
    }
    if std::env::var_os("QLDB_CONFORMANCE_WRITE_BASELINE").is_some() {
        std::fs::create_dir_all(baseline_path().parent().unwrap()).unwrap();
        std::fs::write(baseline_path(), &report).unwrap();
        return;
    }
    let baseline = read_baseline();
    assert!(
        !baseline.is_empty(),
        "no baseline at {}; run with QLDB_CONFORMANCE_WRITE_BASELINE=1",
        baseline_path().display()
    );
    let mut regressions = Vec::new();
    for (folder, (p, _)) in &baseline {
        let now = results.get(folder).map_or(0, |r| r.0);
        if now < *p {
            regressions.push(format!("{folder}: {now} passed, baseline {p}"));
        }
    }
    assert!(
        regressions.is_empty(),
        "conformance regressions:\n{}",
        regressions.join("\n")
    );
}
