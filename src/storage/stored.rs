//! How a ledger file stores a block's Ion and a revision's data.
//!
//! - A block (`blocks.ion`) is its Ion binary compressed as one zstd frame with a content
//!   checksum: a block's Ion repeats its strand id, transaction id and field names for every
//!   revision and compresses about 3x. A row that begins with Ion's version marker instead
//!   (every block written before compression, and what tests write by hand) is read as it is.
//! - A revision row (`revisions.data`) holds no copy of the data the block already holds: an
//!   empty blob says "the data is in the block, at the row's position" (the current state of
//!   a live document is in `documents.data`). Rows written before this hold the data itself;
//!   `NULL` is a delete or a redaction, as before.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::ion::binary::decode;
use crate::ion::Value;
use crate::storage::{Result, StorageError};

/// zstd's frame magic number, little-endian as it begins a frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// zstd level -1 (its fastest strategy, without Huffman-coded literals), on the commit path's
/// CPU: 3.5 times faster than level 1 on a single-document block, which both shrink from 885
/// to 679 bytes, and 2 % larger than level 1 on a 40-document block (5,273 vs 5,164 bytes).
const LEVEL: i32 = -1;

/// The largest block Ion a stored frame may claim to hold (a damaged frame header must not
/// make a reader allocate without bound); far above any block a transaction can write.
const MAX_BLOCK: u64 = 1 << 30;

thread_local! {
    /// zstd contexts are costly to create (a fresh one per block was 3 % of the commit
    /// path's CPU), so each thread keeps one of each.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The stored form of a block's Ion binary `ion`.
pub fn pack_block(ion: &[u8]) -> Vec<u8> {
    let packed = COMPRESSOR.with(|c| -> std::io::Result<Vec<u8>> {
        let mut c = c.borrow_mut();
        if c.is_none() {
            let mut new = zstd::bulk::Compressor::new(LEVEL)?;
            new.include_checksum(true)?;
            new.include_contentsize(true)?;
            *c = Some(new);
        }
        c.as_mut().expect("just made").compress(ion)
    });
    // Compressing into memory fails only if zstd cannot allocate; the block is then kept
    // uncompressed, which every reader accepts.
    packed.unwrap_or_else(|_| ion.to_vec())
}

/// The stored form of `bytes`, which are either a stored block or a block's Ion binary.
pub fn repack_block(bytes: &[u8]) -> Cow<'_, [u8]> {
    if bytes.starts_with(&ZSTD_MAGIC) {
        Cow::Borrowed(bytes)
    } else {
        Cow::Owned(pack_block(bytes))
    }
}

/// The Ion binary of a stored block (compressed or not).
pub fn unpack_block(stored: &[u8]) -> Result<Cow<'_, [u8]>> {
    if !stored.starts_with(&ZSTD_MAGIC) {
        return Ok(Cow::Borrowed(stored));
    }
    let corrupt = |why: String| {
        StorageError::Corrupt(format!("a stored block cannot be decompressed: {why}"))
    };
    let size = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n <= MAX_BLOCK => n as usize,
        _ => return Err(corrupt("its frame header names no valid size".into())),
    };
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(|e| corrupt(e.to_string()))?);
        }
        let ion = d
            .as_mut()
            .expect("just made")
            .decompress(stored, size)
            .map_err(|e| corrupt(e.to_string()))?;
        if ion.len() != size {
            return Err(corrupt("it holds fewer bytes than its header says".into()));
        }
        Ok(Cow::Owned(ion))
    })
}

/// The stored block `stored`, decoded.
pub fn decode_block(stored: &[u8]) -> Result<Value> {
    let ion = unpack_block(stored)?;
    decode(&ion)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| StorageError::Corrupt("a stored block is not valid Ion".into()))
}

/// The `revisions.data` of a revision whose data its block holds.
pub const DATA_IN_BLOCK: &[u8] = &[];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion::binary::encode_one;

    #[test]
    fn blocks_round_trip_compressed_and_plain_ones_still_read() {
        let block = crate::ion::text::from_text_one(
            "{blockAddress: {strandId: \"s\", sequenceNo: 3}, revisions: [{data: {a: 1}}, {data: {a: 1}}, {data: {a: 1}}]}",
        )
        .unwrap();
        let ion = encode_one(&block);
        let packed = pack_block(&ion);
        assert!(packed.starts_with(&ZSTD_MAGIC));
        assert_eq!(decode_block(&packed).unwrap(), block);
        assert_eq!(decode_block(&ion).unwrap(), block);
        // A damaged frame is an error, never different Ion.
        let mut bad = packed.clone();
        let last = bad.len() - 6;
        bad[last] ^= 0x55;
        assert!(decode_block(&bad).is_err());
        // A cut frame, and a header claiming more than any block: errors, nothing allocated.
        assert!(decode_block(&packed[..packed.len() - 3]).is_err());
        assert!(decode_block(&ZSTD_MAGIC).is_err());
        let mut huge = ZSTD_MAGIC.to_vec();
        huge.extend([0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(decode_block(&huge).is_err());
    }
}
