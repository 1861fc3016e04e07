// The qldb-local console: ledgers, a PartiQL editor, the journal, document history and
// proof verification, all through the same signed HTTP APIs as any client.

import { Aws, Session } from "./aws.js";
import { decodeBinary, parseText, toText, field, fromBase64, hex, dot } from "./ion.js";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

const state = { ledger: null, session: null };

function aws() {
  return new Aws({
    accessKeyId: $("#access-key").value.trim(),
    secretAccessKey: $("#secret-key").value,
    region: $("#region").value.trim(),
  });
}

function session() {
  if (!state.ledger) throw new Error("choose a ledger first");
  if (!state.session || state.session.ledger !== state.ledger) state.session = new Session(aws(), state.ledger);
  return state.session;
}

function showError(target, e) {
  const text = e.code ? `${e.code}: ${e.message}` : String(e.message || e);
  target.replaceChildren(el("div", { class: "error", "data-test": "error" }, text));
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== name;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  if (name === "ledgers") refreshLedgers();
  if (name === "query") refreshTables();
  if (name === "journal") loadBlock(null);
}

// ---------------------------------------------------------------- ledgers

async function refreshLedgers() {
  const out = $("#ledger-list");
  try {
    const r = await aws().listLedgers();
    const ledgers = r.Ledgers || [];
    const select = $("#ledger");
    const chosen = state.ledger;
    select.replaceChildren(el("option", { value: "" }, "(choose a ledger)"),
      ...ledgers.map((l) => el("option", { value: l.Name }, l.Name)));
    select.value = ledgers.some((l) => l.Name === chosen) ? chosen : "";
    if (!ledgers.some((l) => l.Name === chosen)) state.ledger = null;
    out.replaceChildren(el("table", {},
      el("tr", {}, el("th", {}, "Name"), el("th", {}, "State"), el("th", {}, "Created"), el("th", {})),
      ...ledgers.map((l) => el("tr", { "data-ledger": l.Name },
        el("td", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); chooseLedger(l.Name); showTab("query"); } }, l.Name)),
        el("td", {}, l.State),
        el("td", {}, new Date(l.CreationDateTime * 1000).toLocaleString()),
        el("td", {}, el("button", { class: "danger", onclick: () => deleteLedger(l.Name) }, "Delete"))))));
    if (!ledgers.length) out.append(el("p", {}, "No ledgers yet."));
  } catch (e) {
    showError(out, e);
  }
}

async function createLedger(ev) {
  ev.preventDefault();
  const name = $("#new-ledger").value.trim();
  const msg = $("#ledger-message");
  try {
    await aws().createLedger(name);
    for (let i = 0; i < 100; i++) {
      if ((await aws().describeLedger(name)).State === "ACTIVE") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    msg.replaceChildren(el("div", { class: "ok" }, `Ledger ${name} created.`));
    $("#new-ledger").value = "";
    await refreshLedgers();
    chooseLedger(name);
  } catch (e) {
    showError(msg, e);
  }
}

async function deleteLedger(name) {
  if (!confirm(`Delete ledger ${name} and everything in it? (Its deletion protection, if on, is turned off first.)`)) return;
  const msg = $("#ledger-message");
  try {
    await aws().deleteLedger(name);
    msg.replaceChildren(el("div", { class: "ok" }, `Ledger ${name} deleted.`));
    if (state.ledger === name) state.ledger = null;
    await refreshLedgers();
  } catch (e) {
    showError(msg, e);
  }
}

function chooseLedger(name) {
  state.ledger = name || null;
  $("#ledger").value = name || "";
  if (state.session) { state.session.end(); state.session = null; }
}

// ---------------------------------------------------------------- tables and the editor

async function refreshTables() {
  const out = $("#tables");
  if (!state.ledger) { out.replaceChildren(el("p", {}, "Choose a ledger.")); return; }
  try {
    const tables = [];
    await session().transaction(["SELECT name, indexes FROM information_schema.user_tables WHERE status = 'ACTIVE'"],
      (_, r) => { for (const b of r.values) tables.push(...decodeBinary(fromBase64(b))); });
    const counts = [];
    const names = tables.map((t) => field(t, "name")?.v).filter(Boolean).sort();
    if (names.length) {
      await session().transaction(names.map((n) => `SELECT COUNT(*) AS n FROM "${n.replace(/"/g, '""')}"`),
        (i, r) => { counts[i] = field(decodeBinary(fromBase64(r.values[0]))[0], "n")?.v; });
    }
    out.replaceChildren(el("h3", {}, `Tables of ${state.ledger}`), el("ul", {}, ...names.map((n, i) => {
      const t = tables.find((x) => field(x, "name")?.v === n);
      const indexes = (field(t, "indexes")?.v || []).map((ix) => field(ix, "expr")?.v).filter(Boolean);
      return el("li", { "data-table": n },
        el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); $("#editor").value = `SELECT * FROM ${n};`; } }, n),
        ` ${counts[i] ?? "?"} documents`, indexes.length ? el("div", { class: "dim" }, `indexes: ${indexes.join(", ")}`) : "");
    })));
    if (!names.length) out.append(el("p", {}, "No tables yet."));
  } catch (e) {
    showError(out, e);
  }
}

