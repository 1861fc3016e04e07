//! Ion 1.0 binary: a reader for any conforming stream (local symbol tables, NOP pads,
//! annotation wrappers, sorted structs) and a writer that emits the IVM, one local symbol
//! table, and minimal encodings.
//!
//! The value *bodies* (ints, floats, decimals, timestamps) are also what Ion Hash hashes, so
//! the body encoders here are shared with [`super::hash`].

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::Zero;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use rustc_hash::FxHasher;
use std::ops::Range;

use super::{Data, Decimal, IonError, IonType, Precision, Timestamp, Value};

/// The Ion 1.0 binary version marker.
pub const IVM: [u8; 4] = [0xE0, 0x01, 0x00, 0xEA];

/// The Ion 1.0 system symbol table ($1..$9).
pub(crate) const SYSTEM_SYMBOLS: [&str; 9] = [
    "$ion",
    "$ion_1_0",
    "$ion_symbol_table",
    "name",
    "version",
    "imports",
    "symbols",
    "max_id",
    "$ion_shared_symbol_table",
];

/// Nesting deeper than this is refused (no stack overflow on hostile input).
pub const MAX_DEPTH: usize = 100;

// ---------------------------------------------------------------- primitive encoders

pub(crate) fn write_var_uint(out: &mut Vec<u8>, v: u64) {
    let (groups, first) = var_uint_bytes(v);
    out.extend_from_slice(&groups[first..]);
}

/// The VarUInt of `v`: its bytes are `groups[first..]`.
fn var_uint_bytes(mut v: u64) -> ([u8; 10], usize) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    tmp[tmp.len() - 1] |= 0x80;
    (tmp, i)
}

/// VarInt: sign in bit 6 of the first byte (which carries 6 data bits), 7 data bits in
/// each later byte, end flag in bit 7 of the last byte.
pub(crate) fn write_var_int(out: &mut Vec<u8>, v: i64) {
    let negative = v < 0;
    let mut m = v.unsigned_abs();
    // Groups from the last byte backwards: 7 bits each, then the first byte's 6.
    let mut tmp = [0u8; 11];
    let mut i = tmp.len();
    while m >= 0x40 {
        i -= 1;
        tmp[i] = (m & 0x7F) as u8;
        m >>= 7;
    }
    i -= 1;
    tmp[i] = m as u8 | if negative { 0x40 } else { 0 };
    tmp[tmp.len() - 1] |= 0x80;
    out.extend_from_slice(&tmp[i..]);
}

/// The UInt body of `v` (big-endian, minimal, empty for zero), passed to `f`.
pub(crate) fn with_u64_body<T>(v: u64, f: impl FnOnce(&[u8]) -> T) -> T {
    let bytes = v.to_be_bytes();
    f(&bytes[(v.leading_zeros() / 8) as usize..])
}

/// As [`uint_bytes`], passed to `f`, and without a buffer when the magnitude fits in a u64.
pub(crate) fn with_uint_body<T>(m: &BigUint, f: impl FnOnce(&[u8]) -> T) -> T {
    use num_traits::ToPrimitive;
    match m.to_u64() {
        Some(v) => with_u64_body(v, f),
        None => f(&uint_bytes(m)),
    }
}

/// UInt body: big-endian magnitude, minimal, empty for zero.
pub(crate) fn uint_bytes(v: &BigUint) -> Vec<u8> {
    if v.is_zero() {
        Vec::new()
    } else {
        v.to_bytes_be()
    }
}

/// Int (signed-magnitude) body: sign in the first byte's high bit; empty for positive zero.
pub(crate) fn int_bytes(negative: bool, magnitude: &BigUint) -> Vec<u8> {
    let mut bytes = uint_bytes(magnitude);
    if bytes.is_empty() {
        return if negative { vec![0x80] } else { Vec::new() };
    }
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    if negative {
        bytes[0] |= 0x80;
    }
    bytes
}

