//! Ion 1.0 text: a compact writer (GetBlock/GetRevision/IonText output, exports) and a
//! reader for the whole text grammar that clients and PartiQL literals use — comments,
//! typed nulls, all numeric forms, timestamps, quoted and operator symbols, long strings,
//! blobs and clobs, annotations.

use base64::Engine as _;
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{Num, ToPrimitive};

use super::{Data, Decimal, IonError, IonType, Precision, Timestamp, Value};

// ---------------------------------------------------------------- writer

/// Writes values as compact Ion text, separated by single spaces.
pub fn to_text(values: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, v);
    }
    out
}

/// Writes one value as compact Ion text.
pub fn to_text_one(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, v: &Value) {
    for a in &v.annotations {
        write_symbol(out, a.as_deref());
        out.push_str("::");
    }
    match &v.data {
        Data::Null(IonType::Null) => out.push_str("null"),
        Data::Null(t) => {
            out.push_str("null.");
            out.push_str(t.name());
        }
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Int(i) => out.push_str(&i.to_string()),
        Data::Float(f) => write_float(out, *f),
        Data::Decimal(d) => write_decimal(out, d),
        Data::Timestamp(t) => write_timestamp(out, t),
        Data::Symbol(s) => write_symbol(out, s.as_deref()),
        Data::String(s) => write_string(out, s),
        Data::Clob(b) => {
            out.push_str("{{\"");
            for &c in b {
                match c {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    0x20..=0x7E => out.push(c as char),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push_str("\"}}");
        }
        Data::Blob(b) => {
            out.push_str("{{");
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push_str("}}");
        }
        Data::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Data::SExp(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                match &item.data {
                    // Operator symbols stand bare inside an s-expression.
                    Data::Symbol(Some(op))
                        if item.annotations.is_empty()
                            && !op.is_empty()
                            && op.bytes().all(|c| OPERATOR_CHARS.contains(&c)) =>
                    {
                        out.push_str(op)
                    }
                    _ => write_value(out, item),
                }
            }
            out.push(')');
        }
        Data::Struct(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_symbol(out, k.as_deref());
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("nan");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "+inf" } else { "-inf" });
    } else {
        out.push_str(&format!("{f:e}"));
    }
}

fn write_decimal(out: &mut String, d: &Decimal) {
    let digits = d.magnitude.to_string();
    if d.negative {
        out.push('-');
    }
    if d.exponent >= 0 {
        out.push_str(&digits);
        if d.exponent == 0 {
            out.push('.');
        } else {
            out.push_str(&format!("d{}", d.exponent));
        }
        return;
    }
    let scale = d.exponent.unsigned_abs() as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if scale - digits.len() < 20 {
        out.push_str("0.");
        out.push_str(&"0".repeat(scale - digits.len()));
        out.push_str(&digits);
    } else {
        out.push_str(&digits);
        out.push_str(&format!("d{}", d.exponent));
    }
}

fn write_timestamp(out: &mut String, utc: &Timestamp) {
    let local = utc.shifted(utc.offset_minutes.unwrap_or(0) as i64);
    let t = local.as_ref().unwrap_or(utc);
    out.push_str(&format!("{:04}", t.year));
    if t.precision == Precision::Year {
        out.push('T');
        return;
    }
    out.push_str(&format!("-{:02}", t.month));
    if t.precision == Precision::Month {
        out.push('T');
        return;
    }
    out.push_str(&format!("-{:02}", t.day));
    if t.precision == Precision::Day {
        out.push('T');
        return;
    }
    out.push_str(&format!("T{:02}:{:02}", t.hour, t.minute));
    if t.precision == Precision::Second {
        out.push_str(&format!(":{:02}", t.second));
        if let Some((coefficient, exponent)) = &t.fraction {
            if *exponent < 0 {
                let scale = exponent.unsigned_abs() as usize;
                let digits = coefficient.to_string();
                out.push('.');
                out.push_str(&"0".repeat(scale.saturating_sub(digits.len())));
                out.push_str(&digits);
            }
        }
    }
    match t.offset_minutes {
        None => out.push_str("-00:00"),
        Some(0) => out.push('Z'),
        Some(m) => out.push_str(&format!(
            "{}{:02}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.unsigned_abs() / 60,
            m.unsigned_abs() % 60
        )),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !matches!(s, "null" | "true" | "false" | "nan")
        && !(s.starts_with('$') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit()))
}

