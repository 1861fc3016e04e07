//! CreateLedger, DescribeLedger, ListLedgers, UpdateLedger, UpdateLedgerPermissionsMode,
//! DeleteLedger.

use base64::Engine as _;

use super::tags::validate_new_tags;
use super::{parse_ledger_name, ControlError, ControlPlane, LedgerState, Result};
use crate::api::qldb::*;
use crate::names::{check_len, new_unique_id, LedgerName, Violation};
use crate::storage::LedgerRecord;

const PERMISSIONS_MODES: &[&str] = &["ALLOW_ALL", "STANDARD"];
/// The literal that selects the AWS-owned KMS key.
pub const AWS_OWNED_KMS_KEY: &str = "AWS_OWNED_KMS_KEY";
const DEFAULT_PAGE_SIZE: i64 = 100;

fn parse_permissions_mode(mode: Option<&str>) -> Result<String> {
    let mode = mode.ok_or_else(|| ControlError::missing("permissionsMode", "PermissionsMode"))?;
    if PERMISSIONS_MODES.contains(&mode) {
        Ok(mode.to_string())
    } else {
        Err(ControlError::invalid(
            Violation::enum_value(PERMISSIONS_MODES),
            mode,
            "permissionsMode",
            "PermissionsMode",
        ))
    }
}

impl ControlPlane {
    /// Resolves a `KmsKey` input to the stored key ARN (`None` = AWS-owned key).
    fn resolve_kms_key(&self, key: &str) -> Result<Option<String>> {
        check_len(key, 0, 1600).map_err(|v| ControlError::invalid(v, key, "kmsKey", "KmsKey"))?;
        let (region, account) = (&self.cfg.region, &self.cfg.account_id);
        Ok(match key {
            "" => {
                return Err(ControlError::invalid_param(
                    "KmsKey must be AWS_OWNED_KMS_KEY or a KMS key id, key ARN, alias name or alias ARN",
                    "KmsKey",
                ))
            }
            AWS_OWNED_KMS_KEY => None,
            k if k.starts_with("arn:") => Some(k.to_string()),
            k if k.starts_with("alias/") => Some(format!("arn:aws:kms:{region}:{account}:{k}")),
            k => Some(format!("arn:aws:kms:{region}:{account}:key/{k}")),
        })
    }

    /// Whether a ledger is in STANDARD permissions mode now (false for unknown ledgers).
    pub fn ledger_is_standard(&self, name: &str) -> Result<bool> {
        let inner = self.lock();
        Ok(inner
            .catalog
            .ledger(name)?
            .is_some_and(|r| r.permissions_mode == "STANDARD"))
    }

    pub fn stream_arn(&self, ledger: &str, stream_id: &str) -> String {
        format!(
            "arn:aws:qldb:{}:{}:stream/{ledger}/{stream_id}",
            self.cfg.region, self.cfg.account_id
        )
    }

