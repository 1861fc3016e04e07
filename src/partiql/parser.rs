//! Recursive-descent parser for QLDB's PartiQL statements (partiql-dialect.md §1).
//!
//! Precedence, lowest first: OR; AND; NOT; comparisons, IN, LIKE, BETWEEN, IS; `||`;
//! `+ -`; `* / %`; unary `+ -`; path steps. Nesting is bounded so hostile input errors
//! instead of overflowing the stack.

use num_bigint::{BigInt, BigUint};

use super::ast::*;
use super::lexer::{error, position, tokenize, Tok, Token};
use super::SyntaxError;
use crate::ion::text::from_text;
use crate::ion::{Data, Decimal, Value};

/// Deepest expression nesting accepted.
pub const MAX_DEPTH: usize = 200;
/// Most operators one expression may stack up, nesting and operator chains together
/// (`1+1+…+1` is as deep as it is long): evaluation recurses this deep.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// SQL-92 and PartiQL reserved words: usable as names only when double-quoted.
const RESERVED: &[&str] = &[
    "absolute",
    "action",
    "add",
    "all",
    "allocate",
    "alter",
    "and",
    "any",
    "are",
    "as",
    "asc",
    "assertion",
    "at",
    "authorization",
    "avg",
    "bag",
    "begin",
    "between",
    "bit",
    "bit_length",
    "blob",
    "bool",
    "boolean",
    "both",
    "by",
    "cascade",
    "cascaded",
    "case",
    "cast",
    "catalog",
    "char",
    "char_length",
    "character",
    "character_length",
    "check",
    "clob",
    "close",
    "coalesce",
    "collate",
    "collation",
    "column",
    "commit",
    "connect",
    "connection",
    "constraint",
    "constraints",
    "continue",
    "convert",
    "corresponding",
    "count",
    "create",
    "cross",
    "current",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "cursor",
    "date",
    "date_add",
    "date_diff",
    "day",
    "deallocate",
    "dec",
    "decimal",
    "declare",
    "default",
    "deferrable",
    "deferred",
    "delete",
    "desc",
    "describe",
    "descriptor",
    "diagnostics",
    "disconnect",
    "distinct",
    "domain",
    "double",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exception",
    "exec",
    "execute",
    "exists",
    "external",
    "extract",
    "false",
    "fetch",
    "first",
    "float",
    "for",
    "foreign",
    "found",
    "from",
    "full",
    "get",
    "global",
    "go",
    "goto",
    "grant",
    "group",
    "having",
    "hour",
    "identity",
    "immediate",
    "in",
    "index",
    "indicator",
    "initially",
    "inner",
    "input",
    "insensitive",
    "insert",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isolation",
    "join",
    "key",
    "language",
    "last",
    "leading",
    "left",
    "level",
    "like",
    "limit",
    "list",
    "local",
    "lower",
    "match",
    "max",
    "min",
    "minute",
    "missing",
    "module",
    "month",
    "names",
    "national",
    "natural",
    "nchar",
    "next",
    "no",
    "not",
    "null",
    "nullif",
    "numeric",
    "octet_length",
    "of",
    "offset",
    "on",
    "only",
    "open",
    "option",
    "or",
    "order",
    "outer",
    "output",
    "overlaps",
    "pad",
    "partial",
    "pivot",
    "position",
    "precision",
    "prepare",
    "preserve",
    "primary",
    "prior",
    "privileges",
    "procedure",
    "public",
    "read",
    "real",
    "references",
    "relative",
    "remove",
    "restrict",
    "revoke",
    "right",
    "rollback",
    "rows",
    "schema",
    "scroll",
    "second",
    "section",
    "select",
    "session",
    "session_user",
    "set",
    "sexp",
    "size",
    "smallint",
    "some",
    "space",
    "sql",
    "sqlcode",
    "sqlerror",
    "sqlstate",
    "string",
    "struct",
    "substring",
    "sum",
    "symbol",
    "system_user",
    "table",
    "temporary",
    "then",
    "time",
    "timestamp",
    "timezone_hour",
    "timezone_minute",
    "to",
    "trailing",
    "transaction",
    "translate",
    "translation",
    "trim",
    "true",
    "tuple",
    "union",
    "unique",
    "unknown",
    "unpivot",
    "update",
    "upper",
    "usage",
    "user",
    "using",
    "value",
    "values",
    "varchar",
    "varying",
    "view",
    "when",
    "whenever",
    "where",
    "with",
    "work",
    "write",
    "year",
    "zone",
];

fn is_reserved(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    RESERVED.binary_search(&lower.as_str()).is_ok()
}

/// Date-part keywords of DATE_ADD, DATE_DIFF and EXTRACT.
const DATE_PARTS: &[&str] = &[
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "timezone_hour",
    "timezone_minute",
];