/// Writes a symbol (a field name, an annotation): bare when it can be, else quoted.
pub(crate) fn write_symbol(out: &mut String, s: Option<&str>) {
    match s {
        None => out.push_str("$0"),
        Some(s) if is_identifier(s) => out.push_str(s),
        Some(s) => {
            out.push('\'');
            escape_into(out, s, '\'');
            out.push('\'');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s, '"');
    out.push('"');
}

fn escape_into(out: &mut String, s: &str, quote: char) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------- reader

/// Parses every top-level value of an Ion text document.
pub fn from_text(text: &str) -> Result<Vec<Value>, IonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
        local: Vec::new(),
    };
    let mut out = Vec::new();
    loop {
        p.skip_ws()?;
        if p.pos >= p.s.len() {
            return Ok(out);
        }
        let start = p.pos;
        let v = p.value(0, Ctx::TopLevel)?;
        // The Ion version marker is the bare identifier at top level (not `'$ion_1_0'` or
        // `$2`, which are symbol values); it resets the symbols.
        if v.annotations.is_empty()
            && v.data == Data::Symbol(Some("$ion_1_0".into()))
            && text[start..p.pos].trim_end() == "$ion_1_0"
        {
            p.local.clear();
            continue;
        }
        // A local symbol table is a struct (`$ion_symbol_table::x` is a user value).
        if v.annotations.first() == Some(&Some("$ion_symbol_table".into()))
            && matches!(v.data, Data::Struct(_))
        {
            p.local = local_symbols(&v, std::mem::take(&mut p.local));
            continue;
        }
        out.push(v);
    }
}

/// Most symbol ids that imports of (unavailable) shared tables may reserve in one table;
/// the binary reader has the same cap.
pub(crate) const MAX_IMPORTED_SYMBOLS: usize = 1 << 20;

/// How many symbol ids one entry of a symbol table's `imports` list reserves (with unknown
/// text: no shared table is available here). An import without a non-empty string `name`, or
/// of the system table `$ion`, is ignored, as the Ion spec says; a `max_id` that is not a
/// non-negative int reserves nothing. Both readers use it.
pub(crate) fn import_slots(import: &Value) -> usize {
    match import.field("name").map(|v| &v.data) {
        Some(Data::String(name)) if !name.is_empty() && name != "$ion" => {}
        _ => return 0,
    }
    match import.field("max_id").map(|v| &v.data) {
        Some(Data::Int(n)) if n.sign() != Sign::Minus => n.to_usize().unwrap_or(usize::MAX),
        _ => 0,
    }
}

/// The local symbols a `$ion_symbol_table::{imports: …, symbols: [...]}` defines. With
/// `imports: $ion_symbol_table` it extends the current table; imports of shared tables,
/// which a reader here cannot resolve, take their `max_id` slots with unknown text.
fn local_symbols(table: &Value, current: Vec<Option<String>>) -> Vec<Option<String>> {
    let mut out = Vec::new();
    match table.field("imports").map(|v| &v.data) {
        Some(Data::Symbol(Some(s))) if s == "$ion_symbol_table" => out = current,
        Some(Data::List(imports)) => {
            for import in imports {
                let slots = import_slots(import);
                // The unknown slots of all imports together stay within the cap (each one
                // alone within it let 400 imports allocate gigabytes).
                let room = MAX_IMPORTED_SYMBOLS.saturating_sub(out.len());
                out.extend(std::iter::repeat_n(None, slots.min(room)));
            }
        }
        _ => {}
    }
    if let Some(Data::List(symbols)) = table.field("symbols").map(|v| &v.data) {
        for s in symbols {
            out.push(match &s.data {
                Data::String(t) => Some(t.clone()),
                _ => None,
            });
        }
    }
    out
}

