//! QLDB's built-in functions (partiql-dialect.md §2), each in one place: its name and arity
//! ([`Func`], which the parser checks calls against) and its evaluation ([`call`]). CAST
//! ([`cast`]) and the aggregates' accumulation (in the executor) are the exceptions: CAST
//! is its own expression, and COUNT, SUM, AVG, MIN and MAX fold rows, not arguments.
//! Semantics follow Kotlin PartiQL's behaviour, which QLDB ran: any NULL or MISSING
//! argument gives NULL unless noted.

use num_bigint::{BigInt, BigUint};
use num_traits::{ToPrimitive, Zero};

use super::exec::{ExecError, TxnView};
use super::ops::{self, PV};
use crate::ion::{text, Data, Decimal, Precision, Timestamp, Value};

pub type F<T> = Result<T, String>;

/// A built-in function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Avg,
    CharLength,
    CharacterLength,
    Coalesce,
    Count,
    DateAdd,
    DateDiff,
    Exists,
    Extract,
    History,
    Lower,
    Max,
    Min,
    Nullif,
    Size,
    Substring,
    Sum,
    ToString,
    ToTimestamp,
    Trim,
    Txid,
    Upper,
    Utcnow,
}

/// Each function's name and its fewest and most arguments. EXTRACT, TRIM and SUBSTRING
/// have their own syntax, which fixes their arguments.
const FUNCS: &[(Func, &str, usize, usize)] = &[
    (Func::Avg, "avg", 1, 1),
    (Func::CharLength, "char_length", 1, 1),
    (Func::CharacterLength, "character_length", 1, 1),
    (Func::Coalesce, "coalesce", 1, usize::MAX),
    (Func::Count, "count", 1, 1),
    (Func::DateAdd, "date_add", 3, 3),
    (Func::DateDiff, "date_diff", 3, 3),
    (Func::Exists, "exists", 1, 1),
    (Func::Extract, "extract", 2, 2),
    (Func::History, "history", 1, 3),
    (Func::Lower, "lower", 1, 1),
    (Func::Max, "max", 1, 1),
    (Func::Min, "min", 1, 1),
    (Func::Nullif, "nullif", 2, 2),
    (Func::Size, "size", 1, 1),
    (Func::Substring, "substring", 2, 3),
    (Func::Sum, "sum", 1, 1),
    (Func::ToString, "to_string", 2, 2),
    (Func::ToTimestamp, "to_timestamp", 1, 2),
    (Func::Trim, "trim", 2, 3),
    (Func::Txid, "txid", 0, 0),
    (Func::Upper, "upper", 1, 1),
    (Func::Utcnow, "utcnow", 0, 0),
];

impl Func {
    /// The function of a lower-case name.
    pub fn named(lower: &str) -> Option<Func> {
        FUNCS
            .iter()
            .find(|(_, n, ..)| *n == lower)
            .map(|(f, ..)| *f)
    }

    fn entry(self) -> &'static (Func, &'static str, usize, usize) {
        FUNCS
            .iter()
            .find(|(f, ..)| *f == self)
            .expect("every function has an entry")
    }

    /// Its name, lower case.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// Its fewest and most arguments.
    pub fn arity(self) -> (usize, usize) {
        let &(_, _, min, max) = self.entry();
        (min, max)
    }

    /// COUNT, SUM, AVG, MIN and MAX: allowed only in a select list, over the rows.
    pub fn is_aggregate(self) -> bool {
        matches!(
            self,
            Func::Count | Func::Sum | Func::Avg | Func::Min | Func::Max
        )
    }

    /// DATE_ADD and DATE_DIFF take a date part (`year`, `month`, …) first.
    pub fn takes_date_part(self) -> bool {
        matches!(self, Func::DateAdd | Func::DateDiff)
    }
}