/// Parses one statement (an optional trailing `;` is allowed).
pub fn parse_statement(text: &str) -> Result<Statement, SyntaxError> {
    let (stmt, semantic) = parse(text)?;
    match semantic {
        Some(e) => Err(e),
        None => Ok(stmt),
    }
}

/// Parses a statement by the grammar alone, without the semantic checks of
/// [`parse_statement`] (function names and arities): what a syntax test suite asks.
pub fn parse_syntax(text: &str) -> Result<Statement, SyntaxError> {
    parse(text).map(|(stmt, _)| stmt)
}

/// The statement and the first semantic error found on the way (syntax errors win).
fn parse(text: &str) -> Result<(Statement, Option<SyntaxError>), SyntaxError> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        params: 0,
        depth: 0,
        chain: 0,
        semantic: None,
    };
    let stmt = p.statement()?;
    p.eat_punct(";");
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("the end of the statement"));
    }
    Ok((stmt, p.semantic))
}

struct Parser<'a> {
    text: &'a str,
    /// The first semantic error, reported once the whole statement parsed.
    semantic: Option<SyntaxError>,
    toks: Vec<Token>,
    pos: usize,
    params: usize,
    depth: usize,
    /// Operators stacked by the chains (`a OR b OR c`) being parsed, for
    /// [`MAX_EXPRESSION_DEPTH`].
    chain: usize,
}