/// Parses exactly one Ion text value.
pub fn from_text_one(text: &str) -> Result<Value, IonError> {
    let mut values = from_text(text)?;
    match values.len() {
        1 => Ok(values.pop().expect("one value")),
        0 => Err(IonError::new("no Ion value")),
        n => Err(IonError::new(format!("expected one Ion value, found {n}"))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    TopLevel,
    List,
    SExp,
    Struct,
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    /// The local symbols of the current symbol table (`$10` is the first), `None` for a
    /// slot whose text is unknown.
    local: Vec<Option<String>>,
}

fn is_stop(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | 0x0B
            | 0x0C
            | b','
            | b']'
            | b'}'
            | b')'
            | b'['
            | b'{'
            | b'('
            | b'"'
            | b'\''
            | b':'
    ) || c == b'/'
}

const OPERATOR_CHARS: &[u8] = b"!#%&*+-./;<=>?@^`|~";

impl Parser<'_> {
    fn err<T>(&self, msg: &str) -> Result<T, IonError> {
        Err(IonError::new(format!("{msg} at offset {}", self.pos)))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.pos + n).copied()
    }

    fn starts_with(&self, t: &str) -> bool {
        self.s[self.pos..].starts_with(t.as_bytes())
    }

    fn skip_ws(&mut self) -> Result<(), IonError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C) => self.pos += 1,
                Some(b'/') if self.peek_at(1) == Some(b'/') => {
                    // A line comment ends at a line break: LF, or CR (as ion-rs reads it).
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == b'\n' || c == b'\r' {
                            break;
                        }
                    }
                }
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let rest = &self.text[self.pos + 2..];
                    match rest.find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => return self.err("unterminated block comment"),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize, ctx: Ctx) -> Result<Value, IonError> {
        if depth > super::binary::MAX_DEPTH {
            return self.err("Ion nesting is too deep");
        }
        let mut annotations = Vec::new();
        loop {
            self.skip_ws()?;
            let save = self.pos;
            // An annotation is a symbol followed by '::'.
            if let Some(sym) = self.try_symbol_token()? {
                self.skip_ws()?;
                if self.starts_with("::") {
                    self.pos += 2;
                    annotations.push(sym);
                    continue;
                }
            }
            self.pos = save;
            break;
        }
        let data = self.data(depth, ctx)?;
        Ok(Value { annotations, data })
    }

    /// A symbol token usable as an annotation: identifier or quoted symbol (not keywords).
    fn try_symbol_token(&mut self) -> Result<Option<Option<String>>, IonError> {
        match self.peek() {
            Some(b'\'') if !self.starts_with("'''") => Ok(Some(Some(self.quoted(b'\'')?))),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let word = self.word().to_string();
                if matches!(word.as_str(), "null" | "true" | "false" | "nan")
                    || word.starts_with("null.")
                {
                    return Ok(None);
                }
                Ok(Some(self.symbol_from_word(&word)?))
            }
            _ => Ok(None),
        }
    }

    fn word(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric()
                || c == b'_'
                || c == b'$'
                || (c == b'.' && &self.s[start..self.pos] == b"null")
            {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.text[start..self.pos]
    }

    fn symbol_from_word(&self, word: &str) -> Result<Option<String>, IonError> {
        if let Some(sid) = word.strip_prefix('$') {
            if !sid.is_empty() && sid.bytes().all(|b| b.is_ascii_digit()) {
                return match sid.parse::<u64>() {
                    Ok(0) => Ok(None),
                    Ok(n) if (1..=9).contains(&n) => Ok(Some(
                        super::binary::SYSTEM_SYMBOLS[n as usize - 1].to_string(),
                    )),
                    Ok(n) if ((n - 10) as usize) < self.local.len() => {
                        Ok(self.local[(n - 10) as usize].clone())
                    }
                    _ => self.err(&format!("symbol ${sid} has no known text")),
                };
            }
        }
        Ok(Some(word.to_string()))
    }

    fn data(&mut self, depth: usize, ctx: Ctx) -> Result<Data, IonError> {
        let c = match self.peek() {
            Some(c) => c,
            None => return self.err("expected a value"),
        };
        match c {
            b'[' => {
                self.pos += 1;
                Ok(Data::List(self.sequence(b']', depth, Ctx::List)?))
            }
            b'(' => {
                self.pos += 1;
                Ok(Data::SExp(self.sequence(b')', depth, Ctx::SExp)?))
            }
            b'{' if self.peek_at(1) == Some(b'{') => self.lob(),
            b'{' => {
                self.pos += 1;
                self.structure(depth)
            }
            b'"' => Ok(Data::String(self.quoted(b'"')?)),
            b'\'' if self.starts_with("'''") => Ok(Data::String(self.long_strings()?)),
            b'\'' => Ok(Data::Symbol(Some(self.quoted(b'\'')?))),
            b'+' if self.starts_with("+inf") && self.peek_at(4).is_none_or(is_stop) => {
                self.pos += 4;
                Ok(Data::Float(f64::INFINITY))
            }
            b'-' if self.starts_with("-inf") && self.peek_at(4).is_none_or(is_stop) => {
                self.pos += 4;
                Ok(Data::Float(f64::NEG_INFINITY))
            }
            b'0'..=b'9' => self.number(),
            b'-' if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let word = self.word().to_string();
                match word.as_str() {
                    "null" => Ok(Data::Null(IonType::Null)),
                    "true" => Ok(Data::Bool(true)),
                    "false" => Ok(Data::Bool(false)),
                    "nan" => Ok(Data::Float(f64::NAN)),
                    w if w.starts_with("null.") => Ok(Data::Null(match &w[5..] {
                        "null" => IonType::Null,
                        "bool" => IonType::Bool,
                        "int" => IonType::Int,
                        "float" => IonType::Float,
                        "decimal" => IonType::Decimal,
                        "timestamp" => IonType::Timestamp,
                        "symbol" => IonType::Symbol,
                        "string" => IonType::String,
                        "clob" => IonType::Clob,
                        "blob" => IonType::Blob,
                        "list" => IonType::List,
                        "sexp" => IonType::SExp,
                        "struct" => IonType::Struct,
                        other => return self.err(&format!("unknown null type '{other}'")),
                    })),
                    w => Ok(Data::Symbol(self.symbol_from_word(w)?)),
                }
            }
            c if ctx == Ctx::SExp && OPERATOR_CHARS.contains(&c) => {
                let start = self.pos;
                while self.peek().is_some_and(|c| OPERATOR_CHARS.contains(&c)) {
                    self.pos += 1;
                }
                Ok(Data::Symbol(Some(self.text[start..self.pos].to_string())))
            }
            _ => self.err(&format!("unexpected character '{}'", c as char)),
        }
    }

    fn sequence(&mut self, close: u8, depth: usize, ctx: Ctx) -> Result<Vec<Value>, IonError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1, ctx)?);
            self.skip_ws()?;
            if ctx == Ctx::List {
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(c) if c == close => {}
                    _ => return self.err("expected ',' or ']' in a list"),
                }
            }
        }
    }

    fn structure(&mut self, depth: usize) -> Result<Data, IonError> {
        let mut fields = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Data::Struct(fields));
            }
            let name = match self.peek() {
                Some(b'"') => Some(self.quoted(b'"')?),
                Some(b'\'') if self.starts_with("'''") => Some(self.long_strings()?),
                Some(b'\'') => Some(self.quoted(b'\'')?),
                Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                    let w = self.word().to_string();
                    self.symbol_from_word(&w)?
                }
                _ => return self.err("expected a field name"),
            };
            self.skip_ws()?;
            if self.peek() != Some(b':') || self.peek_at(1) == Some(b':') {
                return self.err("expected ':' after a field name");
            }
            self.pos += 1;
            let v = self.value(depth + 1, Ctx::Struct)?;
            fields.push((name, v));
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return self.err("expected ',' or '}' in a struct"),
            }
        }
    }

    /// A quoted string or symbol body (the opening quote is at `pos`).
    fn quoted(&mut self, quote: u8) -> Result<String, IonError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return self.err("unterminated string");
            };
            self.pos += c.len_utf8();
            match c {
                c if c as u32 == quote as u32 => return Ok(out),
                '\\' => self.escape(&mut out)?,
                '\n' if quote == b'"' || quote == b'\'' => {
                    return self.err("newline in a quoted string")
                }
                c => out.push(c),
            }
        }
    }

    /// One or more adjacent '''long''' strings, concatenated.
    fn long_strings(&mut self) -> Result<String, IonError> {
        let mut out = String::new();
        loop {
            self.pos += 3;
            loop {
                if self.starts_with("'''") {
                    self.pos += 3;
                    break;
                }
                let Some(c) = self.text[self.pos..].chars().next() else {
                    return self.err("unterminated long string");
                };
                self.pos += c.len_utf8();
                match c {
                    '\\' => self.escape(&mut out)?,
                    // A raw line break is a newline: CR LF and a lone CR read as LF, as
                    // ion-rs (the differential oracle) reads them.
                    '\r' => {
                        if self.peek() == Some(b'\n') {
                            self.pos += 1;
                        }
                        out.push('\n');
                    }
                    c => out.push(c),
                }
            }
            let save = self.pos;
            self.skip_ws()?;
            if !self.starts_with("'''") {
                self.pos = save;
                return Ok(out);
            }
        }
    }

    fn hex_digits(&mut self, n: usize) -> Result<u32, IonError> {
        let Some(h) = self.text.get(self.pos..self.pos + n) else {
            return self.err("short escape");
        };
        let v = u32::from_str_radix(h, 16).or_else(|_| self.err("bad hex escape"))?;
        self.pos += n;
        Ok(v)
    }

    fn escape(&mut self, out: &mut String) -> Result<(), IonError> {
        let Some(c) = self.peek() else {
            return self.err("unterminated escape");
        };
        self.pos += 1;
        let ch = match c {
            b'a' => '\u{07}',
            b'b' => '\u{08}',
            b't' => '\t',
            b'n' => '\n',
            b'f' => '\u{0c}',
            b'r' => '\r',
            b'v' => '\u{0b}',
            b'?' => '?',
            b'0' => '\0',
            b'\'' => '\'',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'\n' => return Ok(()),
            b'\r' => {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
                return Ok(());
            }
            b'x' => {
                char::from_u32(self.hex_digits(2)?).ok_or_else(|| IonError::new("bad escape"))?
            }
            b'u' => self.unicode(4)?,
            b'U' => self.unicode(8)?,
            _ => return self.err("unknown escape"),
        };
        out.push(ch);
        Ok(())
    }

    fn unicode(&mut self, n: usize) -> Result<char, IonError> {
        let v = self.hex_digits(n)?;
        if (0xD800..0xDC00).contains(&v) && self.starts_with("\\u") {
            self.pos += 2;
            let low = self.hex_digits(4)?;
            let combined = 0x10000 + ((v - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF);
            return char::from_u32(combined).ok_or_else(|| IonError::new("bad surrogate pair"));
        }
        char::from_u32(v).ok_or_else(|| IonError::new("bad unicode escape"))
    }

    fn lob(&mut self) -> Result<Data, IonError> {
        self.pos += 2;
        self.skip_lob_ws();
        let start = self.pos;
        let data = if self.peek() == Some(b'"') {
            let s = self.quoted(b'"')?;
            self.clob_text_is_ascii(start)?;
            Data::Clob(clob_bytes(&s)?)
        } else if self.starts_with("'''") {
            let s = self.long_strings()?;
            self.clob_text_is_ascii(start)?;
            Data::Clob(clob_bytes(&s)?)
        } else {
            let start = self.pos;
            while self.peek().is_some_and(|c| c != b'}') {
                self.pos += 1;
            }
            let b64: String = self.text[start..self.pos]
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            Data::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .or_else(|_| self.err("invalid base64 in a blob"))?,
            )
        };
        self.skip_lob_ws();
        if !self.starts_with("}}") {
            return self.err("expected '}}'");
        }
        self.pos += 2;
        Ok(data)
    }

    /// A clob's text is ASCII (Ion 1.0): other bytes only as `\\xHH` escapes.
    fn clob_text_is_ascii(&self, start: usize) -> Result<(), IonError> {
        if self.text.as_bytes()[start..self.pos]
            .iter()
            .any(|b| *b > 0x7F)
        {
            return self.err("a clob holds ASCII text only; write other bytes as \\xHH escapes");
        }
        Ok(())
    }

    fn skip_lob_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<Data, IonError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !is_stop(c) || (c == b':' && self.looks_like_time(start)))
        {
            self.pos += 1;
        }
        let tok = &self.text[start..self.pos];
        parse_number(tok).map_err(|m| IonError::new(format!("{m} in '{tok}' at offset {start}")))
    }

    fn looks_like_time(&self, start: usize) -> bool {
        // Inside a timestamp ("2007-01-01T12:30"), ':' is part of the token.
        self.text[start..self.pos].contains('T')
    }
}

