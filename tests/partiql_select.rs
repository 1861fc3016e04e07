//! SELECT beyond one table, run through the session layer: inner joins (comma, JOIN ON,
//! CROSS JOIN), unnesting a nested collection with AT, the DMV sample's queries, LIKE.

mod common;

use common::*;
use qldb_local::ion::text;

fn texts(rows: &[qldb_local::ion::Value]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(text::to_text_one).collect();
    v.sort();
    v
}

#[test]
fn joins_unnesting_and_like() {
    let l = ledger();
    let s = l.sessions.start_session("j").unwrap();
    let mut t = Tx::begin(&l, &s);
    for table in ["Vehicle", "VehicleRegistration", "Person"] {
        t.run(&format!("CREATE TABLE {table}"), &[]).unwrap();
    }
    t.run("CREATE INDEX ON VehicleRegistration (VIN)", &[])
        .unwrap();
    t.commit().unwrap();
    let mut t = Tx::begin(&l, &s);
    t.run("INSERT INTO Vehicle << {'VIN': 'V1', 'Make': 'Volkswagen'}, {'VIN': 'V2', 'Make': 'Tesla'} >>", &[]).unwrap();
    t.run(
        "INSERT INTO VehicleRegistration ?",
        &[r#"[{VIN:"V1",Owners:{PrimaryOwner:{PersonId:"p1"},SecondaryOwners:[{PersonId:"p2"},{PersonId:"p3"}]}},
              {VIN:"V2",Owners:{PrimaryOwner:{PersonId:"p2"},SecondaryOwners:[]}}]"#],
    )
    .unwrap();
    t.run("INSERT INTO Person << {'PersonId': 'p1', 'FirstName': 'Raul'}, {'PersonId': 'p2', 'FirstName': 'Brent'}, {'PersonId': 'p3', 'FirstName': 'Alexis'} >>", &[]).unwrap();
    t.commit().unwrap();

    let mut t = Tx::begin(&l, &s);
    // The DMV sample's join.
    let rows = t
        .run("SELECT Vehicle FROM Vehicle INNER JOIN VehicleRegistration AS r ON Vehicle.VIN = r.VIN WHERE r.VIN = ?", &["\"V1\""])
        .unwrap();
    assert_eq!(texts(&rows), [r#"{Vehicle:{VIN:"V1",Make:"Volkswagen"}}"#]);
    // Comma join with the condition in WHERE, projecting from both sides.
    let rows = t.run("SELECT v.Make, r.Owners.PrimaryOwner.PersonId FROM Vehicle AS v, VehicleRegistration AS r WHERE v.VIN = r.VIN", &[]).unwrap();
    assert_eq!(
        texts(&rows),
        [
            r#"{Make:"Tesla",PersonId:"p2"}"#,
            r#"{Make:"Volkswagen",PersonId:"p1"}"#
        ]
    );
    // Unnesting a collection of an earlier variable, with its position.
    let rows = t
        .run("SELECT o.PersonId, i FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o AT i WHERE r.VIN = 'V1'", &[])
        .unwrap();
    assert_eq!(
        texts(&rows),
        [r#"{PersonId:"p2",i:0}"#, r#"{PersonId:"p3",i:1}"#]
    );
    // A three-way join through the unnested owners.
    let rows = t
        .run(
            "SELECT p.FirstName FROM VehicleRegistration AS r, r.Owners.SecondaryOwners AS o, Person AS p WHERE o.PersonId = p.PersonId",
            &[],
        )
        .unwrap();
    assert_eq!(
        texts(&rows),
        [r#"{FirstName:"Alexis"}"#, r#"{FirstName:"Brent"}"#]
    );
    // CROSS JOIN is every pair.
    let rows = t
        .run("SELECT COUNT(*) FROM Vehicle CROSS JOIN Person", &[])
        .unwrap();
    assert_eq!(texts(&rows), ["{_1:6}"]);
    // LIKE with % and _ and an escape character.
    let rows = t
        .run(
            "SELECT VALUE p.FirstName FROM Person AS p WHERE p.FirstName LIKE '_le%'",
            &[],
        )
        .unwrap();
    assert_eq!(texts(&rows), [r#""Alexis""#]);
    let rows = t
        .run(
            "SELECT VALUE p.FirstName FROM Person AS p WHERE p.FirstName NOT LIKE '%e%'",
            &[],
        )
        .unwrap();
    assert_eq!(texts(&rows), [r#""Raul""#]);
    let rows = t
        .run(
            "SELECT VALUE 1 FROM << 0 >> WHERE '10%' LIKE '10!%' ESCAPE '!'",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let rows = t
        .run(
            "SELECT VALUE 1 FROM << 0 >> WHERE '100' LIKE '10!%' ESCAPE '!'",
            &[],
        )
        .unwrap();
    assert!(rows.is_empty());
    t.commit().unwrap();
}
