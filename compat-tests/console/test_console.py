"""The web console (issue 15) in a real browser: headless Chromium (Debian's package) driven by
Selenium through Debian's chromedriver, against a real qldb-local.

Creates a ledger, a table and documents through the page, queries them (Ion text and table),
points at a statement error in the editor, pages through the journal, opens a document's
history, verifies a revision's proof in the browser and sees a tampered proof rejected, and
sees the server's signature error with wrong credentials. Screenshots of the main pages go to
QLDB_CONSOLE_SCREENSHOTS (default: target/console-screenshots/) for a person to look at.
"""

import base64
import os
import pathlib
import shutil
import sys
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from qldb_harness import Server  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHOTS = pathlib.Path(os.environ.get("QLDB_CONSOLE_SCREENSHOTS", ROOT / "target" / "console-screenshots"))


def find_binary(*names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    pytest.fail(f"none of {names} is installed (compat-tests/run-all.sh installs Debian's chromium)")


@pytest.fixture(scope="module")
def server():
    s = Server().start()
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = find_binary("chromium", "chromium-browser")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(find_binary("chromedriver")), options=opts)
    d.set_script_timeout(30)
    yield d
    d.quit()


def wait(browser, css, text=None, timeout=20):
    w = WebDriverWait(browser, timeout)
    if text is None:
        return w.until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))
    w.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return browser.find_element(By.CSS_SELECTOR, css)


