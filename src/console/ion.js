// Ion for the console: a binary reader (ExecuteStatement's values), a text reader (GetBlock's
// and GetRevision's IonText), a text writer, and the hashes a client needs: the Ion hash of a
// string (commit digests) and QLDB's dot operator (commit digests and proofs).
//
// Values are {t: type, v: value, a: [annotations]}; types: null (v = the null's type name),
// bool, int (BigInt), float (number), decimal (text), timestamp (text), symbol, string,
// clob/blob (Uint8Array), list, sexp (arrays of values), struct (array of [name, value]).

const SYSTEM_SYMBOLS = [null, "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version",
  "imports", "symbols", "max_id", "$ion_shared_symbol_table"];
const NULL_TYPES = ["null", "bool", "int", "int", "float", "decimal", "timestamp", "symbol",
  "string", "clob", "blob", "list", "sexp", "struct"];

export class IonError extends Error {}

// ---------------------------------------------------------------- binary reader

export function decodeBinary(bytes) {
  const r = { b: bytes, i: 0, symbols: SYSTEM_SYMBOLS.slice() };
  const out = [];
  while (r.i < r.b.length) {
    if (r.b[r.i] === 0xe0 && r.b[r.i + 1] === 0x01 && r.b[r.i + 2] === 0x00 && r.b[r.i + 3] === 0xea) {
      r.i += 4;
      r.symbols = SYSTEM_SYMBOLS.slice();
      continue;
    }
    const v = readValue(r, r.b.length);
    if (v === undefined) continue; // padding
    if (v.a.length && v.a[0] === "$ion_symbol_table" && v.t === "struct") {
      installSymbols(r, v);
      continue;
    }
    out.push(v);
  }
  return out;
}

function installSymbols(r, table) {
  const field = (n) => table.v.find(([k]) => k === n)?.[1];
  const imports = field("imports");
  if (!(imports && imports.t === "symbol" && imports.v === "$ion_symbol_table")) {
    r.symbols = SYSTEM_SYMBOLS.slice();
  }
  const symbols = field("symbols");
  if (symbols && symbols.t === "list") {
    for (const s of symbols.v) r.symbols.push(s.t === "string" ? s.v : null);
  }
}

function varUInt(r) {
  let n = 0;
  for (;;) {
    if (r.i >= r.b.length) throw new IonError("truncated VarUInt");
    const x = r.b[r.i++];
    n = n * 128 + (x & 0x7f);
    if (x & 0x80) return n;
  }
}

function varInt(r) {
  let x = r.b[r.i++];
  const negative = (x & 0x40) !== 0;
  let n = BigInt(x & 0x3f);
  while (!(x & 0x80)) {
    if (r.i >= r.b.length) throw new IonError("truncated VarInt");
    x = r.b[r.i++];
    n = n * 128n + BigInt(x & 0x7f);
  }
  return negative ? -n : n;
}

function uint(b, from, to) {
  let n = 0n;
  for (let i = from; i < to; i++) n = n * 256n + BigInt(b[i]);
  return n;
}

// An Int field (sign-and-magnitude); empty is 0.
function signedInt(b, from, to) {
  if (from === to) return 0n;
  const negative = (b[from] & 0x80) !== 0;
  let n = BigInt(b[from] & 0x7f);
  for (let i = from + 1; i < to; i++) n = n * 256n + BigInt(b[i]);
  return negative ? -n : n;
}

function symbolText(r, sid) {
  if (sid < r.symbols.length) return r.symbols[sid];
  throw new IonError(`symbol $${sid} is not in the symbol table`);
}

