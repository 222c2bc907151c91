// Pactum pages: check what the page shows against the log, in the browser, with nothing but
// the log's public key (shown on the page; pin it from a channel you trust). Ed25519 with
// WebCrypto, SHA-256 and the RFC 6962 inclusion proof recomputed here; the same steps as
// `pactum verify` (libs/common/src/verify.c). No library, no network but this server.
"use strict";

const enc = new TextEncoder();

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function unhex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

function unbase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// The fields of a protobuf message: {number: [values]}; varints as BigInt, bytes as Uint8Array.
function fields(buf) {
  const out = {};
  let i = 0;
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error("truncated message");
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) throw new Error("varint too long");
    }
  };
  while (i < buf.length) {
    const key = varint();
    const num = Number(key >> 3n), wire = Number(key & 7n);
    let v;
    if (wire === 0) v = varint();
    else if (wire === 2) {
      const n = Number(varint());
      if (i + n > buf.length) throw new Error("truncated field");
      v = buf.subarray(i, i + n);
      i += n;
    } else if (wire === 1) { v = buf.subarray(i, i + 8); i += 8; }
    else if (wire === 5) { v = buf.subarray(i, i + 4); i += 4; }
    else throw new Error("unknown wire type " + wire);
    (out[num] = out[num] || []).push(v);
  }
  return out;
}

const one = (f, n, dflt) => (f[n] ? f[n][f[n].length - 1] : dflt);
const num = (f, n) => Number(one(f, n, 0n));
const bytes = (f, n) => one(f, n, new Uint8Array(0));
const text = (f, n) => new TextDecoder().decode(bytes(f, n));

async function sha256(...parts) {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const all = new Uint8Array(len);
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

// A Signed envelope checked under the pinned key: its type and payload.
async function openSigned(data, key, what) {
  const f = fields(data);
  const type = num(f, 2), payload = bytes(f, 3), signerKey = bytes(f, 5), sig = bytes(f, 6);
  if (num(f, 1) !== 1) throw new Error(`${what}: envelope version ${num(f, 1)}`);
  if (hex(signerKey) !== hex(key)) throw new Error(`${what}: signed by ${hex(signerKey)}, not by the log's key`);
  const t = new Uint8Array(4);
  new DataView(t.buffer).setUint32(0, type);
  const input = new Uint8Array([...enc.encode("pactum/v1\n"), ...t, ...payload]);
  const k = await crypto.subtle.importKey("raw", key, { name: "Ed25519" }, false, ["verify"]);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, k, sig, input)))
    throw new Error(`${what}: the Ed25519 signature does not verify`);
  return { type, payload };
}

async function treeHead(data, key, what) {
  const { type, payload } = await openSigned(data, key, what);
  if (type !== 14) throw new Error(`${what}: not a signed tree head`);
  const f = fields(payload);
  const root = bytes(f, 3);
  if (root.length !== 32) throw new Error(`${what}: the root is not 32 bytes`);
  return { logId: text(f, 1), size: num(f, 2), root, ms: num(f, 4) };
}

