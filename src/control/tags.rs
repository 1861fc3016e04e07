//! TagResource, UntagResource, ListTagsForResource, and the ARNs of taggable resources.

use std::collections::BTreeMap;

use super::parse_ledger_name;
use super::{ControlError, ControlPlane, LedgerState, Result};
use crate::api::qldb::{ListTagsForResourceResponse, Tags, TagsIn};
use crate::names::{check_len, Violation};

/// QLDB's limit of tags on one resource (the model allows maps of 200).
pub const MAX_TAGS_PER_RESOURCE: usize = 50;
const RESERVED_PREFIX: &str = "aws:";

/// A taggable resource named by an ARN of this server's region and account.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Ledger(String),
    Table { ledger: String, table_id: String },
    Stream { ledger: String, stream_id: String },
}

impl Resource {
    fn ledger(&self) -> &str {
        match self {
            Resource::Ledger(l) => l,
            Resource::Table { ledger, .. } | Resource::Stream { ledger, .. } => ledger,
        }
    }
}

fn not_a_qldb_arn(arn: &str) -> ControlError {
    ControlError::invalid_param(
        format!("Invalid resource ARN '{arn}': expected arn:aws:qldb:<region>:<account>:ledger/<name>, .../table/<id> or :stream/<ledger>/<id>"),
        "ResourceArn",
    )
}

/// Checks new tags against the rules of QLDB and the tag limit, given the tags the resource
/// already has (an existing key is overwritten).
pub(super) fn validate_new_tags(new: TagsIn, existing: &Tags) -> Result<Tags> {
    let key_rule = |v: Violation| Violation(format!("Map keys must satisfy constraint: [{}]", v.0));
    let value_rule =
        |v: Violation| Violation(format!("Map value must satisfy constraint: [{}]", v.0));
    let mut out = BTreeMap::new();
    for (key, value) in new {
        let value = value.unwrap_or_default();
        check_len(&key, 1, 128)
            .map_err(|v| ControlError::invalid(key_rule(v), &key, "tags", "Tags"))?;
        check_len(&value, 0, 256)
            .map_err(|v| ControlError::invalid(value_rule(v), &value, "tags", "Tags"))?;
        if key.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
            return Err(ControlError::invalid_param(
                format!("Tag key '{key}' uses the reserved prefix 'aws:', which is reserved for AWS use"),
                "Tags",
            ));
        }
        out.insert(key, value);
    }
    // A key the resource already has takes the new value (AWS's samples and Terraform rely
    // on it), so only new keys count toward the limit.
    let total = existing.len() + out.keys().filter(|k| !existing.contains_key(*k)).count();
    if total > MAX_TAGS_PER_RESOURCE {
        return Err(ControlError::invalid_param(
            format!(
                "A resource can have at most {MAX_TAGS_PER_RESOURCE} tags; this request would give it {total}"
            ),
            "Tags",
        ));
    }
    Ok(out)
}

impl ControlPlane {
    fn parse_arn(&self, arn: &str) -> Result<Resource> {
        check_len(arn, 20, 1600)
            .map_err(|v| ControlError::invalid(v, arn, "resourceArn", "ResourceArn"))?;
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(not_a_qldb_arn(arn));
        };
        if prefix != "arn" || !partition.starts_with("aws") || service != "qldb" {
            return Err(not_a_qldb_arn(arn));
        }
        let segments: Vec<&str> = resource.split('/').collect();
        let parsed = match segments[..] {
            ["ledger", name] => Resource::Ledger(name.into()),
            ["ledger", name, "table", id] => Resource::Table {
                ledger: name.into(),
                table_id: id.into(),
            },
            ["stream", name, id] => Resource::Stream {
                ledger: name.into(),
                stream_id: id.into(),
            },
            _ => return Err(not_a_qldb_arn(arn)),
        };
        parse_ledger_name(Some(parsed.ledger())).map_err(|_| not_a_qldb_arn(arn))?;
        if region != self.cfg.region || account != self.cfg.account_id {
            return Err(resource_not_found(arn, &parsed));
        }
        Ok(parsed)
    }

    /// Resolves an ARN to a resource that exists now, under the catalog lock.
    fn with_resource<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&mut dyn crate::storage::CatalogStore) -> Result<T>,
    ) -> Result<T> {
        let resource = self.parse_arn(arn)?;
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        let exists = match &resource {
            Resource::Ledger(name) => inner
                .catalog
                .ledger(name)?
                .is_some_and(|r| LedgerState::of(&r, now) != LedgerState::Deleting),
            Resource::Stream { ledger, stream_id } => {
                ControlPlane::stream_exists(&mut inner, ledger, stream_id)?
            }
            // A table of any status (dropped tables keep their ARN and tags).
            Resource::Table { ledger, table_id } => match inner.catalog.ledger(ledger)? {
                Some(rec) if LedgerState::of(&rec, now) == LedgerState::Active => self
                    .open_db(&mut inner, &rec)?
                    .tables()?
                    .iter()
                    .any(|t| &t.table_id == table_id),
                _ => false,
            },
        };
        if !exists {
            return Err(resource_not_found(arn, &resource));
        }
        f(&mut *inner.catalog)
    }

    pub fn tag_resource(&self, arn: &str, tags: Option<TagsIn>) -> Result<()> {
        let tags = tags.ok_or_else(|| ControlError::missing("tags", "Tags"))?;
        let table_ledger = match self.parse_arn(arn)? {
            Resource::Table { ledger, .. } => Some(ledger),
            _ => None,
        };
        self.with_resource(arn, |catalog| {
            if let Some(ledger) = table_ledger {
                require_standard(catalog, &ledger)?;
            }
            let existing = catalog.tags(arn)?;
            let new = validate_new_tags(tags, &existing)?;
            catalog.add_tags(arn, &new)?;
            Ok(())
        })
    }

    pub fn untag_resource(&self, arn: &str, keys: Vec<String>) -> Result<()> {
        if keys.len() > 200 {
            return Err(ControlError::invalid(
                Violation::max_len(200),
                &format!("[{} keys]", keys.len()),
                "tagKeys",
                "TagKeys",
            ));
        }
        for key in &keys {
            check_len(key, 1, 128).map_err(|v| {
                ControlError::invalid(
                    Violation(format!("Member must satisfy constraint: [{}]", v.0)),
                    key,
                    "tagKeys",
                    "TagKeys",
                )
            })?;
        }
        self.with_resource(arn, |catalog| Ok(catalog.remove_tags(arn, &keys)?))
    }

    pub fn list_tags_for_resource(&self, arn: &str) -> Result<ListTagsForResourceResponse> {
        self.with_resource(arn, |catalog| {
            Ok(ListTagsForResourceResponse {
                tags: catalog.tags(arn)?,
            })
        })
    }
}

