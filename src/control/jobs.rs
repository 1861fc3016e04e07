//! ExportJournalToS3 and StreamJournalToKinesis with their Describe, List and Cancel
//! operations: validation, the catalog records, and the small API the background workers of
//! [`crate::jobs`] use to read a job and report its progress.
//!
//! The workers do the S3 and Kinesis I/O; this module never waits on the network.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use super::ledgers::{decode_token, encode_token, parse_max_results};
use super::parse_ledger_name;
use super::tags::validate_new_tags;
use super::{ControlError, ControlPlane, Inner, Result};
use crate::api::qldb::*;
use crate::names::{check_len, check_unique_id, new_unique_id, LedgerName, Violation};
use crate::storage::{ExportRecord, JobLease, LedgerStore, StreamRecord};

/// What [`ControlPlane::job_lease`] found.
pub enum JobLeased {
    /// The lease this server took when it accepted the job.
    Accepted(Box<dyn JobLease>),
    /// The lease of a job no running server held.
    Taken(Box<dyn JobLease>),
    /// Another server on the same storage holds it.
    HeldElsewhere,
}

/// A new job's lease while its row is inserted ([`ControlPlane::take_first_lease`]): dropped
/// unkept (the insert failed), it gives the lease up.
struct PendingLease<'a> {
    cp: &'a ControlPlane,
    id: String,
    kept: bool,
}

impl PendingLease<'_> {
    /// The job's row is in: its lease waits for the job's task.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for PendingLease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.cp.new_leases().remove(&self.id);
        }
    }
}

/// QLDB's quota of exports in progress per ledger.
pub const MAX_CONCURRENT_EXPORTS: usize = 2;
/// QLDB's quota of active journal streams per ledger.
pub const MAX_ACTIVE_STREAMS: usize = 5;

const OUTPUT_FORMATS: &[&str] = &["ION_BINARY", "ION_TEXT", "JSON"];
const ENCRYPTION_TYPES: &[&str] = &["SSE_KMS", "SSE_S3", "NO_ENCRYPTION"];
const BUCKET_PATTERN: &str = "^[A-Za-z-0-9-_.]+$";

/// A Kinesis data stream named by its ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisStreamArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

/// Parses `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
pub fn parse_kinesis_arn(arn: &str) -> Option<KinesisStreamArn> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "kinesis", region, account, resource] = parts[..] else {
        return None;
    };
    let name = resource.strip_prefix("stream/")?;
    let name_ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (partition.starts_with("aws") && region_ok && is_account(account) && name_ok).then(|| {
        KinesisStreamArn {
            region: region.into(),
            account: account.into(),
            name: name.into(),
        }
    })
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A required member, or the Coral "must not be null" error.
fn required<T>(value: Option<T>, member: &str, param: &str) -> Result<T> {
    value.ok_or_else(|| ControlError::missing(member, param))
}

/// A restJson1 timestamp member: epoch seconds (a JSON number, fractions allowed), or an
/// RFC 3339 string as some hand-written clients send. Returns epoch milliseconds.
fn parse_time(value: Option<&TimestampIn>, member: &str, param: &str) -> Result<Option<i64>> {
    let bad = |shown: String| {
        ControlError::invalid_param(
            format!("Value '{shown}' at '{member}' is not a valid timestamp"),
            param,
        )
    };
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => {
            let secs = n.as_f64().ok_or_else(|| bad(n.to_string()))?;
            // Years 0001–9999, as Ion and the service accept.
            if !(-62_135_596_800.0..253_402_300_800.0).contains(&secs) {
                return Err(bad(n.to_string()));
            }
            Ok(Some((secs * 1000.0).round() as i64))
        }
        Some(serde_json::Value::String(s)) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
                .map_err(|_| bad(s.clone()))
        }
        Some(other) => Err(bad(other.to_string())),
    }
}