function readValue(r, end) {
  const td = r.b[r.i++];
  const type = td >> 4;
  let len = td & 0x0f;
  if (type === 0 && len !== 15) { // padding
    if (len === 14) len = varUInt(r);
    r.i += len;
    return undefined;
  }
  if (len === 15) return { t: "null", v: NULL_TYPES[type], a: [] };
  if (type === 1) return { t: "bool", v: len === 1, a: [] };
  if (len === 14 || (type === 13 && len === 1)) len = varUInt(r);
  const from = r.i;
  const to = from + len;
  if (to > end) throw new IonError("a value runs past its container");
  r.i = to;
  const b = r.b;
  switch (type) {
    case 2: return { t: "int", v: uint(b, from, to), a: [] };
    case 3: return { t: "int", v: -uint(b, from, to), a: [] };
    case 4: {
      const dv = new DataView(b.buffer, b.byteOffset + from, len);
      return { t: "float", v: len === 0 ? 0 : len === 4 ? dv.getFloat32(0) : dv.getFloat64(0), a: [] };
    }
    case 5: {
      if (len === 0) return { t: "decimal", v: "0.", a: [] };
      const s = { b, i: from };
      const exponent = varInt(s);
      const coefficient = signedInt(b, s.i, to);
      const negZero = s.i < to && coefficient === 0n && (b[s.i] & 0x80) !== 0;
      return { t: "decimal", v: decimalText(coefficient, exponent, negZero), a: [] };
    }
    case 6: return { t: "timestamp", v: timestampText(b, from, to), a: [] };
    case 7: return { t: "symbol", v: symbolText(r, Number(uint(b, from, to))), a: [] };
    case 8: return { t: "string", v: new TextDecoder().decode(b.subarray(from, to)), a: [] };
    case 9: return { t: "clob", v: b.slice(from, to), a: [] };
    case 10: return { t: "blob", v: b.slice(from, to), a: [] };
    case 11: case 12: {
      const items = [];
      const inner = { ...r, i: from };
      while (inner.i < to) {
        const v = readValue(inner, to);
        if (v !== undefined) items.push(v);
      }
      return { t: type === 11 ? "list" : "sexp", v: items, a: [] };
    }
    case 13: {
      const fields = [];
      const inner = { ...r, i: from };
      while (inner.i < to) {
        const name = symbolText(r, varUInt(inner));
        const v = readValue(inner, to);
        if (v !== undefined) fields.push([name, v]);
      }
      return { t: "struct", v: fields, a: [] };
    }
    case 14: {
      const inner = { ...r, i: from };
      const annLen = varUInt(inner);
      const annEnd = inner.i + annLen;
      const anns = [];
      while (inner.i < annEnd) anns.push(symbolText(r, varUInt(inner)));
      const v = readValue(inner, to);
      v.a = anns;
      return v;
    }
    default: throw new IonError(`type ${type} is not Ion 1.0`);
  }
}

function decimalText(coefficient, exponent, negZero) {
  const sign = coefficient < 0n || negZero ? "-" : "";
  const digits = (coefficient < 0n ? -coefficient : coefficient).toString();
  if (exponent === 0n) return `${sign}${digits}.`;
  if (exponent > 0n) return `${sign}${digits}d${exponent}`;
  const e = Number(-exponent);
  if (e < digits.length) return `${sign}${digits.slice(0, digits.length - e)}.${digits.slice(digits.length - e)}`;
  if (e - digits.length < 6) return `${sign}0.${"0".repeat(e - digits.length)}${digits}`;
  return `${sign}${digits}d${exponent}`;
}

function timestampText(b, from, to) {
  const s = { b, i: from };
  // The offset is in minutes; -0 (0xC0) means an unknown offset.
  const unknownOffset = b[from] === 0xc0;
  const offset = Number(varInt(s));
  const pad = (n, w) => String(n).padStart(w, "0");
  const year = varUInt(s);
  if (s.i >= to) return `${pad(year, 4)}T`;
  const month = varUInt(s);
  if (s.i >= to) return `${pad(year, 4)}-${pad(month, 2)}T`;
  const day = varUInt(s);
  if (s.i >= to) return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
  const hour = varUInt(s);
  const minute = varUInt(s);
  let seconds = null;
  let fraction = "";
  if (s.i < to) {
    seconds = varUInt(s);
    if (s.i < to) {
      const exponent = Number(varInt(s));
      const coefficient = signedInt(b, s.i, to);
      if (exponent < 0) fraction = `.${pad(coefficient.toString(), -exponent)}`;
    }
  }
  // The fields are UTC; the text shows the local time at the offset.
  const local = new Date(Date.UTC(year, month - 1, day, hour, minute) + (unknownOffset ? 0 : offset) * 60000);
  if (year < 100) local.setUTCFullYear(year);
  let text = `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1, 2)}-${pad(local.getUTCDate(), 2)}` +
    `T${pad(local.getUTCHours(), 2)}:${pad(local.getUTCMinutes(), 2)}`;
  if (seconds !== null) text += `:${pad(seconds, 2)}${fraction}`;
  if (unknownOffset) return `${text}-00:00`;
  if (offset === 0) return `${text}Z`;
  const o = Math.abs(offset);
  return `${text}${offset < 0 ? "-" : "+"}${pad(Math.floor(o / 60), 2)}:${pad(o % 60, 2)}`;
}

