//! One journal stream (journal-and-verification.md §6): a CONTROL CREATED record, then for
//! every block in the window that has revisions a BLOCK_SUMMARY and one REVISION_DETAILS
//! per user revision, then — once ExclusiveEndTime has passed — a CONTROL COMPLETED record.
//! History is replayed first, then new blocks as they commit.
//!
//! Delivery is at least once: progress is recorded only after Kinesis acknowledged a whole
//! batch, so a restart may send the last batch again. When Kinesis refuses records the
//! stream turns IMPAIRED and retries; impaired for longer than `--stream-fail-after-secs`,
//! it turns FAILED.

use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use sha2::{Digest, Sha256};

use super::kpl::{self, UserRecord};
use super::Jobs;
use crate::control::{parse_kinesis_arn, StreamTransition};
use crate::ion::{binary, Data, Value};
use crate::journal::block::hash_field;
use crate::storage::StreamRecord;

/// Blocks read per turn.
const BLOCKS_PER_TURN: usize = 100;
/// Kinesis PutRecords limits: records and bytes per request.
const MAX_RECORDS_PER_PUT: usize = 500;
const MAX_BYTES_PER_PUT: usize = 5 * 1024 * 1024;
/// A block committed just before ExclusiveEndTime may still be on its way to disk.
const END_GRACE_MS: i64 = 1_000;

pub(crate) const NOT_FOUND: &str = "KINESIS_STREAM_NOT_FOUND";
pub(crate) const PERMISSION: &str = "IAM_PERMISSION_REVOKED";

/// A stream record as QLDB writes it: `{qldbStreamArn, recordType, payload}` in Ion binary.
fn user_record(stream_arn: &str, record_type: &str, payload: Value, key: String) -> UserRecord {
    let record = Value::structure([
        ("qldbStreamArn", Value::string(stream_arn)),
        ("recordType", Value::string(record_type)),
        ("payload", payload),
    ]);
    UserRecord {
        partition_key: key,
        data: binary::encode_one(&record),
    }
}

pub(crate) fn control_record(stream_arn: &str, control_type: &str) -> UserRecord {
    user_record(
        stream_arn,
        "CONTROL",
        Value::structure([("controlRecordType", Value::string(control_type))]),
        hex::encode(Sha256::digest(stream_arn.as_bytes())),
    )
}

fn struct_fields(v: &Value) -> &[(Option<String>, Value)] {
    match &v.data {
        Data::Struct(f) => f,
        _ => &[],
    }
}

fn list_items(v: Option<&Value>) -> &[Value] {
    match v.map(|v| &v.data) {
        Some(Data::List(items)) => items,
        _ => &[],
    }
}

/// The records of one block: its BLOCK_SUMMARY, then a REVISION_DETAILS per user revision
/// in block order. Empty for a block without revisions.
pub(crate) fn block_records(stream_arn: &str, block: &Value) -> Vec<UserRecord> {
    let revisions = list_items(block.field("revisions"));
    if revisions.is_empty() {
        return Vec::new();
    }
    let mut summary: Vec<(Option<String>, Value)> = struct_fields(block)
        .iter()
        .filter(|(k, _)| k.as_deref() != Some("revisions"))
        .cloned()
        .collect();
    let summaries = revisions
        .iter()
        .map(|r| {
            let mut f = vec![(
                Some("hash".to_string()),
                r.field("hash").cloned().unwrap_or_else(Value::null),
            )];
            if let Some(id) = r.field("metadata").and_then(|m| m.field("id")) {
                f.push((Some("documentId".to_string()), id.clone()));
            }
            Value::from(Data::Struct(f))
        })
        .collect();
    summary.push((Some("revisionSummaries".into()), Value::list(summaries)));
    let block_key = hex::encode(hash_field(block, "blockHash").unwrap_or_default());
    let mut out = vec![user_record(
        stream_arn,
        "BLOCK_SUMMARY",
        Value::from(Data::Struct(summary)),
        block_key,
    )];
    let documents = block
        .field("transactionInfo")
        .and_then(|t| t.field("documents"));
    for rev in revisions {
        let Some(Data::String(doc_id)) = rev
            .field("metadata")
            .and_then(|m| m.field("id"))
            .map(|v| &v.data)
        else {
            continue; // a system revision
        };
        let doc = documents.and_then(|d| d.field(doc_id));
        let info = |name| {
            doc.and_then(|d| d.field(name))
                .cloned()
                .unwrap_or_else(Value::null)
        };
        let payload = Value::structure([
            (
                "tableInfo",
                Value::structure([
                    ("tableName", info("tableName")),
                    ("tableId", info("tableId")),
                ]),
            ),
            ("revision", rev.clone()),
        ]);
        let key = hex::encode(hash_field(rev, "hash").unwrap_or_default());
        out.push(user_record(stream_arn, "REVISION_DETAILS", payload, key));
    }
    out
}

