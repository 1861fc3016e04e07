//! Golden tests of the PartiQL dialect, as data: every `tests/golden/<area>/*.golden` file is
//! a script run against a fresh in-process ledger through the session layer. The format is
//! described in tests/golden/README.md; adding a case means adding lines.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use qldb_local::ion::{text, Data, Value};
use qldb_local::session::SessionError;

/// What a case expects.
#[derive(Debug)]
enum Expect {
    /// These values, in any order (results are unordered, as on QLDB).
    Bag(Vec<Value>),
    /// These values in this order.
    Ordered(Vec<Value>),
    /// Only this many rows (for results holding fresh ids).
    Rows(usize),
    /// An error of this exception type whose message contains the text.
    Error(String, String),
}

#[derive(Debug)]
struct Case {
    line: usize,
    statement: String,
    params: Vec<String>,
    expect: Expect,
    /// Setup statements run and commit without checks.
    setup: bool,
    /// Why a case is known not to pass yet (it must fail; a pending case that passes is
    /// reported, so the marker is removed).
    pending: Option<String>,
    /// `save: NAME`: the text of the result's first value (a struct's first field) becomes
    /// `$NAME` in later statements and parameters — for fresh ids such as a tableId.
    save: Option<String>,
    /// `plan:` lines: the statement's plan, line by line (indentation kept).
    plan: Vec<String>,
    /// `reads:` lines: the transaction's read set after the statement, in any order.
    reads: Option<Vec<String>>,
}

/// The exception a client sees: the session API's own mapping.
fn exception(e: &SessionError) -> &'static str {
    e.code()
}

/// Parses one script. Lines:
/// `# …` comment · `setup: STMT` · `> STMT` (continued by `| …` lines) · `params: ION…` ·
/// `=> ION…` expected bag (more `=>` lines add values) · `=>> ION…` ordered ·
/// `rows: N` · `!! Exception[: message part]` · `pending: why` · blank lines separate nothing.
fn parse(path: &Path, src: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let at = |n: usize| format!("{}:{}", path.display(), n + 1);
    let ion = |s: &str, n: usize| -> Vec<Value> {
        text::from_text(s).unwrap_or_else(|e| panic!("{}: bad Ion '{s}': {e}", at(n)))
    };
    for (n, raw) in src.lines().enumerate() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let last = cases.last_mut();
        if let Some(stmt) = trimmed.strip_prefix("setup:") {
            cases.push(Case {
                line: n + 1,
                statement: stmt.trim().into(),
                params: vec![],
                expect: Expect::Rows(usize::MAX),
                setup: true,
                pending: None,
                save: None,
                plan: vec![],
                reads: None,
            });
        } else if let Some(stmt) = trimmed.strip_prefix("> ") {
            cases.push(Case {
                line: n + 1,
                statement: stmt.trim().into(),
                params: vec![],
                expect: Expect::Bag(vec![]),
                setup: false,
                pending: None,
                save: None,
                plan: vec![],
                reads: None,
            });
        } else {
            let case = last.unwrap_or_else(|| panic!("{}: no statement before '{line}'", at(n)));
            if let Some(more) = trimmed.strip_prefix("| ") {
                case.statement.push('\n');
                case.statement.push_str(more);
            } else if let Some(p) = trimmed.strip_prefix("plan:") {
                case.plan.push(p.strip_prefix(' ').unwrap_or(p).to_string());
            } else if let Some(r) = trimmed.strip_prefix("reads:") {
                let reads = case.reads.get_or_insert_with(Vec::new);
                if r.trim() != "(none)" {
                    reads.push(r.trim().to_string());
                }
            } else if let Some(name) = trimmed.strip_prefix("save:") {
                case.save = Some(name.trim().into());
            } else if let Some(why) = trimmed.strip_prefix("pending:") {
                case.pending = Some(why.trim().into());
            } else if let Some(p) = trimmed.strip_prefix("params:") {
                case.params = ion(p, n).iter().map(text::to_text_one).collect();
            } else if let Some(v) = trimmed.strip_prefix("=>>") {
                match &mut case.expect {
                    Expect::Ordered(vs) => vs.extend(ion(v, n)),
                    e => *e = Expect::Ordered(ion(v, n)),
                }
            } else if let Some(v) = trimmed.strip_prefix("=>") {
                match &mut case.expect {
                    Expect::Bag(vs) => vs.extend(ion(v, n)),
                    e => *e = Expect::Bag(ion(v, n)),
                }
            } else if let Some(r) = trimmed.strip_prefix("rows:") {
                case.expect = Expect::Rows(
                    r.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: bad row count", at(n))),
                );
            } else if let Some(e) = trimmed.strip_prefix("!!") {
                let (code, msg) = e.trim().split_once(':').unwrap_or((e.trim(), ""));
                case.expect = Expect::Error(code.trim().into(), msg.trim().into());
            } else {
                panic!("{}: cannot read '{line}'", at(n));
            }
        }
    }
    cases
}

