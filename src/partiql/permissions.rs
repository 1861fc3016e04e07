//! The IAM actions a statement needs in a STANDARD-mode ledger, found from its syntax tree
//! before it runs: `qldb:PartiQLSelect` on every table it reads (FROM sources and
//! subqueries, committed views) and on `information_schema/user_tables`,
//! `PartiQLHistoryFunction` for `history()`, `PartiQLInsert`/`Update`/`Delete` on a DML
//! target, the DDL actions, and `PartiQLRedact` for `EXEC REDACT_REVISION`.

use super::ast::*;
use super::exec::{is_user_tables, TableMeta};
use crate::ion::{Data, Value};

/// What a needed permission is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A table named in the statement (resolved to its id by the caller).
    TableName(String),
    /// A table given by id (`UNDROP TABLE`, `history('<id>')`, REDACT_REVISION).
    TableId(String),
    /// `CREATE TABLE`: `table/*`, since the new table has no id yet.
    AnyTable,
    /// `information_schema.user_tables`.
    Catalog,
}

impl Target {
    /// The part of the resource ARN after `…:ledger/<name>/`, or `None` for a table name
    /// that names no active table (the statement then fails with its own error).
    pub fn resource_suffix(&self, tables: &[TableMeta]) -> Option<String> {
        match self {
            Target::TableName(n) => tables
                .iter()
                .find(|t| t.active && &t.name == n)
                .map(|t| format!("table/{}", t.table_id)),
            Target::TableId(id) => Some(format!("table/{id}")),
            Target::AnyTable => Some("table/*".into()),
            Target::Catalog => Some("information_schema/user_tables".into()),
        }
    }
}