/// InclusiveStartTime (required) and ExclusiveEndTime (optional here), in milliseconds.
fn parse_window(
    start: Option<&TimestampIn>,
    end: Option<&TimestampIn>,
) -> Result<(i64, Option<i64>)> {
    let start = parse_time(start, "inclusiveStartTime", "InclusiveStartTime")?;
    let start = required(start, "inclusiveStartTime", "InclusiveStartTime")?;
    let end = parse_time(end, "exclusiveEndTime", "ExclusiveEndTime")?;
    Ok((start, end))
}

fn start_before_end(start: i64, end: Option<i64>) -> Result<()> {
    if end.is_some_and(|e| start >= e) {
        return Err(ControlError::invalid_param(
            "The InclusiveStartTime must be before the ExclusiveEndTime",
            "InclusiveStartTime",
        ));
    }
    Ok(())
}

/// A start before the ledger existed is clamped to its creation — unless the window ends
/// before that, when the (empty) window is kept as requested rather than inverted.
fn clamp_start(start: i64, ledger: &crate::storage::LedgerRecord, end: Option<i64>) -> i64 {
    let clamped = start.max(ledger.created_ms);
    if end.is_some_and(|e| clamped >= e) {
        start
    } else {
        clamped
    }
}

fn check_enum(value: &str, allowed: &[&str], member: &str, param: &str) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ControlError::invalid(
            Violation::enum_value(allowed),
            value,
            member,
            param,
        ))
    }
}

/// `Arn`-shaped members: 20–1600 characters.
fn check_arn_len(value: &str, member: &str, param: &str) -> Result<()> {
    check_len(value, 20, 1600).map_err(|v| ControlError::invalid(v, value, member, param))
}

/// The role QLDB would assume: `arn:<partition>:iam::<account>:role/<path/name>`.
fn check_role_arn(arn: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts[..] {
        ["arn", partition, "iam", "", account, resource] => {
            partition.starts_with("aws")
                && is_account(account)
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|r| !r.is_empty() && !r.ends_with('/'))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ControlError::invalid_param(
            format!(
                "Invalid RoleArn '{arn}': expected an IAM role ARN such as arn:aws:iam::123456789012:role/QLDBExport"
            ),
            "RoleArn",
        ))
    }
}

fn export_not_found(ledger: &str, id: &str) -> ControlError {
    ControlError::ResourceNotFound {
        message: format!("Export '{id}' of ledger '{ledger}' does not exist"),
        resource_type: "JOURNAL_S3_EXPORT".into(),
        resource_name: id.into(),
    }
}

fn stream_not_found(ledger: &str, id: &str) -> ControlError {
    ControlError::ResourceNotFound {
        message: format!("Journal stream '{id}' of ledger '{ledger}' does not exist"),
        resource_type: "JOURNAL_KINESIS_STREAM".into(),
        resource_name: id.into(),
    }
}

fn describe_export(r: &ExportRecord) -> JournalS3ExportDescription {
    JournalS3ExportDescription {
        ledger_name: r.ledger_name.clone(),
        export_id: r.export_id.clone(),
        export_creation_time: EpochMillis(r.created_ms),
        status: r.status.clone(),
        inclusive_start_time: EpochMillis(r.start_ms),
        exclusive_end_time: EpochMillis(r.end_ms),
        s3_export_configuration: S3ExportConfiguration {
            bucket: Some(r.bucket.clone()),
            prefix: Some(r.prefix.clone()),
            encryption_configuration: Some(S3EncryptionConfiguration {
                object_encryption_type: Some(r.encryption_type.clone()),
                kms_key_arn: r.kms_key_arn.clone(),
            }),
        },
        role_arn: r.role_arn.clone(),
        output_format: r.output_format.clone(),
        status_reason: r.status_reason.clone(),
    }
}