    pub fn ledger_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:qldb:{}:{}:ledger/{}",
            self.cfg.region, self.cfg.account_id, name
        )
    }

    /// Looks a ledger up by a validated name; unknown → ResourceNotFound.
    fn existing(
        &self,
        catalog: &dyn crate::storage::CatalogStore,
        name: &LedgerName,
    ) -> Result<LedgerRecord> {
        catalog
            .ledger(name.as_str())?
            .ok_or_else(|| ControlError::ledger_not_found(name.as_str()))
    }

    /// A ledger that is not being deleted (unknown or DELETING → ResourceNotFound).
    pub(super) fn live(&self, inner: &mut super::Inner, name: &LedgerName) -> Result<LedgerRecord> {
        let now = self.now();
        self.purge(inner, now)?;
        let rec = self.existing(&*inner.catalog, name)?;
        if LedgerState::of(&rec, now) == LedgerState::Deleting {
            return Err(ControlError::ledger_not_found(name.as_str()));
        }
        Ok(rec)
    }

    pub fn create_ledger(&self, req: CreateLedgerRequest) -> Result<CreateLedgerResponse> {
        let name = parse_ledger_name(req.name.as_deref())?;
        let permissions_mode = parse_permissions_mode(req.permissions_mode.as_deref())?;
        let kms_key_arn = match req.kms_key.as_deref() {
            Some(k) => self.resolve_kms_key(k)?,
            None => None,
        };
        let tags = validate_new_tags(req.tags.unwrap_or_default(), &Default::default())?;

        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        if let Some(existing) = inner.catalog.ledger(name.as_str())? {
            return Err(
                if LedgerState::of(&existing, now) == LedgerState::Deleting {
                    ControlError::ResourceInUse {
                        message: format!("Ledger '{name}' is being deleted"),
                        resource_type: "LEDGER".into(),
                        resource_name: name.to_string(),
                    }
                } else {
                    ControlError::ResourceAlreadyExists {
                        message: format!("Ledger '{name}' already exists"),
                        resource_type: "LEDGER".into(),
                        resource_name: name.to_string(),
                    }
                },
            );
        }
        let live = inner
            .catalog
            .all_ledgers()?
            .iter()
            .filter(|r| LedgerState::of(r, now) != LedgerState::Deleting)
            .count();
        if live >= self.cfg.max_ledgers as usize {
            return Err(ControlError::LimitExceeded {
                message: format!(
                    "Exceeded the limit of {} active ledgers in this account and region",
                    self.cfg.max_ledgers
                ),
                resource_type: "LEDGER".into(),
            });
        }

        let rec = LedgerRecord {
            ord: 0,
            name: name.to_string(),
            arn: self.ledger_arn(name.as_str()),
            permissions_mode,
            deletion_protection: req.deletion_protection.unwrap_or(true),
            kms_key_arn,
            created_ms: now,
            active_at_ms: now + self.cfg.create_delay_ms,
            kms_updated_ms: None,
            deleting_since_ms: None,
            gone_at_ms: None,
        };
        let db = self.backend.create_ledger(&name, &new_unique_id(), now)?;
        let rec = match inner.catalog.insert_ledger(&rec, &tags) {
            Ok(rec) => rec,
            Err(e) => {
                if let Err(cleanup) = db.remove() {
                    tracing::warn!(error = %cleanup, "could not remove a half-created ledger");
                }
                return Err(e.into());
            }
        };
        inner.open.insert(rec.name.clone(), (rec.ord, db));
        tracing::info!(ledger = %rec.name, "ledger created");
        Ok(CreateLedgerResponse {
            name: rec.name,
            arn: rec.arn,
            // QLDB answers CREATING; the ledger is ACTIVE once the create delay has passed.
            state: LedgerState::Creating.as_str().into(),
            creation_date_time: EpochMillis(rec.created_ms),
            permissions_mode: rec.permissions_mode,
            deletion_protection: rec.deletion_protection,
            kms_key_arn: rec.kms_key_arn,
        })
    }

    fn describe(
        &self,
        rec: &LedgerRecord,
        now: i64,
        encryption_updating: bool,
    ) -> LedgerDescription {
        let encryption_description = match (&rec.kms_key_arn, encryption_updating) {
            (Some(arn), updating) => Some(LedgerEncryptionDescription {
                kms_key_arn: arn.clone(),
                encryption_status: if updating { "UPDATING" } else { "ENABLED" }.into(),
                inaccessible_kms_key_date_time: None,
            }),
            (None, true) => Some(LedgerEncryptionDescription {
                kms_key_arn: AWS_OWNED_KMS_KEY.into(),
                encryption_status: "UPDATING".into(),
                inaccessible_kms_key_date_time: None,
            }),
            (None, false) => None,
        };
        LedgerDescription {
            name: rec.name.clone(),
            arn: rec.arn.clone(),
            state: LedgerState::of(rec, now).as_str().into(),
            creation_date_time: EpochMillis(rec.created_ms),
            permissions_mode: Some(rec.permissions_mode.clone()),
            deletion_protection: rec.deletion_protection,
            encryption_description,
        }
    }

    pub fn describe_ledger(&self, name: &str) -> Result<LedgerDescription> {
        let name = parse_ledger_name(Some(name))?;
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        let rec = self.existing(&*inner.catalog, &name)?;
        Ok(self.describe(&rec, now, false))
    }

    pub fn list_ledgers(&self, page: PageRequest) -> Result<ListLedgersResponse> {
        let limit = parse_max_results(page.max_results.as_deref())?;
        let after = match page.next_token.as_deref() {
            Some(t) => decode_token(t)?,
            None => i64::MIN,
        };
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        let mut recs = inner.catalog.ledgers_after(after, limit as usize + 1)?;
        let next_token = if recs.len() > limit as usize {
            recs.truncate(limit as usize);
            recs.last().map(|r| encode_token(r.ord))
        } else {
            None
        };
        Ok(ListLedgersResponse {
            ledgers: recs
                .iter()
                .map(|r| LedgerSummary {
                    name: r.name.clone(),
                    state: LedgerState::of(r, now).as_str().into(),
                    creation_date_time: EpochMillis(r.created_ms),
                })
                .collect(),
            next_token,
        })
    }

    pub fn update_ledger(&self, name: &str, req: UpdateLedgerRequest) -> Result<LedgerDescription> {
        let name = parse_ledger_name(Some(name))?;
        let new_key = match req.kms_key.as_deref() {
            Some(k) => Some(self.resolve_kms_key(k)?),
            None => None,
        };
        let mut inner = self.lock();
        let mut rec = self.live(&mut inner, &name)?;
        let now = self.now();
        if let Some(dp) = req.deletion_protection {
            rec.deletion_protection = dp;
        }
        let mut key_changed = false;
        if let Some(key) = new_key {
            if key != rec.kms_key_arn {
                rec.kms_key_arn = key;
                rec.kms_updated_ms = Some(now);
                key_changed = true;
            }
        }
        inner.catalog.update_ledger(&rec)?;
        let mut out = self.describe(&rec, now, key_changed);
        out.permissions_mode = None;
        Ok(out)
    }

    pub fn update_ledger_permissions_mode(
        &self,
        name: &str,
        req: UpdateLedgerPermissionsModeRequest,
    ) -> Result<UpdateLedgerPermissionsModeResponse> {
        let name = parse_ledger_name(Some(name))?;
        let mode = parse_permissions_mode(req.permissions_mode.as_deref())?;
        let mut inner = self.lock();
        let mut rec = self.live(&mut inner, &name)?;
        rec.permissions_mode = mode;
        inner.catalog.update_ledger(&rec)?;
        Ok(UpdateLedgerPermissionsModeResponse {
            name: rec.name,
            arn: rec.arn,
            permissions_mode: rec.permissions_mode,
        })
    }

    pub fn delete_ledger(&self, name: &str) -> Result<()> {
        let name = parse_ledger_name(Some(name))?;
        let mut inner = self.lock();
        let now = self.now();
        self.purge(&mut inner, now)?;
        let mut rec = self.existing(&*inner.catalog, &name)?;
        match LedgerState::of(&rec, now) {
            LedgerState::Active => {}
            state => {
                return Err(ControlError::ResourceInUse {
                    message: format!(
                        "Ledger '{name}' is {} and cannot be deleted now",
                        state.as_str()
                    ),
                    resource_type: "LEDGER".into(),
                    resource_name: name.to_string(),
                })
            }
        }
        if rec.deletion_protection {
            return Err(ControlError::ResourcePreconditionNotMet {
                message: format!(
                    "Preventing deletion of ledger '{name}' with deletion protection enabled. \
                     Disable deletion protection with UpdateLedger first."
                ),
                resource_type: "LEDGER".into(),
                resource_name: name.to_string(),
            });
        }
        if self.cfg.delete_delay_ms <= 0 {
            return self.remove_now(&mut inner, &rec);
        }
        rec.deleting_since_ms = Some(now);
        rec.gone_at_ms = Some(now + self.cfg.delete_delay_ms);
        inner.catalog.update_ledger(&rec)?;
        if let Some((_, db)) = inner.open.get(name.as_str()) {
            db.mark_closed();
        }
        tracing::info!(ledger = %name, "ledger deleting");
        Ok(())
    }
}