// ---------------------------------------------------------------- text reader

// Reads Ion text as QLDB writes it: structs, lists, s-expressions, strings (short and long),
// symbols (identifiers, quoted, operators in s-expressions), numbers and timestamps (kept as
// their text), blobs and clobs, typed nulls, booleans, annotations, comments.
export function parseText(text) {
  const p = { s: text, i: 0 };
  const out = [];
  for (;;) {
    skip(p);
    if (p.i >= p.s.length) return out;
    out.push(textValue(p, false));
  }
}

function skip(p) {
  for (;;) {
    while (p.i < p.s.length && /\s/.test(p.s[p.i])) p.i++;
    if (p.s.startsWith("//", p.i)) {
      while (p.i < p.s.length && p.s[p.i] !== "\n") p.i++;
    } else if (p.s.startsWith("/*", p.i)) {
      const e = p.s.indexOf("*/", p.i + 2);
      p.i = e < 0 ? p.s.length : e + 2;
    } else return;
  }
}

function fail(p, what) {
  throw new IonError(`${what} at offset ${p.i}`);
}

const SIMPLE_ESCAPES = { n: "\n", t: "\t", r: "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"',
  "/": "/", "?": "?", a: "\x07", b: "\b", f: "\f", v: "\v", "\n": "" };

// The character of the escape at p.i (just after a backslash).
function readEscape(p) {
  const e = p.s[p.i++];
  if (e in SIMPLE_ESCAPES) return SIMPLE_ESCAPES[e];
  if (e === "x" || e === "u" || e === "U") {
    const n = e === "x" ? 2 : e === "u" ? 4 : 8;
    const c = String.fromCodePoint(parseInt(p.s.slice(p.i, p.i + n), 16));
    p.i += n;
    return c;
  }
  return fail(p, "unknown escape");
}

function quoted(p, q) {
  p.i++;
  let out = "";
  while (p.i < p.s.length && p.s[p.i] !== q) {
    const c = p.s[p.i++];
    out += c === "\\" ? readEscape(p) : c;
  }
  if (p.s[p.i] !== q) fail(p, "unterminated quote");
  p.i++;
  return out;
}

function textValue(p, inSexp) {
  skip(p);
  const annotations = [];
  for (;;) {
    const save = p.i;
    let name = null;
    if (p.s[p.i] === "'" && !p.s.startsWith("'''", p.i)) name = quoted(p, "'");
    else {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(p.s.slice(p.i, p.i + 1024));
      if (m) { name = m[0]; p.i += name.length; }
    }
    skip(p);
    if (name !== null && p.s.startsWith("::", p.i)) {
      p.i += 2;
      skip(p);
      annotations.push(name);
      continue;
    }
    p.i = save;
    break;
  }
  const v = bareValue(p, inSexp);
  v.a = annotations;
  return v;
}

