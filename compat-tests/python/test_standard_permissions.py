"""IAM permissions of `--credentials-file` principals through the pinned clients (boto3 1.40.60,
pyqldb 3.2.4): the control plane's `qldb:<Operation>` checks (403 AccessDeniedException),
`qldb:SendCommand` on the session API (400 AccessDeniedException), the PartiQL actions that
STANDARD-mode ledgers enforce per statement (and ALLOW_ALL ledgers do not), explicit Deny,
NotAction/NotResource, session tokens, TOML files and the policies refused at start-up.

One module server is started with a JSON credentials file. The principals that name table ids
can only be written once the admin (the default test:test pair) has made the tables, so the
fixture creates those ledgers and tables first, rewrites the file and restarts the server."""

import json

import pytest
from amazon.ion import simpleion
from botocore.exceptions import ClientError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import make_client
from qldb_harness import Server
from qldb_session_helpers import create_ledger, make_driver, run
from qldb_test_utils import ACCOUNT, REGION, expect_error, ledger_arn, new_name

ACCESS_DENIED = ("Access denied. Unable to run the statement due to insufficient permissions "
                 "or an improper variable reference")

# Ledger names are fixed before the server starts: the policies name their ARNs.
L_ONE = new_name("p1")        # test 1: SELECT on one table only (STANDARD)
L_DENY = new_name("p2")       # test 2: Deny beats Allow (STANDARD)
L_MODE = new_name("p3")       # test 3: ALLOW_ALL <-> STANDARD switching
L_TRACE = new_name("p4")      # test 4: denials leave no trace (STANDARD)
L_DESC = new_name("p5")       # test 5: control plane, the described ledger
L_OTHER = new_name("p5o")     # test 5: control plane, another ledger
L_SEND = new_name("p6")       # test 6: SendCommand denied (ALLOW_ALL)
L_RES = new_name("p9")        # resource forms: table/* literally, information_schema, no SELECT

DESCRIBER_ARN = f"arn:aws:iam::{ACCOUNT}:role/describer"


def user_arn(key):
    return f"arn:aws:iam::{ACCOUNT}:user/{key}"


def stmt(effect, action, resource, not_action=False, not_resource=False):
    return {"Effect": effect,
            ("NotAction" if not_action else "Action"): action,
            ("NotResource" if not_resource else "Resource"): resource}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def table_arn(ledger, table_id):
    return f"{ledger_arn(ledger)}/table/{table_id}"