// RFC 9162 2.1.3.2: the root of the tree of `size` leaves from a leaf's hash and its path.
async function rootFrom(leafHash, index, size, path) {
  if (index >= size) throw new Error(`leaf ${index} is beyond the tree of ${size}`);
  let fn = BigInt(index), sn = BigInt(size - 1), r = leafHash;
  for (const p of path) {
    if (sn === 0n || p.length !== 32) throw new Error("the proof is too long or malformed");
    if (fn & 1n || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if (!(fn & 1n)) while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the proof is too short");
  return r;
}

async function inclusion(leaf, index, path, record, head) {
  const root = await rootFrom(await sha256(Uint8Array.of(0), leaf), index, head.size, path);
  if (hex(root) !== hex(head.root))
    throw new Error(`leaf ${index} is NOT in the tree of ${head.size}: the recomputed root differs`);
  const lf = fields(leaf);
  if (record && record.length && hex(await sha256(record)) !== hex(bytes(lf, 6)))
    throw new Error(`the record is not the one leaf ${index} commits to`);
  return lf;
}

// A test hook: ?tamper=1 changes one byte of the answer before it is checked, as a proxy
// between this page and the oracle could; the check must then fail.
function maybeTamper(data) {
  if (new URLSearchParams(location.search).get("tamper") !== "1") return data;
  const copy = new Uint8Array(data);
  copy[copy.length >> 1] ^= 1; /* in the payload */
  return copy;
}

async function fetchSigned(url) {
  const r = await fetch(url, { cache: "no-store" });
  const doc = await r.json();
  if (!doc.signed) throw new Error(`${url}: ${doc.message || "no signed answer"}`);
  return maybeTamper(unbase64(doc.signed));
}

// The agent page: the trust report the page was made from, and the attestation of the
// agent's standing with its inclusion proof.
async function verifyAgent(el, key) {
  const agent = el.dataset.agent;
  const report = await openSigned(maybeTamper(unbase64(el.dataset.signed)), key, "the trust report");
  if (report.type !== 9) throw new Error("the page's answer is not a trust report");
  const rf = fields(report.payload);
  if (text(rf, 3) !== agent) throw new Error("the trust report is about another agent");
  const at = await openSigned(await fetchSigned(`/v1/agents/${encodeURIComponent(agent)}/attestation`), key, "the attestation");
  if (at.type !== 13) throw new Error("not an attestation");
  const af = fields(at.payload);
  if (num(af, 1) !== 1) throw new Error(`the attestation is a refusal: ${text(af, 2)}`);
  const head = await treeHead(bytes(af, 14), key, "its tree head");
  const lf = await inclusion(bytes(af, 12), num(af, 11), af[15] || [], bytes(af, 13), head);
  if (num(lf, 1) !== 4 || text(lf, 5) !== agent) throw new Error("the proven leaf is not a trust change of this agent");
  const tc = fields(bytes(af, 13)), st = fields(bytes(tc, 3));
  if (num(st, 2) !== num(af, 4) || num(st, 3) !== num(af, 5) || num(st, 6) !== num(af, 8))
    throw new Error("the attested score, bound or tier differ from the logged trust change");
  return `verified against log ${head.logId}, tree size ${head.size}: the trust report's signature, the attestation's, its tree head's, and leaf ${num(af, 11)} by its inclusion proof`;
}

// The log page: every head shown, and a leaf with its proof.
async function verifyLog(el, key) {
  let checked = 0, last = null;
  for (const h of document.querySelectorAll("[data-head]")) {
    last = await treeHead(maybeTamper(unbase64(h.dataset.head)), key, `head of ${h.dataset.size}`);
    checked++;
  }
  const leafEl = document.querySelector("[data-leaf-index]");
  if (leafEl) {
    const idx = Number(leafEl.dataset.leafIndex);
    const ans = await openSigned(await fetchSigned(`/v1/log/inclusion?index=${idx}`), key, "the inclusion proof");
    const f = fields(ans.payload);
    if (num(f, 1) !== 1) throw new Error(`the proof is a refusal: ${text(f, 2)}`);
    const head = await treeHead(bytes(f, 3), key, "its tree head");
    await inclusion(bytes(f, 6), num(f, 5), f[8] || [], bytes(f, 7), head);
    return `verified against log ${head.logId}, tree size ${head.size}: ${checked} heads' signatures, and leaf ${idx} by its inclusion proof`;
  }
  if (!last) throw new Error("no head to check");
  return `verified against log ${last.logId}, tree size ${last.size}: ${checked} heads' signatures`;
}

async function run() {
  const el = document.getElementById("verify");
  if (!el) return;
  const out = document.getElementById("verify-result");
  out.className = "checking";
  out.textContent = "checking…";
  try {
    if (!crypto.subtle) throw new Error("this browser offers no WebCrypto here (it needs https or localhost)");
    const key = unhex(el.dataset.logKey);
    const said = el.dataset.page === "log" ? await verifyLog(el, key) : await verifyAgent(el, key);
    out.className = "verified";
    out.textContent = "✔ " + said;
  } catch (e) {
    out.className = "failed";
    out.textContent = "✘ verification FAILED: " + e.message;
  }
}

// The agent page follows the agent's changes as they happen (GET /v1/agents/<id>/changes,
// Server-Sent Events): the tier badge and the score move, and a note says what changed;
// each change is checked like any answer (its notice is signed by the log's key) first.
function follow() {
  const el = document.getElementById("verify");
  if (!el || el.dataset.page !== "agent" || !window.EventSource) return;
  if (new URLSearchParams(location.search).get("live") === "0") return; /* a still page */
  const key = unhex(el.dataset.logKey);
  const live = document.getElementById("live");
  const es = new EventSource(`/v1/agents/${encodeURIComponent(el.dataset.agent)}/changes`);
  es.addEventListener("change", async (m) => {
    try {
      const doc = JSON.parse(m.data);
      const n = await openSigned(unbase64(doc.signed), key, "the change");
      if (n.type !== 18) throw new Error("not a change notice");
      const f = fields(n.payload);
      const st = fields(bytes(fields(bytes(f, 3)), 3));
      const tiers = ["unspecified", "trusted", "standard", "watch", "restricted", "contained", "suspended"];
      const tier = tiers[num(st, 6)] || "unspecified";
      const badge = document.querySelector("#tier .badge");
      if (badge) { badge.className = "badge tier-" + tier; badge.textContent = tier; }
      const score = document.getElementById("score");
      if (score) score.textContent = (num(st, 2) / 1e6).toFixed(3);
      if (live) live.textContent = `changed just now (PACTUM_TRUST #${num(f, 1)}, its signature checked): tier ${tier}; reload for the full page`;
    } catch (e) {
      if (live) live.textContent = "a change arrived that does not check: " + e.message;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const b = document.getElementById("verify-button");
  if (b) {
    b.hidden = false;
    b.addEventListener("click", run);
  }
  run();
  follow();
});
