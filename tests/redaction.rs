//! EXEC REDACT_REVISION: the data of an earlier revision is removed everywhere it is
//! stored, its data hash stays, the redaction is journaled in redactionInfo, history()
//! shows the redacted shape, and every proof and `verify` still pass.

use std::sync::Arc;

use qldb_local::api::qldb::{CreateLedgerRequest, GetRevisionRequest, ValueHolder};
use qldb_local::config::Config;
use qldb_local::control::system_clock;
use qldb_local::ion::hash::ion_hash;
use qldb_local::ion::{binary, text, Data, Value};
use qldb_local::journal::hash::{dot, CommitDigest, Hash};
use qldb_local::session::{Param, SessionError, Sessions};

fn run(
    sessions: &Sessions,
    s: &str,
    stmts: &[(&str, Vec<Value>)],
) -> Result<Vec<Vec<Value>>, SessionError> {
    let id = sessions.start_transaction(s)?;
    let mut d = CommitDigest::new(&id);
    let mut out = Vec::new();
    for (stmt, params) in stmts {
        d.add_statement(stmt, params);
        let wire = params
            .iter()
            .map(|v| Param::Binary(binary::encode_one(v)))
            .collect();
        match sessions.execute_statement(s, &id, stmt, wire) {
            Ok((page, _)) => out.push(
                page.values
                    .iter()
                    .map(|b| binary::decode(b).unwrap().remove(0))
                    .collect(),
            ),
            Err(e) => {
                sessions.abort(s)?;
                return Err(e);
            }
        }
    }
    sessions.commit(s, &id, d.bytes())?;
    Ok(out)
}

fn ion(t: &str) -> Value {
    text::from_text_one(t).unwrap()
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, f| {
        v.field(f)
            .unwrap_or_else(|| panic!("no {f} in {}", text::to_text_one(v)))
    })
}

#[test]
fn redaction_keeps_every_hash_and_shows_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::for_tests(dir.path().to_path_buf());
    let control = Arc::new(
        qldb_local::server::open_control(qldb_local::server::control_config(&cfg), system_clock())
            .unwrap(),
    );
    control
        .create_ledger(CreateLedgerRequest {
            name: Some("r".into()),
            permissions_mode: Some("ALLOW_ALL".into()),
            ..Default::default()
        })
        .unwrap();
    let sessions = Sessions::new(qldb_local::server::session_config(&cfg), control.clone());
    let s = sessions.start_session("r").unwrap();
    let table_id = text::to_text_one(field(
        &run(&sessions, &s, &[("CREATE TABLE P", vec![])]).unwrap()[0][0],
        &["tableId"],
    ));
    let table_id = table_id.trim_matches('"').to_string();
    let doc_id = run(
        &sessions,
        &s,
        &[(
            "INSERT INTO P ?",
            vec![ion("{ssn:\"123-45-6789\",name:\"A\"}")],
        )],
    )
    .unwrap()[0][0]
        .field("documentId")
        .map(|v| text::to_text_one(v).trim_matches('"').to_string())
        .unwrap();
    run(
        &sessions,
        &s,
        &[("UPDATE P AS p SET p.ssn = 'x' WHERE p.name = 'A'", vec![])],
    )
    .unwrap();

    let history = run(
        &sessions,
        &s,
        &[(
            "SELECT * FROM history(P) AS h WHERE h.metadata.id = ?",
            vec![Value::string(doc_id.clone())],
        )],
    )
    .unwrap();
    assert_eq!(history[0].len(), 2);
    let v0 = history[0][0].clone();
    let v0_address = field(&v0, &["blockAddress"]).clone();
    let v0_data_hash = ion_hash(field(&v0, &["data"])).to_vec();

    // The latest revision cannot be redacted; one redaction per transaction.
    let redact = |address: Value| {
        run(
            &sessions,
            &s,
            &[(
                "EXEC REDACT_REVISION ?, ?, ?",
                vec![
                    address,
                    Value::string(table_id.clone()),
                    Value::string(doc_id.clone()),
                ],
            )],
        )
    };
    let latest = field(&history[0][1], &["blockAddress"]).clone();
    let e = redact(latest);
    assert!(matches!(e, Err(SessionError::BadRequest(m)) if m.contains("latest")));

    let out = redact(v0_address.clone()).unwrap();
    assert_eq!(text::to_text_one(field(&out[0][0], &["version"])), "0");
    let e = redact(v0_address.clone());
    assert!(matches!(e, Err(SessionError::BadRequest(m)) if m.contains("already redacted")));

    // history() shows dataHash instead of data; the hash is unchanged.
    let history = run(
        &sessions,
        &s,
        &[(
            "SELECT * FROM history(P) AS h WHERE h.metadata.id = ?",
            vec![Value::string(doc_id.clone())],
        )],
    )
    .unwrap();
    let redacted = &history[0][0];
    assert!(redacted.field("data").is_none());
    assert_eq!(
        field(redacted, &["dataHash"]).data,
        Data::Blob(v0_data_hash.clone())
    );
    assert_eq!(field(redacted, &["hash"]), field(&v0, &["hash"]));
    let committed = run(
        &sessions,
        &s,
        &[("SELECT VALUE c.data.ssn FROM _ql_committed_P AS c", vec![])],
    )
    .unwrap();
    assert_eq!(committed[0], vec![Value::string("x")]);

    // The redaction block carries redactionInfo; the journal still verifies, and the
    // redacted revision's proof still folds to the digest.
    let db = control.active_ledger("r").unwrap();
    let blocks = db.blocks().unwrap();
    let last = blocks.values().last().unwrap();
    assert!(text::to_text_one(field(last, &["redactionInfo", "revisions"])).contains(&doc_id));
    qldb_local::verify::verify_ledger(dir.path(), "r").unwrap();
    let digest = control.get_digest("r").unwrap();
    let tip = digest.digest_tip_address.clone();
    let r = control
        .get_revision(
            "r",
            GetRevisionRequest {
                block_address: Some(ValueHolder {
                    ion_text: Some(text::to_text_one(&v0_address)),
                }),
                document_id: Some(doc_id.clone()),
                digest_tip_address: Some(tip),
            },
        )
        .unwrap();
    let rev = text::from_text_one(r.revision.ion_text.as_deref().unwrap()).unwrap();
    assert!(rev.field("data").is_none() && rev.field("dataHash").is_some());
    let Data::List(proof) = text::from_text_one(r.proof.unwrap().ion_text.as_deref().unwrap())
        .unwrap()
        .data
    else {
        panic!()
    };
    let mut h: Hash = match &field(&rev, &["hash"]).data {
        Data::Blob(b) => b.clone(),
        _ => panic!(),
    };
    for p in proof {
        if let Data::Blob(b) = p.data {
            h = dot(&h, &b);
        }
    }
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(h),
        digest.digest
    );
}