// Statements of the editor's text that a ';' ends (outside quotes and comments), with their
// start offsets.
function splitStatements(text) {
  const out = [];
  let start = 0;
  let i = 0;
  const push = (end) => {
    const raw = text.slice(start, end);
    const body = raw.replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, "").trim();
    if (body) {
      const lead = raw.length - raw.trimStart().length;
      out.push({ text: raw.trim(), offset: start + lead });
    }
  };
  while (i < text.length) {
    const c = text[i];
    if (c === "'" || c === '"' || c === "`") {
      i++;
      while (i < text.length && text[i] !== c) i++;
    } else if (c === "-" && text[i + 1] === "-") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const e = text.indexOf("*/", i + 2);
      i = e < 0 ? text.length : e + 1;
    } else if (c === ";") {
      push(i);
      start = i + 1;
    }
    i++;
  }
  push(text.length);
  return out;
}

// The editor offset of line `line`, column `column` (1-based) of the statement at `offset`.
function editorOffset(text, offset, line, column) {
  let at = offset;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf("\n", at);
    if (nl < 0) break;
    at = nl + 1;
  }
  return at + column - 1;
}

function lineColumn(text, at) {
  const before = text.slice(0, at).split("\n");
  return [before.length, before[before.length - 1].length + 1];
}

function resultTable(values) {
  const columns = [];
  let others = false;
  for (const v of values) {
    if (v.t === "struct" && !(v.a || []).length) {
      for (const [k] of v.v) if (!columns.includes(k)) columns.push(k);
    } else others = true;
  }
  if (others) columns.push("value");
  return el("table", { class: "results" },
    el("tr", {}, ...columns.map((c) => el("th", {}, c))),
    ...values.map((v) => el("tr", {}, ...columns.map((c) => {
      if (v.t === "struct" && !(v.a || []).length) {
        const f = v.v.find(([k]) => k === c);
        return el("td", {}, f ? toText(f[1]) : "");
      }
      return el("td", {}, c === "value" ? toText(v) : "");
    }))));
}

async function runEditor() {
  const text = $("#editor").value;
  const out = $("#results");
  out.replaceChildren();
  const statements = splitStatements(text);
  if (!statements.length) return;
  const oneTx = $("#one-transaction").checked;
  const show = (s, r) => {
    const values = r.values.flatMap((b) => decodeBinary(fromBase64(b)));
    const block = el("div", { class: "result", "data-test": "result" },
      el("div", { class: "statement" }, s.text),
      el("div", { class: "stats" }, `${values.length} document${values.length === 1 ? "" : "s"} · read I/Os ${r.readIOs} · server time ${r.timeMs} ms`));
    if (values.length) {
      const ion = el("pre", { class: "ion", "data-test": "ion" }, values.map((v) => toText(v, "  ")).join("\n"));
      const table = resultTable(values);
      table.hidden = $("#view").value !== "table";
      ion.hidden = !table.hidden;
      block.append(ion, table);
    }
    out.append(block);
  };
  const fail = (s, e) => {
    let where = "";
    const m = /at line (\d+), column (\d+)/.exec(e.message || "");
    if (m && s) {
      const at = editorOffset(text, s.offset, Number(m[1]), Number(m[2]));
      const [l, c] = lineColumn(text, at);
      where = `line ${l}, column ${c}: `;
      const editor = $("#editor");
      editor.focus();
      editor.setSelectionRange(at, Math.min(at + 1, text.length));
    }
    out.append(el("div", { class: "error", "data-test": "error" }, `${where}${e.code ? `${e.code}: ` : ""}${e.message}`));
  };
  const run = $("#run");
  run.disabled = true;
  try {
    if (oneTx) {
      try {
        await session().transaction(statements.map((s) => s.text), (i, r) => show(statements[i], r));
      } catch (e) {
        fail(statements[e.statementIndex], e);
        out.append(el("div", { class: "dim" }, "The transaction was not committed."));
      }
    } else {
      for (const s of statements) {
        try {
          await session().transaction([s.text], (_, r) => show(s, r));
        } catch (e) {
          fail(s, e);
          break;
        }
      }
    }
  } finally {
    await refreshTables();
    run.disabled = false;
  }
}