def principals(table_ids):
    """The credentials-file entries; `table_ids` maps (ledger, table name) to the table id (empty
    before the tables exist: those principals are written on the second pass)."""
    out = [
        # test 3: SendCommand anywhere, no PartiQL action.
        {"access_key_id": "sendonly", "secret_access_key": "s-sendonly",
         "policies": [policy(stmt("Allow", "qldb:SendCommand", "*"))]},
        # test 4: reads only; and reads + INSERT.
        {"access_key_id": "tracereader", "secret_access_key": "s-tracereader",
         "policies": [policy(
             stmt("Allow", "qldb:SendCommand", ledger_arn(L_TRACE)),
             stmt("Allow", ["qldb:PartiQLSelect", "qldb:PartiQLHistoryFunction"],
                  f"{ledger_arn(L_TRACE)}/table/*"))]},
        {"access_key_id": "tracewriter", "secret_access_key": "s-tracewriter",
         "policies": [policy(
             stmt("Allow", "qldb:SendCommand", ledger_arn(L_TRACE)),
             stmt("Allow", ["qldb:PartiQLSelect", "qldb:PartiQLHistoryFunction", "qldb:PartiQLInsert"],
                  f"{ledger_arn(L_TRACE)}/table/*"))]},
        # test 5: control plane.
        {"access_key_id": "describer", "secret_access_key": "s-describer", "principal": DESCRIBER_ARN,
         "policies": [policy(stmt("Allow", "qldb:DescribeLedger", ledger_arn(L_DESC)))]},
        {"access_key_id": "notaction", "secret_access_key": "s-notaction",
         "policies": [policy(stmt("Allow", ["qldb:CreateLedger", "qldb:Delete*"], "*", not_action=True))]},
        # A policy given as a JSON string; `?` wildcard and a case-insensitive action.
        {"access_key_id": "notresource", "secret_access_key": "s-notresource",
         "policies": [json.dumps(policy(
             stmt("Allow", "QLDB:describe?edger", ledger_arn(L_DESC), not_resource=True)))]},
        {"access_key_id": "denier", "secret_access_key": "s-denier",
         "policies": [policy(stmt("Allow", "qldb:*", "*")),
                      policy(stmt("Deny", "qldb:DescribeLedger", ledger_arn(L_DESC)))]},
        # Resource forms: CREATE TABLE's resource is `table/*` itself (so `table/?` matches it, and
        # no real table id); information_schema.user_tables has its own resource.
        {"access_key_id": "creator", "secret_access_key": "s-creator",
         "policies": [policy(
             stmt("Allow", "qldb:SendCommand", ledger_arn(L_RES)),
             stmt("Allow", "qldb:PartiQLCreateTable", f"{ledger_arn(L_RES)}/table/?"),
             stmt("Allow", "qldb:PartiQLSelect", f"{ledger_arn(L_RES)}/information_schema/user_tables"))]},
        # Writes without PartiQLSelect.
        {"access_key_id": "writeonly", "secret_access_key": "s-writeonly",
         "policies": [policy(
             stmt("Allow", "qldb:SendCommand", ledger_arn(L_RES)),
             stmt("Allow", ["qldb:PartiQLInsert", "qldb:PartiQLUpdate", "qldb:PartiQLDelete"],
                  f"{ledger_arn(L_RES)}/table/*"))]},
        # test 6: no policy at all, so not even SendCommand.
        {"access_key_id": "nosend", "secret_access_key": "s-nosend", "policies": []},
        # test 7: full access, but only with its session token.
        {"access_key_id": "tokened", "secret_access_key": "s-tokened", "session_token": "tok-123"},
    ]
    if table_ids:
        out += [
            # test 1: SELECT on table A of L_ONE only.
            {"access_key_id": "onetable", "secret_access_key": "s-onetable",
             "policies": [policy(
                 stmt("Allow", "qldb:SendCommand", ledger_arn(L_ONE)),
                 stmt("Allow", "qldb:PartiQLSelect", table_arn(L_ONE, table_ids[(L_ONE, "A")])))]},
            # test 2: every PartiQL action on every table of L_DENY, but no DELETE on T.
            {"access_key_id": "denydel", "secret_access_key": "s-denydel",
             "policies": [
                 policy(stmt("Allow", "qldb:SendCommand", ledger_arn(L_DENY)),
                        stmt("Allow", "qldb:PartiQL*", f"{ledger_arn(L_DENY)}/table/*")),
                 policy(stmt("Deny", "qldb:PartiQLDelete", table_arn(L_DENY, table_ids[(L_DENY, "T")])))]},
        ]
    return {"credentials": out}


def table_ids_of(driver):
    rows = run(driver, "SELECT tableId, name FROM information_schema.user_tables")
    return {str(r["name"]): str(r["tableId"]) for r in rows}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    path = tmp_path_factory.mktemp("iam") / "credentials.json"
    path.write_text(json.dumps(principals({})))
    s = Server(extra_args=["--credentials-file", str(path), "--max-ledgers", "50"]).start()
    try:
        ids = {}
        for name, tables in ((L_ONE, ["A", "B"]), (L_DENY, ["T", "U"])):
            create_ledger(s, name, mode="STANDARD")
            d = make_driver(s, name)
            for t in tables:
                run(d, f"CREATE TABLE {t}")
                run(d, f"INSERT INTO {t} ?", [{"k": 1, "t": t}, {"k": 2, "t": t}])
            for t, tid in table_ids_of(d).items():
                ids[(name, t)] = tid
            d.close()
        create_ledger(s, L_MODE, mode="ALLOW_ALL")
        create_ledger(s, L_TRACE, mode="STANDARD")
        create_ledger(s, L_DESC)
        create_ledger(s, L_OTHER)
        create_ledger(s, L_SEND, mode="ALLOW_ALL")
        create_ledger(s, L_RES, mode="STANDARD")
        path.write_text(json.dumps(principals(ids)))
        s.restart()
        s.table_ids = ids
        yield s
    finally:
        s.close()