def shot(browser, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def tab(browser, name):
    browser.find_element(By.CSS_SELECTOR, f"nav button[data-tab={name}]").click()


def run_editor(browser, text, one_tx=False):
    editor = browser.find_element(By.ID, "editor")
    editor.clear()
    editor.send_keys(text)
    box = browser.find_element(By.ID, "one-transaction")
    if box.is_selected() != one_tx:
        box.click()
    browser.execute_script("document.getElementById('results').replaceChildren()")
    browser.find_element(By.ID, "run").click()


def results_done(browser, count, timeout=20):
    """Waits for the run to end (Run enabled again) and `count` results or errors."""
    WebDriverWait(browser, timeout).until(lambda d: len(d.find_elements(
        By.CSS_SELECTOR, "#results [data-test=result], #results [data-test=error]")) >= count
        and d.find_element(By.ID, "run").is_enabled())
    return browser.find_elements(By.CSS_SELECTOR, "#results [data-test=result]")


def test_console_end_to_end(server, browser):
    browser.get(server.endpoint + "/console/")
    wait(browser, "#ledger-list")
    # Create a ledger through the page.
    browser.find_element(By.ID, "new-ledger").send_keys("console-demo")
    browser.find_element(By.CSS_SELECTOR, "#create-ledger button").click()
    wait(browser, "#ledger-message", "Ledger console-demo created.")
    wait(browser, "tr[data-ledger=console-demo]")
    shot(browser, "01-ledgers")

    # The editor: statements each in their own transaction, then several in one.
    assert Select(browser.find_element(By.ID, "ledger")).first_selected_option.text == "console-demo"
    tab(browser, "query")
    wait(browser, "#editor")
    run_editor(browser, "CREATE TABLE Car;\nCREATE INDEX ON Car (vin);")
    assert len(results_done(browser, 2)) == 2
    # A dropped table must not break the document history below.
    run_editor(browser, "CREATE TABLE Gone;\nDROP TABLE Gone;")
    assert len(results_done(browser, 2)) == 2
    run_editor(browser, "INSERT INTO Car {'vin': 'A1', 'owner': 'Ana', 'year': 2020};\n"
                        "INSERT INTO Car {'vin': 'B2', 'owner': 'Bo', 'tags': ['x', 'y']};", one_tx=True)
    assert len(results_done(browser, 2)) == 2
    run_editor(browser, "SELECT * FROM Car AS c WHERE c.vin = 'A1'")
    (result,) = results_done(browser, 1)
    ion = result.find_element(By.CSS_SELECTOR, "[data-test=ion]").text
    assert 'vin: "A1"' in ion and 'owner: "Ana"' in ion and "year: 2020" in ion
    assert "1 document · read I/Os" in result.text
    # The same results as a table.
    Select(browser.find_element(By.ID, "view")).select_by_value("table")
    run_editor(browser, "SELECT vin, owner FROM Car")
    (result,) = results_done(browser, 1)
    rows = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "th, td")]
            for r in result.find_elements(By.CSS_SELECTOR, "table.results tr")]
    assert rows[0] == ["vin", "owner"]
    assert sorted(rows[1:]) == [['"A1"', '"Ana"'], ['"B2"', '"Bo"']]
    # The table browser shows the table, its document count and its index.
    wait(browser, "#tables li[data-table=Car]", "2 documents")
    assert "indexes: [vin]" in browser.find_element(By.CSS_SELECTOR, "#tables li[data-table=Car]").text
    shot(browser, "02-editor")
    Select(browser.find_element(By.ID, "view")).select_by_value("ion")

    # An error points at its place in the editor (line 2 of the editor, not of the statement).
    run_editor(browser, "SELECT * FROM Car;\nSELECT * FROM Car WHERE\n  vin = ;")
    results_done(browser, 2)
    err = browser.find_element(By.CSS_SELECTOR, "#results [data-test=error]").text
    # The server places the error at the statement's line 2, column 8 (its end, after "=");
    # the editor's line 3, where the editor's selection now is.
    assert "at line 2, column 8" in err, err
    assert err.startswith("line 3, column 8: BadRequestException:"), err
    start = browser.execute_script("return document.getElementById('editor').selectionStart")
    text = browser.find_element(By.ID, "editor").get_attribute("value")
    assert start == text.index("vin =") + len("vin ="), (start, text)
    # A failed statement in one transaction commits nothing.
    run_editor(browser, "INSERT INTO Car {'vin': 'C3'};\nINSERT INTO NoSuchTable {'a': 1};", one_tx=True)
    # Only the error: results are shown once committed, and nothing was.
    assert results_done(browser, 1) == []
    text = browser.find_element(By.ID, "results").text
    assert "not committed" in text and "No such table: NoSuchTable" in text, text
    run_editor(browser, "SELECT VALUE vin FROM Car WHERE vin = 'C3'")
    (result,) = results_done(browser, 1)
    assert "0 documents" in result.text
    shot(browser, "03-error")

    # The journal: the last block is the two inserts' transaction.
    tab(browser, "journal")
    wait(browser, "[data-test=statements]")
    statements = browser.find_element(By.CSS_SELECTOR, "[data-test=statements]").text
    assert "SELECT VALUE vin FROM Car WHERE vin = 'C3'" not in statements
    # Walk back to the block of the two inserts, one block at a time.
    for _ in range(20):
        if "'owner': 'Ana'" in browser.find_element(By.CSS_SELECTOR, "[data-test=statements]").text:
            break
        seq = int(browser.find_element(By.ID, "block-seq").get_attribute("value"))
        assert seq > 0, "no block holds the inserts"
        browser.find_element(By.ID, "block-prev").click()
        WebDriverWait(browser, 20).until(lambda d: d.find_element(
            By.CSS_SELECTOR, "[data-test=block-address]").text.endswith(f"sequenceNo:{seq - 1}}}"))
    assert "INSERT INTO Car {'vin': 'B2'" in browser.find_element(
        By.CSS_SELECTOR, "[data-test=statements]").text
    revisions = browser.find_element(By.CSS_SELECTOR, "[data-test=revisions]")
    assert "version 0" in revisions.text
    shot(browser, "04-journal")

    # A document's history from the journal, then its revision verified in the browser.
    revisions.find_element(By.CSS_SELECTOR, "a").click()
    wait(browser, "[data-test=timeline]")
    assert "version 0" in browser.find_element(By.CSS_SELECTOR, "[data-test=timeline]").text
    shot(browser, "05-history")
    browser.find_element(By.CSS_SELECTOR, "[data-test=timeline] button").click()
    wait(browser, "#verify-form")
    browser.find_element(By.CSS_SELECTOR, "#verify-form button").click()
    verdict = wait(browser, "[data-test=verdict]", "Verified")
    assert verdict.text.startswith("Verified: the revision's hash and")
    path = browser.find_element(By.CSS_SELECTOR, "[data-test=proof-path]")
    assert path.find_elements(By.CSS_SELECTOR, "code.match")
    shot(browser, "06-verified")
    # A tampered proof is rejected.
    browser.find_element(By.ID, "tamper").click()
    browser.find_element(By.CSS_SELECTOR, "#verify-form button").click()
    verdict = wait(browser, "[data-test=verdict]", "FAILED")
    assert browser.find_elements(By.CSS_SELECTOR, "[data-test=proof-path] code.mismatch")
    shot(browser, "07-tampered")
    browser.find_element(By.ID, "tamper").click()
    # A digest saved earlier: the current one, as a user would have kept it, then a wrong one.
    browser.find_element(By.CSS_SELECTOR, "#verify-form button").click()
    verdict = wait(browser, "[data-test=verdict]", "Verified")
    tip = verdict.text.split(" digest at ")[1].rstrip(".")
    digest_hex = browser.find_elements(By.CSS_SELECTOR, "[data-test=proof-path] code")[-1].text
    saved = base64.b64encode(bytes.fromhex(digest_hex)).decode()
    browser.find_element(By.ID, "verify-digest").send_keys(saved)
    browser.find_element(By.ID, "verify-tip").send_keys(tip)
    browser.find_element(By.CSS_SELECTOR, "#verify-form button").click()
    wait(browser, "[data-test=verdict]", "fold to the saved digest")
    wrong = bytearray(bytes.fromhex(digest_hex))
    wrong[5] ^= 0x10
    field = browser.find_element(By.ID, "verify-digest")
    field.clear()
    field.send_keys(base64.b64encode(bytes(wrong)).decode())
    browser.find_element(By.CSS_SELECTOR, "#verify-form button").click()
    wait(browser, "[data-test=verdict]", "FAILED")
    field.clear()
    browser.find_element(By.ID, "verify-tip").clear()

    # Wrong credentials: the server's signature error, as any client sees it.
    secret = browser.find_element(By.ID, "secret-key")
    secret.clear()
    secret.send_keys("wrong")
    tab(browser, "ledgers")
    secret.send_keys("\t")
    err = wait(browser, "#ledger-list [data-test=error]")
    assert "InvalidSignatureException" in err.text or "signature" in err.text.lower(), err.text
    shot(browser, "08-wrong-credentials")
    secret.clear()
    secret.send_keys("test\t")
    wait(browser, "tr[data-ledger=console-demo]")

    # Delete the ledger through the page.
    browser.find_element(By.CSS_SELECTOR, "tr[data-ledger=console-demo] button").click()
    browser.switch_to.alert.accept()
    wait(browser, "#ledger-message", "Ledger console-demo deleted.")


def test_console_files_are_served_without_a_signature_and_nothing_else_is(server):
    import urllib.error
    import urllib.request
    with urllib.request.urlopen(server.endpoint + "/console/") as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    with urllib.request.urlopen(server.endpoint + "/console/ion.js") as r:
        assert r.headers["Content-Type"].startswith("text/javascript")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/console/../ledgers")
    assert e.value.code in (403, 404)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/console/nope.js")
    assert e.value.code == 404
    # The APIs still need a signature.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/ledgers")
    assert e.value.code == 403