/// Tables can be tagged only in ledgers of the STANDARD permissions mode.
fn require_standard(catalog: &dyn crate::storage::CatalogStore, ledger: &str) -> Result<()> {
    match catalog.ledger(ledger)? {
        Some(r) if r.permissions_mode == "STANDARD" => Ok(()),
        _ => Err(ControlError::invalid_param(
            format!("Tables can be tagged only in ledgers with the STANDARD permissions mode; ledger {ledger} is not"),
            "ResourceArn",
        )),
    }
}

impl ControlPlane {
    /// Checks the `aws_tags` of a CREATE TABLE in `ledger`: the ledger's permissions mode,
    /// then the tag rules of TagResource. Returns the message of the first problem.
    pub fn check_table_tags(
        &self,
        ledger: &str,
        tags: &[(String, String)],
    ) -> std::result::Result<Tags, String> {
        let inner = self.lock();
        require_standard(&*inner.catalog, ledger).map_err(|e| e.to_string())?;
        let mut map = TagsIn::new();
        for (k, v) in tags {
            if map.insert(k.clone(), Some(v.clone())).is_some() {
                return Err(format!("Duplicate tag key '{k}' in aws_tags"));
            }
        }
        validate_new_tags(map, &Tags::new()).map_err(|e| e.to_string())
    }

    /// The ARN of a table of a ledger.
    fn table_arn(&self, ledger: &str, table_id: &str) -> String {
        format!("{}/table/{table_id}", self.ledger_arn(ledger))
    }

    /// Records the tags of tables a transaction is about to create. Called before the
    /// ledger commit, so a table never exists without its tags; a failed commit takes them
    /// back with [`ControlPlane::unset_table_tags`] (table ids are never reused, so tags left
    /// by a crash between the two are unreachable).
    pub fn set_table_tags(&self, ledger: &str, tables: &[(String, Tags)]) -> Result<()> {
        let mut inner = self.lock();
        for (table_id, tags) in tables {
            let arn = self.table_arn(ledger, table_id);
            inner.catalog.add_tags(&arn, tags)?;
        }
        Ok(())
    }

    pub fn unset_table_tags(&self, ledger: &str, tables: &[(String, Tags)]) -> Result<()> {
        let mut inner = self.lock();
        for (table_id, tags) in tables {
            let arn = self.table_arn(ledger, table_id);
            let keys: Vec<String> = tags.keys().cloned().collect();
            inner.catalog.remove_tags(&arn, &keys)?;
        }
        Ok(())
    }
}

fn resource_not_found(arn: &str, resource: &Resource) -> ControlError {
    let (resource_type, resource_name) = match resource {
        Resource::Ledger(name) => ("LEDGER", name.as_str()),
        Resource::Table { table_id, .. } => ("TABLE", table_id.as_str()),
        Resource::Stream { stream_id, .. } => ("STREAM", stream_id.as_str()),
    };
    ControlError::ResourceNotFound {
        message: format!("Resource '{arn}' does not exist"),
        resource_type: resource_type.into(),
        resource_name: resource_name.into(),
    }
}
