//! The Ion data model.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::Zero;

/// The thirteen Ion types (used for typed nulls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IonType {
    Null,
    Bool,
    Int,
    Float,
    Decimal,
    Timestamp,
    Symbol,
    String,
    Clob,
    Blob,
    List,
    SExp,
    Struct,
}

impl IonType {
    /// The Ion binary type code (high nibble of a type descriptor); negative ints use 3.
    pub fn binary_code(self) -> u8 {
        match self {
            IonType::Null => 0x0,
            IonType::Bool => 0x1,
            IonType::Int => 0x2,
            IonType::Float => 0x4,
            IonType::Decimal => 0x5,
            IonType::Timestamp => 0x6,
            IonType::Symbol => 0x7,
            IonType::String => 0x8,
            IonType::Clob => 0x9,
            IonType::Blob => 0xA,
            IonType::List => 0xB,
            IonType::SExp => 0xC,
            IonType::Struct => 0xD,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IonType::Null => "null",
            IonType::Bool => "bool",
            IonType::Int => "int",
            IonType::Float => "float",
            IonType::Decimal => "decimal",
            IonType::Timestamp => "timestamp",
            IonType::Symbol => "symbol",
            IonType::String => "string",
            IonType::Clob => "clob",
            IonType::Blob => "blob",
            IonType::List => "list",
            IonType::SExp => "sexp",
            IonType::Struct => "struct",
        }
    }
}

/// An arbitrary-precision decimal: `coefficient × 10^exponent`, with a sign flag so that
/// negative zero (`-0d0`, `-0.00`) survives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub negative: bool,
    pub magnitude: BigUint,
    pub exponent: i64,
}

impl Decimal {
    pub fn new(coefficient: BigInt, exponent: i64) -> Self {
        let (sign, magnitude) = coefficient.into_parts();
        Decimal {
            negative: sign == Sign::Minus,
            magnitude,
            exponent,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.magnitude.is_zero()
    }

    /// A finite float as the shortest decimal that reads back as it (`0.1e0` → `0.1`), as
    /// Java's `BigDecimal.valueOf(double)` gives it; `None` for NaN and the infinities.
    pub fn from_f64_shortest(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        let text = format!("{:e}", f.abs());
        let (mantissa, exponent) = text.split_once('e')?;
        let exponent: i64 = exponent.parse().ok()?;
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let magnitude: BigUint = format!("{int}{frac}").parse().ok()?;
        Some(Decimal {
            negative: f.is_sign_negative() && !magnitude.is_zero(),
            magnitude,
            exponent: exponent - frac.len() as i64,
        })
    }

    /// The signed coefficient (negative zero reads as zero).
    pub fn coefficient(&self) -> BigInt {
        let sign = if self.negative {
            Sign::Minus
        } else {
            Sign::Plus
        };
        BigInt::from_biguint(sign, self.magnitude.clone())
    }
}

/// How far a timestamp's fields go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Minute,
    /// Seconds, with `fraction` giving any fractional digits.
    Second,
}

/// An Ion timestamp exactly as written: its fields in **UTC** (as Ion binary stores them;
/// the text form shows local time at `offset_minutes`, `None` = unknown offset `-00:00`),
/// at `precision`, with fractional seconds as a decimal
/// `fraction_coefficient × 10^fraction_exponent` (exponent < 0) when present.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub fraction: Option<(BigUint, i64)>,
    pub offset_minutes: Option<i16>,
    pub precision: Precision,
}

/// The content of a value, without its annotations.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `null` (IonType::Null) or a typed null such as `null.string`.
    Null(IonType),
    Bool(bool),
    Int(BigInt),
    Float(f64),
    Decimal(Decimal),
    Timestamp(Timestamp),
    /// `None` is a symbol with unknown text (`$0`).
    Symbol(Option<String>),
    String(String),
    Clob(Vec<u8>),
    Blob(Vec<u8>),
    List(Vec<Value>),
    SExp(Vec<Value>),
    /// Fields in order; names may repeat; `None` is a field name with unknown text.
    Struct(Vec<(Option<String>, Value)>),
}

/// An Ion value: annotations (unknown text as `None`) and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub annotations: Vec<Option<String>>,
    pub data: Data,
}

impl From<Data> for Value {
    fn from(data: Data) -> Self {
        Value {
            annotations: Vec::new(),
            data,
        }
    }
}

