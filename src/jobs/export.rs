//! One journal export (journal-and-verification.md §5): the started manifest, the data
//! objects `{prefix}{yyyy}/{mm}/{dd}/{hh}/{strandId}.{first}-{last}.{ext}` (contiguous
//! blocks of one UTC hour, at most `--export-blocks-per-object` each), then the completed
//! manifest listing every data object's full key. Progress is recorded after each object, so
//! a restarted server continues where S3 last acknowledged.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::Jobs;
use crate::ion::{binary, json, text, Data, Timestamp, Value};
use crate::storage::ExportRecord;

const HOUR_MS: i64 = 3_600_000;

/// An export's output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    IonText,
    IonBinary,
    Json,
}

impl Format {
    fn of(requested: Option<&str>) -> Self {
        match requested {
            Some("ION_BINARY") => Format::IonBinary,
            Some("JSON") => Format::Json,
            _ => Format::IonText,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::IonText | Format::IonBinary => "ion",
            Format::Json => "json",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::IonText => "text/x-amzn-ion",
            Format::IonBinary => "application/x-amzn-ion",
            Format::Json => "application/json",
        }
    }

    /// Top-level values one after another: Ion text and JSON one per line, Ion binary as
    /// one stream with one symbol table.
    pub(crate) fn encode(self, values: &[Value]) -> Vec<u8> {
        match self {
            Format::IonBinary => binary::encode(values),
            Format::IonText | Format::Json => {
                let mut out = String::new();
                for v in values {
                    out.push_str(&match self {
                        Format::Json => json::to_json(v),
                        _ => text::to_text_one(v),
                    });
                    out.push('\n');
                }
                out.into_bytes()
            }
        }
    }
}

/// The key of a data object.
pub(crate) fn data_key(
    prefix: &str,
    strand: &str,
    first: u64,
    last: u64,
    ts_ms: i64,
    ext: &str,
) -> String {
    let t = Timestamp::from_millis_utc(ts_ms);
    format!(
        "{prefix}{:04}/{:02}/{:02}/{:02}/{strand}.{first}-{last}.{ext}",
        t.year, t.month, t.day, t.hour
    )
}

fn started_manifest(rec: &ExportRecord) -> Value {
    let ts = |ms| Value::from(Data::Timestamp(Timestamp::from_millis_utc(ms)));
    let mut fields = vec![
        ("ledgerName", Value::string(rec.ledger_name.clone())),
        ("exportId", Value::string(rec.export_id.clone())),
        ("inclusiveStartTime", ts(rec.start_ms)),
        ("exclusiveEndTime", ts(rec.end_ms)),
        ("bucket", Value::string(rec.bucket.clone())),
        ("prefix", Value::string(rec.prefix.clone())),
        (
            "objectEncryptionType",
            Value::string(rec.encryption_type.clone()),
        ),
    ];
    if let Some(f) = &rec.output_format {
        fields.push(("outputFormat", Value::string(f.clone())));
    }
    Value::structure(fields)
}

/// A short reason for an S3 failure: the service's code and message, or the transport
/// error.
fn s3_error<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => DisplayErrorContext(e).to_string(),
    }
}

struct Writer<'a> {
    s3: &'a aws_sdk_s3::Client,
    rec: &'a ExportRecord,
    format: Format,
}

impl Writer<'_> {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        let rec = self.rec;
        let mut req = self
            .s3
            .put_object()
            .bucket(&rec.bucket)
            .key(key)
            .content_type(self.format.content_type())
            .body(ByteStream::from(body));
        req = match rec.encryption_type.as_str() {
            "SSE_S3" => req.server_side_encryption(ServerSideEncryption::Aes256),
            "SSE_KMS" => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(rec.kms_key_arn.clone()),
            _ => req,
        };
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| format!("writing s3://{}/{key} failed: {}", rec.bucket, s3_error(&e)))
    }
}

/// Runs an export to its end and records the outcome.
/// What `export` fails with when the job's lease was lost: the export is left IN_PROGRESS
/// for the server that takes it over.
const LEASE_LOST: &str = "lost the job's lease";

pub(super) async fn run(jobs: &Jobs, export_id: &str, lease: &super::Lease) {
    match export(jobs, export_id, lease).await {
        Ok(()) => {}
        // Lost by a cut connection (which may also be what failed the step): the export
        // stays IN_PROGRESS for the server that takes it over.
        Err(reason) if reason == LEASE_LOST || lease.lost().await => {
            tracing::warn!(export_id, %reason, "lost the job's lease (its database connection was cut): stopping; a server takes the export over");
        }
        Err(reason) => {
            tracing::warn!(export_id, %reason, "journal export cancelled");
            let id = export_id.to_string();
            let done = jobs
                .blocking(move |cp| cp.finish_export(&id, "CANCELLED", Some(&reason)))
                .await;
            if let Err(e) = done {
                tracing::error!(export_id, error = %e, "cannot record a cancelled export");
            }
        }
    }
}

