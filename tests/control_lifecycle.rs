//! Ledger lifecycle under a controlled clock: CREATING → ACTIVE after the create delay,
//! DELETING → gone after the delete delay, the quota, and what survives a reopen.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use qldb_local::api::qldb::*;
use qldb_local::control::{Clock, ControlConfig, ControlError, ControlPlane};

struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    fn new() -> (Self, Clock) {
        let t = Arc::new(AtomicI64::new(1_700_000_000_000));
        let c = t.clone();
        (FakeClock(t), Arc::new(move || c.load(Ordering::SeqCst)))
    }
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

fn cfg(dir: Option<&std::path::Path>, max: u32, create: i64, delete: i64) -> ControlConfig {
    ControlConfig {
        region: "us-east-1".into(),
        account_id: "000000000000".into(),
        max_ledgers: max,
        create_delay_ms: create,
        delete_delay_ms: delete,
        data_dir: dir.map(|d| d.to_path_buf()),
        storage_url: None,
        relaxed_durability: false,
        job_retention_ms: 7 * 24 * 3_600_000,
    }
}

fn create(cp: &ControlPlane, name: &str) -> Result<CreateLedgerResponse, ControlError> {
    cp.create_ledger(CreateLedgerRequest {
        name: Some(name.into()),
        permissions_mode: Some("STANDARD".into()),
        deletion_protection: Some(false),
        ..Default::default()
    })
}

#[test]
fn states_follow_the_configured_delays() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, c) = FakeClock::new();
    let cp = qldb_local::server::open_control(cfg(Some(dir.path()), 5, 2_000, 3_000), c).unwrap();
    assert_eq!(create(&cp, "slow").unwrap().state, "CREATING");
    assert_eq!(cp.describe_ledger("slow").unwrap().state, "CREATING");
    assert!(
        cp.active_ledger("slow").is_err(),
        "not usable while CREATING"
    );
    assert!(matches!(
        cp.delete_ledger("slow"),
        Err(ControlError::ResourceInUse { .. })
    ));
    clock.advance(2_000);
    assert_eq!(cp.describe_ledger("slow").unwrap().state, "ACTIVE");
    assert!(cp.active_ledger("slow").is_ok());

    cp.delete_ledger("slow").unwrap();
    assert_eq!(cp.describe_ledger("slow").unwrap().state, "DELETING");
    let listed = cp.list_ledgers(PageRequest::default()).unwrap();
    assert_eq!(listed.ledgers[0].state, "DELETING");
    assert!(matches!(
        cp.delete_ledger("slow"),
        Err(ControlError::ResourceInUse { .. })
    ));
    assert!(matches!(
        create(&cp, "slow"),
        Err(ControlError::ResourceInUse { .. })
    ));
    let file = dir.path().join("ledgers/slow.sqlite");
    assert!(file.exists(), "files stay while DELETING");
    clock.advance(3_000);
    assert!(matches!(
        cp.describe_ledger("slow"),
        Err(ControlError::ResourceNotFound { .. })
    ));
    assert!(!file.exists(), "files are removed once deleted");
    assert_eq!(
        create(&cp, "slow").unwrap().name,
        "slow",
        "the name is reusable"
    );
}

#[test]
fn quota_counts_live_ledgers_and_a_refused_create_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, c) = FakeClock::new();
    let cp = qldb_local::server::open_control(cfg(Some(dir.path()), 2, 0, 1_000), c).unwrap();
    create(&cp, "one").unwrap();
    create(&cp, "two").unwrap();
    match create(&cp, "three") {
        Err(ControlError::LimitExceeded { resource_type, .. }) => {
            assert_eq!(resource_type, "LEDGER")
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("ledgers/three.sqlite").exists());
    // A DELETING ledger no longer counts against the quota.
    cp.delete_ledger("one").unwrap();
    create(&cp, "three").unwrap();
    clock.advance(1_000);
    let names: Vec<_> = cp
        .list_ledgers(PageRequest::default())
        .unwrap()
        .ledgers
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["two", "three"]);
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("ledgers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sqlite"))
        .collect();
    files.sort();
    assert_eq!(files, ["three.sqlite", "two.sqlite"]);
}