impl std::fmt::Display for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The text of a string or symbol.
fn text_of(v: &Value) -> Option<&str> {
    match &v.data {
        Data::String(s) | Data::Symbol(Some(s)) => Some(s),
        _ => None,
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match &v.data {
        Data::Int(i) => i.to_i64(),
        _ => None,
    }
}

/// Evaluates a call of `f` on its evaluated arguments, in the transaction `txn` (UTCNOW,
/// TXID). Aggregates and HISTORY are not values here: they are refused.
pub fn call(f: Func, args: &[PV], txn: &dyn TxnView) -> Result<PV, ExecError> {
    let runtime = ExecError::Runtime;
    let upper = || f.name().to_uppercase();
    match (f, args) {
        (Func::Utcnow, []) => {
            return Ok(PV::V(
                Data::Timestamp(Timestamp::from_millis_utc(txn.now_ms())).into(),
            ))
        }
        (Func::Txid, []) => return Ok(PV::V(Value::string(txn.transaction_id()))),
        (Func::Lower | Func::Upper | Func::CharLength | Func::CharacterLength, [v]) => {
            return match v {
                PV::V(s) if text_of(s).is_some() => {
                    let s = text_of(s).unwrap_or_default();
                    Ok(PV::V(match f {
                        Func::Lower => Value::string(s.to_lowercase()),
                        Func::Upper => Value::string(s.to_uppercase()),
                        _ => Value::int(s.chars().count() as i64),
                    }))
                }
                v if v.is_absent() => Ok(PV::null()),
                _ => Err(runtime(format!("{} needs a string", upper()))),
            }
        }
        (Func::Size, [v]) => {
            return match v {
                PV::Missing => Ok(PV::Missing),
                PV::V(Value {
                    data: Data::List(i) | Data::SExp(i),
                    ..
                }) => Ok(PV::V(Value::int(i.len() as i64))),
                PV::V(Value {
                    data: Data::Struct(f),
                    ..
                }) => Ok(PV::V(Value::int(f.len() as i64))),
                v if v.is_absent() => Ok(PV::null()),
                _ => Err(runtime("SIZE needs a collection".into())),
            }
        }
        (Func::Exists, [v]) => {
            return match v {
                PV::V(Value {
                    data: Data::List(i) | Data::SExp(i),
                    ..
                }) => Ok(PV::bool(!i.is_empty())),
                PV::V(Value {
                    data: Data::Struct(f),
                    ..
                }) => Ok(PV::bool(!f.is_empty())),
                _ => Err(runtime(
                    "EXISTS needs a collection (a list, bag, s-expression or struct)".into(),
                )),
            }
        }
        (Func::Coalesce, vals) if !vals.is_empty() => {
            return Ok(vals
                .iter()
                .find(|v| !v.is_absent())
                .cloned()
                .unwrap_or(PV::null()))
        }
        (Func::Nullif, [a, b]) => {
            return Ok(if ops::eq(a, b).truth() == Some(true) {
                PV::null()
            } else {
                a.clone()
            })
        }
        (f, _) if f.is_aggregate() => {
            return Err(ExecError::Semantic(
                "Aggregate functions are allowed only in the select list".into(),
            ))
        }
        (Func::History, _) => {
            return Err(ExecError::Semantic(
                "history() can only be a FROM source: FROM history(Table [, start [, end]])".into(),
            ))
        }
        _ => {}
    }
    // The date and string functions: NULL or MISSING in, NULL out.
    if args.iter().any(PV::is_absent) {
        return Ok(PV::null());
    }
    let vals: Vec<&Value> = args
        .iter()
        .filter_map(|a| match a {
            PV::V(v) => Some(v),
            PV::Missing => None,
        })
        .collect();
    match (f, vals.as_slice()) {
        (Func::DateAdd, [part, n, t]) => date_add(part, n, t),
        (Func::DateDiff, [part, a, b]) => date_diff(part, a, b),
        (Func::Extract, [part, t]) => extract(part, t),
        (Func::ToString, [t, fmt]) => to_string(t, fmt),
        (Func::ToTimestamp, [s]) => to_timestamp(s, None),
        (Func::ToTimestamp, [s, fmt]) => to_timestamp(s, Some(fmt)),
        (Func::Substring, [s, start]) => substring(s, start, None),
        (Func::Substring, [s, start, len]) => substring(s, start, Some(len)),
        (Func::Trim, [spec, s]) => trim(spec, s, None),
        (Func::Trim, [spec, s, chars]) => trim(spec, s, Some(chars)),
        // Those with a syntax of their own, which the parser does not count.
        (
            Func::DateAdd
            | Func::DateDiff
            | Func::Extract
            | Func::ToString
            | Func::ToTimestamp
            | Func::Substring
            | Func::Trim,
            _,
        ) => Err(format!(
            "{}() was called with the wrong number of arguments",
            upper()
        )),
        _ => {
            return Err(ExecError::Semantic(format!(
                "{}() was called with the wrong number or kind of arguments",
                upper()
            )))
        }
    }
    .map(PV::V)
    .map_err(runtime)
}

// ---------------------------------------------------------------- strings

fn substring(s: &Value, start: &Value, len: Option<&Value>) -> F<Value> {
    let s = text_of(s).ok_or("SUBSTRING needs a string")?;
    let start = int_of(start).ok_or("SUBSTRING needs an integer start position")?;
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let end = match len {
        None => n + 1,
        Some(l) => {
            let l = int_of(l).ok_or("SUBSTRING needs an integer length")?;
            if l < 0 {
                return Err(format!("SUBSTRING length must not be negative, got {l}"));
            }
            start.saturating_add(l)
        }
    };
    let (from, to) = (start.max(1), end.min(n + 1));
    let out: String = if from < to {
        chars[(from - 1) as usize..(to - 1) as usize]
            .iter()
            .collect()
    } else {
        String::new()
    };
    Ok(Value::string(out))
}

fn trim(spec: &Value, s: &Value, chars: Option<&Value>) -> F<Value> {
    let spec = text_of(spec).unwrap_or("both");
    let s = text_of(s).ok_or("TRIM needs a string")?;
    let set: Vec<char> = match chars {
        Some(c) => text_of(c)
            .ok_or("TRIM needs a string of characters to remove")?
            .chars()
            .collect(),
        None => vec![' '],
    };
    let strip = |c: char| set.contains(&c);
    let out = match spec {
        "leading" => s.trim_start_matches(strip),
        "trailing" => s.trim_end_matches(strip),
        _ => s.trim_matches(strip),
    };
    Ok(Value::string(out))
}

// ---------------------------------------------------------------- timestamps

/// A timestamp's fields as written (local time at its offset).
#[derive(Clone, Debug)]
struct Local {
    date: time::Date,
    hour: u8,
    minute: u8,
    second: u8,
    fraction: Option<(BigUint, i64)>,
    /// Minutes east of UTC; `None` = unknown (`-00:00`) or a date-only timestamp.
    offset: Option<i16>,
    precision: Precision,
}

fn timestamp_of(v: &Value, what: &str) -> F<Timestamp> {
    match &v.data {
        Data::Timestamp(t) => Ok(t.clone()),
        _ => Err(format!("{what} needs a timestamp")),
    }
}

fn local(t: &Timestamp) -> F<Local> {
    let l = t
        .shifted(t.offset_minutes.unwrap_or(0) as i64)
        .ok_or("timestamp out of range")?;
    let month = time::Month::try_from(l.month).map_err(|e| e.to_string())?;
    let date =
        time::Date::from_calendar_date(l.year as i32, month, l.day).map_err(|e| e.to_string())?;
    Ok(Local {
        date,
        hour: l.hour,
        minute: l.minute,
        second: l.second,
        fraction: l.fraction,
        offset: if t.precision >= Precision::Minute {
            t.offset_minutes
        } else {
            None
        },
        precision: t.precision,
    })
}

fn from_local(l: &Local) -> F<Timestamp> {
    if !(1..=9999).contains(&l.date.year()) {
        return Err("the result is outside years 1 to 9999".into());
    }
    let t = Timestamp {
        year: l.date.year() as u16,
        month: u8::from(l.date.month()),
        day: l.date.day(),
        hour: l.hour,
        minute: l.minute,
        second: l.second,
        fraction: l.fraction.clone(),
        offset_minutes: l.offset,
        precision: l.precision,
    };
    t.shifted(-(l.offset.unwrap_or(0) as i64))
        .ok_or_else(|| "the result is outside years 1 to 9999".into())
}

fn fraction_nanos(f: &Option<(BigUint, i64)>) -> u32 {
    match f {
        Some((c, e)) if *e < 0 && *e >= -9 => (c * BigUint::from(10u32).pow((9 + e) as u32))
            .to_u32()
            .unwrap_or(0),
        Some((c, e)) if *e < -9 => (c / BigUint::from(10u32).pow((-e - 9) as u32))
            .to_u32()
            .unwrap_or(0),
        _ => 0,
    }
}

/// The UTC instant of a timestamp (missing fields at their start).
fn instant(t: &Timestamp) -> F<time::OffsetDateTime> {
    let month = time::Month::try_from(t.month).map_err(|e| e.to_string())?;
    let date =
        time::Date::from_calendar_date(t.year as i32, month, t.day).map_err(|e| e.to_string())?;
    let clock = time::Time::from_hms_nano(t.hour, t.minute, t.second, fraction_nanos(&t.fraction))
        .map_err(|e| e.to_string())?;
    Ok(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

fn part_of(v: &Value) -> F<&str> {
    text_of(v).ok_or_else(|| "expected a date part".into())
}

fn add_months(date: time::Date, months: i64) -> F<time::Date> {
    let total = date.year() as i64 * 12 + (u8::from(date.month()) as i64 - 1) + months;
    let year = total.div_euclid(12);
    let month = (total.rem_euclid(12) + 1) as u8;
    let year = i32::try_from(year).map_err(|_| "the result is outside years 1 to 9999")?;
    let month = time::Month::try_from(month).map_err(|e| e.to_string())?;
    let last = month.length(year);
    time::Date::from_calendar_date(year, month, date.day().min(last))
        .map_err(|_| "the result is outside years 1 to 9999".into())
}

fn date_add(part: &Value, n: &Value, t: &Value) -> F<Value> {
    let part = part_of(part)?;
    let n = int_of(n).ok_or("DATE_ADD needs an integer quantity")?;
    let t = timestamp_of(t, "DATE_ADD")?;
    let mut l = local(&t)?;
    let raise = |l: &mut Local, p: Precision| {
        if l.precision < p {
            if p >= Precision::Minute && l.precision < Precision::Minute {
                // A date gains a time of day: QLDB shows it in UTC.
                l.offset = Some(0);
            }
            l.precision = p;
        }
    };
    let overflow = || "the result is outside years 1 to 9999".to_string();
    match part {
        "year" => {
            l.date = add_months(l.date, n.checked_mul(12).ok_or_else(overflow)?)?;
        }
        "month" => {
            raise(&mut l, Precision::Month);
            l.date = add_months(l.date, n)?;
        }
        "day" => {
            raise(&mut l, Precision::Day);
            l.date = l
                .date
                .checked_add(time::Duration::days(n))
                .ok_or_else(overflow)?;
        }
        "hour" | "minute" | "second" => {
            let p = if part == "second" {
                Precision::Second
            } else {
                Precision::Minute
            };
            raise(&mut l, p);
            let secs = match part {
                "hour" => n.checked_mul(3600),
                "minute" => n.checked_mul(60),
                _ => Some(n),
            }
            .ok_or_else(overflow)?;
            let clock =
                time::Time::from_hms(l.hour, l.minute, l.second).map_err(|e| e.to_string())?;
            let moved = time::PrimitiveDateTime::new(l.date, clock)
                .checked_add(time::Duration::seconds(secs))
                .ok_or_else(overflow)?;
            l.date = moved.date();
            l.hour = moved.hour();
            l.minute = moved.minute();
            l.second = moved.second();
        }
        other => return Err(format!("DATE_ADD cannot add the date part '{other}'")),
    }
    Ok(Data::Timestamp(from_local(&l)?).into())
}

fn date_diff(part: &Value, a: &Value, b: &Value) -> F<Value> {
    let part = part_of(part)?;
    let (a, b) = (
        instant(&timestamp_of(a, "DATE_DIFF")?)?,
        instant(&timestamp_of(b, "DATE_DIFF")?)?,
    );
    let d = b - a;
    let n: i64 = match part {
        "year" | "month" => {
            let months =
                |t: &time::OffsetDateTime| t.year() as i64 * 12 + u8::from(t.month()) as i64;
            let rest = |t: &time::OffsetDateTime| {
                (t.day(), t.hour(), t.minute(), t.second(), t.nanosecond())
            };
            let mut m = months(&b) - months(&a);
            if m > 0 && rest(&b) < rest(&a) {
                m -= 1;
            } else if m < 0 && rest(&b) > rest(&a) {
                m += 1;
            }
            if part == "year" {
                m / 12
            } else {
                m
            }
        }
        "day" => d.whole_days(),
        "hour" => d.whole_hours(),
        "minute" => d.whole_minutes(),
        "second" => d.whole_seconds(),
        other => return Err(format!("DATE_DIFF cannot measure the date part '{other}'")),
    };
    Ok(Value::int(n))
}

fn extract(part: &Value, t: &Value) -> F<Value> {
    let part = part_of(part)?;
    let l = local(&timestamp_of(t, "EXTRACT")?)?;
    let offset = l.offset.unwrap_or(0) as i64;
    let n: i64 = match part {
        "year" => l.date.year() as i64,
        "month" => u8::from(l.date.month()) as i64,
        "day" => l.date.day() as i64,
        "hour" => l.hour as i64,
        "minute" => l.minute as i64,
        "second" => l.second as i64,
        "timezone_hour" => offset / 60,
        "timezone_minute" => offset % 60,
        other => return Err(format!("EXTRACT cannot take the date part '{other}'")),
    };
    Ok(Value::int(n))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Splits a TO_STRING / TO_TIMESTAMP pattern into runs of one letter and literal text.
fn pattern_tokens(fmt: &str) -> F<Vec<(char, usize)>> {
    // (letter, count); a literal character is ('\0' + char) encoded as (c, 0).
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'literal', with '' as a quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push(('\'', 0));
                i += 2;
                continue;
            }
            let mut j = i + 1;
            while j < chars.len() {
                if chars[j] == '\'' {
                    if chars.get(j + 1) == Some(&'\'') {
                        out.push(('\'', 0));
                        j += 2;
                        continue;
                    }
                    break;
                }
                out.push((chars[j], 0));
                j += 1;
            }
            if j >= chars.len() {
                return Err(format!("unterminated quote in the pattern '{fmt}'"));
            }
            i = j + 1;
        } else if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < chars.len() && chars[j] == c {
                j += 1;
            }
            if !"yMdahHmsSnXx".contains(c) {
                return Err(format!("invalid pattern letter '{c}' in '{fmt}'"));
            }
            out.push((c, j - i));
            i = j;
        } else {
            out.push((c, 0));
            i += 1;
        }
    }
    Ok(out)
}