pub(crate) fn float_body(f: f64) -> Vec<u8> {
    if f == 0.0 && f.is_sign_positive() {
        Vec::new()
    } else if f.is_nan() {
        0x7FF8_0000_0000_0000u64.to_be_bytes().to_vec()
    } else {
        f.to_bits().to_be_bytes().to_vec()
    }
}

pub(crate) fn decimal_body(d: &Decimal) -> Vec<u8> {
    let mut out = Vec::new();
    if d.exponent == 0 && d.magnitude.is_zero() && !d.negative {
        return out;
    }
    write_var_int(&mut out, d.exponent);
    out.extend(int_bytes(d.negative, &d.magnitude));
    out
}

pub(crate) fn timestamp_body(t: &Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    write_timestamp_body(&mut out, t);
    out
}

fn write_timestamp_body(out: &mut Vec<u8>, t: &Timestamp) {
    match t.offset_minutes {
        Some(m) => write_var_int(out, m as i64),
        None => out.push(0xC0),
    }
    write_var_uint(out, t.year as u64);
    if t.precision >= Precision::Month {
        write_var_uint(out, t.month as u64);
    }
    if t.precision >= Precision::Day {
        write_var_uint(out, t.day as u64);
    }
    if t.precision >= Precision::Minute {
        write_var_uint(out, t.hour as u64);
        write_var_uint(out, t.minute as u64);
    }
    if t.precision >= Precision::Second {
        write_var_uint(out, t.second as u64);
        if let Some((coefficient, exponent)) = &t.fraction {
            write_var_int(out, *exponent);
            out.extend(int_bytes(false, coefficient));
        }
    }
}

// ---------------------------------------------------------------- writer

/// Encodes values as one Ion binary stream: IVM, a local symbol table if any symbol is
/// used, then the values.
pub fn encode(values: &[Value]) -> Vec<u8> {
    encode_marked(values, &[]).0
}

/// Encodes one value as a complete Ion binary stream.
pub fn encode_one(value: &Value) -> Vec<u8> {
    encode(std::slice::from_ref(value))
}

/// [`encode_one`], and where the body of each value of `marked` (the addresses of values
/// inside `value`, compared, never read) lies in the output, in the order of `marked`
/// (`None` for an address the encoding did not meet, and for a null or a bool, which have
/// no body). A scalar's body can be overwritten
/// there by another of the same length: the output is then the encoding of the value
/// holding that scalar instead (see `storage::forms::PreparedBlock`).
pub fn encode_one_marked(
    value: &Value,
    marked: &[*const Value],
) -> (Vec<u8>, Vec<Option<Range<usize>>>) {
    let (out, found) = encode_marked(std::slice::from_ref(value), marked);
    let mut at = vec![None; marked.len()];
    for (mark, start, len) in found {
        at[mark] = Some(start..start + len);
    }
    (out, at)
}

fn encode_marked(
    values: &[Value],
    marked: &[*const Value],
) -> (Vec<u8>, Vec<(usize, usize, usize)>) {
    let mut symbols = SymbolTable::default();
    for v in values {
        symbols.collect(v);
    }
    let mut w = Writer {
        out: IVM.to_vec(),
        symbols: &symbols,
        marked,
        found: Vec::new(),
    };
    if !symbols.local.is_empty() {
        let table = Value {
            annotations: vec![Some("$ion_symbol_table".into())],
            data: Data::Struct(vec![(
                Some("symbols".into()),
                Value::list(symbols.local.iter().map(|s| Value::string(*s)).collect()),
            )]),
        };
        w.value(&table);
    }
    for v in values {
        w.value(v);
    }
    (w.out, w.found)
}

/// The local symbols of the values being encoded (borrowed from them), in order of first use.
#[derive(Default)]
struct SymbolTable<'v> {
    local: Vec<&'v str>,
    index: HashMap<&'v str, u64, BuildHasherDefault<FxHasher>>,
}

impl<'v> SymbolTable<'v> {
    fn sid(&self, text: &Option<String>) -> u64 {
        match text {
            None => 0,
            Some(t) => match SYSTEM_SYMBOLS.iter().position(|s| s == t) {
                Some(i) => i as u64 + 1,
                None => self.index[t.as_str()],
            },
        }
    }