/// Validates `max_results` (1–100; default 100).
pub(super) fn parse_max_results(raw: Option<&str>) -> Result<i64> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    let n: i64 = raw.trim().parse().map_err(|_| {
        ControlError::invalid_param(
            format!("Value '{raw}' at 'maxResults' is not a valid integer"),
            "MaxResults",
        )
    })?;
    if n < 1 {
        Err(ControlError::invalid(
            Violation::min_value(1),
            raw,
            "maxResults",
            "MaxResults",
        ))
    } else if n > 100 {
        Err(ControlError::invalid(
            Violation::max_value(100),
            raw,
            "maxResults",
            "MaxResults",
        ))
    } else {
        Ok(n)
    }
}

const TOKEN_PREFIX: &str = "qldb-local:v1:";

/// A NextToken: base64 of a versioned cursor (matches `^[A-Za-z-0-9+/=]+$`, 4–1024 chars).
pub(super) fn encode_token(ord: i64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN_PREFIX}{ord}"))
}

pub(super) fn decode_token(token: &str) -> Result<i64> {
    let bad = || ControlError::invalid_param(format!("Invalid NextToken: '{token}'"), "NextToken");
    check_len(token, 4, 1024)
        .map_err(|v| ControlError::invalid(v, token, "nextToken", "NextToken"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(TOKEN_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}