fn clob_bytes(s: &str) -> Result<Vec<u8>, IonError> {
    s.chars()
        .map(|c| {
            u8::try_from(c as u32).map_err(|_| IonError::new("clob characters must be below 0x100"))
        })
        .collect()
}

fn parse_number(tok: &str) -> Result<Data, String> {
    // A timestamp starts with a four-digit year and '-' ("4.7d-3272" is a decimal).
    let year_dash = tok.len() >= 10
        && tok.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && tok.as_bytes()[4] == b'-';
    if tok.contains('T') || year_dash {
        return parse_timestamp(tok).map(Data::Timestamp);
    }
    let (negative, body) = match tok.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, tok),
    };
    let check_underscores = |s: &str| -> Result<String, String> {
        if s.starts_with('_') || s.ends_with('_') || s.contains("__") {
            return Err("misplaced underscore".into());
        }
        Ok(s.replace('_', ""))
    };
    let radix = if body.starts_with("0x") || body.starts_with("0X") {
        Some(16)
    } else if body.starts_with("0b") || body.starts_with("0B") {
        Some(2)
    } else {
        None
    };
    if let Some(radix) = radix {
        let digits = check_underscores(&body[2..])?;
        // `-0x0` is int 0, as ion-rs and ion-java read it (only binary forbids negative zero).
        let mag = BigUint::from_str_radix(&digits, radix).map_err(|_| "bad integer")?;
        return Ok(Data::Int(BigInt::from_biguint(
            if negative { Sign::Minus } else { Sign::Plus },
            mag,
        )));
    }
    let body = check_underscores(body)?;
    if body.len() > 1 && body.starts_with('0') && body.as_bytes()[1].is_ascii_digit() {
        return Err("leading zeros".into());
    }
    if let Some(i) = body.find(['e', 'E']) {
        let (mantissa, exponent) = (&body[..i], &body[i + 1..]);
        if mantissa.is_empty() || mantissa.starts_with('.') || exponent.is_empty() {
            return Err("bad float".into());
        }
        let text = format!("{}{mantissa}e{exponent}", if negative { "-" } else { "" });
        return text
            .parse::<f64>()
            .map(Data::Float)
            .map_err(|_| "bad float".into());
    }
    let (mantissa, exp) = match body.find(['d', 'D']) {
        Some(i) => (
            &body[..i],
            Some(body[i + 1..].parse::<i64>().map_err(|_| "bad exponent")?),
        ),
        None => (body.as_str(), None),
    };
    if !mantissa.contains('.') && exp.is_none() {
        // `-0` is int 0, as ion-rs and ion-java read it.
        let mag: BigUint = mantissa.parse().map_err(|_| "bad integer")?;
        return Ok(Data::Int(BigInt::from_biguint(
            if negative { Sign::Minus } else { Sign::Plus },
            mag,
        )));
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("bad decimal".into());
    }
    let magnitude: BigUint = format!("{int}{frac}").parse().map_err(|_| "bad decimal")?;
    let exponent = exp
        .unwrap_or(0)
        .checked_sub(frac.len() as i64)
        .ok_or("decimal exponent out of range")?;
    Ok(Data::Decimal(Decimal {
        negative,
        magnitude,
        exponent,
    }))
}

