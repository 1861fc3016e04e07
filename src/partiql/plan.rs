//! The plan of a statement: how each FROM source is read, decided once before the first
//! row, against one snapshot of the catalog.
//!
//! For every FROM source of a statement and of its subqueries the planner chooses
//! - the access path of a table: by document id (its BY variable), by the keys of an index,
//!   or a scan — from the equalities (`=`, `IN`) of WHERE (and ON) whose other side is known
//!   before the table is read: literals, parameters, variables bound earlier;
//! - how a source joined after others is read: once and shared by every row on its left, or
//!   per row (a lookup keyed by that row, or a collection inside it);
//!
//! and which subqueries read no variable of an outer row, so that they run once per
//! statement. The executor follows the plan; [`Plan::lines`] is its text, which the golden
//! tests' `plan:` lines show.
//!
//! Plans depend only on the statement's structure and the catalog, never on a row: the
//! names bound before a source are known statically, so a key is "known" by its names.

use std::collections::{HashMap, HashSet};

use super::ast::*;
use super::exec::TableMeta;
use crate::ion::text;

/// The key values of an access path: one expression, or one that yields a list of keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Keys {
    Eq(Expr),
    In(Expr),
}

/// How a table source's documents are found.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    Scan,
    /// The document(s) whose id equals the key(s): `FROM t BY id WHERE id = ?`.
    ById(Keys),
    /// The documents whose indexed field equals the key(s).
    Index {
        index_id: String,
        field: String,
        keys: Keys,
    },
}

/// How a FROM source relates to the sources on its left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// The first source of its FROM clause.
    First,
    /// Read for each row of the sources on its left (keyed by it, or a collection in it).
    PerRow,
    /// Independent of its left: read once, each of its rows joined to every left row.
    Once,
}

/// The plan of one FROM source.
#[derive(Clone, Debug)]
pub struct SourcePlan {
    /// The access path, when the source is a table of the catalog.
    pub access: Option<Access>,
    pub join: Join,
}

/// The plan of a statement and its subqueries.
#[derive(Debug, Default)]
pub struct Plan {
    sources: HashMap<usize, SourcePlan>,
    once: HashSet<usize>,
    /// The plan as text, a line per statement, subquery and source.
    pub lines: Vec<String>,
}

fn addr<T>(x: &T) -> usize {
    x as *const T as usize
}

impl Plan {
    /// The plan of a FROM source of the planned statement.
    pub fn source(&self, src: &FromSource) -> Option<&SourcePlan> {
        self.sources.get(&addr(src))
    }

    /// Whether a subquery of the planned statement reads no outer row (it runs once).
    pub fn once(&self, select: &Select) -> bool {
        self.once.contains(&addr(select))
    }
}

/// Plans `stmt` against `tables` (the transaction's catalog); `globals` are the names of
/// variables bound around the statement (the conformance suite's environments).
pub fn plan(stmt: &Statement, tables: &[TableMeta], globals: &[String]) -> Plan {
    let mut p = Planner {
        tables,
        globals,
        plan: Plan::default(),
    };
    match stmt {
        Statement::Select(s) => {
            p.line(0, "select".into());
            p.select(s, globals, 1);
        }
        Statement::Dml(d) => p.dml(d),
        Statement::Insert { value, .. } => p.subqueries(&[value], globals, 0),
        Statement::Exec { args, .. } => p.subqueries(&args.iter().collect::<Vec<_>>(), globals, 0),
        _ => {}
    }
    p.plan
}

struct Planner<'a> {
    tables: &'a [TableMeta],
    globals: &'a [String],
    plan: Plan,
}