fn describe_stream(r: &StreamRecord) -> JournalKinesisStreamDescription {
    JournalKinesisStreamDescription {
        ledger_name: r.ledger_name.clone(),
        creation_time: EpochMillis(r.created_ms),
        inclusive_start_time: EpochMillis(r.start_ms),
        exclusive_end_time: r.end_ms.map(EpochMillis),
        role_arn: r.role_arn.clone(),
        stream_id: r.stream_id.clone(),
        arn: r.arn.clone(),
        status: r.status.clone(),
        kinesis_configuration: KinesisConfiguration {
            stream_arn: Some(r.kinesis_arn.clone()),
            aggregation_enabled: Some(r.aggregation),
        },
        error_cause: r.error_cause.clone(),
        stream_name: r.stream_name.clone(),
    }
}

/// Where a stream goes next, as its worker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTransition<'a> {
    /// Kinesis accepts records (again).
    Active,
    /// Kinesis refuses them; the worker keeps retrying.
    Impaired(&'a str),
    /// Every block before ExclusiveEndTime was delivered, and the COMPLETED record.
    Completed,
    /// Impaired for too long.
    Failed(&'a str),
}

/// A page of records ordered by `ord`, with the token of the next page.
fn page_of<T>(
    page: &PageRequest,
    fetch: impl FnOnce(i64, usize) -> Result<Vec<T>>,
    ord: impl Fn(&T) -> i64,
) -> Result<(Vec<T>, Option<String>)> {
    let limit = parse_max_results(page.max_results.as_deref())? as usize;
    let after = match page.next_token.as_deref() {
        Some(t) => decode_token(t)?,
        None => i64::MIN,
    };
    let mut items = fetch(after, limit + 1)?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|r| encode_token(ord(r)))
    } else {
        None
    };
    Ok((items, next))
}

impl ControlPlane {
    /// Forgets exports and streams that ended longer ago than the retention period.
    fn expire_jobs(&self, inner: &mut Inner) -> Result<()> {
        let cutoff = self.now().saturating_sub(self.cfg.job_retention_ms);
        Ok(inner.catalog.expire_jobs(cutoff)?)
    }

    /// A ledger for Describe/List: it must exist and not be DELETING.
    fn jobs_ledger(&self, inner: &mut Inner, name: &str) -> Result<LedgerName> {
        let name = parse_ledger_name(Some(name))?;
        self.live(inner, &name)?;
        self.expire_jobs(inner)?;
        Ok(name)
    }

