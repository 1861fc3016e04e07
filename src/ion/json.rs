//! Down-conversion of Ion to JSON text, as QLDB's JSON journal exports do it: timestamps
//! become strings in their Ion text form, blobs base64 strings, clobs and symbols strings,
//! decimals JSON numbers with every digit kept, s-expressions arrays, NaN and infinities
//! null, typed nulls null; annotations are dropped. Lossy by design: hashes of a JSON
//! export cannot be recomputed.

use base64::Engine as _;

use super::{Data, Value};

/// The JSON text of one value, on one line.
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn write_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serializes"));
}

fn write(out: &mut String, v: &Value) {
    match &v.data {
        Data::Null(_) => out.push_str("null"),
        Data::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Data::Int(i) => out.push_str(&i.to_string()),
        Data::Float(f) if f.is_finite() => {
            // Rust prints a finite f64 as a valid JSON number, shortest round-trip form.
            let text = format!("{f:?}");
            out.push_str(&text);
        }
        Data::Float(_) => out.push_str("null"),
        Data::Decimal(d) => {
            // 130.750 stays 130.750; very small or large scales use an exponent.
            if d.negative {
                out.push('-');
            }
            let digits = d.magnitude.to_string();
            let scale = d.exponent.unsigned_abs() as usize;
            if d.exponent > 0 {
                out.push_str(&format!("{digits}e{}", d.exponent));
            } else if d.exponent == 0 {
                out.push_str(&digits);
            } else if digits.len() > scale {
                let (int, frac) = digits.split_at(digits.len() - scale);
                out.push_str(&format!("{int}.{frac}"));
            } else if scale - digits.len() < 20 {
                out.push_str(&format!("0.{}{digits}", "0".repeat(scale - digits.len())));
            } else {
                out.push_str(&format!("{digits}e{}", d.exponent));
            }
        }
        Data::Timestamp(_) => {
            let text = super::text::to_text_one(&Value::from(v.data.clone()));
            write_str(out, &text);
        }
        Data::Symbol(s) => match s {
            Some(s) => write_str(out, s),
            None => out.push_str("null"),
        },
        Data::String(s) => write_str(out, s),
        Data::Clob(b) => write_str(out, &String::from_utf8_lossy(b)),
        Data::Blob(b) => write_str(out, &base64::engine::general_purpose::STANDARD.encode(b)),
        Data::List(items) | Data::SExp(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Data::Struct(fields) => {
            out.push('{');
            for (i, (k, val)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k.as_deref().unwrap_or(""));
                out.push(':');
                write(out, val);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion::text::from_text_one;

    fn j(ion: &str) -> String {
        to_json(&from_text_one(ion).unwrap())
    }

    #[test]
    fn down_converts_every_type() {
        assert_eq!(
            j("a::{s:\"x\\\"y\",sym:abc,i:123456789012345678901234567890,d:130.750,e:1.5d3,nd:-0.5,f:2.5e0,nan:nan,n:null.int,b:true}"),
            r#"{"s":"x\"y","sym":"abc","i":123456789012345678901234567890,"d":130.750,"e":15e2,"nd":-0.5,"f":2.5,"nan":null,"n":null,"b":true}"#
        );
        assert_eq!(
            j("{t:2019-12-11T07:20:51.261Z,blob:{{aGk=}},clob:{{\"hi\"}},sx:(a b 1),l:[1,[2]]}"),
            r#"{"t":"2019-12-11T07:20:51.261Z","blob":"aGk=","clob":"hi","sx":["a","b",1],"l":[1,[2]]}"#
        );
        // Every output parses as JSON, and decimals keep their digits.
        let v: serde_json::Value =
            serde_json::from_str(&j("{d:130.750,z:-0.00,s:1d-30,p:7.}")).unwrap();
        assert_eq!(v["d"].as_f64(), Some(130.75));
        assert_eq!(v["z"].as_f64(), Some(0.0));
        assert!(v["s"].is_f64());
        assert!(j("{s:1d-30}").contains("1e-30"));
        assert_eq!(v["p"].as_f64(), Some(7.0));
    }
}