impl Planner<'_> {
    fn line(&mut self, depth: usize, text: String) {
        self.plan
            .lines
            .push(format!("{}{text}", "  ".repeat(depth)));
    }

    fn select(&mut self, s: &Select, outer: &[String], depth: usize) {
        let conj = s.where_.as_ref().map(conjuncts).unwrap_or_default();
        let single = matches!(s.from, FromClause::Source(_));
        let mut inner = outer.to_vec();
        inner.extend(self.from(&s.from, &conj, outer, single, depth));
        let mut exprs: Vec<&Expr> = Vec::new();
        match &s.projection {
            Projection::Star => {}
            Projection::Value(e) => exprs.push(e),
            Projection::Items(items) => exprs.extend(items.iter().map(|i| match i {
                ProjectItem::Expr { expr, .. } | ProjectItem::All(expr) => expr,
            })),
        }
        from_exprs(&s.from, &mut exprs);
        exprs.extend(s.where_.iter());
        self.subqueries(&exprs, &inner, depth);
    }

    /// Plans the sources of a FROM clause; returns the names they bind. Mirrors the
    /// executor's binding: a join's right side is keyed per left row when an equality of ON
    /// or WHERE pins its id or an indexed field to a known key, read per row when it is a
    /// collection of a left variable, and else read once with WHERE's constants only.
    fn from(
        &mut self,
        from: &FromClause,
        conj: &[&Expr],
        outer: &[String],
        single: bool,
        depth: usize,
    ) -> Vec<String> {
        match from {
            FromClause::Source(src) => self.source(src, conj, outer, Join::First, single, depth),
            FromClause::Join {
                left, right, on, ..
            } => {
                let mut names = self.from(left, conj, outer, false, depth);
                let mut earlier = outer.to_vec();
                earlier.extend(names.iter().cloned());
                let mut right_conj = on.as_ref().map(conjuncts).unwrap_or_default();
                right_conj.extend(conj.iter().copied());
                let right_names = match &**right {
                    FromClause::Source(src) => {
                        let keyed = !refers_to(&src.expr, &earlier)
                            && self.table_of(src, &earlier).is_some_and(|t| {
                                let alias = source_alias(src);
                                choose(t, &alias, src.by.as_deref(), &right_conj, &earlier, false)
                                    != Access::Scan
                            });
                        if refers_to(&src.expr, &earlier) || keyed {
                            self.source(src, &right_conj, &earlier, Join::PerRow, false, depth)
                        } else {
                            let globals = self.globals;
                            self.source(src, conj, globals, Join::Once, false, depth)
                        }
                    }
                    FromClause::Join { .. } => {
                        self.line(depth, "(read once)".into());
                        let globals = self.globals;
                        self.from(right, conj, globals, false, depth + 1)
                    }
                };
                names.extend(right_names);
                names
            }
        }
    }

    /// The active table a FROM source names, unless its name is a variable in scope.
    fn table_of(&self, src: &FromSource, bound: &[String]) -> Option<&TableMeta> {
        match &src.expr {
            Expr::Var { name, .. }
                if !bound.contains(name) && !name.starts_with("_ql_committed_") =>
            {
                self.tables.iter().find(|t| t.active && &t.name == name)
            }
            _ => None,
        }
    }

    fn source(
        &mut self,
        src: &FromSource,
        conj: &[&Expr],
        bound: &[String],
        join: Join,
        single: bool,
        depth: usize,
    ) -> Vec<String> {
        let alias = source_alias(src);
        let access = self.table_of(src, bound).map(|t| {
            (
                t.name.clone(),
                choose(t, &alias, src.by.as_deref(), conj, bound, single),
            )
        });
        let how = match &access {
            Some((name, a)) => show_access(name, a),
            None if is_user_tables(&src.expr) => "information_schema.user_tables".into(),
            None => format!("each {}", show(&src.expr)),
        };
        let suffix = match join {
            Join::First => "",
            Join::PerRow => " (per row)",
            Join::Once => " (read once)",
        };
        self.line(depth, format!("{alias}: {how}{suffix}"));
        self.plan.sources.insert(
            addr(src),
            SourcePlan {
                access: access.map(|(_, a)| a),
                join,
            },
        );
        let mut names = vec![alias];
        names.extend(src.at.iter().cloned());
        names.extend(src.by.iter().cloned());
        names
    }

    fn dml(&mut self, d: &Dml) {
        let action = match &d.action {
            DmlAction::Set(_) => "set",
            DmlAction::Remove(_) => "remove",
            DmlAction::InsertInto { .. } => "insert into",
            DmlAction::Delete => "delete",
        };
        self.line(0, action.into());
        let Some((first, nested)) = d.from.split_first() else {
            return;
        };
        // The document is found by the conjuncts that name no nested item: the others are
        // checked per binding.
        let nested_names: Vec<String> = nested
            .iter()
            .flat_map(|n| n.alias.iter().chain(n.at.iter()).cloned())
            .collect();
        let conj: Vec<&Expr> = d
            .where_
            .as_ref()
            .map(conjuncts)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !uses_name(c, &nested_names))
            .collect();
        let globals = self.globals;
        let mut bound = globals.to_vec();
        bound.extend(self.source(first, &conj, globals, Join::First, nested.is_empty(), 1));
        for n in nested {
            bound.extend(self.source(n, &[], &bound.clone(), Join::PerRow, false, 1));
        }
        let mut exprs: Vec<&Expr> = nested.iter().map(|n| &n.expr).collect();
        exprs.extend(d.where_.iter());
        match &d.action {
            DmlAction::Set(assignments) => {
                for (t, v) in assignments {
                    exprs.push(t);
                    exprs.push(v);
                }
            }
            DmlAction::Remove(t) => exprs.push(t),
            DmlAction::InsertInto { target, value, at } => {
                exprs.push(target);
                exprs.push(value);
                exprs.extend(at.iter());
            }
            DmlAction::Delete => {}
        }
        self.subqueries(&exprs, &bound, 1);
    }

    /// Plans the subqueries in `exprs` (not those nested in them: each plans its own),
    /// evaluated where `outer` names are bound.
    fn subqueries(&mut self, exprs: &[&Expr], outer: &[String], depth: usize) {
        let mut found = Vec::new();
        for e in exprs {
            collect_subqueries(e, &mut found);
        }
        for s in found {
            // `outer` is the globals followed by the enclosing queries' own names.
            let locals = outer.get(self.globals.len()..).unwrap_or_default();
            let once = !correlated(s, locals, self.globals);
            if once {
                self.plan.once.insert(addr(s));
            }
            let how = if once {
                "subquery (uncorrelated: once)"
            } else {
                "subquery (correlated: per row)"
            };
            self.line(depth, how.into());
            self.select(s, outer, depth + 1);
        }
    }
}

