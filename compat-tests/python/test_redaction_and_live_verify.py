"""REDACT_REVISION through pyqldb, checked with boto3 proofs and `qldb-local verify`; and
`verify` on a live data dir while a writer keeps committing (it must neither fail nor block)."""

import subprocess
import threading
import time

from amazon.ion.simpleion import loads

from conftest import make_client
from journal_verifier import check_block, fold
from qldb_harness import Server
from qldb_session_helpers import create_ledger, make_driver


def verify_cli(server, *extra):
    return subprocess.run([server.binary, "verify", *server.storage_args(), *extra],
                          capture_output=True, text=True, timeout=120)


def test_redact_revision_keeps_proofs_and_verify_ok():
    s = Server().start()
    try:
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        d.execute_lambda(lambda t: t.execute_statement("CREATE TABLE P"))
        doc_id = d.execute_lambda(lambda t: list(t.execute_statement(
            "INSERT INTO P ?", loads('{ssn:"123-45-6789",name:"A"}'))))[0]["documentId"]
        d.execute_lambda(lambda t: t.execute_statement("UPDATE P AS p SET p.ssn = 'redacted-soon' WHERE p.name = 'A'"))
        table_id = d.execute_lambda(lambda t: list(t.execute_statement(
            "SELECT VALUE tableId FROM information_schema.user_tables WHERE name = 'P'")))[0]
        history = d.execute_lambda(lambda t: list(t.execute_statement(
            "SELECT * FROM history(P) AS h WHERE h.metadata.id = ?", doc_id)))
        assert [h["metadata"]["version"] for h in history] == [0, 1]
        v0 = history[0]
        result = d.execute_lambda(lambda t: list(t.execute_statement(
            "EXEC REDACT_REVISION ?, ?, ?", v0["blockAddress"], table_id, doc_id)))
        assert result[0]["documentId"] == doc_id and result[0]["version"] == 0

        after = d.execute_lambda(lambda t: list(t.execute_statement(
            "SELECT * FROM history(P) AS h WHERE h.metadata.id = ?", doc_id)))
        assert "data" not in after[0] and "dataHash" in after[0]
        assert bytes(after[0]["hash"]) == bytes(v0["hash"])
        assert after[1]["data"]["ssn"] == "redacted-soon"

        qldb = make_client(s.endpoint)
        digest = qldb.get_digest(Name=ledger)
        addr = v0["blockAddress"]
        address_text = '{strandId:"%s",sequenceNo:%d}' % (addr["strandId"], addr["sequenceNo"])
        r = qldb.get_revision(Name=ledger, BlockAddress={"IonText": address_text}, DocumentId=doc_id,
                              DigestTipAddress=digest["DigestTipAddress"])
        revision = loads(r["Revision"]["IonText"])
        assert "data" not in revision and "dataHash" in revision
        assert fold(bytes(revision["hash"]), [bytes(p) for p in loads(r["Proof"]["IonText"])]) == digest["Digest"]

        # The redacting block carries redactionInfo and every block still checks out.
        tip = loads(digest["DigestTipAddress"]["IonText"])["sequenceNo"]
        previous = None
        redaction_seen = False
        for seq in range(tip + 1):
            text = '{strandId:"%s",sequenceNo:%d}' % (addr["strandId"], seq)
            block = loads(qldb.get_block(Name=ledger, BlockAddress={"IonText": text})["Block"]["IonText"])
            check_block(block, previous)
            previous = bytes(block["blockHash"])
            redaction_seen |= "redactionInfo" in block
        assert redaction_seen

        out = verify_cli(s)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"ok {ledger}: {tip + 1} blocks")
        d.close()
    finally:
        s.close()


def test_verify_runs_on_a_live_data_dir_without_blocking_the_writer():
    s = Server().start()
    try:
        ledger = create_ledger(s)
        d = make_driver(s, ledger)
        d.execute_lambda(lambda t: t.execute_statement("CREATE TABLE W"))
        stop = threading.Event()
        commits = []
        errors = []

        def writer():
            i = 0
            while not stop.is_set():
                try:
                    d.execute_lambda(lambda t: t.execute_statement("INSERT INTO W ?", loads("{n:%d}" % i)))
                    commits.append(time.monotonic())
                except Exception as e:  # noqa: BLE001 - surfaced below
                    errors.append(e)
                    return
                i += 1

        th = threading.Thread(target=writer)
        th.start()
        try:
            time.sleep(0.3)
            results = []
            for _ in range(3):
                before = len(commits)
                out = verify_cli(s, "--ledger", ledger)
                results.append((out.returncode, out.stdout, out.stderr, len(commits) - before))
        finally:
            stop.set()
            th.join(30)
        assert not errors, errors
        for rc, stdout, stderr, _ in results:
            assert rc == 0, stderr
            assert stdout.startswith(f"ok {ledger}: ")
        # The writer kept committing while the verifier ran.
        assert sum(r[3] for r in results) > 0
        d.close()
    finally:
        s.close()