/// Ion equality for expectations: structurally equal, struct fields in any order.
fn same(a: &Value, b: &Value) -> bool {
    if a.annotations != b.annotations {
        return false;
    }
    match (&a.data, &b.data) {
        (Data::Struct(x), Data::Struct(y)) => {
            x.len() == y.len() && {
                let mut used = vec![false; y.len()];
                x.iter().all(|(k, v)| {
                    y.iter().enumerate().any(|(i, (k2, v2))| {
                        let ok = !used[i] && k == k2 && same(v, v2);
                        if ok {
                            used[i] = true;
                        }
                        ok
                    })
                })
            }
        }
        (Data::List(x), Data::List(y)) | (Data::SExp(x), Data::SExp(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn same_bag(got: &[Value], want: &[Value]) -> bool {
    let mut used = vec![false; got.len()];
    got.len() == want.len()
        && want.iter().all(|w| {
            got.iter().enumerate().any(|(i, g)| {
                let ok = !used[i] && same(g, w);
                if ok {
                    used[i] = true;
                }
                ok
            })
        })
}

fn show(vs: &[Value]) -> String {
    vs.iter()
        .map(text::to_text_one)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What running the scripts found.
#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    checked: usize,
    pending: Vec<String>,
}

/// Runs one script.
fn run_file(path: &Path, out: &mut Outcome) {
    let src = std::fs::read_to_string(path).unwrap();
    let cases = parse(path, &src);
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    let mut saved: Vec<(String, String)> = Vec::new();
    for case in &cases {
        let statement = substitute(&saved, &case.statement);
        let params: Vec<String> = case.params.iter().map(|p| substitute(&saved, p)).collect();
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let mut t = Tx::begin(&l, &s);
        let mut plan_problem = None;
        if !case.plan.is_empty() {
            let plan = l.sessions.explain(&s, &t.id, &statement);
            let want: Vec<String> = case.plan.iter().map(|p| substitute(&saved, p)).collect();
            if plan.as_ref().ok() != Some(&want) {
                plan_problem = Some(format!(
                    "want plan\n    {}\n  got plan\n    {}",
                    want.join("\n    "),
                    match &plan {
                        Ok(lines) => lines.join("\n    "),
                        Err(e) => e.to_string(),
                    }
                ));
            }
        }
        let got = t.run(&statement, &params).and_then(|rows| {
            if let Some(want) = &case.reads {
                let mut want = want.clone();
                want.sort();
                let reads = l.sessions.read_set(&s, &t.id)?;
                if reads != want {
                    plan_problem = Some(format!(
                        "want read set\n    {}\n  got read set\n    {}",
                        want.join("\n    "),
                        reads.join("\n    ")
                    ));
                }
            }
            t.commit()?;
            Ok(rows)
        });
        if got.is_err() {
            // As a driver does after a failed statement.
            let _ = l.sessions.abort(&s);
        }
        let shown = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path)
            .display();
        let at = format!("{shown}:{}: {}", case.line, case.statement);
        if let (Some(name), Ok(rows)) = (&case.save, &got) {
            match rows.first().map(first_text) {
                Some(Some(value)) => {
                    saved.push((name.clone(), value));
                    saved.sort_by_key(|(n, _)| n.len());
                }
                _ => out.failures.push(format!(
                    "{}:{}: save: {name}: the result has no text value to save",
                    path.display(),
                    case.line
                )),
            }
        }
        if case.setup {
            if let Err(e) = got {
                out.failures.push(format!("{at}\n  setup failed: {e}"));
            }
            continue;
        }
        out.checked += 1;
        let expect = match &case.expect {
            Expect::Bag(vs) => Expect::Bag(vs.iter().map(|v| substitute_in(&saved, v)).collect()),
            Expect::Ordered(vs) => {
                Expect::Ordered(vs.iter().map(|v| substitute_in(&saved, v)).collect())
            }
            Expect::Rows(n) => Expect::Rows(*n),
            Expect::Error(code, msg) => Expect::Error(code.clone(), substitute(&saved, msg)),
        };
        let problem = match (&expect, &got) {
            (Expect::Error(code, msg), Err(e)) => (exception(e) != code
                || !e.to_string().contains(msg.as_str()))
            .then(|| format!("want {code} containing '{msg}', got {}: {e}", exception(e))),
            (Expect::Error(code, _), Ok(rows)) => {
                Some(format!("want {code}, got rows {}", show(rows)))
            }
            (_, Err(e)) => Some(format!("unexpected {}: {e}", exception(e))),
            (Expect::Rows(n), Ok(rows)) => (rows.len() != *n)
                .then(|| format!("want {n} rows, got {}: {}", rows.len(), show(rows))),
            (Expect::Bag(want), Ok(rows)) => (!same_bag(rows, want))
                .then(|| format!("want {}\n  got  {}", show(want), show(rows))),
            (Expect::Ordered(want), Ok(rows)) => (rows.len() != want.len()
                || !rows.iter().zip(want).all(|(g, w)| same(g, w)))
            .then(|| format!("want in order {}\n  got  {}", show(want), show(rows))),
        };
        let problem = match (problem, plan_problem) {
            (Some(p), Some(q)) => Some(format!("{p}\n  {q}")),
            (p, q) => p.or(q),
        };
        match (problem, &case.pending) {
            (Some(p), None) => out.failures.push(format!("{at}\n  {p}")),
            (Some(_), Some(why)) => out.pending.push(format!("{at} ({why})")),
            (None, Some(_)) => out.failures.push(format!(
                "{at}\n  passes although marked pending: remove the pending line"
            )),
            (None, None) => {}
        }
    }
}

/// `text` with the saved `$NAME`s replaced; longest names first (the list is kept sorted
/// by length), so `$id1` is not read as `$id` followed by `1`.
fn substitute(saved: &[(String, String)], text: &str) -> String {
    saved
        .iter()
        .rev()
        .fold(text.to_string(), |t, (name, value)| {
            t.replace(&format!("${name}"), value)
        })
}

/// An expected value with the saved `$NAME`s replaced in its strings and symbols.
fn substitute_in(saved: &[(String, String)], v: &Value) -> Value {
    let data = match &v.data {
        Data::String(s) => Data::String(substitute(saved, s)),
        Data::Symbol(Some(s)) => Data::Symbol(Some(substitute(saved, s))),
        Data::List(vs) => Data::List(vs.iter().map(|x| substitute_in(saved, x)).collect()),
        Data::SExp(vs) => Data::SExp(vs.iter().map(|x| substitute_in(saved, x)).collect()),
        Data::Struct(fs) => Data::Struct(
            fs.iter()
                .map(|(k, x)| (k.clone(), substitute_in(saved, x)))
                .collect(),
        ),
        d => d.clone(),
    };
    Value {
        annotations: v.annotations.clone(),
        data,
    }
}

/// The text a `save:` keeps: a string or symbol, or a struct's first such field.
fn first_text(v: &Value) -> Option<String> {
    match &v.data {
        Data::String(s) | Data::Symbol(Some(s)) => Some(s.clone()),
        Data::Struct(fields) => fields.first().and_then(|(_, f)| first_text(f)),
        _ => None,
    }
}

fn golden_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            golden_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "golden") {
            out.push(p);
        }
    }
}

#[test]
fn golden_scripts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files = Vec::new();
    golden_files(&root, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no golden files under {}",
        root.display()
    );
    let mut out = Outcome::default();
    for f in &files {
        run_file(f, &mut out);
    }
    println!(
        "{} golden cases in {} files, {} pending:",
        out.checked,
        files.len(),
        out.pending.len()
    );
    for p in &out.pending {
        println!("  pending {p}");
    }
    assert!(
        out.failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        out.failures.len(),
        out.checked,
        out.failures.join("\n")
    );
}
