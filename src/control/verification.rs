//! GetDigest, GetBlock and GetRevision: the journal digest at the tip, blocks and
//! revisions with proofs that fold (with `dot`) to a digest the caller holds.
//! Validation and messages follow journal-and-verification.md §4.4.

use std::sync::Arc;

use base64::Engine as _;

use super::{ControlError, ControlPlane, LedgerState, Result};
use crate::api::qldb::{
    GetBlockRequest, GetBlockResponse, GetDigestResponse, GetRevisionRequest, GetRevisionResponse,
    ValueHolder,
};
use crate::ion::text::{from_text, to_text_one};
use crate::ion::{Data, Value};
use crate::journal::block::{hash_field, hash_list};
use crate::journal::hash::Hash;
use crate::journal::merkle::list_path;
use crate::names::{check_len, check_unique_id};
use crate::storage::LedgerStore;

struct Address {
    strand_id: String,
    sequence_no: u64,
}

fn invalid(message: &str, param: &str) -> ControlError {
    ControlError::invalid_param(message, param)
}

/// Parses a `{strandId, sequenceNo}` ValueHolder (any field order and spacing).
fn parse_address(holder: Option<&ValueHolder>, member: &str, param: &str) -> Result<Address> {
    let text = holder
        .and_then(|h| h.ion_text.as_deref())
        .ok_or_else(|| ControlError::missing(member, param))?;
    check_len(text, 1, 1_048_576).map_err(|v| ControlError::invalid(v, "…", member, param))?;
    let values = from_text(text).map_err(|_| {
        invalid(
            "The provided Ion value is not valid and cannot be parsed.",
            param,
        )
    })?;
    let [value] = &values[..] else {
        return Err(invalid(
            "The provided Ion value is not valid and cannot be parsed.",
            param,
        ));
    };
    let bad = || invalid("The provided block address is not valid.", param);
    let (Some(strand), Some(seq)) = (value.field("strandId"), value.field("sequenceNo")) else {
        return Err(bad());
    };
    let Data::String(strand_id) = &strand.data else {
        return Err(bad());
    };
    let Data::Int(seq) = &seq.data else {
        return Err(bad());
    };
    let sequence_no = u64::try_from(seq.clone()).map_err(|_| bad())?;
    if !matches!(value.data, Data::Struct(_)) || check_unique_id(strand_id).is_err() {
        return Err(bad());
    }
    Ok(Address {
        strand_id: strand_id.clone(),
        sequence_no,
    })
}

fn address_text(strand_id: &str, seq: u64) -> String {
    format!("{{strandId:\"{strand_id}\",sequenceNo:{seq}}}")
}

fn proof_text(proof: &[Hash]) -> String {
    to_text_one(&Value::list(
        proof.iter().map(|h| Value::blob(h.clone())).collect(),
    ))
}

impl ControlPlane {
    /// The open database of a ledger that can serve journal reads.
    fn journal_ledger(&self, name: &str) -> Result<Arc<dyn LedgerStore>> {
        let name = super::parse_ledger_name(Some(name))?;
        let mut inner = self.lock();
        let rec = self.active_record(&mut inner, &name)?;
        self.open_db(&mut inner, &rec)
    }

    /// The record of an ACTIVE ledger: unknown or DELETING → ResourceNotFound, CREATING →
    /// ResourcePreconditionNotMet.
    pub(super) fn active_record(
        &self,
        inner: &mut super::Inner,
        name: &crate::names::LedgerName,
    ) -> Result<crate::storage::LedgerRecord> {
        let now = self.now();
        self.purge(inner, now)?;
        let rec = inner
            .catalog
            .ledger(name.as_str())?
            .ok_or_else(|| ControlError::ledger_not_found(name.as_str()))?;
        match LedgerState::of(&rec, now) {
            LedgerState::Deleting => Err(ControlError::ledger_not_found(name.as_str())),
            LedgerState::Creating => Err(ControlError::ResourcePreconditionNotMet {
                message: format!("Ledger '{name}' is still being created"),
                resource_type: "LEDGER".into(),
                resource_name: name.to_string(),
            }),
            LedgerState::Active => Ok(rec),
        }
    }

    pub fn get_digest(&self, name: &str) -> Result<GetDigestResponse> {
        let db = self.journal_ledger(name)?;
        let tip = db.tip()?;
        let digest = db.digest_at(tip.last_seq)?;
        Ok(GetDigestResponse {
            digest: base64::engine::general_purpose::STANDARD.encode(digest),
            digest_tip_address: ValueHolder {
                ion_text: Some(address_text(&tip.strand_id, tip.last_seq)),
            },
        })
    }