type R<T> = Result<T, SyntaxError>;

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::QuotedIdent(s) => format!("\"{s}\""),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Ion(_) => "an Ion literal".into(),
        Tok::Param => "'?'".into(),
        Tok::Punct(p) => format!("'{p}'"),
        Tok::Eof => "the end of the statement".into(),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)].tok
    }

    fn offset(&self) -> usize {
        self.toks[self.pos].offset
    }

    fn advance(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn err(&self, msg: impl Into<String>) -> SyntaxError {
        error(self.text, self.offset(), msg)
    }

    fn unexpected(&self, wanted: &str) -> SyntaxError {
        self.err(format!(
            "Unexpected {}; expected {wanted}",
            describe(self.peek())
        ))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> R<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&kw.to_ascii_uppercase()))
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> R<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{p}'")))
        }
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(self.err(format!(
                "The statement is nested more than {MAX_DEPTH} levels deep"
            )))
        } else {
            self.check_expression_depth()
        }
    }

    fn check_expression_depth(&self) -> R<()> {
        if self.depth + self.chain > MAX_EXPRESSION_DEPTH {
            Err(self.err(format!(
                "The expression is more than {MAX_EXPRESSION_DEPTH} operators deep"
            )))
        } else {
            Ok(())
        }
    }

    /// One more operator in a left-deep chain.
    fn link(&mut self) -> R<()> {
        self.chain += 1;
        self.check_expression_depth()
    }

    /// Runs a chain parser and forgets the operators it stacked once its expression is
    /// complete.
    fn chain_of(&mut self, f: fn(&mut Self) -> R<Expr>) -> R<Expr> {
        let mark = self.chain;
        let r = f(self);
        self.chain = mark;
        r
    }

    /// A name: unquoted (not reserved) or double-quoted.
    fn name(&mut self, what: &str) -> R<(String, bool)> {
        match self.peek().clone() {
            Tok::Ident(s) if !is_reserved(&s) => {
                self.advance();
                Ok((s, false))
            }
            Tok::Ident(s) => Err(self.err(format!(
                "'{s}' is a reserved word; double-quote it to use it as {what}"
            ))),
            Tok::QuotedIdent(s) => {
                self.advance();
                Ok((s, true))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn optional_alias(&mut self) -> R<Option<String>> {
        if self.eat_kw("as") {
            return Ok(Some(self.name("an alias")?.0));
        }
        match self.peek() {
            Tok::Ident(s) if !is_reserved(s) => Ok(Some(self.name("an alias")?.0)),
            Tok::QuotedIdent(_) => Ok(Some(self.name("an alias")?.0)),
            _ => Ok(None),
        }
    }

    // ------------------------------------------------------------ statements

    fn statement(&mut self) -> R<Statement> {
        let Tok::Ident(word) = self.peek().clone() else {
            return Err(self.unexpected("a statement"));
        };
        match word.to_ascii_lowercase().as_str() {
            "create" => self.create(),
            "drop" => self.drop(),
            "undrop" => {
                self.advance();
                self.expect_kw("table")?;
                let (table_id, _) = self.name("a table id")?;
                Ok(Statement::UndropTable { table_id })
            }
            "insert" => self.insert(),
            "update" => self.update(),
            "delete" => self.delete(),
            "from" => self.parse_from_dml(),
            "select" => Ok(Statement::Select(self.select()?)),
            "exec" => self.exec(),
            other => Err(self.err(format!(
                "'{other}' does not start a statement QLDB supports (CREATE, DROP, UNDROP, INSERT, UPDATE, DELETE, FROM, SELECT, EXEC)"
            ))),
        }
    }

    fn create(&mut self) -> R<Statement> {
        self.advance();
        if self.eat_kw("table") {
            let (name, _) = self.name("a table name")?;
            let mut tags = None;
            if self.eat_kw("with") {
                self.expect_punct("(")?;
                if !self.eat_kw("aws_tags") {
                    return Err(self.unexpected("aws_tags"));
                }
                self.expect_punct("=")?;
                let Tok::Ion(ion) = self.peek().clone() else {
                    return Err(self.unexpected("an Ion struct literal of tags"));
                };
                tags = Some(self.ion_literal(&ion)?);
                self.advance();
                self.expect_punct(")")?;
            }
            return Ok(Statement::CreateTable { name, tags });
        }
        if self.eat_kw("index") {
            self.expect_kw("on")?;
            let (table, _) = self.name("a table name")?;
            self.expect_punct("(")?;
            let (field, _) = self.name("a field name")?;
            if !self.eat_punct(")") {
                return Err(self.err("QLDB indexes cover exactly one top-level field"));
            }
            return Ok(Statement::CreateIndex { table, field });
        }
        Err(self.unexpected("TABLE or INDEX"))
    }

    fn drop(&mut self) -> R<Statement> {
        self.advance();
        if self.eat_kw("table") {
            let (name, _) = self.name("a table name")?;
            return Ok(Statement::DropTable { name });
        }
        if self.eat_kw("index") {
            let (index_id, _) = self.name("an index id")?;
            self.expect_kw("on")?;
            let (table, _) = self.name("a table name")?;
            let purge_err = "DROP INDEX requires WITH (purge = true)";
            if !self.eat_kw("with") || !self.eat_punct("(") {
                return Err(self.err(purge_err));
            }
            if !matches!(self.peek(), Tok::Ident(s) if s == "purge") {
                return Err(self.err(purge_err));
            }
            self.advance();
            if !self.eat_punct("=") || !self.eat_kw("true") || !self.eat_punct(")") {
                return Err(self.err(purge_err));
            }
            return Ok(Statement::DropIndex { index_id, table });
        }
        Err(self.unexpected("TABLE or INDEX"))
    }

    fn insert(&mut self) -> R<Statement> {
        self.advance();
        self.expect_kw("into")?;
        let (table, _) = self.name("a table name")?;
        let is_value_form = self.eat_kw("value");
        let value = self.expr()?;
        if self.is_kw("at") || self.is_kw("on") {
            return Err(self.err(
                "INSERT INTO a table takes only documents; use UPDATE … INSERT INTO a path … AT",
            ));
        }
        Ok(Statement::Insert {
            table,
            value,
            is_value_form,
        })
    }

    /// `<table> [AS] [alias] [BY id]`
    fn dml_target(&mut self) -> R<FromSource> {
        let pos = position(self.text, self.offset());
        let (table, quoted) = self.name("a table name")?;
        let alias = self.optional_alias()?;
        let by = if self.eat_kw("by") {
            Some(self.name("an id alias")?.0)
        } else {
            None
        };
        Ok(FromSource {
            expr: Expr::Var {
                name: table,
                quoted,
                at: false,
            },
            alias,
            at: None,
            by,
            pos,
        })
    }

    fn dml_action(&mut self) -> R<DmlAction> {
        if self.eat_kw("set") {
            let mut assignments = Vec::new();
            loop {
                let target = self.path_expr()?;
                self.expect_punct("=")?;
                assignments.push((target, self.expr()?));
                if !self.eat_punct(",") {
                    break;
                }
            }
            return Ok(DmlAction::Set(assignments));
        }
        if self.eat_kw("remove") {
            return Ok(DmlAction::Remove(self.path_expr()?));
        }
        if self.eat_kw("insert") {
            self.expect_kw("into")?;
            let target = self.path_expr()?;
            self.expect_kw("value")?;
            let value = self.expr()?;
            let at = if self.eat_kw("at") {
                Some(self.expr()?)
            } else {
                None
            };
            return Ok(DmlAction::InsertInto { target, value, at });
        }
        Err(self.unexpected("SET, REMOVE or INSERT INTO"))
    }

    fn where_clause(&mut self) -> R<Option<Expr>> {
        if self.eat_kw("where") {
            Ok(Some(self.expr()?))
        } else {
            Ok(None)
        }
    }

    fn update(&mut self) -> R<Statement> {
        self.advance();
        let target = self.dml_target()?;
        let action = self.dml_action()?;
        let where_ = self.where_clause()?;
        Ok(Statement::Dml(Dml {
            from: vec![target],
            where_,
            action,
        }))
    }

    fn delete(&mut self) -> R<Statement> {
        self.advance();
        self.expect_kw("from")?;
        let target = self.dml_target()?;
        let where_ = self.where_clause()?;
        Ok(Statement::Dml(Dml {
            from: vec![target],
            where_,
            action: DmlAction::Delete,
        }))
    }

    fn parse_from_dml(&mut self) -> R<Statement> {
        self.advance();
        let mut from = vec![self.dml_target()?];
        while self.eat_punct(",") {
            from.push(self.parse_from_source()?);
        }
        let where_ = self.where_clause()?;
        let action = self.dml_action()?;
        Ok(Statement::Dml(Dml {
            from,
            where_,
            action,
        }))
    }

    fn exec(&mut self) -> R<Statement> {
        self.advance();
        let procedure = match self.advance() {
            Tok::Ident(s) | Tok::QuotedIdent(s) => s,
            _ => return Err(self.unexpected("a stored procedure name")),
        };
        let mut args = Vec::new();
        if self.peek() != &Tok::Eof && self.peek() != &Tok::Punct(";") {
            loop {
                args.push(self.expr()?);
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        Ok(Statement::Exec { procedure, args })
    }

    // ------------------------------------------------------------ SELECT

    fn select(&mut self) -> R<Select> {
        self.expect_kw("select")?;
        if self.is_kw("distinct") || self.is_kw("all") {
            return Err(self.err("QLDB does not support SELECT DISTINCT or SELECT ALL"));
        }
        let projection = if self.eat_punct("*") {
            Projection::Star
        } else if self.eat_kw("value") {
            Projection::Value(self.expr()?)
        } else {
            let mut items = Vec::new();
            loop {
                let expr = self.expr()?;
                match expr {
                    Expr::Path { root, mut steps }
                        if steps.last() == Some(&PathStep::AllFields) =>
                    {
                        steps.pop();
                        let e = if steps.is_empty() {
                            *root
                        } else {
                            Expr::Path { root, steps }
                        };
                        items.push(ProjectItem::All(e));
                    }
                    expr => {
                        let alias = self.optional_alias()?;
                        items.push(ProjectItem::Expr { expr, alias });
                    }
                }
                if !self.eat_punct(",") {
                    break;
                }
            }
            Projection::Items(items)
        };
        if !self.eat_kw("from") {
            return Err(self.err("QLDB requires a FROM clause in every SELECT"));
        }
        let from = self.parse_from_clause()?;
        let where_ = self.where_clause()?;
        for (kw, what) in [
            ("order", "ORDER BY"),
            ("group", "GROUP BY"),
            ("having", "HAVING"),
            ("limit", "LIMIT"),
            ("offset", "OFFSET"),
            ("union", "UNION"),
            ("intersect", "INTERSECT"),
            ("except", "EXCEPT"),
            ("let", "LET"),
        ] {
            if self.is_kw(kw) {
                return Err(self.err(format!("QLDB does not support {what}")));
            }
        }
        Ok(Select {
            projection,
            from,
            where_,
        })
    }

    fn parse_from_clause(&mut self) -> R<FromClause> {
        let mut left = FromClause::Source(self.parse_from_source()?);
        loop {
            let on_required;
            if self.eat_punct(",") {
                on_required = false;
            } else if self.is_kw("cross") && self.is_kw_at(1, "join") {
                self.advance();
                self.advance();
                on_required = false;
            } else if self.is_kw("inner") && self.is_kw_at(1, "join") {
                self.advance();
                self.advance();
                on_required = true;
            } else if self.is_kw("join") {
                self.advance();
                on_required = true;
            } else if self.is_kw("left")
                || self.is_kw("right")
                || self.is_kw("full")
                || self.is_kw("outer")
            {
                return Err(self.err("QLDB supports only inner joins"));
            } else {
                return Ok(left);
            }
            let right = FromClause::Source(self.parse_from_source()?);
            let on = if on_required {
                self.expect_kw("on")?;
                Some(self.expr()?)
            } else {
                None
            };
            left = FromClause::Join {
                kind: JoinKind::Inner,
                left: Box::new(left),
                right: Box::new(right),
                on,
            };
        }
    }

    fn parse_from_source(&mut self) -> R<FromSource> {
        let pos = position(self.text, self.offset());
        let expr = self.concat()?;
        let alias = self.optional_alias()?;
        let at = if self.eat_kw("at") {
            Some(self.name("a position alias")?.0)
        } else {
            None
        };
        let by = if self.eat_kw("by") {
            Some(self.name("an id alias")?.0)
        } else {
            None
        };
        Ok(FromSource {
            expr,
            alias,
            at,
            by,
            pos,
        })
    }

    // ------------------------------------------------------------ expressions

    pub(crate) fn expr(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.or();
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> R<Expr> {
        self.chain_of(Self::or_chain)
    }

    fn or_chain(&mut self) -> R<Expr> {
        let mut left = self.and()?;
        while self.eat_kw("or") {
            self.link()?;
            let right = self.and()?;
            left = bin(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> R<Expr> {
        self.chain_of(Self::and_chain)
    }

    fn and_chain(&mut self) -> R<Expr> {
        let mut left = self.not()?;
        while self.eat_kw("and") {
            self.link()?;
            let right = self.not()?;
            left = bin(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> R<Expr> {
        if self.eat_kw("not") {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(inner?),
            });
        }
        self.predicate()
    }

    fn predicate(&mut self) -> R<Expr> {
        self.chain_of(Self::predicate_chain)
    }

    fn predicate_chain(&mut self) -> R<Expr> {
        let mut left = self.concat()?;
        loop {
            let cmp = match self.peek() {
                Tok::Punct("=") => Some(BinaryOp::Eq),
                Tok::Punct("<>") | Tok::Punct("!=") => Some(BinaryOp::Ne),
                Tok::Punct("<") => Some(BinaryOp::Lt),
                Tok::Punct("<=") => Some(BinaryOp::Le),
                Tok::Punct(">") => Some(BinaryOp::Gt),
                Tok::Punct(">=") => Some(BinaryOp::Ge),
                _ => None,
            };
            if let Some(op) = cmp {
                self.advance();
                self.link()?;
                let right = self.concat()?;
                left = bin(op, left, right);
                continue;
            }
            if self.is_kw("is") {
                self.advance();
                let negated = self.eat_kw("not");
                let missing = if self.eat_kw("null") {
                    false
                } else if self.eat_kw("missing") {
                    true
                } else {
                    return Err(self.unexpected("NULL or MISSING"));
                };
                left = Expr::IsNull {
                    expr: Box::new(left),
                    missing,
                    negated,
                };
                continue;
            }
            let negated = self.is_kw("not")
                && (self.is_kw_at(1, "in")
                    || self.is_kw_at(1, "like")
                    || self.is_kw_at(1, "between"));
            if negated {
                self.advance();
            }
            if self.eat_kw("in") {
                let list = self.in_rhs()?;
                left = Expr::In {
                    expr: Box::new(left),
                    list: Box::new(list),
                    negated,
                };
            } else if self.eat_kw("like") {
                let pattern = self.concat()?;
                let escape = if self.eat_kw("escape") {
                    Some(Box::new(self.concat()?))
                } else {
                    None
                };
                left = Expr::Like {
                    expr: Box::new(left),
                    pattern: Box::new(pattern),
                    escape,
                    negated,
                };
            } else if self.eat_kw("between") {
                let low = self.concat()?;
                self.expect_kw("and")?;
                let high = self.concat()?;
                left = Expr::Between {
                    expr: Box::new(left),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                };
            } else {
                return Ok(left);
            }
        }
    }

    /// The right side of IN: `(a, b, …)` (a list, even with one element), a subquery, or
    /// any other expression (a parameter, a list or bag literal).
    fn in_rhs(&mut self) -> R<Expr> {
        if matches!(self.peek(), Tok::Punct("(")) && !self.is_kw_at(1, "select") {
            self.advance();
            let mut items = Vec::new();
            if !self.eat_punct(")") {
                loop {
                    items.push(self.expr()?);
                    if !self.eat_punct(",") {
                        break;
                    }
                }
                self.expect_punct(")")?;
            }
            return Ok(Expr::List(items));
        }
        self.concat()
    }

    fn concat(&mut self) -> R<Expr> {
        self.chain_of(Self::concat_chain)
    }

    fn concat_chain(&mut self) -> R<Expr> {
        let mut left = self.additive()?;
        while self.eat_punct("||") {
            self.link()?;
            let right = self.additive()?;
            left = bin(BinaryOp::Concat, left, right);
        }
        Ok(left)
    }

    fn additive(&mut self) -> R<Expr> {
        self.chain_of(Self::additive_chain)
    }

    fn additive_chain(&mut self) -> R<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.eat_punct("+") {
                BinaryOp::Add
            } else if self.eat_punct("-") {
                BinaryOp::Sub
            } else {
                return Ok(left);
            };
            self.link()?;
            let right = self.multiplicative()?;
            left = bin(op, left, right);
        }
    }

    fn multiplicative(&mut self) -> R<Expr> {
        self.chain_of(Self::multiplicative_chain)
    }

    fn multiplicative_chain(&mut self) -> R<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat_punct("*") {
                BinaryOp::Mul
            } else if self.eat_punct("/") {
                BinaryOp::Div
            } else if self.eat_punct("%") {
                BinaryOp::Mod
            } else {
                return Ok(left);
            };
            self.link()?;
            let right = self.unary()?;
            left = bin(op, left, right);
        }
    }

    fn unary(&mut self) -> R<Expr> {
        let op = if self.eat_punct("-") {
            UnaryOp::Neg
        } else if self.eat_punct("+") {
            UnaryOp::Plus
        } else {
            return self.postfix();
        };
        self.enter()?;
        let inner = self.unary();
        self.depth -= 1;
        let inner = inner?;
        // Fold a negated numeric literal so that -9223372036854775808 and -0.0 stay exact.
        if op == UnaryOp::Neg {
            if let Expr::Lit(Value { annotations, data }) = &inner {
                if annotations.is_empty() {
                    match data {
                        Data::Int(i) => return Ok(Expr::Lit(Value::int(-i.clone()))),
                        Data::Decimal(d) => {
                            let mut d = d.clone();
                            d.negative = !d.negative;
                            return Ok(Expr::Lit(Data::Decimal(d).into()));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(Expr::Unary {
            op,
            expr: Box::new(inner),
        })
    }

    /// A path usable as a DML target: a name followed by steps.
    fn path_expr(&mut self) -> R<Expr> {
        match self.peek() {
            Tok::Ident(_) | Tok::QuotedIdent(_) | Tok::Punct("@") => self.postfix(),
            _ => Err(self.unexpected("a path")),
        }
    }

    fn postfix(&mut self) -> R<Expr> {
        let root = self.primary()?;
        let mut steps = Vec::new();
        loop {
            if self.eat_punct(".") {
                match self.advance() {
                    Tok::Ident(name) => steps.push(PathStep::Field {
                        name,
                        quoted: false,
                    }),
                    Tok::QuotedIdent(name) => steps.push(PathStep::Field { name, quoted: true }),
                    Tok::Punct("*") => steps.push(PathStep::AllFields),
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("a field name after '.'"));
                    }
                }
            } else if matches!(self.peek(), Tok::Punct("[")) {
                self.advance();
                if self.eat_punct("*") {
                    steps.push(PathStep::AllElements);
                } else {
                    steps.push(PathStep::Index(self.expr()?));
                }
                self.expect_punct("]")?;
            } else {
                break;
            }
        }
        Ok(if steps.is_empty() {
            root
        } else {
            Expr::Path {
                root: Box::new(root),
                steps,
            }
        })
    }

    fn ion_literal(&self, ion: &str) -> R<Value> {
        let mut values =
            from_text(ion).map_err(|e| self.err(format!("Invalid Ion literal: {e}")))?;
        if values.len() != 1 {
            return Err(self.err("An Ion literal must hold exactly one value"));
        }
        Ok(values.pop().expect("one value"))
    }

    fn primary(&mut self) -> R<Expr> {
        self.enter()?;
        let r = self.primary_inner();
        self.depth -= 1;
        r
    }

    fn primary_inner(&mut self) -> R<Expr> {
        match self.peek().clone() {
            Tok::Number(n) => {
                let e = self.number(&n)?;
                self.check_int_literal(&e);
                self.advance();
                Ok(e)
            }
            Tok::Str(s) => {
                self.advance();
                Ok(Expr::Lit(Value::string(s)))
            }
            Tok::Ion(ion) => {
                let v = self.ion_literal(&ion)?;
                self.advance();
                Ok(Expr::Lit(v))
            }
            Tok::Param => {
                self.advance();
                self.params += 1;
                Ok(Expr::Param(self.params - 1))
            }
            Tok::Punct("(") => {
                self.advance();
                let e = if self.is_kw("select") {
                    Expr::Subquery(Box::new(self.select()?))
                } else {
                    self.expr()?
                };
                self.expect_punct(")")?;
                Ok(e)
            }
            Tok::Punct("{") => {
                self.advance();
                let mut fields = Vec::new();
                if !self.eat_punct("}") {
                    loop {
                        let k = self.expr()?;
                        self.expect_punct(":")?;
                        let v = self.expr()?;
                        fields.push((k, v));
                        if !self.eat_punct(",") {
                            break;
                        }
                    }
                    self.expect_punct("}")?;
                }
                Ok(Expr::Struct(fields))
            }
            Tok::Punct("[") => {
                self.advance();
                Ok(Expr::List(self.items("]")?))
            }
            Tok::Punct("<<") => {
                self.advance();
                Ok(Expr::Bag(self.items(">>")?))
            }
            Tok::Punct("@") => {
                self.advance();
                let (name, quoted) = match self.advance() {
                    Tok::Ident(s) => (s, false),
                    Tok::QuotedIdent(s) => (s, true),
                    _ => return Err(self.unexpected("a name after '@'")),
                };
                Ok(Expr::Var {
                    name,
                    quoted,
                    at: true,
                })
            }
            Tok::QuotedIdent(name) => {
                self.advance();
                Ok(Expr::Var {
                    name,
                    quoted: true,
                    at: false,
                })
            }
            Tok::Ident(word) => self.word(word),
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn items(&mut self, close: &'static str) -> R<Vec<Expr>> {
        let mut items = Vec::new();
        if self.eat_punct(close) {
            return Ok(items);
        }
        loop {
            items.push(self.expr()?);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(close)?;
        Ok(items)
    }

    /// An integer literal must be a 64-bit INT, as in Kotlin PartiQL (2^63 only after a
    /// minus sign); larger integers can be written as Ion literals in backticks.
    fn check_int_literal(&mut self, e: &Expr) {
        let Expr::Lit(Value {
            data: Data::Int(i), ..
        }) = e
        else {
            return;
        };
        let negated = self.pos > 0 && self.toks[self.pos - 1].tok == Tok::Punct("-");
        let limit = BigInt::from(i64::MAX) + u8::from(negated);
        if *i > limit && self.semantic.is_none() {
            let mut err = self.err(format!(
                "Integer literal {i} is outside the 64-bit INT range; write it in backticks as an Ion integer"
            ));
            err.semantic = true;
            self.semantic = Some(err);
        }
    }

    fn number(&self, n: &str) -> R<Expr> {
        let (mantissa, exp) = match n.find(['e', 'E']) {
            Some(i) => (
                &n[..i],
                n[i + 1..]
                    .parse::<i64>()
                    .map_err(|_| self.err("invalid exponent"))?,
            ),
            None => (n, 0),
        };
        if !n.contains(['.', 'e', 'E']) {
            let i: BigInt = n.parse().map_err(|_| self.err("invalid integer"))?;
            return Ok(Expr::Lit(Value::int(i)));
        }
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let magnitude: BigUint = format!("{int}{frac}")
            .parse()
            .map_err(|_| self.err("invalid number"))?;
        let exponent = exp
            .checked_sub(frac.len() as i64)
            .ok_or_else(|| self.err("number out of range"))?;
        Ok(Expr::Lit(
            Data::Decimal(Decimal {
                negative: false,
                magnitude,
                exponent,
            })
            .into(),
        ))
    }

    fn word(&mut self, word: String) -> R<Expr> {
        let lower = word.to_ascii_lowercase();
        let is_call = matches!(self.peek_at(1), Tok::Punct("("));
        match lower.as_str() {
            "null" => {
                self.advance();
                return Ok(Expr::Lit(Value::null()));
            }
            "missing" => {
                self.advance();
                return Ok(Expr::Missing);
            }
            "true" | "false" => {
                self.advance();
                return Ok(Expr::Lit(Data::Bool(lower == "true").into()));
            }
            "cast" if is_call => return self.cast(),
            "extract" if is_call => return self.extract(),
            "trim" if is_call => return self.trim(),
            "substring" if is_call => return self.substring(),
            "case" => return Err(self.err("QLDB does not support CASE expressions")),
            "select" => return Err(self.err("A subquery must be in parentheses")),
            _ => {}
        }
        if is_call {
            let func = Func::named(&lower);
            let at = self.offset();
            self.advance();
            self.advance();
            let mut args = Vec::new();
            let mut star = false;
            if self.eat_punct("*") {
                star = true;
            } else if !matches!(self.peek(), Tok::Punct(")")) {
                // `SUM(ALL x)`: ALL is SQL's default set quantifier (DISTINCT is refused).
                if func.is_some_and(Func::is_aggregate)
                    && self.is_kw("all")
                    && !matches!(self.peek_at(1), Tok::Punct(")") | Tok::Punct(","))
                {
                    self.advance();
                }
                let date_fn = func.is_some_and(Func::takes_date_part);
                loop {
                    if date_fn && args.is_empty() {
                        args.push(self.date_part()?);
                    } else if self.is_kw("select") {
                        // EXISTS(SELECT …), COUNT over a subquery: the call's own
                        // parentheses enclose the query.
                        args.push(Expr::Subquery(Box::new(self.select()?)));
                    } else {
                        args.push(self.expr()?);
                    }
                    if !self.eat_punct(",") {
                        break;
                    }
                }
            }
            if self.is_kw("distinct") {
                return Err(self.err("QLDB does not support DISTINCT"));
            }
            self.expect_punct(")")?;
            if self.semantic.is_none() {
                self.semantic = self.check_call(at, &word, func, args.len(), star).err();
            }
            return Ok(match func {
                Some(func) => Expr::Call { func, args, star },
                // Refused by the semantic check; the rest of the statement is still parsed
                // for syntax errors, which win.
                None => Expr::Missing,
            });
        }
        if is_reserved(&word) {
            return Err(self.err(format!(
                "'{word}' is a reserved word; double-quote it to use it as a name"
            )));
        }
        self.advance();
        Ok(Expr::Var {
            name: word,
            quoted: false,
            at: false,
        })
    }

    /// QLDB's functions (spec §2) and their arities, checked before the statement runs.
    fn check_call(&self, at: usize, word: &str, func: Option<Func>, n: usize, star: bool) -> R<()> {
        let semantic = |msg: String| {
            let mut e = error(self.text, at, msg);
            e.semantic = true;
            e
        };
        let Some(func) = func else {
            return Err(semantic(format!("No such function: {word}")));
        };
        let (min, max) = func.arity();
        let upper = func.name().to_ascii_uppercase();
        if star && func != Func::Count {
            return Err(semantic(format!(
                "{upper}(*) is not allowed; only COUNT(*)"
            )));
        }
        if !star && !(min..=max).contains(&n) {
            let wanted = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            let plural = if wanted.ends_with(" 1") || wanted == "1" {
                ""
            } else {
                "s"
            };
            return Err(semantic(format!(
                "{upper} takes {wanted} argument{plural}, not {n}"
            )));
        }
        Ok(())
    }

    fn date_part(&mut self) -> R<Expr> {
        match self.peek().clone() {
            Tok::Ident(s) if DATE_PARTS.contains(&s.to_ascii_lowercase().as_str()) => {
                self.advance();
                Ok(Expr::Keyword(s.to_ascii_lowercase()))
            }
            _ => Err(self.unexpected("a date part (year, month, day, hour, minute, second)")),
        }
    }

    fn cast(&mut self) -> R<Expr> {
        self.advance();
        self.expect_punct("(")?;
        let expr = self.expr()?;
        self.expect_kw("as")?;
        let mut to = String::new();
        while let Tok::Ident(w) = self.peek().clone() {
            if !to.is_empty() {
                to.push(' ');
            }
            to.push_str(&w.to_ascii_uppercase());
            self.advance();
        }
        if self.eat_punct("(") {
            to.push('(');
            loop {
                match self.advance() {
                    Tok::Number(n) => to.push_str(&n),
                    _ => return Err(self.unexpected("a number")),
                }
                if self.eat_punct(",") {
                    to.push(',');
                } else {
                    break;
                }
            }
            self.expect_punct(")")?;
            to.push(')');
        }
        if to.is_empty() {
            return Err(self.unexpected("a type name"));
        }
        self.expect_punct(")")?;
        Ok(Expr::Cast {
            expr: Box::new(expr),
            to,
        })
    }

    fn extract(&mut self) -> R<Expr> {
        self.advance();
        self.expect_punct("(")?;
        let part = self.date_part()?;
        self.expect_kw("from")?;
        let from = self.expr()?;
        self.expect_punct(")")?;
        Ok(Expr::Call {
            func: Func::Extract,
            args: vec![part, from],
            star: false,
        })
    }

    fn trim(&mut self) -> R<Expr> {
        self.advance();
        self.expect_punct("(")?;
        let mut spec = None;
        for s in ["both", "leading", "trailing"] {
            if self.eat_kw(s) {
                spec = Some(s);
            }
        }
        let mut args = vec![Expr::Keyword(spec.unwrap_or("both").into())];
        if self.eat_kw("from") {
            args.push(self.expr()?);
        } else {
            let first = self.expr()?;
            if self.eat_kw("from") {
                let s = self.expr()?;
                args.push(s);
                args.push(first);
            } else if spec.is_some() {
                return Err(self.unexpected("FROM"));
            } else {
                args.push(first);
            }
        }
        self.expect_punct(")")?;
        Ok(Expr::Call {
            func: Func::Trim,
            args,
            star: false,
        })
    }

    fn substring(&mut self) -> R<Expr> {
        self.advance();
        self.expect_punct("(")?;
        let s = self.expr()?;
        let mut args = vec![s];
        if self.eat_kw("from") {
            args.push(self.expr()?);
            if self.eat_kw("for") {
                args.push(self.expr()?);
            }
        } else {
            while self.eat_punct(",") {
                args.push(self.expr()?);
            }
        }
        self.expect_punct(")")?;
        Ok(Expr::Call {
            func: Func::Substring,
            args,
            star: false,
        })
    }
}

fn bin(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

#[cfg(test)]
mod tests {
    use super::RESERVED;

    #[test]
    fn reserved_words_are_sorted_for_binary_search() {
        let mut sorted = RESERVED.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, RESERVED);
    }
}