def client_as(server, key, service="qldb", token=None):
    return make_client(server.endpoint, service=service, aws_access_key_id=key,
                       aws_secret_access_key=f"s-{key}", aws_session_token=token)


def driver_as(server, ledger, key, token=None):
    return QldbDriver(ledger, endpoint_url=server.endpoint, region_name=REGION,
                      aws_access_key_id=key, aws_secret_access_key=f"s-{key}",
                      aws_session_token=token, retry_config=RetryConfig(retry_limit=0))


def expect_denied(driver, statement, *params):
    """Runs one statement in its own transaction and asserts the PartiQL access denial."""
    with pytest.raises(ClientError) as ei:
        run(driver, statement, *params)
    r = ei.value.response
    assert r["Error"]["Code"] == "AccessDeniedException", (statement, r)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, (statement, r)
    assert r["Error"]["Message"] == ACCESS_DENIED, (statement, r)


def denied_in_txn(txn, statement, *params):
    """Executes a statement inside a transaction, asserts the denial and keeps the transaction."""
    with pytest.raises(ClientError) as ei:
        txn.execute_statement(statement, *params)
    r = ei.value.response
    assert r["Error"]["Code"] == "AccessDeniedException", (statement, r)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 400, (statement, r)
    assert r["Error"]["Message"] == ACCESS_DENIED, (statement, r)


def not_authorized(action, resource, principal, explicit=False):
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {action} action")
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} {why}"


# ---------------------------------------------------------------- 1. one table

def test_select_on_one_table_only(srv):
    a_id = srv.table_ids[(L_ONE, "A")]
    d = driver_as(srv, L_ONE, "onetable")
    try:
        rows = run(d, "SELECT VALUE k FROM A")
        assert sorted(int(v) for v in rows) == [1, 2]
        assert len(run(d, "SELECT * FROM A AS a WHERE a.k = 2")) == 1
        # The committed view of the same table is a read of it too.
        assert len(run(d, "SELECT * FROM _ql_committed_A")) == 2

        expect_denied(d, "SELECT * FROM B")
        expect_denied(d, "SELECT * FROM A AS a, B AS b WHERE a.k = b.k")
        expect_denied(d, "SELECT * FROM A AS a WHERE a.k IN (SELECT VALUE b.k FROM B AS b)")
        expect_denied(d, "INSERT INTO A ?", {"k": 3})
        expect_denied(d, "UPDATE A SET k = 5")
        expect_denied(d, "DELETE FROM A")
        expect_denied(d, "SELECT * FROM history(A)")
        expect_denied(d, "SELECT tableId, name FROM information_schema.user_tables")
        expect_denied(d, "CREATE TABLE C")
        expect_denied(d, "CREATE INDEX ON A (k)")
        expect_denied(d, "DROP TABLE A")
        expect_denied(d, f"EXEC REDACT_REVISION ?, '{a_id}', '0000000000000000000000'",
                      {"strandId": "x", "sequenceNo": 0})

        # A table that does not exist is not a permission question.
        with pytest.raises(ClientError) as ei:
            run(d, "SELECT * FROM NoSuchTable")
        assert ei.value.response["Error"]["Code"] == "BadRequestException", ei.value.response
    finally:
        d.close()
    # Nothing changed: the admin still sees the two tables and their two documents each.
    admin = make_driver(srv, L_ONE)
    try:
        assert sorted(table_ids_of(admin)) == ["A", "B"]
        assert len(run(admin, "SELECT * FROM A")) == 2
        assert len(run(admin, "SELECT * FROM history(A)")) == 2
    finally:
        admin.close()


# ---------------------------------------------------------------- 2. deny beats allow