    pub fn export_journal_to_s3(
        &self,
        name: &str,
        req: ExportJournalToS3Request,
    ) -> Result<ExportJournalToS3Response> {
        let name = parse_ledger_name(Some(name))?;
        let (start, end) = parse_window(
            req.inclusive_start_time.as_ref(),
            req.exclusive_end_time.as_ref(),
        )?;
        let end = required(end, "exclusiveEndTime", "ExclusiveEndTime")?;
        let s3 = required(
            req.s3_export_configuration,
            "s3ExportConfiguration",
            "S3ExportConfiguration",
        )?;
        let role_arn = required(req.role_arn, "roleArn", "RoleArn")?;
        let bucket = required(s3.bucket, "s3ExportConfiguration.bucket", "Bucket")?;
        let prefix = required(s3.prefix, "s3ExportConfiguration.prefix", "Prefix")?;
        let enc = required(
            s3.encryption_configuration,
            "s3ExportConfiguration.encryptionConfiguration",
            "EncryptionConfiguration",
        )?;
        let enc_type = required(
            enc.object_encryption_type,
            "s3ExportConfiguration.encryptionConfiguration.objectEncryptionType",
            "ObjectEncryptionType",
        )?;

        check_len(&bucket, 3, 255).map_err(|v| {
            ControlError::invalid(v, &bucket, "s3ExportConfiguration.bucket", "Bucket")
        })?;
        let bucket_ok = bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !bucket_ok {
            return Err(ControlError::invalid(
                Violation::pattern(BUCKET_PATTERN),
                &bucket,
                "s3ExportConfiguration.bucket",
                "Bucket",
            ));
        }
        check_len(&prefix, 0, 128).map_err(|v| {
            ControlError::invalid(v, &prefix, "s3ExportConfiguration.prefix", "Prefix")
        })?;
        check_enum(
            &enc_type,
            ENCRYPTION_TYPES,
            "s3ExportConfiguration.encryptionConfiguration.objectEncryptionType",
            "ObjectEncryptionType",
        )?;
        if let Some(key) = &enc.kms_key_arn {
            check_arn_len(
                key,
                "s3ExportConfiguration.encryptionConfiguration.kmsKeyArn",
                "KmsKeyArn",
            )?;
        }
        check_arn_len(&role_arn, "roleArn", "RoleArn")?;
        if let Some(f) = &req.output_format {
            check_enum(f, OUTPUT_FORMATS, "outputFormat", "OutputFormat")?;
        }
        match (enc_type.as_str(), &enc.kms_key_arn) {
            ("SSE_KMS", None) => {
                return Err(ControlError::invalid_param(
                    "KmsKeyArn is required when ObjectEncryptionType is SSE_KMS",
                    "KmsKeyArn",
                ))
            }
            ("SSE_KMS", Some(_)) | (_, None) => {}
            (other, Some(_)) => {
                return Err(ControlError::invalid_param(
                    format!("KmsKeyArn must not be given when ObjectEncryptionType is {other}"),
                    "KmsKeyArn",
                ))
            }
        }
        check_role_arn(&role_arn)?;

        let mut inner = self.lock();
        let ledger = self.active_record(&mut inner, &name)?;
        let now = self.now();
        start_before_end(start, Some(end))?;
        if end > now {
            return Err(ControlError::invalid_param(
                "The ExclusiveEndTime cannot be in the future",
                "ExclusiveEndTime",
            ));
        }
        self.expire_jobs(&mut inner)?;
        let running = inner
            .catalog
            .exports_after(Some(name.as_str()), i64::MIN, usize::MAX >> 1)?
            .into_iter()
            .filter(|e| e.status == "IN_PROGRESS")
            .count();
        if running >= MAX_CONCURRENT_EXPORTS {
            return Err(ControlError::LimitExceeded {
                message: format!(
                    "Exceeded the limit of {MAX_CONCURRENT_EXPORTS} concurrent journal exports for ledger '{name}'"
                ),
                resource_type: "JOURNAL_S3_EXPORT".into(),
            });
        }
        let rec = ExportRecord {
            ord: 0,
            export_id: new_unique_id(),
            ledger_name: name.to_string(),
            created_ms: now,
            status: "IN_PROGRESS".into(),
            start_ms: clamp_start(start, &ledger, Some(end)),
            end_ms: end,
            bucket,
            prefix,
            encryption_type: enc_type,
            kms_key_arn: enc.kms_key_arn,
            role_arn,
            output_format: req.output_format,
            status_reason: None,
            next_seq: 0,
            finished_ms: None,
        };
        let pending = self.take_first_lease(&rec.export_id);
        inner.catalog.insert_export(&rec)?;
        pending.keep();
        tracing::info!(ledger = %name, export_id = %rec.export_id, bucket = %rec.bucket, "journal export accepted");
        Ok(ExportJournalToS3Response {
            export_id: rec.export_id,
        })
    }

    pub fn describe_journal_s3_export(
        &self,
        name: &str,
        export_id: &str,
    ) -> Result<DescribeJournalS3ExportResponse> {
        // The request's shape first (both labels), then the resources.
        parse_ledger_name(Some(name))?;
        check_unique_id(export_id)
            .map_err(|v| ControlError::invalid(v, export_id, "exportId", "ExportId"))?;
        let mut inner = self.lock();
        let name = self.jobs_ledger(&mut inner, name)?;
        match inner.catalog.export(export_id)? {
            Some(r) if r.ledger_name == name.as_str() => Ok(DescribeJournalS3ExportResponse {
                export_description: describe_export(&r),
            }),
            _ => Err(export_not_found(name.as_str(), export_id)),
        }
    }