/// The access path for a table source with alias `alias` (and BY variable `by`): the first
/// conjunct that pins its id, else the first that pins an indexed field (in the order the
/// indexes were created), to keys known where `bound` names are bound. `bare` lets a bare
/// field name (implicit scope) stand for the source's field: only when it is the only
/// source in scope.
fn choose(
    t: &TableMeta,
    alias: &str,
    by: Option<&str>,
    conj: &[&Expr],
    bound: &[String],
    bare: bool,
) -> Access {
    if let Some(by) = by {
        let is_by = |e: &Expr| matches!(e, Expr::Var { name, .. } if name == by);
        if let Some(keys) = conj.iter().find_map(|c| equality(c, is_by, alias, bound)) {
            return Access::ById(keys);
        }
    }
    for (index_id, field) in &t.indexes {
        let on_field = |e: &Expr| is_field_of(e, alias, field, bare, bound);
        if let Some(keys) = conj
            .iter()
            .find_map(|c| equality(c, on_field, alias, bound))
        {
            return Access::Index {
                index_id: index_id.clone(),
                field: field.clone(),
                keys,
            };
        }
    }
    Access::Scan
}

/// For `target = k` or `target IN k` with `k` known before `alias` is read: the keys.
fn equality(
    e: &Expr,
    target: impl Fn(&Expr) -> bool,
    alias: &str,
    bound: &[String],
) -> Option<Keys> {
    let known = |x: &Expr| is_constant(x) || key_expr(x, bound, alias);
    match e {
        Expr::Binary {
            op: BinaryOp::Eq,
            left,
            right,
        } => {
            if target(left) && known(right) {
                Some(Keys::Eq((**right).clone()))
            } else if target(right) && known(left) {
                Some(Keys::Eq((**left).clone()))
            } else {
                None
            }
        }
        Expr::In {
            expr,
            list,
            negated: false,
        } if target(expr) && known(list) => Some(Keys::In((**list).clone())),
        _ => None,
    }
}