def test_explicit_deny_beats_allow(srv):
    d = driver_as(srv, L_DENY, "denydel")
    try:
        # Everything else on T is allowed by qldb:PartiQL* on table/*.
        assert len(run(d, "SELECT * FROM T")) == 2
        assert len(run(d, "SELECT * FROM T AS t, U AS u WHERE t.k = u.k")) == 2
        run(d, "INSERT INTO T ?", {"k": 10})
        run(d, "UPDATE T AS t SET t.touched = true WHERE t.k = 10")
        expect_denied(d, "DELETE FROM T AS t WHERE t.k = 10")
        expect_denied(d, "FROM T AS t WHERE t.k = 10 REMOVE t")
        assert len(run(d, "SELECT * FROM T WHERE k = 10")) == 1
        # DELETE on U is allowed (the Deny names T's table id only).
        rows = run(d, "DELETE FROM U AS u WHERE u.k = 1")
        assert len(rows) == 1, rows
        assert [int(v) for v in run(d, "SELECT VALUE k FROM U")] == [2]
        assert len(run(d, "SELECT * FROM history(U)")) == 3
    finally:
        d.close()


# ---------------------------------------------------------------- 3. permission mode switches

def test_allow_all_then_standard_then_allow_all(srv):
    admin = make_client(srv.endpoint)
    d = driver_as(srv, L_MODE, "sendonly")
    try:
        # ALLOW_ALL: SendCommand is all it takes.
        run(d, "CREATE TABLE M")
        run(d, "INSERT INTO M ?", {"k": 1})
        run(d, "UPDATE M SET v = 1")
        assert len(run(d, "SELECT * FROM M")) == 1
        assert len(run(d, "SELECT * FROM history(M)")) == 2
        assert len(run(d, "SELECT * FROM information_schema.user_tables")) == 1

        r = admin.update_ledger_permissions_mode(Name=L_MODE, PermissionsMode="STANDARD")
        assert r["PermissionsMode"] == "STANDARD"
        # Same driver (and pooled session): every statement is checked now.
        expect_denied(d, "SELECT * FROM M")
        expect_denied(d, "INSERT INTO M ?", {"k": 2})
        expect_denied(d, "CREATE TABLE M2")
        expect_denied(d, "SELECT * FROM information_schema.user_tables")
        # The admin (no policies) is unaffected.
        a = make_driver(srv, L_MODE)
        assert len(run(a, "SELECT * FROM M")) == 1
        a.close()

        admin.update_ledger_permissions_mode(Name=L_MODE, PermissionsMode="ALLOW_ALL")
        assert len(run(d, "SELECT * FROM M")) == 1
        run(d, "INSERT INTO M ?", {"k": 2})
        assert len(run(d, "SELECT * FROM M")) == 2
    finally:
        d.close()


# ---------------------------------------------------------------- 4. denials leave no trace

def tip(client, ledger):
    r = client.get_digest(Name=ledger)
    return simpleion.loads(r["DigestTipAddress"]["IonText"]), r["Digest"]


def test_denials_leave_no_trace(srv):
    admin_c = make_client(srv.endpoint)
    admin = make_driver(srv, L_TRACE)
    run(admin, "CREATE TABLE R")
    run(admin, "INSERT INTO R ?", [{"k": 1}, {"k": 2}])
    run(admin, "UPDATE R SET v = 0 WHERE k = 1")
    tip0, digest0 = tip(admin_c, L_TRACE)
    hist0 = len(run(admin, "SELECT * FROM history(R)"))
    assert hist0 == 3

    reader = driver_as(srv, L_TRACE, "tracereader")
    writer = driver_as(srv, L_TRACE, "tracewriter")
    try:
        # A transaction of reads and denied writes commits (the denials left the transaction
        # open and usable; pyqldb's commit digest, which folds every statement sent, matches).
        def reads_and_denials(txn):
            n = len(list(txn.execute_statement("SELECT * FROM R")))
            denied_in_txn(txn, "INSERT INTO R ?", {"k": 3})
            denied_in_txn(txn, "UPDATE R SET v = 1")
            denied_in_txn(txn, "DELETE FROM R WHERE k = 2")
            denied_in_txn(txn, "CREATE TABLE R2")
            denied_in_txn(txn, "DROP TABLE R")
            return n, len(list(txn.execute_statement("SELECT * FROM history(R)")))

        assert reader.execute_lambda(reads_and_denials) == (2, 3)
        # Denied statements on their own transactions: the driver raises (no retry).
        expect_denied(reader, "INSERT INTO R ?", {"k": 4})
        expect_denied(reader, "UPDATE R SET v = 2")
        expect_denied(reader, "DELETE FROM R")
        expect_denied(reader, "CREATE TABLE R3")

        tip1, digest1 = tip(admin_c, L_TRACE)
        assert tip1 == tip0 and digest1 == digest0
        assert len(run(admin, "SELECT * FROM history(R)")) == hist0
        assert sorted(table_ids_of(admin)) == ["R"]

        # Denied writes next to an allowed INSERT: one block, with the INSERT only.
        def mixed(txn):
            denied_in_txn(txn, "UPDATE R SET v = 9")
            denied_in_txn(txn, "DELETE FROM R WHERE k = 1")
            denied_in_txn(txn, "CREATE TABLE R4")
            return list(txn.execute_statement("INSERT INTO R ?", {"k": 5}))

        assert len(writer.execute_lambda(mixed)) == 1
        tip2, _ = tip(admin_c, L_TRACE)
        assert tip2["strandId"] == tip0["strandId"]
        assert tip2["sequenceNo"] == tip0["sequenceNo"] + 1, (tip0, tip2)
        hist = run(admin, "SELECT VALUE h.data FROM history(R) AS h")
        # (k, v) of every revision; -1: no v.
        assert sorted((int(x["k"]), int(x["v"]) if "v" in x else -1) for x in hist) == \
            [(1, -1), (1, 0), (2, -1), (5, -1)], hist
        assert sorted(table_ids_of(admin)) == ["R"]
    finally:
        reader.close()
        writer.close()
        admin.close()