async fn export(jobs: &Jobs, export_id: &str, lease: &super::Lease) -> Result<(), String> {
    let id = export_id.to_string();
    let rec = jobs
        .blocking(move |cp| cp.export_record(&id))
        .await
        .map_err(|e| e.to_string())?;
    let Some(rec) = rec.filter(|r| r.status == "IN_PROGRESS") else {
        return Ok(());
    };
    let ledger = rec.ledger_name.clone();
    let db = jobs
        .blocking(move |cp| cp.job_ledger(&ledger))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the ledger was deleted")?;
    let (start, end, from) = (rec.start_ms, rec.end_ms, rec.next_seq);
    let per_object = jobs.cfg.blocks_per_object;
    let (strand, total, remaining) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || -> crate::storage::Result<_> {
            Ok((
                db.tip()?.strand_id,
                db.count_in_window(0, start, end)?,
                db.count_in_window(from, start, end)?,
            ))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    let w = Writer {
        s3: jobs.s3().await,
        rec: &rec,
        format: Format::of(rec.output_format.as_deref()),
    };
    let prefix = &rec.prefix;
    w.put(
        &format!("{prefix}{export_id}.started.manifest"),
        w.format.encode(&[started_manifest(&rec)]),
    )
    .await?;
    tracing::info!(export_id, ledger = %rec.ledger_name, blocks = total, "journal export started");

    let mut written = total - remaining;
    let mut next = from;
    loop {
        if lease.lost().await {
            return Err(LEASE_LOST.into());
        }
        let mut batch = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || {
                db.blocks_in_window(next, start, Some(end), per_object)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading the journal failed: {e}"))?
        };
        let Some(&(first, first_ts, _)) = batch.first() else {
            break;
        };
        // An object never spans an hour.
        batch.retain(|(_, ts, _)| ts.div_euclid(HOUR_MS) == first_ts.div_euclid(HOUR_MS));
        let last = batch.last().map_or(first, |b| b.0);
        let key = data_key(prefix, &strand, first, last, first_ts, w.format.extension());
        let blocks: Vec<Value> = batch.into_iter().map(|(_, _, b)| b).collect();
        w.put(&key, w.format.encode(&blocks)).await?;
        written += blocks.len() as u64;
        next = last + 1;
        let (id, k) = (export_id.to_string(), key.clone());
        jobs.blocking(move |cp| cp.export_progress(&id, next, &k))
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(export_id, written, total, key = %key, "journal export progress: {written} of {total} blocks");
    }

    let id = export_id.to_string();
    let keys = jobs
        .blocking(move |cp| cp.export_objects(&id))
        .await
        .map_err(|e| e.to_string())?;
    let objects = keys.len();
    let manifest = Value::structure([(
        "keys",
        Value::list(keys.into_iter().map(Value::string).collect()),
    )]);
    w.put(
        &format!("{prefix}{export_id}.{strand}.completed.manifest"),
        w.format.encode(&[manifest]),
    )
    .await?;
    let id = export_id.to_string();
    jobs.blocking(move |cp| cp.finish_export(&id, "COMPLETED", None))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        export_id,
        blocks = total,
        objects,
        "journal export completed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        // 2019-04-15T22:05:00Z
        let key = data_key(
            "journalExport/",
            "JdxjkR9bSYB5jMHWcI464T",
            1,
            4,
            1_555_365_900_000,
            "ion",
        );
        assert_eq!(
            key,
            "journalExport/2019/04/15/22/JdxjkR9bSYB5jMHWcI464T.1-4.ion"
        );
        // The sequence range is the second-to-last dot-separated piece, as consumers parse it.
        let pieces: Vec<&str> = key.split('.').collect();
        assert_eq!(pieces[pieces.len() - 2], "1-4");
    }

    #[test]
    fn formats_write_one_top_level_value_per_block() {
        let blocks = vec![
            text::from_text_one("{a:1, t:2020-01-01T00:00:00.000Z}").unwrap(),
            text::from_text_one("{a:2.50, s:sym}").unwrap(),
        ];
        let t = String::from_utf8(Format::IonText.encode(&blocks)).unwrap();
        assert_eq!(text::from_text(&t).unwrap(), blocks);
        assert_eq!(t.lines().count(), 2);
        assert_eq!(
            binary::decode(&Format::IonBinary.encode(&blocks)).unwrap(),
            blocks
        );
        let j = String::from_utf8(Format::Json.encode(&blocks)).unwrap();
        let lines: Vec<serde_json::Value> = j
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["t"], "2020-01-01T00:00:00.000Z");
        assert_eq!(lines[1]["s"], "sym");
    }
}
