//! QLDB's PartiQL dialect: lexer → parser → AST (→ planner → executor, with the session
//! API). Knows nothing of HTTP or SQLite; executes against a transaction view.

pub mod ast;
pub mod exec;
pub mod funcs;
pub mod lexer;
pub mod ops;
pub mod parser;
pub mod permissions;
pub mod plan;

pub use parser::{parse_statement, parse_syntax};

/// A syntax or semantic error, with the 1-based line and column it points at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
    /// A well-formed statement that means nothing (an unknown function, a wrong number of
    /// arguments), found before it runs.
    pub semantic: bool,
}

impl SyntaxError {
    /// The message of the BadRequestException: `Syntax error: …` or `Semantic error: …`.
    pub fn client_message(&self) -> String {
        let kind = if self.semantic { "Semantic" } else { "Syntax" };
        format!("{kind} error: {self}")
    }
}
