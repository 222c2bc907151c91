// Oracle answers checked offline with nothing but the log's public key: the same steps as
// `pactum verify` (libs/common/src/verify.c), RFC 6962 / 9162 proofs included.
import { createHash } from "node:crypto";
import { decode, enumName, enumValue, Msg } from "./proto.js";
import { openSigned, VerificationError } from "./envelope.js";
import { hex } from "./keys.js";

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
const eq = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && hex(a) === hex(b);

export const leafHash = (leaf: Uint8Array): Uint8Array => sha256(Uint8Array.of(0), leaf);
export const nodeHash = (l: Uint8Array, r: Uint8Array): Uint8Array => sha256(Uint8Array.of(1), l, r);

/** The log's id: the first 16 bytes of SHA-256 of its public key, in hex. */
export const logId = (key: Uint8Array): string => hex(sha256(key)).slice(0, 32);

/** RFC 9162 2.1.3.2: is leafH at index in the tree of size with root? */
export function verifyInclusion(leafH: Uint8Array, index: number, size: number, path: Uint8Array[], root: Uint8Array): boolean {
  if (index >= size || path.length > 64) return false;
  let fn = BigInt(index), sn = BigInt(size - 1), r = leafH;
  for (const p of path) {
    if (p.length !== 32 || sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      r = nodeHash(p, r);
      if (!(fn & 1n)) while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && eq(r, root);
}

/** RFC 9162 2.1.4.2: is the tree of size1 a prefix of the tree of size2? */
export function verifyConsistency(size1: number, size2: number, root1: Uint8Array, root2: Uint8Array, path: Uint8Array[]): boolean {
  if (size1 > size2 || path.length > 64 || path.some((p) => p.length !== 32)) return false;
  if (size1 === size2) return path.length === 0 && eq(root1, root2);
  if (size1 === 0 || path.length === 0) return false;
  const proof = (size1 & (size1 - 1)) === 0 ? [root1, ...path] : [...path];
  let fn = BigInt(size1 - 1), sn = BigInt(size2 - 1);
  while (fn & 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = proof[0], sr = proof[0];
  for (const c of proof.slice(1)) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!(fn & 1n)) while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && eq(fr, root1) && eq(sr, root2);
}

const ANSWERS: Record<string, string> = {
  PAYLOAD_TRUST_REPORT: "TrustReport",
  PAYLOAD_PACT_REPORT: "PactReport",
  PAYLOAD_EVIDENCE_PAGE: "EvidencePage",
  PAYLOAD_ATTESTATION: "Attestation",
  PAYLOAD_TREE_HEAD: "TreeHead",
  PAYLOAD_LOG_ANSWER: "LogAnswer",
  PAYLOAD_DECISION: "AuthorizeDecision",
  PAYLOAD_FIGURES: "GovernanceFigures",
  PAYLOAD_CHANGE_NOTICE: "ChangeNotice",
};

/** A checked answer: its type ("trust_report" ...), the decoded payload, the steps that passed. */
export interface Verified {
  type: string;
  answer: Msg;
  steps: string[];
}

function head(data: Uint8Array, key: Uint8Array, what: string, steps: string[]): Msg {
  if (!data || data.length === 0) throw new VerificationError(`${what}: missing`);
  const env = openSigned(data, key);
  if (env.type !== enumValue("PayloadType", "PAYLOAD_TREE_HEAD")) throw new VerificationError(`${what}: not a signed tree head`);
  const th = decode("TreeHead", env.payload);
  if (th.root.length !== 32) throw new VerificationError(`${what}: the root is not 32 bytes`);
  steps.push(`${what}: signed tree head of log ${th.logId}, ${th.size} leaves`);
  return th;
}

function leaf(bytes: Uint8Array, index: number, path: Uint8Array[], record: Uint8Array, th: Msg, steps: string[]): Msg {
  let l: Msg;
  try {
    l = decode("LogLeaf", bytes);
  } catch {
    throw new VerificationError(`leaf ${index} does not decode`);
  }
  if (!verifyInclusion(leafHash(bytes), index, th.size, path, th.root))
    throw new VerificationError(`leaf ${index} is NOT proven in the tree of ${th.size} leaves`);
  steps.push(`leaf ${index} (${l.stream} #${l.streamSeq}) is in the tree of ${th.size}`);
  if (record && record.length) {
    if (!eq(sha256(record), l.dataSha256)) throw new VerificationError(`the record given for leaf ${index} is not the one it commits to`);
    steps.push(`the record of leaf ${index} is the one it commits to`);
  }
  return l;
}

function answered(m: Msg): void {
  if (m.status !== enumValue("QueryStatus", "QUERY_OK")) throw new VerificationError(`the answer is a refusal: ${m.message}`);
}

/**
 * Check a signed answer (the Signed envelope's bytes) under the log key, with every check
 * its type allows; throws VerificationError at the first step that fails.
 */
export function verifyAnswer(data: Uint8Array, key: Uint8Array): Verified {
  const env = openSigned(data, key);
  const name = enumName("PayloadType", env.type);
  const msgType = ANSWERS[name];
  if (!msgType) throw new VerificationError(`payload type ${env.type} is not an oracle answer`);
  let m: Msg;
  try {
    m = decode(msgType, env.payload);
  } catch {
    throw new VerificationError("the signed answer does not decode");
  }
  const steps = [`${name} signed by log ${logId(key)}`];
  if (name === "PAYLOAD_EVIDENCE_PAGE") {
    answered(m);
    const th = head(m.head, key, "head", steps);
    for (const e of m.entries) {
      const l = leaf(e.leaf, e.index, e.path, e.record, th, steps);
      if (l.agentId !== m.agentId) throw new VerificationError(`leaf ${e.index} is about ${l.agentId}, not ${m.agentId}`);
    }
  } else if (name === "PAYLOAD_ATTESTATION") {
    answered(m);
    const th = head(m.head, key, "head", steps);
    const l = leaf(m.leaf, m.logIndex, m.path, m.record, th, steps);
    if (l.kind !== enumValue("LeafKind", "LEAF_TRUST_CHANGE") || l.agentId !== m.agentId)
      throw new VerificationError(`leaf ${m.logIndex} is not a trust change of ${m.agentId}`);
    const tc = decode("TrustChange", m.record);
    const s = tc.state ?? {};
    if (tc.agentId !== m.agentId || s.scorePpm !== m.scorePpm || s.lowerPpm !== m.lowerPpm || s.tier !== m.tier)
      throw new VerificationError("the attested score, bound or tier differ from the logged change");
    if (Date.now() > m.validUntilMs) throw new VerificationError("the attestation has expired");
    steps.push(`${m.agentId}: tier ${enumName("Tier", m.tier)}, as logged`);
  } else if (name === "PAYLOAD_LOG_ANSWER") {
    answered(m);
    const th = head(m.head, key, "head", steps);
    if (m.leaf && m.leaf.length) {
      leaf(m.leaf, m.index, m.path, m.record, th, steps);
    } else if (m.firstHead && m.firstHead.length) {
      const first = head(m.firstHead, key, "first head", steps);
      if (!verifyConsistency(first.size, th.size, first.root, th.root, m.path))
        throw new VerificationError(`the tree of ${first.size} leaves is NOT proven a prefix of ${th.size}`);
      steps.push(`the tree of ${first.size} leaves is a prefix of the tree of ${th.size}`);
    }
  } else if ((name === "PAYLOAD_TRUST_REPORT" || name === "PAYLOAD_FIGURES") && m.logHead && m.logHead.length) {
    head(m.logHead, key, "log head", steps);
  }
  return { type: name.slice("PAYLOAD_".length).toLowerCase(), answer: m, steps };
}