    /// ListJournalS3Exports (`ledger` = None) and ListJournalS3ExportsForLedger.
    pub fn list_journal_s3_exports(
        &self,
        ledger: Option<&str>,
        page: PageRequest,
    ) -> Result<ListJournalS3ExportsResponse> {
        let mut inner = self.lock();
        let ledger = match ledger {
            Some(l) => Some(self.jobs_ledger(&mut inner, l)?),
            None => {
                self.purge(&mut inner, self.now())?;
                self.expire_jobs(&mut inner)?;
                None
            }
        };
        let catalog = &inner.catalog;
        let (items, next_token) = page_of(
            &page,
            |after, n| Ok(catalog.exports_after(ledger.as_ref().map(|l| l.as_str()), after, n)?),
            |r| r.ord,
        )?;
        Ok(ListJournalS3ExportsResponse {
            journal_s3_exports: items.iter().map(describe_export).collect(),
            next_token,
        })
    }

    pub fn stream_journal_to_kinesis(
        &self,
        name: &str,
        req: StreamJournalToKinesisRequest,
    ) -> Result<StreamIdResponse> {
        let name = parse_ledger_name(Some(name))?;
        let role_arn = required(req.role_arn, "roleArn", "RoleArn")?;
        let (start, end) = parse_window(
            req.inclusive_start_time.as_ref(),
            req.exclusive_end_time.as_ref(),
        )?;
        let kinesis = required(
            req.kinesis_configuration,
            "kinesisConfiguration",
            "KinesisConfiguration",
        )?;
        let stream_name = required(req.stream_name, "streamName", "StreamName")?;
        let kinesis_arn = required(
            kinesis.stream_arn,
            "kinesisConfiguration.streamArn",
            "StreamArn",
        )?;
        check_arn_len(&role_arn, "roleArn", "RoleArn")?;
        check_arn_len(&kinesis_arn, "kinesisConfiguration.streamArn", "StreamArn")?;
        let stream_name = LedgerName::parse(&stream_name)
            .map_err(|v| ControlError::invalid(v, &stream_name, "streamName", "StreamName"))?;
        let tags = validate_new_tags(req.tags.unwrap_or_default(), &Default::default())?;
        check_role_arn(&role_arn)?;
        if parse_kinesis_arn(&kinesis_arn).is_none() {
            return Err(ControlError::invalid_param(
                format!(
                    "Invalid StreamArn '{kinesis_arn}': expected a Kinesis data stream ARN such as arn:aws:kinesis:us-east-1:123456789012:stream/my-stream"
                ),
                "StreamArn",
            ));
        }

        let mut inner = self.lock();
        let ledger = self.active_record(&mut inner, &name)?;
        let now = self.now();
        if start > now {
            return Err(ControlError::invalid_param(
                "The InclusiveStartTime cannot be in the future",
                "InclusiveStartTime",
            ));
        }
        start_before_end(start, end)?;
        self.expire_jobs(&mut inner)?;
        let running: Vec<StreamRecord> = inner
            .catalog
            .streams_after(Some(name.as_str()), i64::MIN, usize::MAX >> 1)?
            .into_iter()
            .filter(StreamRecord::is_running)
            .collect();
        if running
            .iter()
            .any(|s| s.stream_name == stream_name.as_str())
        {
            return Err(ControlError::invalid_param(
                format!(
                    "Ledger '{name}' already has an active journal stream named '{stream_name}'"
                ),
                "StreamName",
            ));
        }
        if running.len() >= MAX_ACTIVE_STREAMS {
            return Err(ControlError::LimitExceeded {
                message: format!(
                    "Exceeded the limit of {MAX_ACTIVE_STREAMS} active journal streams for ledger '{name}'"
                ),
                resource_type: "JOURNAL_KINESIS_STREAM".into(),
            });
        }
        let stream_id = new_unique_id();
        let rec = StreamRecord {
            ord: 0,
            arn: self.stream_arn(name.as_str(), &stream_id),
            stream_id,
            ledger_name: name.to_string(),
            stream_name: stream_name.to_string(),
            created_ms: now,
            status: "ACTIVE".into(),
            start_ms: clamp_start(start, &ledger, end),
            end_ms: end,
            role_arn,
            kinesis_arn,
            aggregation: kinesis.aggregation_enabled.unwrap_or(true),
            error_cause: None,
            impaired_ms: None,
            next_seq: 0,
            created_sent: false,
            finished_ms: None,
        };
        let pending = self.take_first_lease(&rec.stream_id);
        inner.catalog.insert_stream(&rec, &tags)?;
        pending.keep();
        tracing::info!(ledger = %name, stream_id = %rec.stream_id, kinesis = %rec.kinesis_arn, "journal stream created");
        Ok(StreamIdResponse {
            stream_id: rec.stream_id,
        })
    }

