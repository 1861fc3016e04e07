//! QLDB's PartiQL dialect: lexer → parser → AST (→ planner → executor, with the session
//! API). Knows nothing of HTTP or SQLite; executes against a transaction view.

pub mod ast;
pub mod exec;
pub mod funcs;
pub mod lexer;
pub mod ops;
pub mod parser;

pub use parser::parse_statement;

/// A syntax or semantic error, with the 1-based line and column it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}
