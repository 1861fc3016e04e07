//! The Kinesis Producer Library's aggregated record format, which QLDB streams use when
//! `AggregationEnabled` is true (the default) and every consumer de-aggregates:
//!
//! `F3 89 9A C2` ‖ protobuf `AggregatedRecord` ‖ MD5 of that protobuf.
//!
//! `AggregatedRecord { repeated string partition_key_table = 1; repeated string
//! explicit_hash_key_table = 2; repeated Record records = 3; }` and `Record { uint64
//! partition_key_index = 1; optional uint64 explicit_hash_key_index = 2; bytes data = 3;
//! repeated Tag tags = 4; }`. Only fields 1 and 3 of each are written, as QLDB does.

use md5::{Digest, Md5};

/// The magic bytes that open an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Kinesis's limit on one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Room kept for the magic, the MD5 and the outer partition key (at most 256 bytes).
const OVERHEAD: usize = MAGIC.len() + 16 + 256;

/// One record as a consumer sees it after de-aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes a length-delimited field of `len` bytes takes, with its one-byte key.
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn record_len(key_index: usize, data_len: usize) -> usize {
    1 + varint_len(key_index as u64) + field_len(data_len)
}

/// Packs user records, in order, into as few aggregated Kinesis records as the 1 MiB
/// limit allows. Each result is `(outer partition key, data)`; the outer key is the key
/// of the first user record inside. A user record too large to share a record travels
/// alone (Kinesis decides whether it fits).
pub fn aggregate(records: &[UserRecord]) -> Vec<UserRecord> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let mut keys: Vec<&str> = Vec::new();
        let mut size = 0;
        let mut end = start;
        while end < records.len() {
            let r = &records[end];
            let (index, new_key) = match keys.iter().position(|k| *k == r.partition_key) {
                Some(i) => (i, 0),
                None => (keys.len(), field_len(r.partition_key.len())),
            };
            let add = new_key + field_len(record_len(index, r.data.len()));
            if end > start && size + add > MAX_RECORD_BYTES - OVERHEAD {
                break;
            }
            if new_key > 0 {
                keys.push(&r.partition_key);
            }
            size += add;
            end += 1;
        }
        out.push(UserRecord {
            partition_key: records[start].partition_key.clone(),
            data: encode(&records[start..end]),
        });
        start = end;
    }
    out
}

/// One aggregated record holding `records`.
fn encode(records: &[UserRecord]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut indexes = Vec::with_capacity(records.len());
    for r in records {
        let i = match keys.iter().position(|k| *k == r.partition_key) {
            Some(i) => i,
            None => {
                keys.push(&r.partition_key);
                keys.len() - 1
            }
        };
        indexes.push(i);
    }
    let mut proto = Vec::new();
    for k in &keys {
        proto.push(0x0A);
        varint(&mut proto, k.len() as u64);
        proto.extend_from_slice(k.as_bytes());
    }
    for (r, &i) in records.iter().zip(&indexes) {
        proto.push(0x1A);
        varint(&mut proto, record_len(i, r.data.len()) as u64);
        proto.push(0x08);
        varint(&mut proto, i as u64);
        proto.push(0x1A);
        varint(&mut proto, r.data.len() as u64);
        proto.extend_from_slice(&r.data);
    }
    let mut out = Vec::with_capacity(MAGIC.len() + proto.len() + 16);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&proto);
    out.extend_from_slice(&Md5::digest(&proto));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal reader of the format, independent of the writer above.
    fn deaggregate(data: &[u8]) -> Vec<UserRecord> {
        assert_eq!(data[..4], MAGIC);
        let (proto, digest) = data[4..].split_at(data.len() - 20);
        assert_eq!(Md5::digest(proto).as_slice(), digest);
        fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[*pos];
                *pos += 1;
                v |= u64::from(byte & 0x7F) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let (mut keys, mut recs, mut pos) = (Vec::new(), Vec::new(), 0);
        while pos < proto.len() {
            let key = proto[pos];
            pos += 1;
            let len = read_varint(proto, &mut pos) as usize;
            let body = &proto[pos..pos + len];
            pos += len;
            match key {
                0x0A => keys.push(String::from_utf8(body.to_vec()).unwrap()),
                0x1A => {
                    let mut p = 0;
                    assert_eq!(body[p], 0x08);
                    p += 1;
                    let index = read_varint(body, &mut p) as usize;
                    assert_eq!(body[p], 0x1A);
                    p += 1;
                    let dlen = read_varint(body, &mut p) as usize;
                    assert_eq!(p + dlen, body.len());
                    recs.push((index, body[p..].to_vec()));
                }
                other => panic!("unexpected field key {other:#x}"),
            }
        }
        recs.into_iter()
            .map(|(i, data)| UserRecord {
                partition_key: keys[i].clone(),
                data,
            })
            .collect()
    }

    fn rec(key: &str, len: usize) -> UserRecord {
        UserRecord {
            partition_key: key.into(),
            data: (0..len).map(|i| i as u8).collect(),
        }
    }

    #[test]
    fn varint_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn round_trips_with_shared_keys() {
        let input = vec![rec("a", 3), rec("b", 200), rec("a", 0), rec("c", 1)];
        let out = aggregate(&input);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition_key, "a");
        assert_eq!(deaggregate(&out[0].data), input);
    }

    #[test]
    fn splits_under_the_kinesis_limit_and_keeps_order() {
        let input: Vec<_> = (0..9).map(|i| rec(&format!("k{i}"), 300_000)).collect();
        let out = aggregate(&input);
        assert_eq!(out.len(), 3);
        let mut back = Vec::new();
        for r in &out {
            assert!(r.data.len() + r.partition_key.len() <= MAX_RECORD_BYTES);
            back.extend(deaggregate(&r.data));
        }
        assert_eq!(back, input);
        // A record too big for any aggregate still goes, alone.
        let out = aggregate(&[rec("x", 10), rec("big", 2_000_000), rec("y", 10)]);
        assert_eq!(out.len(), 3);
    }
}
