//! The journal's cryptography, pure and without I/O: `dot`, Merkle roots, statement and
//! commit digests. (Blocks, the incremental digest tree and proofs build on these.)
//! Never imports storage.

pub mod block;
pub mod hash;
pub mod merkle;