# ---------------------------------------------------------------- resource forms

def test_resource_forms(srv):
    creator = driver_as(srv, L_RES, "creator")
    writer = driver_as(srv, L_RES, "writeonly")
    admin = make_driver(srv, L_RES)
    try:
        # PartiQLCreateTable is asked on `<ledger>/table/*` literally: `table/?` matches it.
        run(creator, "CREATE TABLE W")
        tables = run(creator, "SELECT tableId, name FROM information_schema.user_tables")
        assert [str(r["name"]) for r in tables] == ["W"]
        w_id = str(tables[0]["tableId"])
        assert len(w_id) == 22
        expect_denied(creator, "SELECT * FROM W")
        expect_denied(creator, "INSERT INTO W ?", {"k": 0})
        expect_denied(creator, "CREATE INDEX ON W (k)")
        expect_denied(creator, "DROP TABLE W")

        # UPDATE / DELETE / FROM-SET / REMOVE need no PartiQLSelect on their own target.
        assert len(run(writer, "INSERT INTO W ?", [{"k": 1}, {"k": 2}, {"k": 3}, {"k": 4}])) == 4
        assert len(run(writer, "UPDATE W AS w SET w.v = 1 WHERE w.k = 1")) == 1
        assert len(run(writer, "FROM W AS w WHERE w.k = 2 SET w.v = 2")) == 1
        assert len(run(writer, "FROM W AS w WHERE w.k = 1 REMOVE w.v")) == 1
        assert len(run(writer, "DELETE FROM W AS w WHERE w.k = 3")) == 1
        assert len(run(writer, "FROM W AS w WHERE w.k = 4 REMOVE w")) == 1
        expect_denied(writer, "SELECT * FROM W")
        expect_denied(writer, "SELECT * FROM history(W)")
        expect_denied(writer, "SELECT * FROM information_schema.user_tables")
        expect_denied(writer, "CREATE TABLE W2")

        docs = run(admin, "SELECT VALUE w FROM W AS w")
        assert sorted((int(d["k"]), int(d["v"]) if "v" in d else -1) for d in docs) == [(1, -1), (2, 2)], docs
        assert sorted(table_ids_of(admin)) == ["W"]
    finally:
        creator.close()
        writer.close()
        admin.close()


# ---------------------------------------------------------------- 5. control plane