#[test]
fn everything_survives_a_reopen_and_orphans_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, c) = FakeClock::new();
    let arn;
    {
        let cp =
            qldb_local::server::open_control(cfg(Some(dir.path()), 5, 0, 0), c.clone()).unwrap();
        let out = cp
            .create_ledger(CreateLedgerRequest {
                name: Some("keep".into()),
                permissions_mode: Some("ALLOW_ALL".into()),
                kms_key: Some("alias/mine".into()),
                tags: Some([("team".to_string(), Some("ledger".to_string()))].into()),
                ..Default::default()
            })
            .unwrap();
        arn = out.arn;
        assert_eq!(
            out.kms_key_arn.as_deref(),
            Some("arn:aws:kms:us-east-1:000000000000:alias/mine")
        );
        cp.tag_resource(&arn, Some([("b".to_string(), None)].into()))
            .unwrap();
    }
    // The remains of a create that crashed before and after its rename.
    std::fs::write(dir.path().join("ledgers/ghost.sqlite"), b"junk").unwrap();
    std::fs::write(dir.path().join("ledgers/keep2.sqlite.tmp-abc"), b"junk").unwrap();
    let cp = qldb_local::server::open_control(cfg(Some(dir.path()), 5, 0, 0), c).unwrap();
    let d = cp.describe_ledger("keep").unwrap();
    assert_eq!(d.permissions_mode.as_deref(), Some("ALLOW_ALL"));
    assert!(d.deletion_protection);
    assert_eq!(
        d.encryption_description.unwrap().encryption_status,
        "ENABLED"
    );
    let tags = cp.list_tags_for_resource(&arn).unwrap().tags;
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["b"], "");
    assert!(!dir.path().join("ledgers/ghost.sqlite").exists());
    assert!(!dir.path().join("ledgers/keep2.sqlite.tmp-abc").exists());
    assert!(cp.active_ledger("keep").is_ok());
}

#[test]
fn in_memory_mode_writes_nothing() {
    let (_clock, c) = FakeClock::new();
    let cp = qldb_local::server::open_control(cfg(None, 5, 0, 0), c).unwrap();
    create(&cp, "mem").unwrap();
    assert!(cp.active_ledger("mem").is_ok());
    cp.delete_ledger("mem").unwrap();
    assert_eq!(cp.ledger_count().unwrap(), 0);
}

#[test]
fn list_pages_by_creation_order_and_refuses_bad_tokens() {
    let (_clock, c) = FakeClock::new();
    let cp = qldb_local::server::open_control(cfg(None, 50, 0, 0), c).unwrap();
    for i in 0..7 {
        create(&cp, &format!("l{i}")).unwrap();
    }
    let mut seen = vec![];
    let mut token = None;
    loop {
        let page = cp
            .list_ledgers(PageRequest {
                max_results: Some("3".into()),
                next_token: token.clone(),
            })
            .unwrap();
        assert!(page.ledgers.len() <= 3);
        seen.extend(page.ledgers.into_iter().map(|l| l.name));
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("l{i}")).collect::<Vec<_>>());
    for (max, tok) in [
        (Some("0"), None),
        (Some("101"), None),
        (Some("x"), None),
        (None, Some("abc")),
        (None, Some("!!!!")),
        (None, Some("Zm9vYmFy")),
    ] {
        let err = cp
            .list_ledgers(PageRequest {
                max_results: max.map(Into::into),
                next_token: tok.map(Into::into),
            })
            .unwrap_err();
        assert!(
            matches!(err, ControlError::InvalidParameter { .. }),
            "{max:?} {tok:?}: {err:?}"
        );
    }
}