    /// Validates a block address (and optional digest tip) against the journal.
    fn locate(
        &self,
        db: &dyn LedgerStore,
        block: Option<&ValueHolder>,
        tip: Option<&ValueHolder>,
    ) -> Result<(u64, Option<u64>)> {
        let block = parse_address(block, "blockAddress", "BlockAddress")?;
        let tip_addr = tip
            .map(|t| parse_address(Some(t), "digestTipAddress", "DigestTipAddress"))
            .transpose()?;
        let journal = db.tip()?;
        // The checks of journal-and-verification.md §4.4, in its order.
        if tip_addr
            .as_ref()
            .is_some_and(|t| t.sequence_no > journal.last_seq)
        {
            return Err(invalid(
                "The sequence number of the provided digest tip address is beyond the strand's latest committed record.",
                "DigestTipAddress",
            ));
        }
        if block.strand_id != journal.strand_id {
            return Err(invalid(
                "The Strand ID of the provided block address is not valid.",
                "BlockAddress",
            ));
        }
        if block.sequence_no > journal.last_seq {
            return Err(invalid(
                "The sequence number of the provided block address is beyond the strand's latest committed record.",
                "BlockAddress",
            ));
        }
        if let Some(t) = &tip_addr {
            if t.strand_id != block.strand_id {
                return Err(invalid(
                    "The Strand ID of the provided block address must match the Strand ID of the provided digest tip address.",
                    "DigestTipAddress",
                ));
            }
            if block.sequence_no > t.sequence_no {
                return Err(invalid(
                    "The sequence number of the provided block address must not be greater than that of the provided digest tip address.",
                    "BlockAddress",
                ));
            }
        }
        Ok((block.sequence_no, tip_addr.map(|t| t.sequence_no)))
    }

    pub fn get_block(&self, name: &str, req: GetBlockRequest) -> Result<GetBlockResponse> {
        let db = self.journal_ledger(name)?;
        let (seq, tip) = self.locate(
            &*db,
            req.block_address.as_ref(),
            req.digest_tip_address.as_ref(),
        )?;
        let block = db
            .block(seq)?
            .ok_or_else(|| ControlError::Internal(format!("block {seq} is missing")))?;
        let proof = tip.map(|t| db.block_proof(seq, t)).transpose()?;
        Ok(GetBlockResponse {
            block: ValueHolder {
                ion_text: Some(to_text_one(&block)),
            },
            proof: proof.map(|p| ValueHolder {
                ion_text: Some(proof_text(&p)),
            }),
        })
    }

    pub fn get_revision(&self, name: &str, req: GetRevisionRequest) -> Result<GetRevisionResponse> {
        let db = self.journal_ledger(name)?;
        let doc_id = req
            .document_id
            .as_deref()
            .ok_or_else(|| ControlError::missing("documentId", "DocumentId"))?;
        check_unique_id(doc_id)
            .map_err(|v| ControlError::invalid(v, doc_id, "documentId", "DocumentId"))?;
        let (seq, tip) = self.locate(
            &*db,
            req.block_address.as_ref(),
            req.digest_tip_address.as_ref(),
        )?;
        let block = db
            .block(seq)?
            .ok_or_else(|| ControlError::Internal(format!("block {seq} is missing")))?;
        let revisions = match block.field("revisions").map(|r| &r.data) {
            Some(Data::List(items)) => items.clone(),
            _ => Vec::new(),
        };
        let position = revisions.iter().position(|r| {
            r.field("metadata")
                .and_then(|m| m.field("id"))
                .map(|id| &id.data)
                == Some(&Data::String(doc_id.to_string()))
        });
        let Some(k) = position else {
            return Err(invalid("The provided document ID was not found in the block at the specified block address.", "DocumentId"));
        };
        let proof = match tip {
            None => None,
            Some(t) => {
                let corrupt = || ControlError::Internal(format!("block {seq} is malformed"));
                let hashes: Vec<Hash> = revisions
                    .iter()
                    .map(|r| hash_field(r, "hash"))
                    .collect::<Option<_>>()
                    .ok_or_else(corrupt)?;
                let entries = hash_list(&block, "entriesHashList").ok_or_else(corrupt)?;
                let revisions_root = crate::journal::hash::merkle(&hashes);
                let at = entries
                    .iter()
                    .position(|e| *e == revisions_root)
                    .ok_or_else(corrupt)?;
                let mut proof = list_path(&hashes, k);
                proof.extend(list_path(&entries, at));
                proof.push(hash_field(&block, "previousBlockHash").ok_or_else(corrupt)?);
                proof.extend(db.block_proof(seq, t)?);
                Some(proof)
            }
        };
        Ok(GetRevisionResponse {
            revision: ValueHolder {
                ion_text: Some(to_text_one(&revisions[k])),
            },
            proof: proof.map(|p| ValueHolder {
                ion_text: Some(proof_text(&p)),
            }),
        })
    }
}
