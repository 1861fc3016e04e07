//! The syntax tree of a QLDB PartiQL statement.

pub use super::funcs::Func;
use crate::ion::Value;

/// A whole statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    CreateTable {
        name: String,
        tags: Option<Value>,
    },
    DropTable {
        name: String,
    },
    UndropTable {
        table_id: String,
    },
    CreateIndex {
        table: String,
        field: String,
    },
    DropIndex {
        index_id: String,
        table: String,
    },
    /// `INSERT INTO t VALUE e`, `INSERT INTO t << … >>`, `INSERT INTO t ?`, `INSERT INTO t {…}`.
    Insert {
        table: String,
        value: Expr,
        is_value_form: bool,
    },
    /// UPDATE … SET/REMOVE/INSERT INTO, DELETE, and QLDB's `FROM … <op>`.
    Dml(Dml),
    Select(Select),
    Exec {
        procedure: String,
        args: Vec<Expr>,
    },
}

/// A data-modifying statement over one table.
#[derive(Clone, Debug, PartialEq)]
pub struct Dml {
    /// The target table and any nested collections (only `FROM` statements have more).
    pub from: Vec<FromSource>,
    pub where_: Option<Expr>,
    pub action: DmlAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DmlAction {
    Set(Vec<(Expr, Expr)>),
    Remove(Expr),
    InsertInto {
        target: Expr,
        value: Expr,
        at: Option<Expr>,
    },
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    pub projection: Projection,
    pub from: FromClause,
    pub where_: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    Star,
    Value(Expr),
    Items(Vec<ProjectItem>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProjectItem {
    Expr {
        expr: Expr,
        alias: Option<String>,
    },
    /// `alias.*`
    All(Expr),
}

/// FROM items joined left to right.
#[derive(Clone, Debug, PartialEq)]
pub enum FromClause {
    Source(FromSource),
    Join {
        kind: JoinKind,
        left: Box<FromClause>,
        right: Box<FromClause>,
        on: Option<Expr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Comma, CROSS JOIN, INNER JOIN / JOIN.
    Inner,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FromSource {
    pub expr: Expr,
    pub alias: Option<String>,
    pub at: Option<String>,
    pub by: Option<String>,
    /// Where the source starts in the statement (1-based line and column), for errors.
    pub pos: (usize, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
    Plus,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PathStep {
    /// `.name` (quoted: case-sensitive even in case-insensitive lookups).
    Field { name: String, quoted: bool },
    /// `[expr]`
    Index(Expr),
    /// `[*]`
    AllElements,
    /// `.*`
    AllFields,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Lit(Value),
    Missing,
    /// The n-th `?` (0-based).
    Param(usize),
    /// An identifier; `at` is the `@` prefix.
    Var {
        name: String,
        quoted: bool,
        at: bool,
    },
    Path {
        root: Box<Expr>,
        steps: Vec<PathStep>,
    },
    Struct(Vec<(Expr, Expr)>),
    List(Vec<Expr>),
    Bag(Vec<Expr>),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<Box<Expr>>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        expr: Box<Expr>,
        list: Box<Expr>,
        negated: bool,
    },
    IsNull {
        expr: Box<Expr>,
        missing: bool,
        negated: bool,
    },
    /// Function call; `COUNT(*)` has `star`. Keyword arguments (EXTRACT's part, TRIM's
    /// specification, DATE_ADD's unit, CAST's type) are passed as `Expr::Keyword`.
    Call {
        func: Func,
        args: Vec<Expr>,
        star: bool,
    },
    /// A bare keyword argument such as `year` in `DATE_ADD(year, 1, t)`.
    Keyword(String),
    Cast {
        expr: Box<Expr>,
        to: String,
    },
    Subquery(Box<Select>),
}