/// The alias a FROM source binds: its AS name, else the table or last path field's name.
pub fn source_alias(src: &FromSource) -> String {
    if let Some(a) = &src.alias {
        return a.clone();
    }
    if is_user_tables(&src.expr) {
        return "user_tables".into();
    }
    match &src.expr {
        Expr::Var { name, .. } => name.clone(),
        Expr::Path { steps, .. } => match steps.last() {
            Some(PathStep::Field { name, .. }) => name.clone(),
            _ => "_1".into(),
        },
        _ => "_1".into(),
    }
}

pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Binary {
            op: BinaryOp::And,
            left,
            right,
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        other => vec![other],
    }
}

/// A key expression known before `alias` is read: a path into variables of `bound` (not
/// `alias` itself), literals, parameters, and arithmetic, lists and unary operators over them.
fn key_expr(e: &Expr, bound: &[String], alias: &str) -> bool {
    match e {
        Expr::Lit(_) | Expr::Param(_) => true,
        Expr::Var { name, .. } => name != alias && bound.contains(name),
        Expr::Path { root, steps } => {
            key_expr(root, bound, alias)
                && steps.iter().all(|s| match s {
                    PathStep::Field { .. } => true,
                    PathStep::Index(i) => key_expr(i, bound, alias),
                    _ => false,
                })
        }
        Expr::Unary { expr, .. } => key_expr(expr, bound, alias),
        Expr::Binary { op, left, right } if !matches!(op, BinaryOp::And | BinaryOp::Or) => {
            key_expr(left, bound, alias) && key_expr(right, bound, alias)
        }
        Expr::List(items) | Expr::Bag(items) => items.iter().all(|i| key_expr(i, bound, alias)),
        _ => false,
    }
}

/// Whether an expression reads no variables (literals and parameters only).
fn is_constant(e: &Expr) -> bool {
    match e {
        Expr::Lit(_) | Expr::Param(_) => true,
        Expr::List(items) | Expr::Bag(items) => items.iter().all(is_constant),
        Expr::Unary { expr, .. } => is_constant(expr),
        _ => false,
    }
}

/// `alias.field`, or (with `bare`) a bare `field` (implicit scope) that is not a variable
/// bound around the source.
fn is_field_of(e: &Expr, alias: &str, field: &str, bare: bool, bound: &[String]) -> bool {
    match e {
        Expr::Path { root, steps } => {
            matches!(&**root, Expr::Var { name, .. } if name == alias)
                && matches!(steps.as_slice(), [PathStep::Field { name, .. }] if name == field)
        }
        Expr::Var {
            name, at: false, ..
        } => bare && name == field && name != alias && !bound.contains(name),
        _ => false,
    }
}

pub fn is_user_tables(e: &Expr) -> bool {
    matches!(e, Expr::Path { root, steps }
        if matches!(&**root, Expr::Var { name, .. } if name == "information_schema")
        && matches!(steps.as_slice(), [PathStep::Field { name, .. }] if name == "user_tables"))
}

