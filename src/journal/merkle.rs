//! The journal digest tree: a Merkle tree over block hashes (leaf index = sequence number),
//! in the RFC 6962 shape that `merkle()` produces. Only *complete* subtrees are stored —
//! node (level k, index i) covers leaves [i·2^k, (i+1)·2^k) and never changes once its
//! last leaf exists — so appending a block, the digest at any tip, and any audit path each
//! cost O(log n) node reads. Storage is the caller's: nodes come through a lookup function.

use super::hash::{dot, Hash};

/// The complete nodes that appending leaf `index` creates, bottom-up, as (level, index,
/// hash). `node` looks up existing complete nodes.
pub fn append<E>(
    index: u64,
    leaf: Hash,
    mut node: impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Vec<(u32, u64, Hash)>, E> {
    let mut out = vec![(0, index, leaf.clone())];
    let (mut level, mut i, mut h) = (0u32, index, leaf);
    while !i.is_multiple_of(2) {
        let left = node(level, i - 1)?;
        h = dot(&left, &h);
        level += 1;
        i /= 2;
        out.push((level, i, h.clone()));
    }
    Ok(out)
}

/// The root over leaves [start, end) (start aligned to the range's power-of-two split).
fn subtree<E>(
    start: u64,
    end: u64,
    node: &mut impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Hash, E> {
    let size = end - start;
    if size.is_power_of_two() && start.is_multiple_of(size) {
        return node(size.trailing_zeros(), start / size);
    }
    let k = split(size);
    let left = subtree(start, start + k, node)?;
    let right = subtree(start + k, end, node)?;
    Ok(dot(&left, &right))
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The digest of the first `n` leaves (the journal digest at tip n−1). Empty for n = 0.
pub fn root<E>(n: u64, mut node: impl FnMut(u32, u64) -> Result<Hash, E>) -> Result<Hash, E> {
    if n == 0 {
        return Ok(Vec::new());
    }
    subtree(0, n, &mut node)
}

/// The audit path of leaf `m` in the tree of the first `n` leaves, bottom-up (folding
/// `dot` over it from the leaf gives `root(n)`).
pub fn audit_path<E>(
    m: u64,
    n: u64,
    mut node: impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    let mut path = Vec::new();
    let (mut start, mut end) = (0u64, n);
    let mut siblings = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        if m < start + k {
            siblings.push((start + k, end));
            end = start + k;
        } else {
            siblings.push((start, start + k));
            start += k;
        }
    }
    for (s, e) in siblings.into_iter().rev() {
        path.push(subtree(s, e, &mut node)?);
    }
    Ok(path)
}

/// The audit path of element `m` of a small in-memory list (revisions, entries).
pub fn list_path(leaves: &[Hash], m: usize) -> Vec<Hash> {
    let mut levels: Vec<Vec<Hash>> = vec![leaves.to_vec()];
    // Build complete nodes level by level so `subtree` can look them up.
    while levels.last().is_some_and(|l| l.len() > 1) {
        let prev = levels.last().expect("non-empty");
        let next: Vec<Hash> = prev
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| dot(&c[0], &c[1]))
            .collect();
        if next.is_empty() {
            break;
        }
        levels.push(next);
    }
    audit_path(m as u64, leaves.len() as u64, |level, i| {
        Ok::<_, std::convert::Infallible>(levels[level as usize][i as usize].clone())
    })
    .unwrap_or_else(|e| match e {})
}