fn offset_text(offset: i64, letter: char, count: usize) -> String {
    if offset == 0 && letter == 'X' {
        return "Z".into();
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let (h, m) = (offset.abs() / 60, offset.abs() % 60);
    match count {
        1 if m == 0 => format!("{sign}{h:02}"),
        1 | 2 => format!("{sign}{h:02}{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}"),
    }
}

fn to_string(t: &Value, fmt: &Value) -> F<Value> {
    let t = timestamp_of(t, "TO_STRING")?;
    let fmt = text_of(fmt).ok_or("TO_STRING needs a string pattern")?;
    let l = local(&t)?;
    let nanos = fraction_nanos(&l.fraction);
    let offset = l.offset.unwrap_or(0) as i64;
    let mut out = String::new();
    for (c, n) in pattern_tokens(fmt)? {
        if n == 0 {
            out.push(c);
            continue;
        }
        let year = l.date.year();
        let month = u8::from(l.date.month());
        let hour12 = match l.hour % 12 {
            0 => 12,
            h => h,
        };
        let s = match (c, n) {
            ('y', 2) => format!("{:02}", year.rem_euclid(100)),
            ('y', n) => format!("{year:0n$}"),
            ('M', 1) => month.to_string(),
            ('M', 2) => format!("{month:02}"),
            ('M', 3) => MONTHS[month as usize - 1][..3].to_string(),
            ('M', 4) => MONTHS[month as usize - 1].to_string(),
            ('M', 5) => MONTHS[month as usize - 1][..1].to_string(),
            ('d', 1) => l.date.day().to_string(),
            ('d', 2) => format!("{:02}", l.date.day()),
            ('a', 1) => if l.hour < 12 { "AM" } else { "PM" }.to_string(),
            ('h', 1) => hour12.to_string(),
            ('h', 2) => format!("{hour12:02}"),
            ('H', 1) => l.hour.to_string(),
            ('H', 2) => format!("{:02}", l.hour),
            ('m', 1) => l.minute.to_string(),
            ('m', 2) => format!("{:02}", l.minute),
            ('s', 1) => l.second.to_string(),
            ('s', 2) => format!("{:02}", l.second),
            ('S', n) if n <= 9 => format!("{nanos:09}")[..n].to_string(),
            ('n', _) => nanos.to_string(),
            ('X' | 'x', n) if n <= 3 => offset_text(offset, c, n),
            _ => {
                return Err(format!(
                    "invalid pattern '{}' in '{fmt}'",
                    c.to_string().repeat(n)
                ))
            }
        };
        out.push_str(&s);
    }
    Ok(Value::string(out))
}

fn to_timestamp(s: &Value, fmt: Option<&Value>) -> F<Value> {
    let s = text_of(s).ok_or("TO_TIMESTAMP needs a string")?;
    let Some(fmt) = fmt else {
        return match text::from_text_one(s) {
            Ok(
                v @ Value {
                    data: Data::Timestamp(_),
                    ..
                },
            ) if v.annotations.is_empty() => Ok(v),
            _ => Err(format!("'{s}' is not an Ion timestamp")),
        };
    };
    let fmt = text_of(fmt).ok_or("TO_TIMESTAMP needs a string pattern")?;
    let bad = || format!("'{s}' does not match the pattern '{fmt}'");
    let input: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let (mut year, mut month, mut day) = (None, None, None);
    let (mut hour, mut minute, mut second, mut nanos, mut frac_digits) =
        (None, None, None, 0u32, 0);
    let (mut pm, mut offset) = (None, None);
    let digits = |pos: &mut usize, max: usize| -> Option<(i64, usize)> {
        let start = *pos;
        let neg = input.get(*pos) == Some(&'-');
        if neg {
            *pos += 1;
        }
        let begin = *pos;
        while *pos < input.len() && *pos - begin < max && input[*pos].is_ascii_digit() {
            *pos += 1;
        }
        if *pos == begin {
            *pos = start;
            return None;
        }
        let v: i64 = input[begin..*pos].iter().collect::<String>().parse().ok()?;
        Some((if neg { -v } else { v }, *pos - begin))
    };
    for (c, n) in pattern_tokens(fmt)? {
        if n == 0 {
            if input.get(pos) != Some(&c) {
                return Err(bad());
            }
            pos += 1;
            continue;
        }
        match c {
            'y' => {
                let (v, len) = digits(&mut pos, if n == 2 { 2 } else { 9 }).ok_or_else(bad)?;
                year = Some(if n == 2 && len == 2 {
                    if v >= 70 {
                        1900 + v
                    } else {
                        2000 + v
                    }
                } else {
                    v
                });
            }
            'M' if n >= 3 => {
                let rest: String = input[pos..].iter().collect::<String>().to_lowercase();
                let found = MONTHS.iter().enumerate().find_map(|(i, m)| {
                    let name = if n == 3 { &m[..3] } else { m };
                    rest.starts_with(&name.to_lowercase())
                        .then_some((i as i64 + 1, name.chars().count()))
                });
                let (m, len) = found.ok_or_else(bad)?;
                month = Some(m);
                pos += len;
            }
            'M' => month = Some(digits(&mut pos, 2).ok_or_else(bad)?.0),
            'd' => day = Some(digits(&mut pos, 2).ok_or_else(bad)?.0),
            'h' | 'H' => hour = Some(digits(&mut pos, 2).ok_or_else(bad)?.0),
            'm' => minute = Some(digits(&mut pos, 2).ok_or_else(bad)?.0),
            's' => second = Some(digits(&mut pos, 2).ok_or_else(bad)?.0),
            'S' => {
                let (v, len) = digits(&mut pos, n.min(9)).ok_or_else(bad)?;
                nanos = (v as u32) * 10u32.pow((9 - len) as u32);
                frac_digits = len;
            }
            'a' => {
                let rest: String = input[pos..]
                    .iter()
                    .take(2)
                    .collect::<String>()
                    .to_uppercase();
                pm = Some(match rest.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return Err(bad()),
                });
                pos += 2;
            }
            'X' | 'x' => {
                if c == 'X' && input.get(pos) == Some(&'Z') {
                    offset = Some(0);
                    pos += 1;
                } else {
                    let sign = match input.get(pos) {
                        Some('+') => 1,
                        Some('-') => -1,
                        _ => return Err(bad()),
                    };
                    pos += 1;
                    let (h, _) = digits(&mut pos, 2).ok_or_else(bad)?;
                    if input.get(pos) == Some(&':') {
                        pos += 1;
                    }
                    let m = digits(&mut pos, 2).map_or(0, |d| d.0);
                    offset = Some(sign * (h * 60 + m));
                }
            }
            _ => return Err(format!("the pattern letter '{c}' cannot be parsed")),
        }
    }
    if pos != input.len() {
        return Err(bad());
    }
    if let (Some(h), Some(is_pm)) = (hour, pm) {
        hour = Some(h % 12 + if is_pm { 12 } else { 0 });
    }
    let year = year.ok_or("TO_TIMESTAMP's pattern must contain a year")?;
    let precision = if second.is_some() {
        Precision::Second
    } else if hour.is_some() || minute.is_some() {
        Precision::Minute
    } else if day.is_some() {
        Precision::Day
    } else if month.is_some() {
        Precision::Month
    } else {
        Precision::Year
    };
    let month = time::Month::try_from(month.unwrap_or(1) as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(year).map_err(|_| bad())?,
        month,
        day.unwrap_or(1) as u8,
    )
    .map_err(|_| bad())?;
    let field = |v: Option<i64>, max: i64| match v.unwrap_or(0) {
        x if (0..=max).contains(&x) => Ok(x as u8),
        _ => Err(bad()),
    };
    let l = Local {
        date,
        hour: field(hour, 23)?,
        minute: field(minute, 59)?,
        second: field(second, 59)?,
        fraction: (frac_digits > 0).then(|| {
            (
                BigUint::from(nanos / 10u32.pow((9 - frac_digits) as u32)),
                -(frac_digits as i64),
            )
        }),
        // A pattern without an offset gives UTC, as Kotlin PartiQL does.
        offset: (precision >= Precision::Minute).then(|| offset.unwrap_or(0) as i16),
        precision,
    };
    Ok(Data::Timestamp(from_local(&l)?).into())
}