def test_control_plane_permissions(srv):
    c = client_as(srv, "describer")
    assert c.describe_ledger(Name=L_DESC)["Name"] == L_DESC

    r = expect_error(c.describe_ledger, "AccessDeniedException", 403, Name=L_OTHER)
    assert r["Error"]["Message"] == not_authorized(
        "qldb:DescribeLedger", ledger_arn(L_OTHER), DESCRIBER_ARN), r
    r = expect_error(c.list_ledgers, "AccessDeniedException", 403)
    assert r["Error"]["Message"] == not_authorized("qldb:ListLedgers", "*", DESCRIBER_ARN), r
    name = new_name("p5n")
    r = expect_error(c.create_ledger, "AccessDeniedException", 403, Name=name, PermissionsMode="ALLOW_ALL")
    assert r["Error"]["Message"] == not_authorized("qldb:CreateLedger", ledger_arn(name), DESCRIBER_ARN), r
    r = expect_error(c.get_digest, "AccessDeniedException", 403, Name=L_DESC)
    assert r["Error"]["Message"] == not_authorized("qldb:GetDigest", ledger_arn(L_DESC), DESCRIBER_ARN), r
    r = expect_error(c.list_tags_for_resource, "AccessDeniedException", 403, ResourceArn=ledger_arn(L_DESC))
    assert "qldb:ListTagsForResource" in r["Error"]["Message"], r
    r = expect_error(c.update_ledger, "AccessDeniedException", 403, Name=L_DESC, DeletionProtection=True)
    assert "qldb:UpdateLedger" in r["Error"]["Message"], r
    names = [x["Name"] for x in make_client(srv.endpoint).list_ledgers(MaxResults=100)["Ledgers"]]
    assert name not in names

    # NotAction: everything but CreateLedger and Delete*.
    c = client_as(srv, "notaction")
    assert c.describe_ledger(Name=L_OTHER)["Name"] == L_OTHER
    assert "Ledgers" in c.list_ledgers()
    assert c.get_digest(Name=L_DESC)["Digest"]
    r = expect_error(c.create_ledger, "AccessDeniedException", 403, Name=name, PermissionsMode="ALLOW_ALL")
    assert r["Error"]["Message"] == not_authorized("qldb:CreateLedger", ledger_arn(name), user_arn("notaction")), r
    r = expect_error(c.delete_ledger, "AccessDeniedException", 403, Name=L_OTHER)
    assert r["Error"]["Message"] == not_authorized("qldb:DeleteLedger", ledger_arn(L_OTHER), user_arn("notaction")), r

    # NotResource: DescribeLedger on any ledger but L_DESC.
    c = client_as(srv, "notresource")
    assert c.describe_ledger(Name=L_OTHER)["Name"] == L_OTHER
    r = expect_error(c.describe_ledger, "AccessDeniedException", 403, Name=L_DESC)
    assert r["Error"]["Message"] == not_authorized(
        "qldb:DescribeLedger", ledger_arn(L_DESC), user_arn("notresource")), r
    r = expect_error(c.list_ledgers, "AccessDeniedException", 403)
    assert "qldb:ListLedgers" in r["Error"]["Message"], r

    # Explicit deny beats qldb:* on *.
    c = client_as(srv, "denier")
    assert c.describe_ledger(Name=L_OTHER)["Name"] == L_OTHER
    assert "Ledgers" in c.list_ledgers()
    r = expect_error(c.describe_ledger, "AccessDeniedException", 403, Name=L_DESC)
    assert r["Error"]["Message"] == not_authorized(
        "qldb:DescribeLedger", ledger_arn(L_DESC), user_arn("denier"), explicit=True), r

    # Both ledgers are untouched.
    admin = make_client(srv.endpoint)
    for n in (L_DESC, L_OTHER):
        assert admin.describe_ledger(Name=n)["State"] == "ACTIVE"


# ---------------------------------------------------------------- 6. SendCommand

