//! PartiQL value semantics over Ion: MISSING, three-valued logic, equality and ordering
//! across numeric types, arithmetic.

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

use crate::ion::{Data, Decimal, Timestamp, Value};

/// A PartiQL value: MISSING or an Ion value.
#[derive(Clone, Debug, PartialEq)]
pub enum PV {
    Missing,
    V(Value),
}

impl PV {
    pub fn null() -> PV {
        PV::V(Value::null())
    }
    pub fn bool(b: bool) -> PV {
        PV::V(Data::Bool(b).into())
    }
    pub fn is_absent(&self) -> bool {
        match self {
            PV::Missing => true,
            PV::V(v) => matches!(v.data, Data::Null(_)),
        }
    }
    /// `Some(b)` for a boolean, `None` for anything else (NULL, MISSING, other types).
    pub fn truth(&self) -> Option<bool> {
        match self {
            PV::V(Value {
                data: Data::Bool(b),
                ..
            }) => Some(*b),
            _ => None,
        }
    }
}

/// A number as an exact rational `mantissa × 10^exponent`, or a float.
enum Num {
    Exact(BigInt, i64),
    Float(f64),
}

fn num(v: &Value) -> Option<Num> {
    match &v.data {
        Data::Int(i) => Some(Num::Exact(i.clone(), 0)),
        Data::Decimal(d) => Some(Num::Exact(d.coefficient(), d.exponent)),
        Data::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

fn pow10(n: u64) -> BigInt {
    num_traits::pow(BigInt::from(10), n as usize)
}

/// The largest exponent gap [`align`] bridges exactly.
const MAX_ALIGN: u64 = 10_000;

fn align(a: &BigInt, ea: i64, b: &BigInt, eb: i64) -> (BigInt, BigInt, i64) {
    let e = ea.min(eb);
    // Exponent gaps are bounded by the Ion values we accept; clamp to keep this finite.
    let gap = |x: i64| (x.abs_diff(e)).min(MAX_ALIGN);
    (a * pow10(gap(ea)), b * pow10(gap(eb)), e)
}

fn exact_to_f64(m: &BigInt, e: i64) -> f64 {
    let m = m.to_f64().unwrap_or(f64::NAN);
    m * 10f64.powi(e.clamp(-400, 400) as i32)
}

/// The number of decimal digits of `m`, from its bit length and at most two powers of
/// ten (formatting a 300,000-digit integer to count its digits took a second).
fn digits(m: &num_bigint::BigUint) -> u64 {
    if m.is_zero() {
        return 1;
    }
    // 2^(bits-1) <= m < 2^bits, so the count is this estimate or the next.
    let mut est = ((m.bits() - 1) as f64 * std::f64::consts::LOG10_2) as u64 + 1;
    let ten = |n: u64| num_traits::pow(num_bigint::BigUint::from(10u8), n as usize);
    while *m >= ten(est) {
        est += 1;
    }
    while est > 1 && *m < ten(est - 1) {
        est -= 1;
    }
    est
}

/// Orders `x·10^ex` and `y·10^ey` whose exponents are too far apart to align: by sign,
/// then by the position of the leading digit.
fn cmp_far(x: &BigInt, ex: i64, y: &BigInt, ey: i64) -> Ordering {
    let sign = |m: &BigInt| m.signum();
    match sign(x).cmp(&sign(y)) {
        Ordering::Equal if x.is_zero() => Ordering::Equal,
        Ordering::Equal => {
            let lead = |m: &BigInt, e: i64| digits(m.magnitude()) as i64 + e;
            let by_magnitude = lead(x, ex).cmp(&lead(y, ey));
            if x.is_negative() {
                by_magnitude.reverse()
            } else {
                by_magnitude
            }
        }
        other => other,
    }
}

/// An exact number and a float: infinities above and below every exact number, NaN
/// unordered, finite floats by their decimal value (exact, whatever the magnitudes).
fn exact_float_cmp(m: &BigInt, e: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    let d = Decimal::from_f64_shortest(f)?;
    num_cmp(
        &Num::Exact(m.clone(), e),
        &Num::Exact(d.coefficient(), d.exponent),
    )
}

fn num_cmp(a: &Num, b: &Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Exact(x, ex), Num::Exact(y, ey)) if ex.abs_diff(*ey) > MAX_ALIGN => {
            Some(cmp_far(x, *ex, y, *ey))
        }
        (Num::Exact(x, ex), Num::Exact(y, ey)) => {
            let (x, y, _) = align(x, *ex, y, *ey);
            Some(x.cmp(&y))
        }
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(y),
        (Num::Exact(x, e), Num::Float(y)) => exact_float_cmp(x, *e, *y),
        (Num::Float(x), Num::Exact(y, e)) => exact_float_cmp(y, *e, *x).map(Ordering::reverse),
    }
}

