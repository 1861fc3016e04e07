//! Shapes of the `qldb` control-plane service (2019-01-02), restJson1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

/// A restJson1 timestamp: epoch seconds as a JSON number, millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochMillis(pub i64);

impl Serialize for EpochMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 1000.0)
    }
}

/// Tag maps as received: a `null` value is an empty value.
pub type TagsIn = BTreeMap<String, Option<String>>;
pub type Tags = BTreeMap<String, String>;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateLedgerRequest {
    pub name: Option<String>,
    pub permissions_mode: Option<String>,
    pub tags: Option<TagsIn>,
    pub deletion_protection: Option<bool>,
    pub kms_key: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateLedgerRequest {
    pub deletion_protection: Option<bool>,
    pub kms_key: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateLedgerPermissionsModeRequest {
    pub permissions_mode: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    pub tags: Option<TagsIn>,
}

/// Query members of the List* operations, as raw strings (validated by the control plane).
#[derive(Debug, Default, Clone)]
pub struct PageRequest {
    pub max_results: Option<String>,
    pub next_token: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LedgerEncryptionDescription {
    pub kms_key_arn: String,
    pub encryption_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inaccessible_kms_key_date_time: Option<EpochMillis>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct CreateLedgerResponse {
    pub name: String,
    pub arn: String,
    pub state: String,
    pub creation_date_time: EpochMillis,
    pub permissions_mode: String,
    pub deletion_protection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

/// DescribeLedger's output; UpdateLedger's is the same without PermissionsMode.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LedgerDescription {
    pub name: String,
    pub arn: String,
    pub state: String,
    pub creation_date_time: EpochMillis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions_mode: Option<String>,
    pub deletion_protection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_description: Option<LedgerEncryptionDescription>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct LedgerSummary {
    pub name: String,
    pub state: String,
    pub creation_date_time: EpochMillis,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ListLedgersResponse {
    pub ledgers: Vec<LedgerSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateLedgerPermissionsModeResponse {
    pub name: String,
    pub arn: String,
    pub permissions_mode: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceResponse {
    pub tags: Tags,
}

/// `{ "IonText": … }`
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ValueHolder {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ion_text: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct GetDigestResponse {
    /// Base64 of the 32-byte digest.
    pub digest: String,
    pub digest_tip_address: ValueHolder,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetBlockRequest {
    pub block_address: Option<ValueHolder>,
    pub digest_tip_address: Option<ValueHolder>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct GetBlockResponse {
    pub block: ValueHolder,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<ValueHolder>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct GetRevisionRequest {
    pub block_address: Option<ValueHolder>,
    pub document_id: Option<String>,
    pub digest_tip_address: Option<ValueHolder>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct GetRevisionResponse {
    pub revision: ValueHolder,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<ValueHolder>,
}

/// A timestamp member of a request body, kept raw: restJson1 sends epoch seconds as a JSON
/// number; the control plane validates it.
pub type TimestampIn = serde_json::Value;

#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct S3EncryptionConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_encryption_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct S3ExportConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<S3EncryptionConfiguration>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJournalToS3Request {
    pub inclusive_start_time: Option<TimestampIn>,
    pub exclusive_end_time: Option<TimestampIn>,
    #[serde(rename = "S3ExportConfiguration")]
    pub s3_export_configuration: Option<S3ExportConfiguration>,
    pub role_arn: Option<String>,
    pub output_format: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ExportJournalToS3Response {
    pub export_id: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct JournalS3ExportDescription {
    pub ledger_name: String,
    pub export_id: String,
    pub export_creation_time: EpochMillis,
    pub status: String,
    pub inclusive_start_time: EpochMillis,
    pub exclusive_end_time: EpochMillis,
    #[serde(rename = "S3ExportConfiguration")]
    pub s3_export_configuration: S3ExportConfiguration,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// qldb-local's own member (clients ignore members they do not model): why a
    /// CANCELLED export was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeJournalS3ExportResponse {
    pub export_description: JournalS3ExportDescription,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ListJournalS3ExportsResponse {
    #[serde(rename = "JournalS3Exports")]
    pub journal_s3_exports: Vec<JournalS3ExportDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct KinesisConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation_enabled: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "PascalCase")]
pub struct StreamJournalToKinesisRequest {
    pub role_arn: Option<String>,
    pub tags: Option<TagsIn>,
    pub inclusive_start_time: Option<TimestampIn>,
    pub exclusive_end_time: Option<TimestampIn>,
    pub kinesis_configuration: Option<KinesisConfiguration>,
    pub stream_name: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StreamIdResponse {
    pub stream_id: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct JournalKinesisStreamDescription {
    pub ledger_name: String,
    pub creation_time: EpochMillis,
    pub inclusive_start_time: EpochMillis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_end_time: Option<EpochMillis>,
    pub role_arn: String,
    pub stream_id: String,
    pub arn: String,
    pub status: String,
    pub kinesis_configuration: KinesisConfiguration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_cause: Option<String>,
    pub stream_name: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeJournalKinesisStreamResponse {
    pub stream: JournalKinesisStreamDescription,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ListJournalKinesisStreamsResponse {
    pub streams: Vec<JournalKinesisStreamDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_epoch_seconds_with_millis() {
        assert_eq!(
            serde_json::to_string(&EpochMillis(1_568_839_243_951)).unwrap(),
            "1568839243.951"
        );
        assert_eq!(
            serde_json::to_string(&EpochMillis(1_590_710_400_000)).unwrap(),
            "1590710400.0"
        );
    }

    #[test]
    fn null_members_read_as_absent() {
        let r: CreateLedgerRequest =
            serde_json::from_str(r#"{"Name":null,"Tags":{"a":null},"Unknown":1}"#).unwrap();
        assert!(r.name.is_none());
        assert_eq!(r.tags.unwrap()["a"], None);
    }
}