impl Value {
    pub fn ion_type(&self) -> IonType {
        match &self.data {
            Data::Null(t) => *t,
            Data::Bool(_) => IonType::Bool,
            Data::Int(_) => IonType::Int,
            Data::Float(_) => IonType::Float,
            Data::Decimal(_) => IonType::Decimal,
            Data::Timestamp(_) => IonType::Timestamp,
            Data::Symbol(_) => IonType::Symbol,
            Data::String(_) => IonType::String,
            Data::Clob(_) => IonType::Clob,
            Data::Blob(_) => IonType::Blob,
            Data::List(_) => IonType::List,
            Data::SExp(_) => IonType::SExp,
            Data::Struct(_) => IonType::Struct,
        }
    }

    pub fn null() -> Self {
        Data::Null(IonType::Null).into()
    }
    pub fn string(s: impl Into<String>) -> Self {
        Data::String(s.into()).into()
    }
    pub fn symbol(s: impl Into<String>) -> Self {
        Data::Symbol(Some(s.into())).into()
    }
    pub fn int(i: impl Into<BigInt>) -> Self {
        Data::Int(i.into()).into()
    }
    pub fn blob(b: impl Into<Vec<u8>>) -> Self {
        Data::Blob(b.into()).into()
    }
    pub fn list(items: Vec<Value>) -> Self {
        Data::List(items).into()
    }
    pub fn structure<K: Into<String>>(fields: impl IntoIterator<Item = (K, Value)>) -> Self {
        Data::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (Some(k.into()), v))
                .collect(),
        )
        .into()
    }
    pub fn annotated(mut self, annotations: &[&str]) -> Self {
        self.annotations = annotations.iter().map(|a| Some(a.to_string())).collect();
        self
    }

    /// The first field named `name`, for structs.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match &self.data {
            Data::Struct(fields) => fields
                .iter()
                .find(|(k, _)| k.as_deref() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl Timestamp {
    /// The instant as a decimal number of seconds, `coefficient × 10^exponent`, counted in
    /// UTC from a fixed origin: equal for every precision and offset of one instant.
    pub fn epoch_seconds(&self) -> (BigInt, i64) {
        let days = days_from_civil(self.year as i64, self.month as i64, self.day as i64);
        let secs =
            ((days * 24 + self.hour as i64) * 60 + self.minute as i64) * 60 + self.second as i64;
        match &self.fraction {
            Some((c, e)) if *e < 0 => {
                let scale = num_traits::pow(BigInt::from(10), e.unsigned_abs() as usize);
                (BigInt::from(secs) * scale + BigInt::from(c.clone()), *e)
            }
            Some((c, e)) => {
                let scale = num_traits::pow(BigInt::from(10), *e as usize);
                (BigInt::from(secs) + BigInt::from(c.clone()) * scale, 0)
            }
            None => (BigInt::from(secs), 0),
        }
    }

    /// Year precision, January 1st: the starting point readers fill in field by field.
    pub(crate) fn year_start(year: u16, offset_minutes: Option<i16>) -> Self {
        Timestamp {
            year,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            fraction: None,
            offset_minutes,
            precision: Precision::Year,
        }
    }

    /// Moves the year..minute fields by `minutes` (UTC ↔ local). `None` if the result
    /// leaves years 1–9999.
    pub fn shifted(&self, minutes: i64) -> Option<Timestamp> {
        if minutes == 0 || self.precision < Precision::Minute {
            return Some(self.clone());
        }
        let month = time::Month::try_from(self.month).ok()?;
        let date = time::Date::from_calendar_date(self.year as i32, month, self.day).ok()?;
        let clock = time::Time::from_hms(self.hour, self.minute, 0).ok()?;
        let moved = time::PrimitiveDateTime::new(date, clock)
            .checked_add(time::Duration::minutes(minutes))?;
        if !(1..=9999).contains(&moved.year()) {
            return None;
        }
        Some(Timestamp {
            year: moved.year() as u16,
            month: u8::from(moved.month()),
            day: moved.day(),
            hour: moved.hour(),
            minute: moved.minute(),
            ..self.clone()
        })
    }

    /// A UTC timestamp with exactly millisecond precision (the journal's timestamps).
    pub fn from_millis_utc(ms: i64) -> Self {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Timestamp {
            year: t.year().clamp(1, 9999) as u16,
            month: u8::from(t.month()),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
            fraction: Some((BigUint::from(t.millisecond()), -3)),
            offset_minutes: Some(0),
            precision: Precision::Second,
        }
    }
}

/// Days from 0000-03-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe
}
