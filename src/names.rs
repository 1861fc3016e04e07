//! Validated identifiers: ledger names, 22-character unique ids, and the Coral-style
//! constraint messages AWS services return when a member fails its model constraint.
//!
//! A [`LedgerName`] can only be built through [`LedgerName::parse`], which enforces the
//! model's pattern; that is what makes it safe to build file paths from one.

use std::fmt;

use rand::RngCore;

/// The model's pattern for `LedgerName` (and `StreamName`), quoted verbatim in messages.
pub const LEDGER_NAME_PATTERN: &str = "(?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$";
/// The model's pattern for `UniqueId` (document, export, stream, strand ids).
pub const UNIQUE_ID_PATTERN: &str = "^[A-Za-z-0-9]+$";

/// One violated model constraint, worded as AWS words it after "failed to satisfy constraint: ".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

impl Violation {
    pub fn min_len(n: usize) -> Self {
        Violation(format!(
            "Member must have length greater than or equal to {n}"
        ))
    }
    pub fn max_len(n: usize) -> Self {
        Violation(format!("Member must have length less than or equal to {n}"))
    }
    pub fn pattern(p: &str) -> Self {
        Violation(format!(
            "Member must satisfy regular expression pattern: {p}"
        ))
    }
    pub fn min_value(n: i64) -> Self {
        Violation(format!(
            "Member must have value greater than or equal to {n}"
        ))
    }
    pub fn max_value(n: i64) -> Self {
        Violation(format!("Member must have value less than or equal to {n}"))
    }
    pub fn enum_value(values: &[&str]) -> Self {
        Violation(format!(
            "Member must satisfy enum value set: [{}]",
            values.join(", ")
        ))
    }

    /// The full Coral message: `1 validation error detected: Value 'v' at 'member' failed ...`.
    pub fn message(&self, value: &str, member: &str) -> String {
        format!(
            "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: {}",
            shorten(value),
            member,
            self.0
        )
    }
}

/// Echo at most 256 characters of a rejected value; AWS truncates long values too.
fn shorten(value: &str) -> String {
    const MAX: usize = 256;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let mut s: String = value.chars().take(MAX).collect();
        s.push_str("...");
        s
    }
}

/// Checks a string's length in characters against an inclusive range.
pub fn check_len(value: &str, min: usize, max: usize) -> Result<(), Violation> {
    let n = value.chars().count();
    if n < min {
        Err(Violation::min_len(min))
    } else if n > max {
        Err(Violation::max_len(max))
    } else {
        Ok(())
    }
}

/// A ledger (or journal stream) name that satisfies the model: 1–32 characters of
/// `[A-Za-z0-9-]`, not all digits, no leading, trailing or doubled `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerName(String);

impl LedgerName {
    pub fn parse(s: &str) -> Result<Self, Violation> {
        check_len(s, 1, 32)?;
        let charset_ok = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let all_digits = s.bytes().all(|b| b.is_ascii_digit());
        if !charset_ok || all_digits || s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err(Violation::pattern(LEDGER_NAME_PATTERN));
        }
        Ok(LedgerName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LedgerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the model's `UniqueId`: exactly 22 characters of `[A-Za-z0-9-]`.
pub fn check_unique_id(s: &str) -> Result<(), Violation> {
    check_len(s, 22, 22)?;
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(())
    } else {
        Err(Violation::pattern(UNIQUE_ID_PATTERN))
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Renders 128 bits as QLDB renders its ids: base62 over `0-9A-Za-z`, left-padded to 22.
pub fn base62_id(value: u128) -> String {
    // In chunks of 10 digits (62^10 < 2^64): three 128-bit divisions instead of 22.
    const CHUNK: u128 = 62u128.pow(10);
    let mut out = [b'0'; 22];
    let mut v = value;
    let mut end = out.len();
    while v > 0 {
        let mut chunk = (v % CHUNK) as u64;
        v /= CHUNK;
        for digit in out[end.saturating_sub(10)..end].iter_mut().rev() {
            *digit = BASE62[(chunk % 62) as usize];
            chunk /= 62;
        }
        end = end.saturating_sub(10);
    }
    String::from_utf8(out.to_vec()).expect("ascii")
}

/// A new document's id: 22 characters as [`new_unique_id`]'s, whose 128 bits are the
/// millisecond of its creation (the top 48) and 80 random bits. Ids made later sort after
/// earlier ones (base62 digits are in ASCII order), so a ledger's documents, revisions and
/// their indexes grow at their B-trees' right edges: a commit writes a few pages, not one
/// page per document at random places (docs/compatibility.md, "Document ids").
pub fn new_document_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&bytes);
    base62_id(((ms & ((1 << 48) - 1)) << 80) | u128::from_be_bytes(random))
}

/// A fresh random 22-character id (strand, transaction, document, export, stream ids).
pub fn new_unique_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base62_id(u128::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_are_unique_ids_in_creation_order() {
        let mut last = new_document_id();
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(1));
            let id = new_document_id();
            check_unique_id(&id).unwrap();
            assert!(id > last, "{id} made after {last}");
            last = id;
        }
        let same_ms: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_document_id()).collect();
        assert_eq!(same_ms.len(), 10_000);
    }

    #[test]
    fn ledger_names() {
        for ok in [
            "a",
            "demo",
            "my-ledger",
            "A1-b2",
            "1a",
            "x".repeat(32).as_str(),
        ] {
            assert!(LedgerName::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "123",
            "-a",
            "a-",
            "a--b",
            "bad_name!",
            "a b",
            "../x",
            "a/b",
            "é",
            "x".repeat(33).as_str(),
        ] {
            assert!(LedgerName::parse(bad).is_err(), "{bad} should be invalid");
        }
        assert_eq!(LedgerName::parse("").unwrap_err(), Violation::min_len(1));
        assert_eq!(
            LedgerName::parse(&"x".repeat(33)).unwrap_err(),
            Violation::max_len(32)
        );
        assert_eq!(
            LedgerName::parse("a--b").unwrap_err(),
            Violation::pattern(LEDGER_NAME_PATTERN)
        );
    }

    #[test]
    fn coral_message() {
        let m = Violation::pattern(LEDGER_NAME_PATTERN).message("bad_name!", "name");
        assert_eq!(
            m,
            "1 validation error detected: Value 'bad_name!' at 'name' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             (?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$"
        );
    }

    #[test]
    fn unique_ids_are_22_base62() {
        assert_eq!(base62_id(0), "0000000000000000000000");
        assert_eq!(base62_id(61), "000000000000000000000z");
        assert_eq!(base62_id(u128::MAX).len(), 22);
        // The digits one at a time, as the chunked rendering must give them.
        let slow = |mut v: u128| {
            let mut out = [b'0'; 22];
            for d in out.iter_mut().rev() {
                *d = BASE62[(v % 62) as usize];
                v /= 62;
            }
            String::from_utf8(out.to_vec()).unwrap()
        };
        let chunk = 62u128.pow(10);
        for v in [
            0,
            61,
            62,
            chunk - 1,
            chunk,
            chunk * chunk - 1,
            chunk * chunk,
            u128::MAX,
        ]
        .into_iter()
        .chain((0..1000).map(|i: u128| i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)))
        {
            assert_eq!(base62_id(v), slow(v), "{v}");
        }
        for _ in 0..100 {
            let id = new_unique_id();
            assert_eq!(id.len(), 22);
            assert!(check_unique_id(&id).is_ok());
        }
        assert!(check_unique_id("short").is_err());
        assert!(check_unique_id("aaaaaaaaaaaaaaaaaaaaa!").is_err());
    }
}