    /// A stream of a ledger, for Describe and Cancel.
    fn ledger_stream(&self, inner: &mut Inner, name: &str, id: &str) -> Result<StreamRecord> {
        parse_ledger_name(Some(name))?;
        check_unique_id(id).map_err(|v| ControlError::invalid(v, id, "streamId", "StreamId"))?;
        let name = self.jobs_ledger(inner, name)?;
        match inner.catalog.stream(id)? {
            Some(r) if r.ledger_name == name.as_str() => Ok(r),
            _ => Err(stream_not_found(name.as_str(), id)),
        }
    }

    pub fn describe_journal_kinesis_stream(
        &self,
        name: &str,
        stream_id: &str,
    ) -> Result<DescribeJournalKinesisStreamResponse> {
        let mut inner = self.lock();
        let rec = self.ledger_stream(&mut inner, name, stream_id)?;
        Ok(DescribeJournalKinesisStreamResponse {
            stream: describe_stream(&rec),
        })
    }

    pub fn list_journal_kinesis_streams_for_ledger(
        &self,
        name: &str,
        page: PageRequest,
    ) -> Result<ListJournalKinesisStreamsResponse> {
        let mut inner = self.lock();
        let name = self.jobs_ledger(&mut inner, name)?;
        let catalog = &inner.catalog;
        let (items, next_token) = page_of(
            &page,
            |after, n| Ok(catalog.streams_after(Some(name.as_str()), after, n)?),
            |r| r.ord,
        )?;
        Ok(ListJournalKinesisStreamsResponse {
            streams: items.iter().map(describe_stream).collect(),
            next_token,
        })
    }

    pub fn cancel_journal_kinesis_stream(
        &self,
        name: &str,
        stream_id: &str,
    ) -> Result<StreamIdResponse> {
        let mut inner = self.lock();
        let rec = self.ledger_stream(&mut inner, name, stream_id)?;
        let now = self.now();
        let cancelled = rec.status == "ACTIVE"
            && inner
                .catalog
                .set_stream_status(stream_id, "CANCELED", None, None, Some(now))?;
        if !cancelled {
            return Err(ControlError::ResourcePreconditionNotMet {
                message: format!(
                    "Journal stream '{stream_id}' is {}; only an ACTIVE stream can be cancelled",
                    rec.status
                ),
                resource_type: "JOURNAL_KINESIS_STREAM".into(),
                resource_name: stream_id.into(),
            });
        }
        tracing::info!(ledger = %rec.ledger_name, stream_id, "journal stream cancelled");
        Ok(StreamIdResponse {
            stream_id: rec.stream_id,
        })
    }

    // ---------------------------------------------------------------- for the workers