/// Why a put did not go through.
enum PutError {
    /// Kinesis is reachable but busy: retry soon, the stream stays as it is.
    Throttled(String),
    /// The stream is impaired: its error cause and the detail for the log.
    Impaired(&'static str, String),
}

fn classify<E, R>(e: &SdkError<E, R>) -> PutError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        _ => DisplayErrorContext(e).to_string(),
    };
    match e.code() {
        Some("ProvisionedThroughputExceededException" | "LimitExceededException") => {
            PutError::Throttled(detail)
        }
        Some(c)
            if c.starts_with("AccessDenied")
                || c.starts_with("KMS")
                || c.contains("Token")
                || c == "UnrecognizedClientException" =>
        {
            PutError::Impaired(PERMISSION, detail)
        }
        // The stream is missing, or the endpoint cannot be reached at all.
        _ => PutError::Impaired(NOT_FOUND, detail),
    }
}

/// Sends records with PutRecords, in requests within Kinesis's limits, retrying entries
/// Kinesis refused one by one until all are in.
async fn put_all(
    client: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    records: Vec<UserRecord>,
    retry: Duration,
) -> Result<(), PutError> {
    let mut pending = records;
    let mut attempts = 0;
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut rest = pending.into_iter().peekable();
        while rest.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(r) = rest.peek() {
                let size = r.data.len() + r.partition_key.len();
                if !batch.is_empty()
                    && (batch.len() == MAX_RECORDS_PER_PUT || bytes + size > MAX_BYTES_PER_PUT)
                {
                    break;
                }
                bytes += size;
                batch.push(rest.next().expect("peeked"));
            }
            let entries = batch
                .iter()
                .map(|r| {
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(r.data.clone()))
                        .partition_key(&r.partition_key)
                        .build()
                        .expect("data and partition key are set")
                })
                .collect();
            let out = client
                .put_records()
                .stream_arn(stream_arn)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&e))?;
            for (r, result) in batch.into_iter().zip(out.records()) {
                if result.error_code().is_some() {
                    failed.push(r);
                }
            }
        }
        if !failed.is_empty() {
            attempts += 1;
            if attempts >= 10 {
                return Err(PutError::Throttled(format!(
                    "Kinesis refused {} records 10 times in a row",
                    failed.len()
                )));
            }
            tokio::time::sleep(retry.min(Duration::from_millis(100 * attempts))).await;
        }
        pending = failed;
    }
    Ok(())
}