fn parse_timestamp(tok: &str) -> Result<Timestamp, String> {
    let bad = || "invalid timestamp".to_string();
    let num = |s: &str, len: usize| -> Result<u32, String> {
        if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let mut t = Timestamp::year_start(0, None);
    let (date, time) = match tok.split_once('T') {
        Some((d, t)) => (d, t),
        None => (tok, ""),
    };
    let parts: Vec<&str> = date.split('-').collect();
    t.year = num(parts[0], 4)? as u16;
    if t.year == 0 {
        return Err(bad());
    }
    match parts.len() {
        1 if tok.ends_with('T') && time.is_empty() => return Ok(t),
        2 if tok.ends_with('T') && time.is_empty() => {
            t.month = num(parts[1], 2)? as u8;
            t.precision = Precision::Month;
        }
        3 => {
            t.month = num(parts[1], 2)? as u8;
            t.day = num(parts[2], 2)? as u8;
            t.precision = Precision::Day;
        }
        _ => return Err(bad()),
    }
    if !(1..=12).contains(&t.month) || t.day < 1 || t.day > days_in_month(t.year, t.month) {
        return Err(bad());
    }
    if time.is_empty() {
        return Ok(t);
    }
    if t.precision != Precision::Day {
        return Err(bad());
    }
    let split = time.rfind(['Z', 'z', '+', '-']).ok_or_else(bad)?;
    let (clock, offset) = time.split_at(split);
    t.offset_minutes = match offset {
        "Z" | "z" => Some(0),
        "-00:00" => None,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (h, m) = o[1..].split_once(':').ok_or_else(bad)?;
            let (h, m) = (num(h, 2)?, num(m, 2)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            Some(sign * (h * 60 + m) as i16)
        }
    };
    let hms: Vec<&str> = clock.split(':').collect();
    t.hour = num(hms[0], 2)? as u8;
    t.minute = num(hms.get(1).ok_or_else(bad)?, 2)? as u8;
    t.precision = Precision::Minute;
    if let Some(sec) = hms.get(2) {
        let (whole, frac) = match sec.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (*sec, None),
        };
        t.second = num(whole, 2)? as u8;
        t.precision = Precision::Second;
        if let Some(f) = frac {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.fraction = Some((f.parse().map_err(|_| bad())?, -(f.len() as i64)));
        }
    }
    if hms.len() > 3 || t.hour > 23 || t.minute > 59 || t.second > 59 {
        return Err(bad());
    }
    // Text shows local time; the model holds UTC.
    let offset = t.offset_minutes.unwrap_or(0) as i64;
    t.shifted(-offset)
        .ok_or_else(|| "timestamp out of range once converted to UTC".to_string())
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's parameter: 400 imports of shared tables each claiming 2^31 - 1 symbols
    /// allocated gigabytes; together they now reserve at most the cap.
    #[test]
    fn imports_together_stay_within_the_cap() {
        let import = r#"{name: "t", version: 1, max_id: 2147483647}"#;
        let imports = vec![import; 400].join(", ");
        let text = format!("$ion_symbol_table::{{imports: [{imports}], symbols: [\"x\"]}} 1");
        let table = from_text(&format!("{{imports: [{imports}], symbols: [\"x\"]}}")).unwrap();
        let symbols = local_symbols(&table[0], Vec::new());
        assert_eq!(symbols.len(), MAX_IMPORTED_SYMBOLS + 1);
        assert_eq!(symbols.last(), Some(&Some("x".to_string())));
        assert_eq!(from_text(&text).unwrap().len(), 1);
        // Appending to the current table does not grow it past the cap either.
        let appended = r#"{imports: $ion_symbol_table, symbols: ["y"]}"#;
        let more = local_symbols(&from_text(appended).unwrap()[0], symbols);
        assert_eq!(more.len(), MAX_IMPORTED_SYMBOLS + 2);
    }

    /// Ion 1.0 (and ion-python): clob text is ASCII; other bytes only as escapes.
    #[test]
    fn clobs_refuse_characters_above_0x7f() {
        for bad in ["{{\"é\"}}", "{{'''café'''}}", "{{\"中\"}}"] {
            assert!(from_text(bad).is_err(), "{bad}");
        }
        let ok = from_text(r#"{{"caf\xe9"}}"#).unwrap();
        assert_eq!(ok[0].data, Data::Clob(b"caf\xe9".to_vec()));
    }
}
