//! `dot`, `merkle` and the statement/commit digests shared by the journal and the session.

use sha2::{Digest, Sha256};

use crate::ion::hash::ion_hash;
use crate::ion::Value;

/// A QLDB hash: 32 bytes, or empty (the identity of `dot`).
pub type Hash = Vec<u8>;

/// Joins two hashes: empty operands are the identity; otherwise the two are ordered by
/// comparing bytes as *signed* 8-bit integers from the last byte down, and the smaller one
/// goes first into SHA-256. Commutative.
pub fn dot(a: &[u8], b: &[u8]) -> Hash {
    if a.is_empty() {
        return b.to_vec();
    }
    if b.is_empty() {
        return a.to_vec();
    }
    let a_smaller = compare_signed_from_end(a, b) == std::cmp::Ordering::Less;
    let (first, second) = if a_smaller { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(first);
    h.update(second);
    h.finalize().to_vec()
}

fn compare_signed_from_end(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        let (x, y) = (*x as i8, *y as i8);
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}

/// The Merkle root of an ordered list: adjacent pairs joined with `dot` left to right, an
/// odd last element promoted unchanged, until one remains. Empty list → empty hash.
pub fn merkle(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Vec::new();
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [a, b] => dot(a, b),
                [a] => a.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    level.pop().unwrap_or_default()
}

/// `statementDigest`: the Ion hash of the statement text as a string, dotted with the Ion
/// hash of each parameter in order.
pub fn statement_digest(statement: &str, parameters: &[Value]) -> Hash {
    let mut digest = ion_hash(&Value::string(statement)).to_vec();
    for p in parameters {
        digest = dot(&digest, &ion_hash(p));
    }
    digest
}

/// The running commit digest of a transaction: starts at the Ion hash of the transaction id
/// (as a string); each statement's digest is dotted in, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitDigest(Hash);

impl CommitDigest {
    pub fn new(transaction_id: &str) -> Self {
        CommitDigest(ion_hash(&Value::string(transaction_id)).to_vec())
    }

    pub fn add_statement(&mut self, statement: &str, parameters: &[Value]) {
        self.add_statement_digest(&statement_digest(statement, parameters));
    }

    /// Folds in a statement digest already computed (the server also records it in the
    /// block's transactionInfo, so it computes it once).
    pub fn add_statement_digest(&mut self, digest: &[u8]) {
        self.0 = dot(&self.0, digest);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}