/// Runs a stream until it completes, is cancelled or fails, or its ledger is deleted.
pub(super) async fn run(jobs: &Jobs, stream_id: &str, lease: &super::Lease) {
    let id = stream_id.to_string();
    let rec = match jobs.blocking(move |cp| cp.stream_record(&id)).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(stream_id, error = %e, "cannot read the journal stream");
            return;
        }
    };
    let Some(target) = parse_kinesis_arn(&rec.kinesis_arn) else {
        tracing::error!(stream_id, arn = %rec.kinesis_arn, "the stream's Kinesis ARN does not parse");
        return;
    };
    let client = jobs.kinesis(&target.region).await;
    loop {
        if lease.lost().await {
            tracing::warn!(stream_id, "lost the job's lease (its database connection was cut): stopping; a server takes the stream over");
            return;
        }
        match turn(jobs, &client, stream_id).await {
            Ok(Turn::Again) => {}
            Ok(Turn::Wait(d)) => tokio::time::sleep(d).await,
            Ok(Turn::Stop) => return,
            Err(e) => {
                tracing::error!(stream_id, error = %e, "journal stream error; retrying");
                tokio::time::sleep(jobs.cfg.stream_retry).await;
            }
        }
    }
}

enum Turn {
    Again,
    Wait(Duration),
    Stop,
}

/// One turn: read the job, send what is due, record what Kinesis acknowledged.
async fn turn(
    jobs: &Jobs,
    client: &aws_sdk_kinesis::Client,
    stream_id: &str,
) -> crate::control::Result<Turn> {
    let id = stream_id.to_string();
    let Some(rec) = jobs.blocking(move |cp| cp.stream_record(&id)).await? else {
        return Ok(Turn::Stop);
    };
    if !rec.is_running() {
        return Ok(Turn::Stop);
    }
    let ledger = rec.ledger_name.clone();
    let Some(db) = jobs.blocking(move |cp| cp.job_ledger(&ledger)).await? else {
        return Ok(Turn::Stop);
    };
    let now = jobs.control.now();
    let (from, start, end) = (rec.next_seq, rec.start_ms, rec.end_ms);
    let blocks =
        tokio::task::spawn_blocking(move || db.blocks_in_window(from, start, end, BLOCKS_PER_TURN))
            .await
            .map_err(|e| crate::control::ControlError::Internal(e.to_string()))??;

    let mut groups: Vec<Vec<UserRecord>> = Vec::new();
    if !rec.created_sent {
        groups.push(vec![control_record(&rec.arn, "CREATED")]);
    }
    let mut next_seq = rec.next_seq;
    for (seq, _, block) in &blocks {
        let records = block_records(&rec.arn, block);
        if !records.is_empty() {
            groups.push(records);
        }
        next_seq = seq + 1;
    }
    let finished = blocks.is_empty() && end.is_some_and(|e| now >= e + END_GRACE_MS);
    if finished {
        groups.push(vec![control_record(&rec.arn, "COMPLETED")]);
    }
    let caught_up = blocks.len() < BLOCKS_PER_TURN;
    if groups.is_empty() {
        if next_seq != rec.next_seq {
            record_progress(jobs, &rec, next_seq).await?;
        }
        return Ok(if caught_up {
            Turn::Wait(jobs.cfg.stream_poll)
        } else {
            Turn::Again
        });
    }
    let records: Vec<UserRecord> = if rec.aggregation {
        groups.iter().flat_map(|g| kpl::aggregate(g)).collect()
    } else {
        groups.into_iter().flatten().collect()
    };
    let count = records.len();
    match put_all(client, &rec.kinesis_arn, records, jobs.cfg.stream_retry).await {
        Ok(()) => {
            if rec.status == "IMPAIRED" {
                let id = stream_id.to_string();
                jobs.blocking(move |cp| cp.transition_stream(&id, StreamTransition::Active))
                    .await?;
                tracing::info!(stream_id, "journal stream recovered");
            }
            if !record_progress(jobs, &rec, next_seq).await? {
                return Ok(Turn::Stop);
            }
            tracing::debug!(
                stream_id,
                records = count,
                next_block = next_seq,
                "journal stream progress"
            );
            if finished {
                let id = stream_id.to_string();
                jobs.blocking(move |cp| cp.transition_stream(&id, StreamTransition::Completed))
                    .await?;
                tracing::info!(stream_id, "journal stream completed");
                return Ok(Turn::Stop);
            }
            Ok(if caught_up {
                Turn::Wait(jobs.cfg.stream_poll)
            } else {
                Turn::Again
            })
        }
        Err(PutError::Throttled(detail)) => {
            tracing::warn!(stream_id, %detail, "Kinesis is throttling the journal stream");
            Ok(Turn::Wait(jobs.cfg.stream_retry))
        }
        Err(PutError::Impaired(cause, detail)) => {
            let impaired_for = rec.impaired_ms.map_or(0, |t| now - t);
            let to = if impaired_for >= jobs.cfg.stream_fail_after.as_millis() as i64
                && rec.impaired_ms.is_some()
            {
                StreamTransition::Failed(cause)
            } else {
                StreamTransition::Impaired(cause)
            };
            tracing::warn!(stream_id, cause, %detail, "journal stream cannot write to Kinesis");
            let id = stream_id.to_string();
            jobs.blocking(move |cp| cp.transition_stream(&id, to))
                .await?;
            Ok(match to {
                StreamTransition::Failed(_) => Turn::Stop,
                _ => Turn::Wait(jobs.cfg.stream_retry),
            })
        }
    }
}