fn text(v: &Value) -> Option<&str> {
    match &v.data {
        Data::String(s) | Data::Symbol(Some(s)) => Some(s),
        _ => None,
    }
}

fn ts_cmp(a: &Timestamp, b: &Timestamp) -> Ordering {
    let ((ma, ea), (mb, eb)) = (a.epoch_seconds(), b.epoch_seconds());
    num_cmp(&Num::Exact(ma, ea), &Num::Exact(mb, eb)).unwrap_or(Ordering::Equal)
}

/// Whether `<`, `<=`, `>`, `>=` and BETWEEN may compare the two: both numbers, both text,
/// or both of one other ordered type. Other pairs are a type error (Kotlin's legacy mode,
/// which QLDB used, raises).
pub fn comparable(a: &Value, b: &Value) -> bool {
    (num(a).is_some() && num(b).is_some())
        || (text(a).is_some() && text(b).is_some())
        || matches!(
            (&a.data, &b.data),
            (Data::Bool(_), Data::Bool(_))
                | (Data::Timestamp(_), Data::Timestamp(_))
                | (Data::Blob(_) | Data::Clob(_), Data::Blob(_) | Data::Clob(_))
        )
}

/// Ordering for `< <= > >=` between comparable values; `None` if the types don't compare.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_cmp(&x, &y);
    }
    if let (Some(x), Some(y)) = (text(a), text(b)) {
        return Some(x.cmp(y));
    }
    match (&a.data, &b.data) {
        (Data::Bool(x), Data::Bool(y)) => Some(x.cmp(y)),
        (Data::Timestamp(x), Data::Timestamp(y)) => Some(ts_cmp(x, y)),
        (Data::Blob(x) | Data::Clob(x), Data::Blob(y) | Data::Clob(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// PartiQL `=` on two present, non-null values: numbers by value, text by content,
/// timestamps by instant, containers element-wise (structs as unordered field multisets).
pub fn equal(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return num_cmp(&x, &y) == Some(Ordering::Equal);
    }
    if let (Some(x), Some(y)) = (text(a), text(b)) {
        return x == y;
    }
    match (&a.data, &b.data) {
        (Data::Null(_), Data::Null(_)) => true,
        (Data::Bool(x), Data::Bool(y)) => x == y,
        (Data::Timestamp(x), Data::Timestamp(y)) => ts_cmp(x, y) == Ordering::Equal,
        (Data::Blob(x) | Data::Clob(x), Data::Blob(y) | Data::Clob(y)) => x == y,
        (Data::List(x), Data::List(y)) | (Data::SExp(x), Data::SExp(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Data::Struct(x), Data::Struct(y)) => {
            if x.len() != y.len() {
                return false;
            }
            let mut used = vec![false; y.len()];
            x.iter().all(|(k, v)| {
                match y
                    .iter()
                    .enumerate()
                    .position(|(i, (k2, v2))| !used[i] && k == k2 && equal(v, v2))
                {
                    Some(i) => {
                        used[i] = true;
                        true
                    }
                    None => false,
                }
            })
        }
        _ => false,
    }
}

/// PartiQL `=` with MISSING and NULL propagation.
pub fn eq(a: &PV, b: &PV) -> PV {
    match (a, b) {
        (PV::Missing, _) | (_, PV::Missing) => PV::Missing,
        (PV::V(x), PV::V(y))
            if matches!(x.data, Data::Null(_)) || matches!(y.data, Data::Null(_)) =>
        {
            PV::null()
        }
        (PV::V(x), PV::V(y)) => PV::bool(equal(x, y)),
    }
}

/// Errors of evaluation (type errors, division by zero).
pub type EvalResult<T> = Result<T, String>;

fn exact(m: BigInt, e: i64, as_int: bool) -> Value {
    if as_int && e == 0 {
        Value::int(m)
    } else {
        Data::Decimal(Decimal::new(m, e)).into()
    }
}

/// PartiQL's INT is 64 bits (Kotlin PartiQL, which QLDB ran, raises on overflow in both
/// typing modes); Ion integers in documents may be larger, but arithmetic on INTs may not.
pub fn check_int(v: Value) -> EvalResult<Value> {
    match &v.data {
        Data::Int(i) if i.to_i64().is_none() => Err(format!(
            "Integer overflow: {i} is outside the 64-bit INT range"
        )),
        _ => Ok(v),
    }
}

/// `+ - * / %` on numbers.
pub fn arith(op: char, a: &Value, b: &Value) -> EvalResult<Value> {
    check_int(arith_unchecked(op, a, b)?)
}

fn arith_unchecked(op: char, a: &Value, b: &Value) -> EvalResult<Value> {
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        return Err(format!(
            "Arithmetic '{op}' needs numbers, got {} and {}",
            a.ion_type().name(),
            b.ion_type().name()
        ));
    };
    let both_int = matches!(a.data, Data::Int(_)) && matches!(b.data, Data::Int(_));
    match (x, y) {
        (Num::Exact(p, ep), Num::Exact(q, eq_)) => {
            if op == '*' {
                let e = ep
                    .checked_add(eq_)
                    .ok_or_else(|| "Decimal out of range: the exponent overflows".to_string())?;
                return Ok(exact(p * q, e, both_int));
            }
            // Aligning decimals whose exponents differ by more than this would build huge
            // numbers (and align clamps beyond it): refuse rather than answer wrongly.
            if ep.abs_diff(eq_) > MAX_ALIGN {
                return Err(format!(
                    "Decimal out of range: '{op}' of numbers whose exponents differ by more than {MAX_ALIGN}"
                ));
            }
            let (p, q, e) = align(&p, ep, &q, eq_);
            match op {
                '+' => Ok(exact(p + q, e, both_int)),
                '-' => Ok(exact(p - q, e, both_int)),
                '/' | '%' if q.is_zero() => Err("Division by zero".into()),
                '/' if both_int => Ok(Value::int(&p / &q)),
                '%' => Ok(exact(&p % &q, e, both_int)),
                _ => {
                    // Decimal division to 34 decimal places, then, like Java's BigDecimal
                    // (Kotlin PartiQL), trailing zeros dropped down to the preferred
                    // exponent (the dividend's minus the divisor's): 15 / 5 is 3, 1.50 / 3 is 0.50.
                    let scale = 34u64;
                    let mut quotient = (&p * pow10(scale)) / &q;
                    let mut exponent = -(scale as i64);
                    let preferred = ep.saturating_sub(eq_);
                    let ten = BigInt::from(10);
                    while exponent < preferred
                        && !quotient.is_zero()
                        && (&quotient % &ten).is_zero()
                    {
                        quotient /= &ten;
                        exponent += 1;
                    }
                    if quotient.is_zero() {
                        exponent = preferred.max(-(scale as i64));
                    }
                    Ok(exact(quotient, exponent, false))
                }
            }
        }
        (x, y) => {
            let f = |n: Num| match n {
                Num::Float(f) => f,
                Num::Exact(m, e) => exact_to_f64(&m, e),
            };
            let (p, q) = (f(x), f(y));
            Ok(Data::Float(match op {
                '+' => p + q,
                '-' => p - q,
                '*' => p * q,
                '/' => p / q,
                _ => p % q,
            })
            .into())
        }
    }
}

pub fn negate(v: &Value) -> EvalResult<Value> {
    match &v.data {
        Data::Int(i) => check_int(Value::int(-i)),
        Data::Decimal(d) => {
            let mut d = d.clone();
            d.negative = !d.negative;
            Ok(Data::Decimal(d).into())
        }
        Data::Float(f) => Ok(Data::Float(-f).into()),
        _ => Err(format!(
            "Unary '-' needs a number, got {}",
            v.ion_type().name()
        )),
    }
}

/// Whether a number is an integer (used for list indexes).
pub fn as_index(v: &Value) -> Option<usize> {
    match &v.data {
        Data::Int(i) if !i.is_negative() => i.to_usize(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;

    #[test]
    fn digit_counts_match_the_decimal_text() {
        let mut cases: Vec<BigUint> = vec![0u8.into(), 1u8.into(), 9u8.into(), 10u8.into()];
        for k in [1u64, 2, 15, 16, 17, 63, 64, 300, 1000, 5000] {
            let p = num_traits::pow(BigUint::from(10u8), k as usize);
            cases.push(&p - 1u8);
            cases.push(p.clone());
            cases.push(&p + 1u8);
            cases.push(num_traits::pow(BigUint::from(2u8), k as usize));
        }
        for m in cases {
            assert_eq!(digits(&m), m.to_string().len() as u64, "{m}");
        }
    }

    /// A 290,001-digit integer against decimals 20,000 orders of magnitude away: ordered by
    /// the leading digit's position, without formatting the integer.
    #[test]
    fn far_apart_exponents_compare_by_magnitude() {
        let huge: BigInt = num_traits::pow(BigInt::from(10), 290_000) * 7 + 3;
        let dec = |c: i64, e: i64| Value::from(Data::Decimal(Decimal::new(BigInt::from(c), e)));
        let big = Value::int(huge.clone());
        assert_eq!(compare(&big, &dec(1, -20_000)), Some(Ordering::Greater));
        assert_eq!(compare(&big, &dec(1, 300_000)), Some(Ordering::Less));
        assert_eq!(
            compare(&Value::int(-huge), &dec(-1, -20_000)),
            Some(Ordering::Less)
        );
        assert!(!equal(&big, &dec(1, -20_000)));
    }
}
