//! The official Rust SDK (aws-sdk-qldbsession 1.87) drives raw SendCommand sequences
//! against a real qldb-local (the release binary, started as a child process): the happy
//! path with the commit digest, paging, and the modeled error of each misuse.

mod support;

use std::time::Duration;

use aws_sdk_qldbsession::types::*;
use support::*;

#[tokio::test]
async fn raw_send_command_sequences_and_paging() {
    let srv = start(&["--page-size", "3"]);
    create_ledger(&srv.endpoint, "sdk");
    let c = client(&srv.endpoint);
    let s = session(&c, "sdk").await;

    let (tx, mut d) = s.start_tx().await;
    let r = s.exec(&tx, &mut d, "CREATE TABLE T", &[]).await.unwrap();
    assert_eq!(values(r.first_page().unwrap()).len(), 1);
    for i in 0..7 {
        s.exec(
            &tx,
            &mut d,
            "INSERT INTO T ?",
            &[&format!("{{n:{i},d:1.50}}")],
        )
        .await
        .unwrap();
    }
    let r = s.commit(&tx, d.bytes()).await.unwrap();
    assert_eq!(r.transaction_id(), Some(tx.as_str()));
    assert_eq!(r.commit_digest().unwrap().as_ref(), d.bytes());
    assert!(r.consumed_ios().is_some() && r.timing_information().is_some());

    // Paging: 7 rows in pages of 3.
    let (tx, mut d) = s.start_tx().await;
    let r = s
        .exec(&tx, &mut d, "SELECT VALUE t.n FROM T AS t", &[])
        .await
        .unwrap();
    let first = r.first_page().unwrap();
    let mut seen = values(first).len();
    assert_eq!(seen, 3);
    let mut next = first.next_page_token().map(str::to_string);
    while let Some(tok) = next {
        let p =
            s.c.send_command()
                .session_token(&s.token)
                .fetch_page(
                    FetchPageRequest::builder()
                        .transaction_id(&tx)
                        .next_page_token(&tok)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        let page = p.fetch_page().unwrap().page().unwrap();
        seen += values(page).len();
        next = page.next_page_token().map(str::to_string);
    }
    assert_eq!(seen, 7);
    s.commit(&tx, d.bytes()).await.unwrap();
}

#[tokio::test]
async fn each_misuse_gets_its_modeled_error() {
    let srv = start(&["--transaction-timeout-ms", "300"]);
    create_ledger(&srv.endpoint, "errs");
    let c = client(&srv.endpoint);

    let e = c
        .send_command()
        .start_session(
            StartSessionRequest::builder()
                .ledger_name("nope")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_bad_request_exception(), "{e:?}");

    let s = session(&c, "errs").await;
    let e = s
        .commit("aaaaaaaaaaaaaaaaaaaaaa", &[0; 32])
        .await
        .unwrap_err();
    assert!(e.is_bad_request_exception());
    assert_eq!(e.meta().message(), Some("No open transaction"));

    let (tx, mut d) = s.start_tx().await;
    let e =
        s.c.send_command()
            .session_token(&s.token)
            .start_transaction(StartTransactionRequest::builder().build())
            .send()
            .await
            .unwrap_err()
            .into_service_error();
    assert!(e.is_bad_request_exception());
    assert_eq!(e.meta().message(), Some("Transaction already open"));

    let e = s
        .exec(&tx, &mut d, "SELECT * FROM Nope", &[])
        .await
        .unwrap_err();
    assert!(e.is_bad_request_exception(), "a statement error");
    let e = s.commit(&tx, &[7; 32]).await.unwrap_err();
    assert_eq!(e.meta().message(), Some("Digests don't match"));

    let (tx, mut d) = s.start_tx().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let e = s
        .exec(&tx, &mut d, "SELECT * FROM Nope", &[])
        .await
        .unwrap_err();
    assert!(e.is_invalid_session_exception());
    assert_eq!(
        e.meta().message(),
        Some(format!("Transaction {tx} has expired").as_str())
    );

    let e = c
        .send_command()
        .session_token("bm8tc3VjaC1zZXNzaW9u")
        .end_session(EndSessionRequest::builder().build())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_session_exception());
}
