//! Ion Hash (Amazon Ion Hash Specification 1.0) with SHA-256: the hash of a value's data
//! model, independent of its encoding and symbol tables. QLDB hashes documents, revision
//! metadata, transaction info and statements with it.

use sha2::{Digest, Sha256};

use super::binary::{decimal_body, float_body, timestamp_body, with_uint_body};
use super::{Data, Value};

const BEGIN: u8 = 0x0B;
const END: u8 = 0x0E;
const ESCAPE: u8 = 0x0C;

/// `IH(v)`: SHA-256 of the Ion Hash serialization of `v`.
pub fn ion_hash(v: &Value) -> [u8; 32] {
    let mut s = Vec::with_capacity(64);
    serialize(v, &mut s);
    Sha256::digest(&s).into()
}

/// The Ion Hash serialization `s(v)` (what `ion_hash` feeds to SHA-256).
pub fn serialize(v: &Value, out: &mut Vec<u8>) {
    if v.annotations.is_empty() {
        serialize_data(&v.data, out);
        return;
    }
    out.push(BEGIN);
    out.push(0xE0);
    for a in &v.annotations {
        symbol(a.as_deref(), out);
    }
    serialize_data(&v.data, out);
    out.push(END);
}

fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        if matches!(b, BEGIN | END | ESCAPE) {
            out.push(ESCAPE);
        }
        out.push(b);
    }
}

fn scalar(tq: u8, repr: &[u8], out: &mut Vec<u8>) {
    out.push(BEGIN);
    out.push(tq);
    escaped(repr, out);
    out.push(END);
}

fn symbol(text: Option<&str>, out: &mut Vec<u8>) {
    match text {
        Some(t) => scalar(0x70, t.as_bytes(), out),
        None => scalar(0x71, &[], out),
    }
}

fn serialize_data(d: &Data, out: &mut Vec<u8>) {
    match d {
        Data::Null(t) => scalar(t.binary_code() << 4 | 0x0F, &[], out),
        Data::Bool(b) => scalar(0x10 | *b as u8, &[], out),
        Data::Int(i) => {
            let tq = if i.sign() == num_bigint::Sign::Minus {
                0x30
            } else {
                0x20
            };
            with_uint_body(i.magnitude(), |b| scalar(tq, b, out))
        }
        Data::Float(f) => scalar(0x40, &float_body(*f), out),
        Data::Decimal(dec) => scalar(0x50, &decimal_body(dec), out),
        Data::Timestamp(t) => scalar(0x60, &timestamp_body(t), out),
        Data::Symbol(s) => symbol(s.as_deref(), out),
        Data::String(s) => scalar(0x80, s.as_bytes(), out),
        Data::Clob(b) => scalar(0x90, b, out),
        Data::Blob(b) => scalar(0xA0, b, out),
        Data::List(items) | Data::SExp(items) => {
            out.push(BEGIN);
            out.push(if matches!(d, Data::List(_)) {
                0xB0
            } else {
                0xC0
            });
            for i in items {
                serialize(i, out);
            }
            out.push(END);
        }
        Data::Struct(fields) => {
            // One buffer serves every field's serialization in turn.
            let mut s = Vec::with_capacity(64);
            let mut hashes: Vec<[u8; 32]> = fields
                .iter()
                .map(|(name, value)| {
                    s.clear();
                    symbol(name.as_deref(), &mut s);
                    serialize(value, &mut s);
                    Sha256::digest(&s).into()
                })
                .collect();
            hashes.sort_unstable();
            out.push(BEGIN);
            out.push(0xD0);
            for h in &hashes {
                escaped(h, out);
            }
            out.push(END);
        }
    }
}