/// Whether a FROM expression reads a variable of `bound` (a collection of an earlier row,
/// or a list built from one), or is a query that may.
fn refers_to(e: &Expr, bound: &[String]) -> bool {
    match e {
        Expr::Subquery(_) => true,
        e => uses_name(e, bound),
    }
}

/// The expressions directly inside `e` (not inside a nested query).
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Path { root, steps } => {
            let mut v = vec![&**root];
            v.extend(steps.iter().filter_map(|s| match s {
                PathStep::Index(i) => Some(i),
                _ => None,
            }));
            v
        }
        Expr::Struct(fields) => fields.iter().flat_map(|(k, v)| [k, v]).collect(),
        Expr::List(items) | Expr::Bag(items) => items.iter().collect(),
        Expr::Call { args, .. } => args.iter().collect(),
        Expr::Unary { expr, .. } | Expr::Cast { expr, .. } | Expr::IsNull { expr, .. } => {
            vec![&**expr]
        }
        Expr::Binary { left, right, .. } => vec![&**left, &**right],
        Expr::Like {
            expr,
            pattern,
            escape,
            ..
        } => {
            let mut v = vec![&**expr, &**pattern];
            v.extend(escape.as_deref());
            v
        }
        Expr::Between {
            expr, low, high, ..
        } => vec![&**expr, &**low, &**high],
        Expr::In { expr, list, .. } => vec![&**expr, &**list],
        Expr::Lit(_)
        | Expr::Missing
        | Expr::Param(_)
        | Expr::Var { .. }
        | Expr::Keyword(_)
        | Expr::Subquery(_) => Vec::new(),
    }
}

/// The FROM clause's own expressions (sources and ON conditions).
fn from_exprs<'a>(from: &'a FromClause, out: &mut Vec<&'a Expr>) {
    match from {
        FromClause::Source(s) => out.push(&s.expr),
        FromClause::Join {
            left, right, on, ..
        } => {
            from_exprs(left, out);
            from_exprs(right, out);
            out.extend(on.iter());
        }
    }
}

/// The subqueries in `e`, outermost only.
fn collect_subqueries<'a>(e: &'a Expr, out: &mut Vec<&'a Select>) {
    match e {
        Expr::Subquery(s) => out.push(s),
        e => {
            for c in children(e) {
                collect_subqueries(c, out);
            }
        }
    }
}

/// Whether an expression names one of `names` as a variable (nested queries included).
fn uses_name(e: &Expr, names: &[String]) -> bool {
    match e {
        Expr::Var { name, .. } => names.contains(name),
        Expr::Subquery(s) => {
            let mut exprs = Vec::new();
            select_exprs(s, &mut exprs);
            exprs.iter().any(|x| uses_name(x, names))
        }
        e => children(e).iter().any(|c| uses_name(c, names)),
    }
}

/// Every expression of a SELECT (projection, FROM, WHERE), nested queries not opened.
fn select_exprs<'a>(s: &'a Select, out: &mut Vec<&'a Expr>) {
    match &s.projection {
        Projection::Star => {}
        Projection::Value(e) => out.push(e),
        Projection::Items(items) => out.extend(items.iter().map(|i| match i {
            ProjectItem::Expr { expr, .. } | ProjectItem::All(expr) => expr,
        })),
    }
    from_exprs(&s.from, out);
    out.extend(s.where_.iter());
}

/// Whether a subquery may read a variable bound outside it: a name it uses and does not
/// bind that an enclosing query binds (`locals`, even one that shadows a global), or that
/// is neither a global nor a table it reads (an unqualified name may be a field of an
/// outer row).
fn correlated(s: &Select, locals: &[String], globals: &[String]) -> bool {
    free_names(s)
        .iter()
        .any(|(name, table_ref)| locals.contains(name) || (!table_ref && !globals.contains(name)))
}