function switchView() {
  const table = $("#view").value === "table";
  for (const t of document.querySelectorAll("#results table.results")) t.hidden = !table;
  for (const p of document.querySelectorAll("#results pre.ion")) p.hidden = table;
}

// ---------------------------------------------------------------- journal

function address(strand, seq) {
  return `{strandId:"${strand}",sequenceNo:${seq}}`;
}

async function loadBlock(seq) {
  const out = $("#block");
  if (!state.ledger) { out.replaceChildren(el("p", {}, "Choose a ledger.")); return; }
  try {
    const digest = await aws().getDigest(state.ledger);
    const tip = parseText(digest.DigestTipAddress.IonText)[0];
    const strand = field(tip, "strandId").v;
    const last = Number(field(tip, "sequenceNo").v);
    if (seq === null || seq > last) seq = last;
    if (seq < 0) seq = 0;
    $("#block-seq").value = seq;
    $("#block-tip").textContent = `of ${last}`;
    const r = await aws().getBlock(state.ledger, address(strand, seq));
    const block = parseText(r.Block.IonText)[0];
    const info = field(block, "transactionInfo");
    const statements = field(info, "statements")?.v || [];
    const revisions = field(block, "revisions")?.v || [];
    out.replaceChildren(
      el("dl", {},
        el("dt", {}, "Block"), el("dd", { "data-test": "block-address" }, toText(field(block, "blockAddress"))),
        el("dt", {}, "Transaction"), el("dd", {}, field(block, "transactionId")?.v ?? ""),
        el("dt", {}, "Time"), el("dd", {}, field(block, "blockTimestamp")?.v ?? ""),
        el("dt", {}, "Block hash"), el("dd", { class: "hash" }, hex(field(block, "blockHash")?.v ?? []))),
      el("h4", {}, `Statements (${statements.length})`),
      el("ol", { "data-test": "statements" }, ...statements.map((s) => el("li", {}, el("code", {}, field(s, "statement")?.v ?? "")))),
      el("h4", {}, `Revisions (${revisions.length})`),
      el("ul", { "data-test": "revisions" }, ...revisions.map((rv) => {
        const meta = field(rv, "metadata");
        if (!meta) return el("li", { class: "dim" }, `system revision ${hex(field(rv, "hash")?.v ?? []).slice(0, 16)}…`);
        const id = field(meta, "id")?.v;
        return el("li", {}, el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); openHistory(id); } },
          `document ${id}`), ` version ${field(meta, "version")?.v} `, el("code", {}, toText(field(rv, "data") ?? { t: "null", v: "null" })));
      })),
      el("details", {}, el("summary", {}, "Ion text"), el("pre", { class: "ion" }, toText(block, "  "))));
  } catch (e) {
    showError(out, e);
  }
}

// ---------------------------------------------------------------- history

async function openHistory(documentId) {
  showTab("history");
  $("#history-doc").value = documentId;
  await loadHistory();
}