function bareValue(p, inSexp) {
  const c = p.s[p.i];
  if (c === "{" && p.s[p.i + 1] === "{") return lob(p);
  if (c === "{") {
    p.i++;
    const fields = [];
    for (;;) {
      skip(p);
      if (p.s[p.i] === "}") { p.i++; break; }
      let name;
      if (p.s[p.i] === '"') name = quoted(p, '"');
      else if (p.s[p.i] === "'") name = quoted(p, "'");
      else {
        const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(p.s.slice(p.i, p.i + 1024));
        if (!m) fail(p, "expected a field name");
        name = m[0];
        p.i += name.length;
      }
      skip(p);
      if (p.s[p.i] !== ":") fail(p, "expected ':'");
      p.i++;
      fields.push([name, textValue(p, false)]);
      skip(p);
      if (p.s[p.i] === ",") p.i++;
    }
    return { t: "struct", v: fields };
  }
  if (c === "[" || c === "(") {
    const close = c === "[" ? "]" : ")";
    p.i++;
    const items = [];
    for (;;) {
      skip(p);
      if (p.s[p.i] === close) { p.i++; break; }
      if (p.i >= p.s.length) fail(p, "unterminated container");
      items.push(textValue(p, c === "("));
      skip(p);
      if (c === "[" && p.s[p.i] === ",") p.i++;
    }
    return { t: c === "[" ? "list" : "sexp", v: items };
  }
  if (c === '"') return { t: "string", v: quoted(p, '"') };
  if (p.s.startsWith("'''", p.i)) {
    let out = "";
    while (p.s.startsWith("'''", p.i)) {
      p.i += 3;
      while (!p.s.startsWith("'''", p.i)) {
        if (p.i >= p.s.length) fail(p, "unterminated long string");
        const ch = p.s[p.i++];
        out += ch === "\\" ? readEscape(p) : ch;
      }
      p.i += 3;
      skip(p);
    }
    return { t: "string", v: out };
  }
  if (c === "'") return { t: "symbol", v: quoted(p, "'") };
  const word = /^[^\s,{}[\]()"']+/.exec(p.s.slice(p.i, p.i + 4096));
  if (!word) fail(p, "expected a value");
  let w = word[0];
  if (inSexp && /^[!#%&*+\-./;<=>?@^`|~]+$/.test(w)) { p.i += w.length; return { t: "symbol", v: w }; }
  const sym = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(w);
  if (sym && !/^null\./.test(w)) {
    p.i += sym[0].length;
    w = sym[0];
    if (w === "null") return { t: "null", v: "null" };
    if (w === "true" || w === "false") return { t: "bool", v: w === "true" };
    if (w === "nan") return { t: "float", v: NaN };
    return { t: "symbol", v: w };
  }
  p.i += w.length;
  if (w.startsWith("null.")) return { t: "null", v: w.slice(5) };
  if (w === "+inf" || w === "-inf") return { t: "float", v: w === "+inf" ? Infinity : -Infinity };
  if (/^\d{4}(-\d\d(-\d\d)?)?T/.test(w) || /^\d{4}-\d\d-\d\d$/.test(w)) return { t: "timestamp", v: w };
  const radix = /^(-?)0([xXbB])([0-9a-fA-F_]+)$/.exec(w);
  if (radix) {
    const n = BigInt(`0${radix[2].toLowerCase()}${radix[3].replace(/_/g, "")}`);
    return { t: "int", v: radix[1] ? -n : n };
  }
  if (/[eE]/.test(w)) return { t: "float", v: Number(w.replace(/_/g, "")) };
  if (/[.dD]/.test(w)) return { t: "decimal", v: w };
  return { t: "int", v: BigInt(w.replace(/_/g, "")) };
}

function lob(p) {
  const end = p.s.indexOf("}}", p.i + 2);
  if (end < 0) fail(p, "unterminated lob");
  const body = p.s.slice(p.i + 2, end).trim();
  p.i = end + 2;
  if (body.startsWith('"') || body.startsWith("'''")) {
    const inner = parseText(body)[0];
    return { t: "clob", v: new TextEncoder().encode(inner.v) };
  }
  return { t: "blob", v: fromBase64(body.replace(/\s/g, "")) };
}

// ---------------------------------------------------------------- text writer

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const KEYWORDS = new Set(["null", "true", "false", "nan"]);

function symbolOut(s) {
  if (s === null) return "$0";
  // $12 unquoted would read back as symbol id 12.
  return IDENT.test(s) && !KEYWORDS.has(s) && !/^\$\d+$/.test(s) ? s : `'${escape(s, "'")}'`;
}

function escape(s, q) {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === "\\" || ch === q) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out;
}

// Ion text; `indent` (a string) spreads containers over lines.
export function toText(v, indent = null, depth = 0) {
  const pre = (v.a || []).map((a) => `${symbolOut(a)}::`).join("");
  const nl = (d) => (indent === null ? "" : `\n${indent.repeat(d)}`);
  const sep = indent === null ? "," : ",";
  switch (v.t) {
    case "null": return pre + (v.v === "null" ? "null" : `null.${v.v}`);
    case "bool": return pre + String(v.v);
    case "int": return pre + v.v.toString();
    case "float": {
      if (Number.isNaN(v.v)) return `${pre}nan`;
      if (!Number.isFinite(v.v)) return `${pre}${v.v > 0 ? "+inf" : "-inf"}`;
      if (Object.is(v.v, -0)) return `${pre}-0e0`;
      const s = v.v.toExponential();
      return pre + s.replace(/e\+?/, "e");
    }
    case "decimal": case "timestamp": return pre + v.v;
    case "symbol": return pre + symbolOut(v.v);
    case "string": return `${pre}"${escape(v.v, '"')}"`;
    case "blob": return `${pre}{{${toBase64(v.v)}}}`;
    case "clob": {
      // Each byte as itself when printable ASCII, else \xHH (a clob holds bytes, not text).
      let body = "";
      for (const b of v.v) {
        const c = String.fromCharCode(b);
        body += b === 0x22 || b === 0x5c ? `\\${c}` : b >= 0x20 && b < 0x7f ? c : `\\x${b.toString(16).padStart(2, "0")}`;
      }
      return `${pre}{{"${body}"}}`;
    }
    case "list": case "sexp": {
      const [o, c] = v.t === "list" ? ["[", "]"] : ["(", ")"];
      if (!v.v.length) return pre + o + c;
      const items = v.v.map((x) => nl(depth + 1) + toText(x, indent, depth + 1));
      return pre + o + items.join(v.t === "list" ? sep : indent === null ? " " : "") + nl(depth) + c;
    }
    case "struct": {
      if (!v.v.length) return `${pre}{}`;
      const fields = v.v.map(([k, x]) => `${nl(depth + 1)}${symbolOut(k)}:${indent === null ? "" : " "}${toText(x, indent, depth + 1)}`);
      return `${pre}{${fields.join(sep)}${nl(depth)}}`;
    }
    default: return "?";
  }
}

export function field(v, name) {
  return v && v.t === "struct" ? v.v.find(([k]) => k === name)?.[1] : undefined;
}

// ---------------------------------------------------------------- hashes

export function toBase64(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// The Ion hash of a string value: SHA-256 of 0x0B, 0x80, the escaped UTF-8 bytes, 0x0E.
export async function ionHashString(s) {
  const utf8 = new TextEncoder().encode(s);
  const out = [0x0b, 0x80];
  for (const b of utf8) {
    if (b === 0x0b || b === 0x0e || b === 0x0c) out.push(0x0c);
    out.push(b);
  }
  out.push(0x0e);
  return sha256(new Uint8Array(out));
}

// QLDB's dot: SHA-256 of the two hashes, the smaller first, compared as signed bytes from the
// last byte; an empty side gives the other.
export async function dot(a, b) {
  if (!a.length) return b;
  if (!b.length) return a;
  let cmp = 0;
  for (let i = 1; i <= Math.min(a.length, b.length) && cmp === 0; i++) {
    const x = (a[a.length - i] << 24) >> 24;
    const y = (b[b.length - i] << 24) >> 24;
    cmp = x - y;
  }
  if (cmp === 0) cmp = a.length - b.length;
  const [first, second] = cmp < 0 ? [a, b] : [b, a];
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return sha256(joined);
}