// ---------------------------------------------------------------- CAST

fn decimal_text(d: &Decimal) -> String {
    text::to_text_one(&Value::from(Data::Decimal(d.clone())))
}

/// The decimal of an Ion text number (`1.5`, `-2`, `1e3`).
fn parse_decimal(s: &str) -> Option<Decimal> {
    let t = s.trim();
    let (mantissa, exp) = match t.find(['e', 'E', 'd', 'D']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let negative = int.starts_with('-');
    let int = int.trim_start_matches(['+', '-']);
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: BigUint = format!("{int}{frac}").parse().ok()?;
    Some(Decimal {
        negative,
        magnitude: digits,
        exponent: exp - frac.len() as i64,
    })
}

fn decimal_to_f64(d: &Decimal) -> f64 {
    decimal_text(d)
        .replace('d', "e")
        .parse()
        .unwrap_or(f64::NAN)
}

/// Truncates a decimal toward zero.
fn decimal_to_int(d: &Decimal) -> BigInt {
    let c = d.coefficient();
    if d.exponent >= 0 {
        c * BigInt::from(10).pow(d.exponent as u32)
    } else {
        c / BigInt::from(10).pow((-d.exponent) as u32)
    }
}

/// Gives a decimal exactly `scale` digits after the point, rounding half away from zero.
fn rescale(d: &Decimal, scale: i64) -> Decimal {
    if -d.exponent <= scale {
        let pad = (scale + d.exponent) as u32;
        return Decimal {
            negative: d.negative,
            magnitude: &d.magnitude * BigUint::from(10u32).pow(pad),
            exponent: -scale,
        };
    }
    let drop = (-d.exponent - scale) as u32;
    let p = BigUint::from(10u32).pow(drop);
    let mut m = &d.magnitude / &p;
    if (&d.magnitude % &p) * 2u32 >= p {
        m += 1u32;
    }
    Decimal {
        negative: d.negative,
        magnitude: m,
        exponent: -scale,
    }
}

fn cast_error(v: &Value, to: &str) -> String {
    format!(
        "Cannot cast {} of type {} to {to}",
        shown(v),
        v.ion_type().name()
    )
}

fn shown(v: &Value) -> String {
    let t = text::to_text_one(v);
    if t.chars().count() > 64 {
        format!("{}…", t.chars().take(64).collect::<String>())
    } else {
        t
    }
}

/// CAST(v AS to), with `to` upper-case as the parser keeps it (`DECIMAL(5,2)`).
pub fn cast(v: PV, to: &str) -> F<PV> {
    let (base, args) = match to.split_once('(') {
        Some((b, rest)) => (
            b.trim(),
            rest.trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse::<i64>().ok())
                .collect::<Vec<_>>(),
        ),
        None => (to.trim(), vec![]),
    };
    let target = match base {
        "NULL" => "null",
        "MISSING" => "missing",
        "INT" | "INTEGER" | "INT4" | "INT8" | "BIGINT" | "SMALLINT" | "INTEGER4" | "INTEGER8" => {
            "int"
        }
        "BOOL" | "BOOLEAN" => "bool",
        "FLOAT" | "REAL" | "DOUBLE PRECISION" => "float",
        "DECIMAL" | "NUMERIC" | "DEC" => "decimal",
        "TIMESTAMP" => "timestamp",
        "SYMBOL" => "symbol",
        "STRING" | "VARCHAR" | "CHAR" | "CHARACTER" | "CHARACTER VARYING" => "string",
        "LIST" => "list",
        "SEXP" => "sexp",
        "BAG" => "bag",
        "STRUCT" | "TUPLE" => "struct",
        "BLOB" => "blob",
        "CLOB" => "clob",
        other => return Err(format!("Unsupported CAST target type {other}")),
    };
    let v = match v {
        PV::Missing if target == "missing" => return Ok(PV::Missing),
        PV::Missing => return Ok(PV::null()),
        PV::V(v) if matches!(v.data, Data::Null(_)) => {
            return Ok(if target == "missing" {
                PV::Missing
            } else {
                PV::null()
            })
        }
        PV::V(v) => v,
    };
    let fail = || Err(cast_error(&v, to));
    let out: Value = match (target, &v.data) {
        ("null" | "missing", _) => return fail(),
        ("int", Data::Int(_)) => Value::from(v.data.clone()),
        ("int", Data::Bool(b)) => Value::int(*b as i64),
        ("int", Data::Decimal(d)) => Value::int(decimal_to_int(d)),
        ("int", Data::Float(f)) if f.is_finite() => Value::int(BigInt::from(f.trunc() as i128)),
        ("int", Data::String(s) | Data::Symbol(Some(s))) => {
            let t = s.trim();
            let parsed = t
                .strip_prefix('+')
                .unwrap_or(t)
                .parse::<BigInt>()
                .or_else(|_| {
                    let (neg, body) = match t.strip_prefix('-') {
                        Some(b) => (true, b),
                        None => (false, t),
                    };
                    let hex = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X"));
                    match hex {
                        Some(h) => BigInt::parse_bytes(h.as_bytes(), 16)
                            .map(|n| if neg { -n } else { n })
                            .ok_or(()),
                        None => Err(()),
                    }
                });
            match parsed {
                Ok(n) => Value::int(n),
                Err(_) => return fail(),
            }
        }
        ("bool", Data::Bool(_)) => Value::from(v.data.clone()),
        ("bool", Data::Int(i)) => Data::Bool(!i.is_zero()).into(),
        ("bool", Data::Decimal(d)) => Data::Bool(!d.is_zero()).into(),
        ("bool", Data::Float(f)) => Data::Bool(*f != 0.0).into(),
        ("bool", Data::String(s) | Data::Symbol(Some(s))) => match s.to_lowercase().as_str() {
            "true" => Data::Bool(true).into(),
            "false" => Data::Bool(false).into(),
            _ => return fail(),
        },
        ("float", Data::Float(_)) => Value::from(v.data.clone()),
        ("float", Data::Int(i)) => Data::Float(i.to_f64().unwrap_or(f64::INFINITY)).into(),
        ("float", Data::Decimal(d)) => Data::Float(decimal_to_f64(d)).into(),
        ("float", Data::Bool(b)) => Data::Float(if *b { 1.0 } else { 0.0 }).into(),
        ("float", Data::String(s) | Data::Symbol(Some(s))) => {
            match s.trim().to_lowercase().as_str() {
                "nan" => Data::Float(f64::NAN).into(),
                "+inf" | "inf" | "infinity" => Data::Float(f64::INFINITY).into(),
                "-inf" | "-infinity" => Data::Float(f64::NEG_INFINITY).into(),
                t => match t.parse::<f64>() {
                    Ok(f) => Data::Float(f).into(),
                    Err(_) => return fail(),
                },
            }
        }
        ("decimal", Data::Decimal(d)) => Data::Decimal(d.clone()).into(),
        ("decimal", Data::Int(i)) => Data::Decimal(Decimal::new(i.clone(), 0)).into(),
        ("decimal", Data::Bool(b)) => {
            Data::Decimal(Decimal::new(BigInt::from(*b as i64), 0)).into()
        }
        ("decimal", Data::Float(f)) if f.is_finite() => match parse_decimal(&format!("{f:e}")) {
            Some(d) => Data::Decimal(d).into(),
            None => return fail(),
        },
        ("decimal", Data::String(s) | Data::Symbol(Some(s))) => match parse_decimal(s) {
            Some(d) => Data::Decimal(d).into(),
            None => return fail(),
        },
        ("timestamp", Data::Timestamp(_)) => Value::from(v.data.clone()),
        ("timestamp", Data::String(s) | Data::Symbol(Some(s))) => {
            match to_timestamp(&Value::string(s.trim()), None) {
                Ok(t) => t,
                Err(_) => return fail(),
            }
        }
        ("string" | "symbol", data) => {
            let s = match data {
                Data::String(s) | Data::Symbol(Some(s)) => s.clone(),
                Data::Int(i) => i.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::Decimal(d) => decimal_text(d),
                Data::Float(f) if f.is_nan() => "nan".into(),
                Data::Float(f) if f.is_infinite() => if *f > 0.0 { "+inf" } else { "-inf" }.into(),
                Data::Float(f) => format!("{f:?}"),
                Data::Timestamp(_) => text::to_text_one(&Value::from(data.clone())),
                _ => return fail(),
            };
            if target == "string" {
                Value::string(s)
            } else {
                Value::symbol(s)
            }
        }
        ("list" | "bag", Data::List(items) | Data::SExp(items)) => Value::list(items.clone()),
        ("sexp", Data::List(items) | Data::SExp(items)) => Data::SExp(items.clone()).into(),
        ("struct", Data::Struct(_)) => Value::from(v.data.clone()),
        ("blob", Data::Blob(b) | Data::Clob(b)) => Value::blob(b.clone()),
        ("clob", Data::Blob(b) | Data::Clob(b)) => Data::Clob(b.clone()).into(),
        _ => return fail(),
    };
    // DECIMAL(p, s): round to the scale s.
    let out = match (target, &out.data, args.as_slice()) {
        ("decimal", Data::Decimal(d), [_, s]) => Data::Decimal(rescale(d, *s)).into(),
        ("decimal", Data::Decimal(d), [_]) => Data::Decimal(rescale(d, 0)).into(),
        _ => out,
    };
    if let Data::Decimal(d) = &out.data {
        if let [p, ..] = args.as_slice() {
            let digits = d.magnitude.to_string().trim_start_matches('0').len() as i64;
            if digits > *p && !d.magnitude.is_zero() {
                return Err(format!(
                    "{} does not fit DECIMAL({p}{})",
                    decimal_text(d),
                    args.get(1).map(|s| format!(",{s}")).unwrap_or_default()
                ));
            }
        }
    }
    let out = if target == "int" {
        super::ops::check_int(out)?
    } else {
        out
    };
    Ok(PV::V(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_is_found_by_its_name_once() {
        for &(f, name, min, max) in FUNCS {
            assert_eq!(Func::named(name), Some(f));
            assert_eq!(f.name(), name);
            assert_eq!(f.arity(), (min, max));
            assert!(min <= max, "{name}");
            assert_eq!(FUNCS.iter().filter(|e| e.0 == f).count(), 1, "{name}");
        }
        assert_eq!(Func::named("no_such_function"), None);
        assert_eq!(
            Func::named("COUNT"),
            None,
            "callers look names up in lower case"
        );
    }

    fn ion(s: &str) -> Value {
        text::from_text_one(s).unwrap()
    }
    fn sym(s: &str) -> Value {
        Value::symbol(s)
    }
    fn t(v: F<Value>) -> String {
        text::to_text_one(&v.unwrap())
    }

    #[test]
    fn date_add_raises_precision_only_as_needed() {
        assert_eq!(
            t(date_add(&sym("month"), &ion("1"), &ion("2010T"))),
            "2010-02T"
        );
        assert_eq!(
            t(date_add(&sym("hour"), &ion("1"), &ion("2017T"))),
            "2017-01-01T01:00Z"
        );
        assert_eq!(
            t(date_add(&sym("month"), &ion("1"), &ion("2021-01-31"))),
            "2021-02-28T"
        );
        assert_eq!(
            t(date_add(
                &sym("second"),
                &ion("-1"),
                &ion("2021-01-01T00:00:00.500+01:00")
            )),
            "2020-12-31T23:59:59.500+01:00"
        );
        assert!(date_add(&sym("year"), &ion("9999"), &ion("2021T")).is_err());
    }

    #[test]
    fn date_diff_counts_whole_units() {
        let d = |p: &str, a: &str, b: &str| t(date_diff(&sym(p), &ion(a), &ion(b)));
        assert_eq!(d("day", "2020-01-01T23:00Z", "2020-01-02T01:00Z"), "0");
        assert_eq!(d("month", "2020-01-31", "2020-02-29"), "0");
        assert_eq!(d("month", "2020-01-31", "2020-03-01"), "1");
        assert_eq!(d("year", "2021-06-01", "2020-06-02"), "0");
        assert_eq!(d("hour", "2020-01-02T00:00Z", "2020-01-01T00:00Z"), "-24");
    }

    #[test]
    fn extract_reads_local_fields() {
        let e = |p: &str, v: &str| t(extract(&sym(p), &ion(v)));
        assert_eq!(e("hour", "2017-01-10T05:30:55+02:30"), "5");
        assert_eq!(e("timezone_hour", "2017-01-10T05:30:55+02:30"), "2");
        assert_eq!(e("timezone_minute", "2017-01-10T05:30:55-02:30"), "-30");
        assert_eq!(e("month", "2010T"), "1");
    }

    #[test]
    fn to_string_and_back() {
        let s = |v: &str, f: &str| t(to_string(&ion(v), &Value::string(f)));
        assert_eq!(s("1969-07-20T20:18Z", "MMMM d, y"), "\"July 20, 1969\"");
        assert_eq!(
            s(
                "1969-07-20T20:18:07.123+01:00",
                "yyyy-MM-dd'T'HH:mm:ss.SSSXXX h a"
            ),
            "\"1969-07-20T20:18:07.123+01:00 8 PM\""
        );
        let back = |v: &str, f: &str| t(to_timestamp(&Value::string(v), Some(&Value::string(f))));
        assert_eq!(back("July 20, 1969", "MMMM d, y"), "1969-07-20T");
        assert_eq!(
            back("20/07/69 08:18 PM", "dd/MM/yy hh:mm a"),
            "2069-07-20T20:18Z",
            "two-digit years below 70 are 20xx"
        );
        assert_eq!(
            back("2020-01-01T10:00+0130", "yyyy-MM-dd'T'HH:mmxx"),
            "2020-01-01T10:00+01:30"
        );
        assert!(to_timestamp(&Value::string("nope"), None).is_err());
        assert_eq!(
            t(to_timestamp(&Value::string("2007-02-23T12:14Z"), None)),
            "2007-02-23T12:14Z"
        );
    }

    #[test]
    fn substring_and_trim() {
        let sub = |a: i64, l: Option<i64>| {
            t(substring(
                &Value::string("123456789"),
                &Value::int(a),
                l.map(Value::int).as_ref(),
            ))
        };
        assert_eq!(sub(0, Some(2)), "\"1\"");
        assert_eq!(sub(2, None), "\"23456789\"");
        assert_eq!(sub(-4, Some(7)), "\"12\"");
        assert!(substring(&Value::string("x"), &Value::int(1), Some(&Value::int(-1))).is_err());
        assert_eq!(
            t(trim(
                &sym("both"),
                &Value::string("1112211foobar22211122"),
                Some(&Value::string("12"))
            )),
            "\"foobar\""
        );
        assert_eq!(
            t(trim(&sym("leading"), &Value::string("  a\t "), None)),
            "\"a\\t \""
        );
    }

    #[test]
    fn casts() {
        let c = |v: &str, to: &str| match cast(PV::V(ion(v)), to) {
            Ok(PV::V(v)) => text::to_text_one(&v),
            Ok(PV::Missing) => "MISSING".into(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(c("\"42\"", "INT"), "42");
        assert!(c("\"x\"", "INT").starts_with("error"));
        assert_eq!(c("1.9", "INT"), "1");
        assert_eq!(c("-1.9", "INTEGER"), "-1");
        assert_eq!(c("0", "BOOL"), "false");
        assert_eq!(c("\"TRUE\"", "BOOLEAN"), "true");
        assert_eq!(c("1e0", "STRING"), "\"1.0\"");
        assert_eq!(c("130.750", "STRING"), "\"130.750\"");
        assert_eq!(c("\"1.25\"", "DECIMAL(5,1)"), "1.3");
        assert!(c("\"123.4\"", "DECIMAL(3,1)").starts_with("error"));
        assert_eq!(c("[1]", "SEXP"), "(1)");
        assert_eq!(c("2019-01-01T", "STRING"), "\"2019-01-01T\"");
        assert_eq!(c("\"2019-01-01T\"", "TIMESTAMP"), "2019-01-01T");
        assert_eq!(c("null", "INT"), "null");
        assert!(c("1", "NULL").starts_with("error"));
        assert_eq!(cast(PV::Missing, "INT").unwrap(), PV::null());
    }
}