async function loadHistory(ev) {
  if (ev) ev.preventDefault();
  const out = $("#timeline");
  const id = $("#history-doc").value.trim();
  try {
    if (!state.ledger) throw new Error("choose a ledger first");
    // Every table, dropped ones too, by id: history('<table id>') finds a dropped table's
    // revisions, and a re-created table of the same name is another table.
    const tables = [];
    await session().transaction(["SELECT tableId, name FROM information_schema.user_tables"],
      (_, r) => {
        for (const b of r.values) {
          for (const v of decodeBinary(fromBase64(b))) tables.push([field(v, "tableId").v, field(v, "name").v]);
        }
      });
    const revisions = [];
    const quotedId = id.replace(/'/g, "''");
    await session().transaction(tables.map(([tableId]) => `SELECT * FROM history('${tableId}') AS h WHERE h.metadata.id = '${quotedId}'`),
      (i, r) => { for (const b of r.values) for (const v of decodeBinary(fromBase64(b))) revisions.push([tables[i][1], v]); });
    if (!revisions.length) { out.replaceChildren(el("p", {}, `No document ${id} in ${state.ledger}.`)); return; }
    out.replaceChildren(el("ol", { class: "timeline", "data-test": "timeline" }, ...revisions.map(([table, v]) => {
      const meta = field(v, "metadata");
      const addr = toText(field(v, "blockAddress"));
      const data = field(v, "data");
      return el("li", {},
        el("div", {}, el("b", {}, `version ${field(meta, "version")?.v}`), ` of ${table} · ${field(meta, "txTime")?.v ?? ""} · tx ${field(meta, "txId")?.v ?? ""}`),
        el("pre", { class: "ion" }, data ? toText(data, "  ") : "(deleted)"),
        el("button", { onclick: () => { showTab("verify"); $("#verify-doc").value = id; $("#verify-block").value = addr; } }, "Verify this revision"));
    })));
  } catch (e) {
    showError(out, e);
  }
}

// ---------------------------------------------------------------- verification

async function verifyRevision(ev) {
  ev.preventDefault();
  const out = $("#verification");
  out.replaceChildren(el("p", {}, "Fetching the digest and the proof…"));
  try {
    if (!state.ledger) throw new Error("choose a ledger first");
    const documentId = $("#verify-doc").value.trim();
    const blockAddress = $("#verify-block").value.trim();
    // A digest saved earlier (from GetDigest, here or elsewhere) makes the check independent
    // of what the server says now; without one, the ledger's current digest is fetched.
    const savedDigest = $("#verify-digest").value.trim();
    const savedTip = $("#verify-tip").value.trim();
    let digest;
    let tipAddress;
    if (savedDigest || savedTip) {
      if (!savedDigest || !savedTip) throw new Error("a saved digest needs its digest tip address too");
      digest = fromBase64(savedDigest);
      tipAddress = savedTip;
    } else {
      const digestR = await aws().getDigest(state.ledger);
      digest = fromBase64(digestR.Digest);
      tipAddress = digestR.DigestTipAddress.IonText;
    }
    const r = await aws().getRevision(state.ledger, blockAddress, documentId, tipAddress);
    const revision = parseText(r.Revision.IonText)[0];
    const proof = parseText(r.Proof.IonText)[0].v.map((h) => h.v);
    if ($("#tamper").checked && proof.length) {
      proof[0] = proof[0].slice();
      proof[0][0] ^= 0x01; // what a tampered journal or proof would give
    }
    const steps = [];
    let h = field(revision, "hash").v;
    steps.push(["revision hash", h]);
    for (const p of proof) {
      h = await dot(h, p);
      steps.push([`dot with proof hash ${hex(p).slice(0, 16)}…`, h]);
    }
    const ok = hex(h) === hex(digest);
    out.replaceChildren(
      el("div", { class: ok ? "ok" : "error", "data-test": "verdict" }, ok
        ? `Verified: the revision's hash and ${proof.length} proof hashes fold to the ${savedDigest ? "saved" : "ledger's current"} digest at ${tipAddress}.`
        : "Verification FAILED: the proof does not lead to the ledger's digest."),
      el("ol", { class: "proof-path", "data-test": "proof-path" },
        ...steps.map(([what, x]) => el("li", {}, `${what} → `, el("code", {}, hex(x)))),
        el("li", {}, "digest ", el("code", { class: ok ? "match" : "mismatch" }, hex(digest)))),
      el("details", {}, el("summary", {}, "Revision"), el("pre", { class: "ion" }, toText(revision, "  "))));
  } catch (e) {
    showError(out, e);
  }
}

// ---------------------------------------------------------------- wiring

window.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("#ledger").addEventListener("change", (ev) => { chooseLedger(ev.target.value); showTab("query"); });
  $("#create-ledger").addEventListener("submit", createLedger);
  $("#run").addEventListener("click", runEditor);
  $("#editor").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && !$("#run").disabled) runEditor();
  });
  $("#view").addEventListener("change", switchView);
  $("#block-prev").addEventListener("click", () => loadBlock(Number($("#block-seq").value) - 1));
  $("#block-next").addEventListener("click", () => loadBlock(Number($("#block-seq").value) + 1));
  $("#block-go").addEventListener("click", () => loadBlock(Number($("#block-seq").value)));
  $("#history-form").addEventListener("submit", loadHistory);
  $("#verify-form").addEventListener("submit", verifyRevision);
  for (const id of ["#access-key", "#secret-key", "#region"]) {
    $(id).addEventListener("change", () => { state.session = null; refreshLedgers(); });
  }
  showTab("ledgers");
});