async fn record_progress(
    jobs: &Jobs,
    rec: &StreamRecord,
    next_seq: u64,
) -> crate::control::Result<bool> {
    let id = rec.stream_id.clone();
    jobs.blocking(move |cp| cp.stream_progress(&id, next_seq, true))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ion::text::from_text_one;

    #[test]
    fn block_records_follow_the_documented_shapes() {
        let block = from_text_one(
            r#"{blockAddress:{strandId:"S",sequenceNo:3},transactionId:"T",
                blockTimestamp:2020-01-01T00:00:00.000Z,blockHash:{{AAEC}},entriesHash:{{AQ==}},
                previousBlockHash:{{Ag==}},entriesHashList:[{{Aw==}}],
                transactionInfo:{statements:[],documents:{D1:{tableName:"Cars",tableId:"TB",statements:[0]}}},
                revisions:[{hash:{{BA==}}},
                           {blockAddress:{strandId:"S",sequenceNo:3},hash:{{BQY=}},data:{a:1},
                            metadata:{id:"D1",version:0,txTime:2020-01-01T00:00:00.000Z,txId:"T"}}]}"#,
        )
        .unwrap();
        let recs = block_records("arn:aws:qldb:us-east-1:000000000000:stream/l/s", &block);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].partition_key, "000102");
        assert_eq!(recs[1].partition_key, "0506");
        let summary = binary::decode(&recs[0].data).unwrap().remove(0);
        assert_eq!(
            summary.field("recordType"),
            Some(&Value::string("BLOCK_SUMMARY"))
        );
        let payload = summary.field("payload").unwrap();
        assert!(payload.field("revisions").is_none());
        let sums = list_items(payload.field("revisionSummaries"));
        assert_eq!(sums.len(), 2);
        assert!(sums[0].field("documentId").is_none());
        assert_eq!(sums[1].field("documentId"), Some(&Value::string("D1")));
        let details = binary::decode(&recs[1].data).unwrap().remove(0);
        let payload = details.field("payload").unwrap();
        let names: Vec<_> = struct_fields(payload)
            .iter()
            .map(|(k, _)| k.clone().unwrap())
            .collect();
        assert_eq!(names, ["tableInfo", "revision"], "tableInfo comes first");
        assert_eq!(
            payload.field("tableInfo").unwrap().field("tableName"),
            Some(&Value::string("Cars"))
        );
        // A block without revisions (genesis, read-only) sends nothing.
        let empty = from_text_one("{blockAddress:{strandId:\"S\",sequenceNo:0}}").unwrap();
        assert!(block_records("arn", &empty).is_empty());
        let c = control_record("arn", "CREATED");
        assert_eq!(c.partition_key.len(), 64);
    }
}