/// The names a SELECT uses and does not bind, nested queries' included: (name, whether used
/// as a bare FROM source, i.e. maybe a table). A source's expression sees only the names
/// bound by the sources before it; ON, the projection and WHERE see them all.
fn free_names(s: &Select) -> Vec<(String, bool)> {
    fn sources<'a>(from: &'a FromClause, out: &mut Vec<&'a FromSource>, ons: &mut Vec<&'a Expr>) {
        match from {
            FromClause::Source(s) => out.push(s),
            FromClause::Join {
                left, right, on, ..
            } => {
                sources(left, out, ons);
                sources(right, out, ons);
                ons.extend(on.iter());
            }
        }
    }
    fn walk(e: &Expr, uses: &mut Vec<(String, bool)>) {
        match e {
            Expr::Var { name, .. } => uses.push((name.clone(), false)),
            Expr::Subquery(s) => uses.extend(free_names(s)),
            e => {
                for c in children(e) {
                    walk(c, uses);
                }
            }
        }
    }
    let (mut srcs, mut ons) = (Vec::new(), Vec::new());
    sources(&s.from, &mut srcs, &mut ons);
    let mut bound: HashSet<String> = HashSet::new();
    let mut out: Vec<(String, bool)> = Vec::new();
    for src in &srcs {
        let mut uses = Vec::new();
        match &src.expr {
            Expr::Var { name, .. } => uses.push((name.clone(), true)),
            e => walk(e, &mut uses),
        }
        out.extend(uses.into_iter().filter(|(n, _)| !bound.contains(n)));
        bound.insert(source_alias(src));
        bound.extend(src.at.iter().cloned());
        bound.extend(src.by.iter().cloned());
    }
    let mut uses = Vec::new();
    for e in ons {
        walk(e, &mut uses);
    }
    match &s.projection {
        Projection::Star => {}
        Projection::Value(e) => walk(e, &mut uses),
        Projection::Items(items) => {
            for i in items {
                match i {
                    ProjectItem::Expr { expr, .. } | ProjectItem::All(expr) => {
                        walk(expr, &mut uses)
                    }
                }
            }
        }
    }
    if let Some(w) = &s.where_ {
        walk(w, &mut uses);
    }
    out.extend(uses.into_iter().filter(|(n, _)| !bound.contains(n)));
    out
}

fn show_access(table: &str, a: &Access) -> String {
    let keys = |k: &Keys| match k {
        Keys::Eq(e) => format!("= {}", show(e)),
        Keys::In(e) => format!("in {}", show(e)),
    };
    match a {
        Access::Scan => format!("scan {table}"),
        Access::ById(k) => format!("{table} by id {}", keys(k)),
        Access::Index { field, keys: k, .. } => format!("{table} by index {field} {}", keys(k)),
    }
}

/// A short text of an expression, for plans.
pub fn show(e: &Expr) -> String {
    let list = |items: &[Expr]| items.iter().map(show).collect::<Vec<_>>().join(", ");
    match e {
        Expr::Lit(v) => text::to_text_one(v),
        Expr::Missing => "MISSING".into(),
        Expr::Param(i) => format!("?{}", i + 1),
        Expr::Var { name, at, .. } => format!("{}{name}", if *at { "@" } else { "" }),
        Expr::Path { root, steps } => {
            let mut s = show(root);
            for step in steps {
                match step {
                    PathStep::Field { name, .. } => {
                        s.push('.');
                        s.push_str(name);
                    }
                    PathStep::Index(i) => s.push_str(&format!("[{}]", show(i))),
                    PathStep::AllElements => s.push_str("[*]"),
                    PathStep::AllFields => s.push_str(".*"),
                }
            }
            s
        }
        Expr::List(items) => format!("[{}]", list(items)),
        Expr::Bag(items) => format!("<<{}>>", list(items)),
        Expr::Call { func, args, star } => {
            if *star {
                format!("{func}(*)")
            } else {
                format!("{func}({})", list(args))
            }
        }
        Expr::Subquery(_) => "(subquery)".into(),
        _ => "(expression)".into(),
    }
}
