// The console's AWS client: SigV4 signing with WebCrypto, the control plane (restJson1,
// service "qldb") and the session API (SendCommand, awsJson1_0, also signed as "qldb").
// The console is a client like any other: every request is signed with the credentials
// the user entered, and the server checks them as it checks any SDK's.

import { hex, sha256, ionHashString, dot, toBase64 } from "./ion.js";

const enc = new TextEncoder();

// RFC 3986 percent-encoding (encodeURIComponent leaves !'()* as they are).
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

async function hmac(key, data) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(data)));
}

export class AwsError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export class Aws {
  constructor({ accessKeyId, secretAccessKey, region }) {
    this.accessKeyId = accessKeyId;
    this.secretAccessKey = secretAccessKey;
    this.region = region;
  }

  // Signs and sends one request; returns the parsed JSON body or throws an AwsError.
  async request(method, path, body, extraHeaders = {}) {
    const now = new Date();
    const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    const day = amzDate.slice(0, 8);
    const payload = body === undefined ? "" : JSON.stringify(body);
    const headers = { host: location.host, "x-amz-date": amzDate, ...extraHeaders };
    if (body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
    const names = Object.keys(headers).map((h) => h.toLowerCase()).sort();
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    // The canonical URI encodes each segment of the path as sent (itself encoded) once more
    // (SigV4 for every service but S3); the query is sorted and encoded (RFC 3986).
    const [rawPath, rawQuery = ""] = path.split("?");
    const canonicalPath = rawPath.split("/").map(rfc3986).join("/");
    const canonicalQuery = rawQuery.split("&").filter(Boolean)
      .map((kv) => kv.split("=").map((x) => rfc3986(decodeURIComponent(x))))
      .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
      .map(([k, v = ""]) => `${k}=${v}`).join("&");
    const canonical = [method, canonicalPath, canonicalQuery, ...names.map((n) => `${n}:${String(lower[n]).trim()}`), "",
      names.join(";"), hex(await sha256(enc.encode(payload)))].join("\n");
    const scope = `${day}/${this.region}/qldb/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(await sha256(enc.encode(canonical)))].join("\n");
    let key = enc.encode(`AWS4${this.secretAccessKey}`);
    for (const part of [day, this.region, "qldb", "aws4_request"]) key = await hmac(key, part);
    const signature = hex(await hmac(key, toSign));
    const send = { ...headers };
    delete send.host;
    send.authorization = `AWS4-HMAC-SHA256 Credential=${this.accessKeyId}/${scope}, ` +
      `SignedHeaders=${names.join(";")}, Signature=${signature}`;
    let res;
    try {
      res = await fetch(path, { method, headers: send, body: body === undefined ? undefined : payload });
    } catch (e) {
      throw new AwsError("NetworkError", `the server cannot be reached: ${e.message}`, 0);
    }
    const text = await res.text();
    let json = {};
    try { json = text ? JSON.parse(text) : {}; } catch { json = { message: text }; }
    if (!res.ok) {
      const type = (res.headers.get("x-amzn-errortype") || json.__type || json.code || "Error").split(":")[0].split("#").pop();
      throw new AwsError(type, json.message || json.Message || text || res.statusText, res.status);
    }
    return json;
  }

  // ---- control plane
  // Every ledger, following NextToken.
  async listLedgers() {
    const ledgers = [];
    let token = null;
    do {
      const r = await this.request("GET", token ? `/ledgers?next_token=${encodeURIComponent(token)}` : "/ledgers");
      ledgers.push(...(r.Ledgers || []));
      token = r.NextToken;
    } while (token);
    return { Ledgers: ledgers };
  }
  createLedger(name) {
    return this.request("POST", "/ledgers", { Name: name, PermissionsMode: "ALLOW_ALL", DeletionProtection: false });
  }
  describeLedger(name) { return this.request("GET", `/ledgers/${encodeURIComponent(name)}`); }
  // Deletes a ledger; one with deletion protection has it turned off first, and back on
  // if the delete then fails.
  async deleteLedger(name) {
    const path = `/ledgers/${encodeURIComponent(name)}`;
    const protectedLedger = (await this.describeLedger(name)).DeletionProtection;
    if (protectedLedger) await this.request("PATCH", path, { DeletionProtection: false });
    try {
      return await this.request("DELETE", path);
    } catch (e) {
      if (protectedLedger) {
        try { await this.request("PATCH", path, { DeletionProtection: true }); } catch { /* reported below */ }
      }
      throw e;
    }
  }
  getDigest(name) { return this.request("POST", `/ledgers/${encodeURIComponent(name)}/digest`, {}); }
  getBlock(name, blockAddress, tipAddress) {
    const body = { BlockAddress: { IonText: blockAddress } };
    if (tipAddress) body.DigestTipAddress = { IonText: tipAddress };
    return this.request("POST", `/ledgers/${encodeURIComponent(name)}/block`, body);
  }
  getRevision(name, blockAddress, documentId, tipAddress) {
    return this.request("POST", `/ledgers/${encodeURIComponent(name)}/revision`, {
      BlockAddress: { IonText: blockAddress }, DocumentId: documentId, DigestTipAddress: { IonText: tipAddress },
    });
  }

  // ---- session API
  sendCommand(command) {
    return this.request("POST", "/", command, {
      "content-type": "application/x-amz-json-1.0", "x-amz-target": "QLDBSession.SendCommand",
    });
  }
}

// A session on one ledger: statements in transactions, with the commit digest computed here.
export class Session {
  constructor(aws, ledger) {
    this.aws = aws;
    this.ledger = ledger;
    this.token = null;
  }

  async start() {
    if (!this.token) {
      const r = await this.aws.sendCommand({ StartSession: { LedgerName: this.ledger } });
      this.token = r.StartSession.SessionToken;
    }
    return this.token;
  }

  // A session runs one transaction at a time: each waits for the one before it to end.
  transaction(statements, onResult) {
    const run = (this.queue || Promise.resolve()).then(() => this.runTransaction(statements, onResult));
    this.queue = run.catch(() => {});
    return run;
  }

  async cmd(body) {
    const SessionToken = await this.start();
    try {
      return await this.aws.sendCommand({ SessionToken, ...body });
    } catch (e) {
      if (e.code === "InvalidSessionException") this.token = null;
      throw e;
    }
  }

  async end() {
    if (this.token) {
      try { await this.aws.sendCommand({ SessionToken: this.token, EndSession: {} }); } catch { /* gone */ }
      this.token = null;
    }
  }

  // Runs `statements` (texts) in one transaction; commits if all succeed, then calls
  // onResult(i, {values (base64 Ion binary), readIOs, timeMs}) for each; aborts otherwise,
  // and the error says which statement failed (e.statementIndex).
  async runTransaction(statements, onResult) {
    const tx = (await this.cmd({ StartTransaction: {} })).StartTransaction.TransactionId;
    let digest = await ionHashString(tx);
    const results = [];
    try {
      for (let i = 0; i < statements.length; i++) {
        digest = await dot(digest, await ionHashString(statements[i]));
        const r = (await this.cmd({ ExecuteStatement: { TransactionId: tx, Statement: statements[i] } })).ExecuteStatement;
        const values = [];
        let readIOs = r.ConsumedIOs?.ReadIOs ?? 0;
        let timeMs = r.TimingInformation?.ProcessingTimeMilliseconds ?? 0;
        let page = r.FirstPage;
        for (;;) {
          for (const h of page.Values || []) values.push(h.IonBinary);
          if (!page.NextPageToken) break;
          const f = (await this.cmd({ FetchPage: { TransactionId: tx, NextPageToken: page.NextPageToken } })).FetchPage;
          readIOs += f.ConsumedIOs?.ReadIOs ?? 0;
          timeMs += f.TimingInformation?.ProcessingTimeMilliseconds ?? 0;
          page = f.Page;
        }
        results.push({ values, readIOs, timeMs });
      }
      await this.cmd({ CommitTransaction: { TransactionId: tx, CommitDigest: toBase64(digest) } });
      // Results are shown once they are committed.
      for (let i = 0; i < results.length; i++) await onResult(i, results[i]);
    } catch (e) {
      if (e.statementIndex === undefined) e.statementIndex = results.length;
      if (this.token) {
        try { await this.cmd({ AbortTransaction: {} }); } catch { /* already ended */ }
      }
      throw e;
    }
  }
}