def test_send_command_denied(srv):
    resource = ledger_arn(L_SEND)
    expected = (f"User: {user_arn('nosend')} is not authorized to perform: qldb:SendCommand "
                f"on resource: {resource}")
    c = client_as(srv, "nosend", service="qldb-session")
    token = c.send_command(StartSession={"LedgerName": L_SEND})["StartSession"]["SessionToken"]
    assert token
    r = expect_error(c.send_command, "AccessDeniedException", 400, SessionToken=token, StartTransaction={})
    assert r["Error"]["Message"].startswith(expected), r

    # STANDARD ledgers too.
    token = c.send_command(StartSession={"LedgerName": L_ONE})["StartSession"]["SessionToken"]
    r = expect_error(c.send_command, "AccessDeniedException", 400, SessionToken=token, StartTransaction={})
    assert r["Error"]["Message"].startswith(
        f"User: {user_arn('nosend')} is not authorized to perform: qldb:SendCommand "
        f"on resource: {ledger_arn(L_ONE)}"), r

    d = driver_as(srv, L_SEND, "nosend")
    try:
        with pytest.raises(ClientError) as ei:
            run(d, "SELECT * FROM information_schema.user_tables")
        assert ei.value.response["Error"]["Code"] == "AccessDeniedException", ei.value.response
        assert ei.value.response["Error"]["Message"].startswith(expected), ei.value.response
    finally:
        d.close()

    # SendCommand alone is enough on an ALLOW_ALL ledger.
    d = driver_as(srv, L_SEND, "sendonly")
    try:
        assert run(d, "SELECT * FROM information_schema.user_tables") == []
    finally:
        d.close()


# ---------------------------------------------------------------- 7. session tokens

def test_session_token_required(srv):
    c = client_as(srv, "tokened", token="tok-123")
    assert "Ledgers" in c.list_ledgers()
    assert c.describe_ledger(Name=L_DESC)["Name"] == L_DESC

    for token in (None, "tok-999", "tok-1234", "TOK-123"):
        c = make_client(srv.endpoint, aws_access_key_id="tokened", aws_secret_access_key="s-tokened",
                        aws_session_token=token)
        expect_error(c.list_ledgers, "UnrecognizedClientException", 403)
        s = make_client(srv.endpoint, service="qldb-session", aws_access_key_id="tokened",
                        aws_secret_access_key="s-tokened", aws_session_token=token)
        expect_error(s.send_command, "UnrecognizedClientException", 403, StartSession={"LedgerName": L_SEND})

    # The session API with the right token, through pyqldb.
    d = driver_as(srv, L_SEND, "tokened", token="tok-123")
    try:
        assert run(d, "SELECT * FROM information_schema.user_tables") == []
    finally:
        d.close()


# ---------------------------------------------------------------- 8. TOML, and refused policies

def test_toml_credentials_file(tmp_path):
    path = tmp_path / "creds.toml"
    path.write_text(
        '[[credentials]]\n'
        'access_key_id = "tomlreader"\n'
        'secret_access_key = "s-tomlreader"\n'
        'principal = "arn:aws:iam::000000000000:role/toml"\n'
        '[[credentials.policies]]\n'
        'Version = "2012-10-17"\n'
        '[[credentials.policies.Statement]]\n'
        'Effect = "Allow"\n'
        'Action = ["qldb:DescribeLedger", "qldb:SendCommand"]\n'
        'Resource = "*"\n'
    )
    s = Server(extra_args=["--credentials-file", str(path)]).start()
    try:
        name = create_ledger(s, new_name("toml"), mode="STANDARD")
        run(make_driver(s, name), "CREATE TABLE X")
        c = client_as(s, "tomlreader")
        assert c.describe_ledger(Name=name)["PermissionsMode"] == "STANDARD"
        r = expect_error(c.list_ledgers, "AccessDeniedException", 403)
        assert r["Error"]["Message"] == not_authorized("qldb:ListLedgers", "*", "arn:aws:iam::000000000000:role/toml")
        d = driver_as(s, name, "tomlreader")
        try:
            expect_denied(d, "SELECT * FROM X")
        finally:
            d.close()
    finally:
        s.close()


@pytest.mark.parametrize("key,value", [
    ("Condition", {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}),
    ("Principal", "*"),
])
def test_unsupported_policy_element_refused_at_start(tmp_path, key, value):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"credentials": [
        {"access_key_id": "cond", "secret_access_key": "s-cond",
         "policies": [policy({"Effect": "Allow", "Action": "qldb:*", "Resource": "*", key: value})]}]}))
    s = Server(extra_args=["--credentials-file", str(path)])
    try:
        with pytest.raises(RuntimeError) as ei:
            s.start(timeout=15)
        assert "exited with" in str(ei.value), ei.value
        assert key in s.log(), s.log()
    finally:
        s.close()
