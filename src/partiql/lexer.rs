//! Tokens of QLDB PartiQL: identifiers (keywords are identifiers the parser recognises,
//! case-insensitively), "quoted identifiers", 'strings', numbers, `Ion literals`, `?`
//! parameters and punctuation. Comments (`--`, `/* */`) are skipped.

use super::SyntaxError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    QuotedIdent(String),
    Str(String),
    /// Numeric literal text (digits, optional fraction and exponent).
    Number(String),
    /// The Ion text between backticks.
    Ion(String),
    Param,
    Punct(&'static str),
    Eof,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    /// Byte offset in the statement.
    pub offset: usize,
}

const PUNCT: &[&str] = &[
    "<<", ">>", "<>", "!=", "<=", ">=", "||", "(", ")", "[", "]", "{", "}", ",", ".", ":", ";",
    "*", "+", "-", "/", "%", "=", "<", ">", "@",
];

/// 1-based line and column of a byte offset.
pub fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

pub fn error(text: &str, offset: usize, message: impl Into<String>) -> SyntaxError {
    let (line, column) = position(text, offset);
    SyntaxError {
        message: message.into(),
        line,
        column,
        semantic: false,
    }
}

pub fn tokenize(text: &str) -> Result<Vec<Token>, SyntaxError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if text[i..].starts_with("--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if text[i..].starts_with("/*") {
            match text[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return Err(error(text, i, "unterminated comment")),
            }
            continue;
        }
        let start = i;
        let tok = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                Tok::Ident(text[start..i].to_string())
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && b[i] == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else if i < b.len()
                    && b[i] == b'.'
                    && !b
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_alphabetic() || *d == b'_')
                {
                    i += 1; // "1." is a decimal
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                        j += 1;
                    }
                    if j < b.len() && b[j].is_ascii_digit() {
                        while j < b.len() && b[j].is_ascii_digit() {
                            j += 1;
                        }
                        i = j;
                    }
                }
                if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
                    return Err(error(text, start, "invalid number"));
                }
                Tok::Number(text[start..i].to_string())
            }
            b'.' if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Tok::Number(format!("0{}", &text[start..i]))
            }
            b'\'' | b'"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(ch) = text[i..].chars().next() else {
                        return Err(error(text, start, "unterminated quoted text"));
                    };
                    if ch as u32 == quote as u32 {
                        if b.get(i + 1) == Some(&quote) {
                            s.push(ch);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    s.push(ch);
                    i += ch.len_utf8();
                }
                if quote == b'\'' {
                    Tok::Str(s)
                } else {
                    Tok::QuotedIdent(s)
                }
            }
            b'`' => {
                i += 1;
                let body_start = i;
                // Find the closing backtick, skipping Ion strings and comments.
                loop {
                    match b.get(i) {
                        None => return Err(error(text, start, "unterminated Ion literal")),
                        Some(b'`') => break,
                        Some(q @ (b'"' | b'\'')) => {
                            let q = *q;
                            let long = q == b'\'' && text[i..].starts_with("'''");
                            if long {
                                match text[i + 3..].find("'''") {
                                    Some(e) => i += 3 + e + 3,
                                    None => {
                                        return Err(error(text, start, "unterminated Ion literal"))
                                    }
                                }
                            } else {
                                i += 1;
                                while i < b.len() && b[i] != q {
                                    if b[i] == b'\\' {
                                        i += 1;
                                    }
                                    i += 1;
                                }
                                i += 1;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
                let body = text[body_start..i].to_string();
                i += 1;
                Tok::Ion(body)
            }
            b'?' => {
                i += 1;
                Tok::Param
            }
            _ => match PUNCT.iter().find(|p| text[i..].starts_with(**p)) {
                Some(p) => {
                    i += p.len();
                    Tok::Punct(p)
                }
                None => {
                    let ch = text[i..].chars().next().unwrap_or('?');
                    return Err(error(text, i, format!("unexpected character '{ch}'")));
                }
            },
        };
        out.push(Token { tok, offset: start });
    }
    out.push(Token {
        tok: Tok::Eof,
        offset: text.len(),
    });
    Ok(out)
}