    fn add(&mut self, text: &'v Option<String>) {
        if let Some(t) = text {
            if !SYSTEM_SYMBOLS.contains(&t.as_str()) && !self.index.contains_key(t.as_str()) {
                self.index
                    .insert(t, SYSTEM_SYMBOLS.len() as u64 + 1 + self.local.len() as u64);
                self.local.push(t);
            }
        }
    }

    fn collect(&mut self, v: &'v Value) {
        for a in &v.annotations {
            self.add(a);
        }
        match &v.data {
            Data::Symbol(s) => self.add(s),
            Data::List(items) | Data::SExp(items) => items.iter().for_each(|i| self.collect(i)),
            Data::Struct(fields) => {
                for (k, v) in fields {
                    self.add(k);
                    self.collect(v);
                }
            }
            _ => {}
        }
    }
}

/// The binary writer. Bodies are written in place and their header inserted before them
/// afterwards, so that nested containers need no buffer of their own.
struct Writer<'a> {
    out: Vec<u8>,
    symbols: &'a SymbolTable<'a>,
    /// Values whose bodies' places are wanted ([`encode_one_marked`]), by address.
    marked: &'a [*const Value],
    /// (index in `marked`, body start, body length) of those written so far; the starts
    /// move with every header inserted before them.
    found: Vec<(usize, usize, usize)>,
}

impl Writer<'_> {
    /// Inserts `bytes` at `at`, moving the places found after it.
    fn insert(&mut self, at: usize, bytes: &[u8]) {
        if bytes.len() == 1 {
            self.out.insert(at, bytes[0]);
        } else {
            self.out.splice(at..at, bytes.iter().copied());
        }
        for (_, start, _) in &mut self.found {
            if *start >= at {
                *start += bytes.len();
            }
        }
    }

    /// Puts the type descriptor (and length) of type `code` before the body that was
    /// written at `out[start..]`.
    fn header(&mut self, start: usize, code: u8) {
        let len = self.out.len() - start;
        if len < 14 {
            return self.insert(start, &[code << 4 | len as u8]);
        }
        let (groups, first) = var_uint_bytes(len as u64);
        let mut header = [0u8; 11];
        header[0] = code << 4 | 14;
        let n = groups.len() - first;
        header[1..=n].copy_from_slice(&groups[first..]);
        self.insert(start, &header[..=n]);
    }

    fn value(&mut self, v: &Value) {
        let mark = if self.marked.is_empty() {
            None
        } else {
            self.marked.iter().position(|m| std::ptr::eq(*m, v))
        };
        if v.annotations.is_empty() {
            return self.data(&v.data, mark);
        }
        let start = self.out.len();
        for a in &v.annotations {
            write_var_uint(&mut self.out, self.symbols.sid(a));
        }
        // annot_length (a VarUInt) goes before the annotations' symbols.
        let (groups, first) = var_uint_bytes((self.out.len() - start) as u64);
        self.insert(start, &groups[first..]);
        self.data(&v.data, mark);
        self.header(start, 0xE);
    }

    fn data(&mut self, d: &Data, mark: Option<usize>) {
        let out = &mut self.out;
        let start = out.len();
        let code = match d {
            Data::Null(t) => {
                out.push(t.binary_code() << 4 | 0x0F);
                return;
            }
            Data::Bool(b) => {
                out.push(0x10 | *b as u8);
                return;
            }
            Data::Int(i) => {
                with_uint_body(i.magnitude(), |b| out.extend_from_slice(b));
                if i.sign() == Sign::Minus {
                    0x3
                } else {
                    0x2
                }
            }
            Data::Float(f) => {
                if !(*f == 0.0 && f.is_sign_positive()) {
                    let bits = if f.is_nan() {
                        0x7FF8_0000_0000_0000u64
                    } else {
                        f.to_bits()
                    };
                    out.extend_from_slice(&bits.to_be_bytes());
                }
                0x4
            }
            Data::Decimal(dec) => {
                out.extend_from_slice(&decimal_body(dec));
                0x5
            }
            Data::Timestamp(t) => {
                write_timestamp_body(out, t);
                0x6
            }
            Data::Symbol(s) => {
                with_u64_body(self.symbols.sid(s), |b| out.extend_from_slice(b));
                0x7
            }
            Data::String(s) => {
                out.extend_from_slice(s.as_bytes());
                0x8
            }
            Data::Clob(b) => {
                out.extend_from_slice(b);
                0x9
            }
            Data::Blob(b) => {
                out.extend_from_slice(b);
                0xA
            }
            Data::List(items) | Data::SExp(items) => {
                for i in items {
                    self.value(i);
                }
                if matches!(d, Data::List(_)) {
                    0xB
                } else {
                    0xC
                }
            }
            Data::Struct(fields) => {
                for (k, v) in fields {
                    write_var_uint(&mut self.out, self.symbols.sid(k));
                    self.value(v);
                }
                // L=1 would mean "sorted struct"; a 1-byte body cannot occur (a field is ≥ 2
                // bytes).
                0xD
            }
        };
        let body = self.out.len() - start;
        self.header(start, code);
        if let Some(m) = mark {
            let header = self.out.len() - start - body;
            self.found.push((m, start + header, body));
        }
    }
}