/// Every (action, target) the statement needs, in the order it names them.
pub fn required(stmt: &Statement, params: &[Value]) -> Vec<(&'static str, Target)> {
    let mut w = Walker {
        params,
        out: Vec::new(),
    };
    w.statement(stmt);
    let mut out: Vec<(&'static str, Target)> = Vec::new();
    for p in w.out {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

struct Walker<'a> {
    params: &'a [Value],
    out: Vec<(&'static str, Target)>,
}

impl Walker<'_> {
    fn need(&mut self, action: &'static str, target: Target) {
        self.out.push((action, target));
    }

    /// A string given as a literal or a parameter.
    fn text(&self, e: &Expr) -> Option<String> {
        let v = match e {
            Expr::Lit(v) => v,
            Expr::Param(i) => self.params.get(*i)?,
            _ => return None,
        };
        match &v.data {
            Data::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn statement(&mut self, stmt: &Statement) {
        match stmt {
            Statement::CreateTable { .. } => self.need("PartiQLCreateTable", Target::AnyTable),
            Statement::DropTable { name } => {
                self.need("PartiQLDropTable", Target::TableName(name.clone()))
            }
            Statement::UndropTable { table_id } => {
                self.need("PartiQLUndropTable", Target::TableId(table_id.clone()))
            }
            Statement::CreateIndex { table, .. } => {
                self.need("PartiQLCreateIndex", Target::TableName(table.clone()))
            }
            Statement::DropIndex { table, .. } => {
                self.need("PartiQLDropIndex", Target::TableName(table.clone()))
            }
            Statement::Insert { table, value, .. } => {
                self.need("PartiQLInsert", Target::TableName(table.clone()));
                self.expr(value, &[]);
            }
            Statement::Dml(d) => self.dml(d),
            Statement::Select(s) => self.select(s, &[]),
            Statement::Exec { procedure, args } => {
                if procedure.eq_ignore_ascii_case("redact_revision") {
                    if let Some(id) = args.get(1).and_then(|a| self.text(a)) {
                        self.need("PartiQLRedact", Target::TableId(id));
                    }
                }
            }
        }
    }

    fn dml(&mut self, d: &Dml) {
        let Some(first) = d.from.first() else {
            return;
        };
        let mut bound: Vec<String> = Vec::new();
        if let Expr::Var { name, .. } = &first.expr {
            let alias = first.alias.clone().unwrap_or_else(|| name.clone());
            // `FROM t AS r REMOVE r` removes the whole document: a delete.
            let deletes = match &d.action {
                DmlAction::Delete => true,
                DmlAction::Remove(Expr::Var { name, .. }) => *name == alias,
                _ => false,
            };
            let action = if deletes {
                "PartiQLDelete"
            } else {
                "PartiQLUpdate"
            };
            self.need(action, Target::TableName(name.clone()));
            bound.push(alias);
            bound.extend(first.by.iter().cloned());
        }
        for src in &d.from[1..] {
            self.expr(&src.expr, &bound);
            bound.extend(src.alias.iter().chain(&src.at).chain(&src.by).cloned());
        }
        if let Some(w) = &d.where_ {
            self.expr(w, &bound);
        }
        match &d.action {
            DmlAction::Set(assignments) => {
                for (target, value) in assignments {
                    self.expr(target, &bound);
                    self.expr(value, &bound);
                }
            }
            DmlAction::Remove(target) => self.expr(target, &bound),
            DmlAction::InsertInto { target, value, at } => {
                self.expr(target, &bound);
                self.expr(value, &bound);
                if let Some(a) = at {
                    self.expr(a, &bound);
                }
            }
            DmlAction::Delete => {}
        }
    }

    fn select(&mut self, s: &Select, outer: &[String]) {
        let mut bound = outer.to_vec();
        let mut ons = Vec::new();
        self.from(&s.from, &mut bound, &mut ons);
        for on in ons {
            self.expr(on, &bound);
        }
        match &s.projection {
            Projection::Star => {}
            Projection::Value(e) => self.expr(e, &bound),
            Projection::Items(items) => {
                for i in items {
                    match i {
                        ProjectItem::Expr { expr, .. } | ProjectItem::All(expr) => {
                            self.expr(expr, &bound)
                        }
                    }
                }
            }
        }
        if let Some(w) = &s.where_ {
            self.expr(w, &bound);
        }
    }

    fn from<'s>(&mut self, from: &'s FromClause, bound: &mut Vec<String>, ons: &mut Vec<&'s Expr>) {
        match from {
            FromClause::Source(src) => {
                self.source(src, bound);
                let name = match &src.expr {
                    Expr::Var { name, .. } => Some(name.clone()),
                    _ => None,
                };
                bound.extend(src.alias.clone().or(name));
                bound.extend(src.at.iter().chain(&src.by).cloned());
            }
            FromClause::Join {
                left, right, on, ..
            } => {
                self.from(left, bound, ons);
                self.from(right, bound, ons);
                ons.extend(on.as_ref());
            }
        }
    }

    fn source(&mut self, src: &FromSource, bound: &[String]) {
        match &src.expr {
            e if is_user_tables(e) => self.need("PartiQLSelect", Target::Catalog),
            // A name bound by an enclosing FROM is that variable, not a table.
            Expr::Var { name, .. } if bound.contains(name) => {}
            Expr::Var { name, .. } => {
                let table = name.strip_prefix("_ql_committed_").unwrap_or(name);
                self.need("PartiQLSelect", Target::TableName(table.to_string()));
            }
            Expr::Call {
                func: Func::History,
                args,
                ..
            } => {
                match args.first() {
                    Some(Expr::Var { name, .. }) => {
                        self.need("PartiQLHistoryFunction", Target::TableName(name.clone()))
                    }
                    Some(a) => {
                        if let Some(id) = self.text(a) {
                            self.need("PartiQLHistoryFunction", Target::TableId(id));
                        }
                    }
                    None => {}
                }
                for a in args.iter().skip(1) {
                    self.expr(a, bound);
                }
            }
            e => self.expr(e, bound),
        }
    }

    /// Finds the subqueries inside an expression.
    fn expr(&mut self, e: &Expr, bound: &[String]) {
        match e {
            Expr::Lit(_) | Expr::Missing | Expr::Param(_) | Expr::Var { .. } | Expr::Keyword(_) => {
            }
            Expr::Path { root, steps } => {
                self.expr(root, bound);
                for s in steps {
                    if let PathStep::Index(i) = s {
                        self.expr(i, bound);
                    }
                }
            }
            Expr::Struct(pairs) => {
                for (k, v) in pairs {
                    self.expr(k, bound);
                    self.expr(v, bound);
                }
            }
            Expr::List(items) | Expr::Bag(items) => {
                for i in items {
                    self.expr(i, bound);
                }
            }
            Expr::Unary { expr, .. } | Expr::Cast { expr, .. } => self.expr(expr, bound),
            Expr::IsNull { expr, .. } => self.expr(expr, bound),
            Expr::Binary { left, right, .. } => {
                self.expr(left, bound);
                self.expr(right, bound);
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                ..
            } => {
                self.expr(expr, bound);
                self.expr(pattern, bound);
                if let Some(x) = escape {
                    self.expr(x, bound);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr, bound);
                self.expr(low, bound);
                self.expr(high, bound);
            }
            Expr::In { expr, list, .. } => {
                self.expr(expr, bound);
                self.expr(list, bound);
            }
            Expr::Call { args, .. } => {
                for a in args {
                    self.expr(a, bound);
                }
            }
            Expr::Subquery(s) => self.select(s, bound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partiql::parse_statement;

    fn req(sql: &str) -> Vec<(&'static str, Target)> {
        required(&parse_statement(sql).unwrap(), &[Value::string("TID")])
    }

    fn name(n: &str) -> Target {
        Target::TableName(n.into())
    }

    #[test]
    fn reads_and_writes() {
        assert_eq!(req("SELECT * FROM A"), vec![("PartiQLSelect", name("A"))]);
        assert_eq!(
            req("SELECT a.x FROM A AS a, B AS b, a.list AS l WHERE b.y IN (SELECT VALUE c.z FROM C AS c WHERE c.k = a.x)"),
            vec![
                ("PartiQLSelect", name("A")),
                ("PartiQLSelect", name("B")),
                ("PartiQLSelect", name("C")),
            ]
        );
        assert_eq!(
            req("SELECT * FROM _ql_committed_A"),
            vec![("PartiQLSelect", name("A"))]
        );
        assert_eq!(
            req("SELECT * FROM information_schema.user_tables"),
            vec![("PartiQLSelect", Target::Catalog)]
        );
        assert_eq!(
            req("SELECT * FROM history(A)"),
            vec![("PartiQLHistoryFunction", name("A"))]
        );
        assert_eq!(
            req("SELECT * FROM history(?)"),
            vec![("PartiQLHistoryFunction", Target::TableId("TID".into()))]
        );
        assert_eq!(
            req("INSERT INTO A VALUE {'n': (SELECT VALUE COUNT(*) FROM B)}"),
            vec![("PartiQLInsert", name("A")), ("PartiQLSelect", name("B"))]
        );
        assert_eq!(
            req("UPDATE A AS a SET a.x = 1 WHERE a.y = 2"),
            vec![("PartiQLUpdate", name("A"))]
        );
        assert_eq!(
            req("DELETE FROM A AS a WHERE a.y = 2"),
            vec![("PartiQLDelete", name("A"))]
        );
        assert_eq!(
            req("FROM A AS a REMOVE a"),
            vec![("PartiQLDelete", name("A"))]
        );
        assert_eq!(
            req("FROM A AS a REMOVE a.x"),
            vec![("PartiQLUpdate", name("A"))]
        );
        assert_eq!(
            req("FROM A AS a, a.owners AS o WHERE o.id IN (SELECT VALUE b.id FROM B AS b) SET o.ok = true"),
            vec![("PartiQLUpdate", name("A")), ("PartiQLSelect", name("B"))]
        );
    }

    #[test]
    fn ddl_and_redaction() {
        assert_eq!(
            req("CREATE TABLE A"),
            vec![("PartiQLCreateTable", Target::AnyTable)]
        );
        assert_eq!(req("DROP TABLE A"), vec![("PartiQLDropTable", name("A"))]);
        assert_eq!(
            req("CREATE INDEX ON A (x)"),
            vec![("PartiQLCreateIndex", name("A"))]
        );
        assert_eq!(
            req("UNDROP TABLE \"TID2\""),
            vec![("PartiQLUndropTable", Target::TableId("TID2".into()))]
        );
        assert_eq!(
            req("EXEC REDACT_REVISION `{strandId: \"s\", sequenceNo: 3}`, 'T9', 'D1'"),
            vec![("PartiQLRedact", Target::TableId("T9".into()))]
        );
    }
}