    /// The right to run job `id` ([`crate::storage::Backend::job_lease`]), or
    /// [`JobLeased::HeldElsewhere`] while another server on the same storage runs it. The
    /// first task that asks for a job this server accepted gets the lease taken with it
    /// ([`JobLeased::Accepted`]).
    pub fn job_lease(&self, id: &str) -> Result<JobLeased> {
        if let Some(lease) = self.new_leases().remove(id) {
            return Ok(JobLeased::Accepted(lease));
        }
        Ok(match self.backend.job_lease(id)? {
            Some(lease) => JobLeased::Taken(lease),
            None => JobLeased::HeldElsewhere,
        })
    }

    fn new_leases(&self) -> MutexGuard<'_, HashMap<String, Box<dyn JobLease>>> {
        self.new_leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// On shared storage, takes the lease of a job about to be inserted, before its row is
    /// visible, so that another server looking for left jobs cannot take the job from the
    /// server that accepted it; it waits in `new_leases` for this server's task. The
    /// returned guard gives it up if the insert fails (only a kept guard leaves it). A lease
    /// that cannot be taken now is asked for again by the task.
    fn take_first_lease(&self, id: &str) -> PendingLease<'_> {
        if self.storage_is_shared() {
            match self.backend.job_lease(id) {
                Ok(Some(lease)) => {
                    self.new_leases().insert(id.to_string(), lease);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot take the new job's lease yet")
                }
            }
        }
        PendingLease {
            cp: self,
            id: id.to_string(),
            kept: false,
        }
    }

    /// Whether other servers may share this storage (PostgreSQL), and so leave jobs behind
    /// when they stop.
    pub fn storage_is_shared(&self) -> bool {
        self.cfg.storage_url.is_some()
    }

    /// The exports in progress and the streams still running (to resume after a start).
    pub fn running_jobs(&self) -> Result<(Vec<ExportRecord>, Vec<StreamRecord>)> {
        let mut inner = self.lock();
        self.purge(&mut inner, self.now())?;
        self.expire_jobs(&mut inner)?;
        let exports = inner
            .catalog
            .exports_after(None, i64::MIN, usize::MAX >> 1)?
            .into_iter()
            .filter(|e| e.status == "IN_PROGRESS")
            .collect::<Vec<_>>();
        let streams = inner
            .catalog
            .streams_after(None, i64::MIN, usize::MAX >> 1)?
            .into_iter()
            .filter(StreamRecord::is_running)
            .collect::<Vec<_>>();
        // A lease taken for a job this server accepted waits for the job's task; if that
        // task never asked (the job ended first: cancelled, or its ledger deleted), nothing
        // will, so it is given up here. (Jobs are accepted under the same lock, so every
        // lease waiting now has its row.)
        self.new_leases().retain(|id, _| {
            exports.iter().any(|e| &e.export_id == id) || streams.iter().any(|s| &s.stream_id == id)
        });
        Ok((exports, streams))
    }

    /// The database of a ledger a job reads: `None` once the ledger is being deleted.
    pub fn job_ledger(&self, name: &str) -> Result<Option<Arc<dyn LedgerStore>>> {
        let name = parse_ledger_name(Some(name))?;
        let mut inner = self.lock();
        match self.live(&mut inner, &name) {
            Ok(rec) => Ok(Some(self.open_db(&mut inner, &rec)?)),
            Err(ControlError::ResourceNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn export_record(&self, export_id: &str) -> Result<Option<ExportRecord>> {
        Ok(self.lock().catalog.export(export_id)?)
    }

    /// Records a data object written: the blocks before `next_seq` are in S3.
    pub fn export_progress(&self, export_id: &str, next_seq: u64, key: &str) -> Result<()> {
        Ok(self
            .lock()
            .catalog
            .export_progress(export_id, next_seq, key)?)
    }

    pub fn export_objects(&self, export_id: &str) -> Result<Vec<String>> {
        Ok(self.lock().catalog.export_objects(export_id)?)
    }

    /// Ends an export as COMPLETED or CANCELLED (with the reason).
    pub fn finish_export(&self, export_id: &str, status: &str, reason: Option<&str>) -> Result<()> {
        let now = self.now();
        self.lock()
            .catalog
            .finish_export(export_id, status, reason, now)?;
        Ok(())
    }

    pub fn stream_record(&self, stream_id: &str) -> Result<Option<StreamRecord>> {
        Ok(self.lock().catalog.stream(stream_id)?)
    }

    /// Records what Kinesis acknowledged; false once the stream no longer runs.
    pub fn stream_progress(
        &self,
        stream_id: &str,
        next_seq: u64,
        created_sent: bool,
    ) -> Result<bool> {
        Ok(self
            .lock()
            .catalog
            .stream_progress(stream_id, next_seq, created_sent)?)
    }

    /// Applies a worker's transition to a running stream; false once it no longer runs.
    pub fn transition_stream(&self, stream_id: &str, to: StreamTransition<'_>) -> Result<bool> {
        let now = self.now();
        let mut inner = self.lock();
        let Some(rec) = inner.catalog.stream(stream_id)? else {
            return Ok(false);
        };
        let (status, cause, impaired, finished) = match to {
            StreamTransition::Active => ("ACTIVE", None, None, None),
            StreamTransition::Impaired(cause) => (
                "IMPAIRED",
                Some(cause),
                Some(rec.impaired_ms.unwrap_or(now)),
                None,
            ),
            StreamTransition::Completed => ("COMPLETED", None, None, Some(now)),
            StreamTransition::Failed(cause) => ("FAILED", Some(cause), rec.impaired_ms, Some(now)),
        };
        Ok(inner
            .catalog
            .set_stream_status(stream_id, status, cause, impaired, finished)?)
    }

    /// Whether a stream of this server exists now (for tagging).
    pub(super) fn stream_exists(inner: &mut Inner, ledger: &str, stream_id: &str) -> Result<bool> {
        Ok(inner
            .catalog
            .stream(stream_id)?
            .is_some_and(|s| s.ledger_name == ledger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinesis_arns() {
        let a = parse_kinesis_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/my_stream.1-x")
            .unwrap();
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.account, "123456789012");
        assert_eq!(a.name, "my_stream.1-x");
        for bad in [
            "arn:aws:kinesis:eu-west-1:123456789012:stream/",
            "arn:aws:kinesis:eu-west-1:12345678901:stream/s",
            "arn:aws:sqs:eu-west-1:123456789012:stream/s",
            "arn:aws:kinesis:eu-west-1:123456789012:deliverystream/s",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/a b",
        ] {
            assert!(parse_kinesis_arn(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn role_arns() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/QLDB").is_ok());
        assert!(check_role_arn("arn:aws:iam::123456789012:role/path/QLDB").is_ok());
        for bad in [
            "arn:aws:iam::123456789012:user/QLDB",
            "arn:aws:iam:us-east-1:123456789012:role/QLDB",
            "arn:aws:iam::123456789012:role/",
            "not-an-arn-at-all-really",
        ] {
            assert!(check_role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_in_seconds_or_rfc3339() {
        let t = |v: serde_json::Value| parse_time(Some(&v), "t", "T");
        assert_eq!(t(serde_json::json!(1.5)).unwrap(), Some(1500));
        assert_eq!(
            t(serde_json::json!(1700000000)).unwrap(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            t(serde_json::json!("2019-06-13T21:36:34Z")).unwrap(),
            Some(1_560_461_794_000)
        );
        assert!(t(serde_json::json!("yesterday")).is_err());
        assert!(t(serde_json::json!(1e300)).is_err());
        assert!(t(serde_json::json!([1])).is_err());
        assert_eq!(parse_time(None, "t", "T").unwrap(), None);
    }
}