// ---------------------------------------------------------------- reader

/// Decodes every top-level user value of an Ion binary stream.
pub fn decode(bytes: &[u8]) -> Result<Vec<Value>, IonError> {
    if !bytes.starts_with(&IVM) {
        return Err(IonError::new(
            "binary Ion must start with the version marker E0 01 00 EA",
        ));
    }
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        local: Vec::new(),
    };
    let mut out = Vec::new();
    while r.pos < r.buf.len() {
        if r.buf[r.pos..].starts_with(&IVM) {
            r.pos += 4;
            r.reset_symbols();
            continue;
        }
        let end = r.buf.len();
        if let Some(v) = r.value(end, 0)? {
            if is_symbol_table(&v) {
                r.install_symbol_table(v);
            } else {
                out.push(v);
            }
        }
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The local symbols: index = SID − 1 − the system symbols; `None` = a slot with
    /// unknown text. (The system symbols are [`SYSTEM_SYMBOLS`], never copied.)
    local: Vec<Option<String>>,
}

fn err(msg: &str) -> IonError {
    IonError::new(msg)
}

impl Reader<'_> {
    fn reset_symbols(&mut self) {
        self.local.clear();
    }

    fn byte(&mut self, end: usize) -> Result<u8, IonError> {
        if self.pos >= end {
            return Err(err("unexpected end of data"));
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize, end: usize) -> Result<&[u8], IonError> {
        if n > end.saturating_sub(self.pos) {
            return Err(err("a length runs past the end of its container"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn var_uint(&mut self, end: usize) -> Result<u64, IonError> {
        let mut v: u64 = 0;
        for _ in 0..10 {
            let b = self.byte(end)?;
            v = v.checked_mul(128).ok_or_else(|| err("VarUInt overflow"))? | (b & 0x7F) as u64;
            if b & 0x80 != 0 {
                return Ok(v);
            }
        }
        Err(err("VarUInt too long"))
    }

    /// Returns (value, negative).
    fn var_int(&mut self, end: usize) -> Result<(i64, bool), IonError> {
        let first = self.byte(end)?;
        let negative = first & 0x40 != 0;
        let mut v: i64 = (first & 0x3F) as i64;
        let mut done = first & 0x80 != 0;
        let mut n = 0;
        while !done {
            n += 1;
            if n > 9 {
                return Err(err("VarInt too long"));
            }
            let b = self.byte(end)?;
            v = v.checked_mul(128).ok_or_else(|| err("VarInt overflow"))? | (b & 0x7F) as i64;
            done = b & 0x80 != 0;
        }
        Ok((if negative { -v } else { v }, negative))
    }

    fn length(&mut self, low: u8, end: usize) -> Result<usize, IonError> {
        if low == 14 {
            usize::try_from(self.var_uint(end)?).map_err(|_| err("length too large"))
        } else {
            Ok(low as usize)
        }
    }

    fn symbol_text(&self, sid: u64) -> Result<Option<String>, IonError> {
        if sid == 0 {
            return Ok(None);
        }
        let i = (sid - 1) as usize;
        if let Some(system) = SYSTEM_SYMBOLS.get(i) {
            return Ok(Some(system.to_string()));
        }
        match self.local.get(i - SYSTEM_SYMBOLS.len()) {
            Some(t) => Ok(t.clone()),
            None => Err(err(&format!("symbol id ${sid} is not in the symbol table"))),
        }
    }

    /// Reads one value ending at or before `end`; `None` for a NOP pad.
    fn value(&mut self, end: usize, depth: usize) -> Result<Option<Value>, IonError> {
        if depth > MAX_DEPTH {
            return Err(err("Ion nesting is too deep"));
        }
        let td = self.byte(end)?;
        let (code, low) = (td >> 4, td & 0x0F);
        if code == 0xE {
            if low == 0 && self.pos + 3 <= end && self.buf[self.pos - 1..].starts_with(&IVM) {
                return Err(err("a version marker inside a container"));
            }
            let len = self.length(low, end)?;
            let wrapper_end = self.pos + len;
            if wrapper_end > end {
                return Err(err("an annotation wrapper runs past its container"));
            }
            let annot_len = self.var_uint(wrapper_end)? as usize;
            let annot_end = self.pos + annot_len;
            if annot_end > wrapper_end || annot_len == 0 {
                return Err(err("bad annotation length"));
            }
            let mut annotations = Vec::new();
            while self.pos < annot_end {
                let sid = self.var_uint(annot_end)?;
                annotations.push(self.symbol_text(sid)?);
            }
            let mut v = self
                .value(wrapper_end, depth + 1)?
                .ok_or_else(|| err("an annotation wrapper around a NOP pad"))?;
            if !v.annotations.is_empty() {
                return Err(err("nested annotation wrappers"));
            }
            if self.pos != wrapper_end {
                return Err(err("an annotation wrapper holds more than one value"));
            }
            v.annotations = annotations;
            return Ok(Some(v));
        }
        if code == 0xF {
            return Err(err("reserved type code 0xF"));
        }
        if low == 15 {
            let t = match code {
                0x0 => IonType::Null,
                0x1 => IonType::Bool,
                0x2 | 0x3 => IonType::Int,
                0x4 => IonType::Float,
                0x5 => IonType::Decimal,
                0x6 => IonType::Timestamp,
                0x7 => IonType::Symbol,
                0x8 => IonType::String,
                0x9 => IonType::Clob,
                0xA => IonType::Blob,
                0xB => IonType::List,
                0xC => IonType::SExp,
                _ => IonType::Struct,
            };
            return Ok(Some(Data::Null(t).into()));
        }
        if code == 0x1 {
            return match low {
                0 => Ok(Some(Data::Bool(false).into())),
                1 => Ok(Some(Data::Bool(true).into())),
                _ => Err(err("bad bool length")),
            };
        }
        let len = if code == 0xD && low == 1 {
            self.var_uint(end)? as usize
        } else {
            self.length(low, end)?
        };
        let body_end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= end)
            .ok_or_else(|| err("a value runs past its container"))?;
        let data = match code {
            0x0 => {
                self.pos = body_end;
                return Ok(None);
            }
            0x2 | 0x3 => {
                let mag = BigUint::from_bytes_be(self.take(len, body_end)?);
                if code == 0x3 && mag.is_zero() {
                    return Err(err("negative zero int"));
                }
                let sign = if code == 0x3 { Sign::Minus } else { Sign::Plus };
                Data::Int(BigInt::from_biguint(sign, mag))
            }
            0x4 => match len {
                0 => Data::Float(0.0),
                4 => {
                    let b = self.take(4, body_end)?;
                    Data::Float(f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64)
                }
                8 => {
                    let b = self.take(8, body_end)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    Data::Float(f64::from_be_bytes(a))
                }
                _ => return Err(err("bad float length")),
            },
            0x5 => {
                if len == 0 {
                    Data::Decimal(Decimal {
                        negative: false,
                        magnitude: BigUint::zero(),
                        exponent: 0,
                    })
                } else {
                    let (exponent, _) = self.var_int(body_end)?;
                    let (negative, magnitude) = self.int_rest(body_end)?;
                    Data::Decimal(Decimal {
                        negative,
                        magnitude,
                        exponent,
                    })
                }
            }
            0x6 => Data::Timestamp(self.timestamp(body_end)?),
            0x7 => {
                let sid = BigUint::from_bytes_be(self.take(len, body_end)?);
                let sid: u64 = sid.try_into().map_err(|_| err("symbol id too large"))?;
                Data::Symbol(self.symbol_text(sid)?)
            }
            0x8 => Data::String(
                String::from_utf8(self.take(len, body_end)?.to_vec())
                    .map_err(|_| err("a string is not valid UTF-8"))?,
            ),
            0x9 => Data::Clob(self.take(len, body_end)?.to_vec()),
            0xA => Data::Blob(self.take(len, body_end)?.to_vec()),
            0xB | 0xC => {
                let mut items = Vec::new();
                while self.pos < body_end {
                    if let Some(v) = self.value(body_end, depth + 1)? {
                        items.push(v);
                    }
                }
                if code == 0xB {
                    Data::List(items)
                } else {
                    Data::SExp(items)
                }
            }
            _ => {
                let mut fields = Vec::new();
                while self.pos < body_end {
                    let sid = self.var_uint(body_end)?;
                    // A NOP pad's field name is never resolved (it names nothing).
                    if let Some(v) = self.value(body_end, depth + 1)? {
                        fields.push((self.symbol_text(sid)?, v));
                    }
                }
                Data::Struct(fields)
            }
        };
        if self.pos != body_end {
            return Err(err("a value's length does not match its content"));
        }
        Ok(Some(data.into()))
    }

    /// The rest of the body as a signed-magnitude Int.
    fn int_rest(&mut self, end: usize) -> Result<(bool, BigUint), IonError> {
        let bytes = self.take(end - self.pos, end)?;
        if bytes.is_empty() {
            return Ok((false, BigUint::zero()));
        }
        let negative = bytes[0] & 0x80 != 0;
        let mut mag = bytes.to_vec();
        mag[0] &= 0x7F;
        Ok((negative, BigUint::from_bytes_be(&mag)))
    }

    fn timestamp(&mut self, end: usize) -> Result<Timestamp, IonError> {
        let first = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| err("empty timestamp"))?;
        let offset = if first == 0xC0 {
            self.pos += 1;
            None
        } else {
            let (m, _) = self.var_int(end)?;
            Some(i16::try_from(m).map_err(|_| err("timestamp offset out of range"))?)
        };
        let mut ts = Timestamp::year_start(0, offset);
        let small = |v: u64, max: u64| -> Result<u8, IonError> {
            if v > max {
                Err(err("timestamp field out of range"))
            } else {
                Ok(v as u8)
            }
        };
        let year = self.var_uint(end)?;
        if !(1..=9999).contains(&year) {
            return Err(err("timestamp year out of range"));
        }
        ts.year = year as u16;
        if self.pos < end {
            ts.month = small(self.var_uint(end)?, 12)?;
            ts.precision = Precision::Month;
        }
        if self.pos < end {
            ts.day = small(self.var_uint(end)?, 31)?;
            ts.precision = Precision::Day;
        }
        if self.pos < end {
            ts.hour = small(self.var_uint(end)?, 23)?;
            ts.minute = small(self.var_uint(end)?, 59)?;
            ts.precision = Precision::Minute;
        }
        if self.pos < end {
            ts.second = small(self.var_uint(end)?, 59)?;
            ts.precision = Precision::Second;
        }
        if self.pos < end {
            let (exponent, _) = self.var_int(end)?;
            let (negative, coefficient) = self.int_rest(end)?;
            if negative && !coefficient.is_zero() {
                return Err(err("negative fractional seconds"));
            }
            if exponent >= 0 && !coefficient.is_zero() {
                return Err(err("fractional seconds of 1 or more"));
            }
            // 0 × 10^e with e ≥ 0 is no fraction at all (as ion-rs reads it); a zero with
            // a negative exponent keeps its precision (`.000`).
            if exponent < 0 {
                ts.fraction = Some((coefficient, exponent));
            }
        }
        if ts.month == 0 || ts.day == 0 {
            return Err(err("timestamp month and day start at 1"));
        }
        // A date without a time of day has no offset in the Ion data model (text cannot
        // write one): an offset stored with it is dropped, as ion-rs reads it.
        if ts.precision < Precision::Minute {
            ts.offset_minutes = None;
        }
        Ok(ts)
    }

    fn install_symbol_table(&mut self, v: Value) {
        let Data::Struct(fields) = v.data else {
            return;
        };
        let mut append = false;
        let mut imported = 0u64;
        let mut new_symbols: Vec<Option<String>> = Vec::new();
        for (name, value) in fields {
            match name.as_deref() {
                Some("imports") => match &value.data {
                    Data::Symbol(Some(s)) if s == "$ion_symbol_table" => append = true,
                    Data::List(imports) => {
                        // Shared tables are not available here: their symbols have unknown text.
                        for imp in imports {
                            imported =
                                imported.saturating_add(super::text::import_slots(imp) as u64);
                        }
                    }
                    _ => {}
                },
                Some("symbols") => {
                    if let Data::List(items) = value.data {
                        for item in items {
                            new_symbols.push(match item.data {
                                Data::String(s) => Some(s),
                                _ => None,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if !append {
            self.reset_symbols();
        }
        // Appended tables cannot grow the unknown slots past the cap either.
        let held = SYSTEM_SYMBOLS.len() + self.local.len();
        let room = super::text::MAX_IMPORTED_SYMBOLS.saturating_sub(held);
        let imported = usize::try_from(imported).unwrap_or(usize::MAX).min(room);
        self.local.extend(std::iter::repeat_n(None, imported));
        self.local.extend(new_symbols);
    }
}

/// A top-level `$ion_symbol_table::{…}`.
fn is_symbol_table(v: &Value) -> bool {
    matches!(v.data, Data::Struct(_))
        && v.annotations.first().and_then(|a| a.as_deref()) == Some("$ion_symbol_table")
}

// ---------------------------------------------------------------- field probe

/// For an Ion binary stream holding one top-level struct (a stored document) after its
/// local symbol table: whether the struct's first field named `name` may equal the string
/// `text` under PartiQL's `=`, read without decoding the document. `false` only when the
/// field is surely absent, a null, or an unannotated string of other text; whatever the
/// probe does not read plainly (imports, annotations, other types, a malformed stream)
/// answers `true`, leaving the answer to a full decode.
pub fn field_may_equal_string(bytes: &[u8], name: &str, text: &str) -> bool {
    probe(bytes, name, text).unwrap_or(true)
}

/// [`field_may_equal_string`]; `None`: cannot tell.
fn probe(bytes: &[u8], name: &str, text: &str) -> Option<bool> {
    let mut p = Probe { buf: bytes, pos: 0 };
    if !bytes.starts_with(&IVM) {
        return None;
    }
    p.pos = 4;
    let system = SYSTEM_SYMBOLS.iter().position(|s| *s == name);
    let mut target: Option<u64> = system.map(|i| i as u64 + 1);
    while p.pos < bytes.len() {
        let td = p.byte()?;
        let (code, low) = (td >> 4, td & 0x0F);
        match code {
            // A NOP pad.
            0x0 if low != 15 => {
                let len = p.length(low)?;
                p.skip(len)?;
            }
            // The local symbol table, `$ion_symbol_table::{symbols: [...]}`.
            0xE => {
                let len = p.length(low)?;
                let end = p.pos.checked_add(len)?;
                let annot_len = p.var_uint()? as usize;
                let annot_end = p.pos.checked_add(annot_len)?;
                if p.var_uint()? != 3 || p.pos != annot_end {
                    return None;
                }
                let td = p.byte()?;
                if td >> 4 != 0xD || td & 0x0F == 15 {
                    return None;
                }
                let len = p.length(td & 0x0F)?;
                let struct_end = p.pos.checked_add(len)?;
                if struct_end != end {
                    return None;
                }
                if system.is_none() {
                    target = None;
                }
                let mut symbols_seen = false;
                while p.pos < struct_end {
                    let field = p.var_uint()?;
                    let td = p.byte()?;
                    let len = p.value_len(td)?;
                    let value_end = p.pos.checked_add(len)?;
                    match (field, td >> 4) {
                        // symbols: a list of plain strings, SIDs from 10 on. Anything else
                        // in it (a pad, an annotation, a null, another type) or a second
                        // symbols field is left to the full reader.
                        (7, 0xB) if td & 0x0F != 15 && !symbols_seen => {
                            symbols_seen = true;
                            let mut sid = SYSTEM_SYMBOLS.len() as u64;
                            while p.pos < value_end {
                                let td = p.byte()?;
                                if td >> 4 != 0x8 || td & 0x0F == 15 {
                                    return None;
                                }
                                sid += 1;
                                let len = p.value_len(td)?;
                                let s = p.take(len)?;
                                if s == name.as_bytes() {
                                    if system.is_some() || target.is_some() {
                                        // The name twice: a field may use either SID.
                                        return None;
                                    }
                                    target = Some(sid);
                                }
                            }
                        }
                        // The other system fields (name, version, max_id) do not change the
                        // symbols; imports, a second symbols field or a field named by a
                        // local SID are not read here.
                        (4 | 5 | 8, _) => p.skip(len)?,
                        _ => return None,
                    }
                    if p.pos != value_end {
                        return None;
                    }
                }
            }
            // The document.
            0xD => {
                if low == 15 {
                    return Some(false);
                }
                let len = if low == 1 {
                    p.var_uint()? as usize
                } else {
                    p.length(low)?
                };
                let end = p.pos.checked_add(len)?;
                if end != bytes.len() {
                    return None;
                }
                let Some(target) = target else {
                    return Some(false);
                };
                while p.pos < end {
                    let field = p.var_uint()?;
                    let td = p.byte()?;
                    let (code, low) = (td >> 4, td & 0x0F);
                    if field == target && code != 0x0 {
                        return Some(match code {
                            0x8 if low == 15 => false,
                            0x8 => {
                                let len = p.length(low)?;
                                p.take(len)? == text.as_bytes()
                            }
                            // A null of any type is never equal; other types may be.
                            _ if low == 15 && code != 0xE => false,
                            _ => return None,
                        });
                    }
                    let len = p.value_len(td)?;
                    p.skip(len)?;
                }
                return Some(false);
            }
            _ => return None,
        }
    }
    None
}

/// A cursor over Ion binary for [`probe`]: every read checked, `None` past the end.
struct Probe<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Probe<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn var_uint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for _ in 0..10 {
            let b = self.byte()?;
            v = v.checked_mul(128)? | (b & 0x7F) as u64;
            if b & 0x80 != 0 {
                return Some(v);
            }
        }
        None
    }

    fn length(&mut self, low: u8) -> Option<usize> {
        if low == 14 {
            usize::try_from(self.var_uint()?).ok()
        } else {
            Some(low as usize)
        }
    }

    /// The length of the body after the type descriptor `td` (and its length field).
    fn value_len(&mut self, td: u8) -> Option<usize> {
        match (td >> 4, td & 0x0F) {
            (0x1, _) | (_, 15) => Some(0),
            (0xD, 1) => usize::try_from(self.var_uint()?).ok(),
            (_, low) => self.length(low),
        }
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
}
