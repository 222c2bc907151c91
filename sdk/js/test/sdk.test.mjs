// The SDK against a real suite: registration and signed events over HTTP and over NATS,
// answered per event; answers and Merkle proofs verified offline; a tampered answer and a
// tampered proof refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AgentBus, Key, Pactum, PactumError, VerificationError, decode, encode, enumName, enumValue,
  leafHash, logId, nodeHash, seal, verifyAnswer, verifyConsistency, verifyInclusion, verifyWebhook,
} from "../dist/index.js";
import { startSuite, waitFor } from "./suite.mjs";

const PACT = JSON.stringify({
  pactum: 1, id: "js-pact", agent: "js-bot",
  clauses: [
    { id: "latency", promise: "replies within 2 s on average", severity: "high", kind: "objective",
      metric: "latency_ms", aggregate: "mean", window: "5m", op: "<=", threshold: 2000, min_samples: 1 },
    { id: "no-leak", promise: "never leaks", severity: "critical", kind: "forbidden",
      match: { field: "labels.pii", eq: "leaked" }, window: "30d" },
  ],
});

let suite, px, owner, agent, receipt;

before(async () => {
  suite = await startSuite();
  owner = Key.generate();
  agent = Key.generate();
  px = new Pactum({ gateway: suite.env.PACTUM_GATEWAY_URL, oracle: suite.env.PACTUM_ORACLE_URL, logKey: suite.env.PACTUM_LOG_KEY });
  receipt = await px.registerAgent("js-bot", agent, owner);
  assert.equal(receipt.ok, true, JSON.stringify(receipt));
  const pr = await px.registerPact(PACT, owner);
  assert.equal(pr.version, 1, JSON.stringify(pr));
  const tokenFile = join(suite.env.PACTUM_VAR, "js-token");
  suite.cli("client", "register", "--id", "@jssdk", "--admin-key", suite.env.PACTUM_ADMIN_KEY_FILE, "--out", tokenFile);
  px.token = readFileSync(tokenFile, "utf8").trim();
});

after(async () => {
  if (suite) await suite.stop();
});

test("keys: the CLI's key files load, and what the SDK saves the CLI reads", () => {
  const dir = mkdtempSync(join(tmpdir(), "pactum-keys-"));
  suite.cli("keygen", "-o", join(dir, "cli.key"));
  const k = Key.load(join(dir, "cli.key"));
  assert.equal(Buffer.from(k.publicKey).toString("hex"), readFileSync(join(dir, "cli.key.pub"), "utf8").trim());
  const mine = Key.generate();
  mine.save(join(dir, "js.key"));
  assert.equal(statSync(join(dir, "js.key")).mode & 0o777, 0o600);
  assert.match(suite.cli("log", "key", "--key", join(dir, "js.key.pub")), new RegExp(logId(mine.publicKey)));
  assert.throws(() => mine.save(join(dir, "js.key")), /EEXIST/);
});

test("events over HTTP are judged per event", async () => {
  const good = [0, 1, 2].map((i) => ({ kind: "reply", eventId: `ok-${i}`, metrics: { latency_ms: 300 } }));
  const r = await px.publish("js-bot", agent, good);
  assert.deepEqual([r.judged, r.accepted, r.refused.length], [true, 3, 0]);
  const again = await px.publish("js-bot", agent, [good[0], { kind: "reply", eventId: "ok-3", metrics: { latency_ms: 250 } }]);
  assert.equal(again.accepted, 1);
  assert.deepEqual(again.refused.map((x) => [x.event_id, x.reason]), [["ok-0", "duplicate"]]);
  await assert.rejects(px.publish("js-bot", Key.generate(), good), (e) => e instanceof PactumError && e.status === 403 && e.reason === "bad_signature");
});

test("events over NATS with the bus identity the registration gave", async () => {
  const cred = receipt.credentials.find((c) => c.role === "agent");
  assert.ok(cred, JSON.stringify(receipt.credentials));
  const bus = await AgentBus.connect({ servers: suite.env.PACTUM_NATS_URL, agentId: "js-bot", key: agent, jwt: cred.jwt, caFile: suite.env.PACTUM_NATS_CA });
  try {
    const r = await bus.publish([{ kind: "reply", eventId: "bus-1", metrics: { latency_ms: 420 } }]);
    assert.deepEqual([r.judged, r.accepted], [true, 1]);
    // the bus refuses another agent's subject to this identity
    await assert.rejects(bus.nc.jetstream().publish("pactum.raw.someone-else", new Uint8Array([1]), { timeout: 3000 }));
  } finally {
    await bus.close();
  }
});

test("answers and proofs verify, and a leak contains the agent", async () => {
  const t = await waitFor(async () => ((await px.trust("js-bot")).answer.state?.tier ? px.trust("js-bot") : null), "a trust state");
  assert.equal(t.type, "trust_report");
  const page = await waitFor(async () => { const p = await px.evidence("js-bot", { limit: 50 }); return p.answer.entries.length >= 4 ? p : null; }, "evidence in the log");
  assert.ok(page.steps.some((s) => s.includes("is in the tree")));
  let d = await px.authorize("js-bot", { action: "reply" });
  assert.equal(enumName("Permit", d.answer.permit), "PERMIT_ALLOW");
  await px.publish("js-bot", agent, [{ kind: "reply", eventId: "leak-1", labels: { pii: "leaked" } }]);
  const contained = enumValue("Tier", "TIER_CONTAINED");
  await waitFor(async () => (await px.trust("js-bot")).answer.state.tier === contained, "containment");
  d = await px.authorize("js-bot", { action: "reply" });
  assert.equal(enumName("Permit", d.answer.permit), "PERMIT_DENY");
  const at = await waitFor(async () => { const a = await px.attestation("js-bot"); return a.answer.tier === contained ? a : null; }, "an attestation");
  assert.ok(at.steps.some((s) => s.includes("as logged")));
});

async function rawAnswer(path) {
  const doc = await px.call(px.oracle, "GET", path);
  return new Uint8Array(Buffer.from(doc.signed, "base64"));
}

test("a tampered answer is refused", async () => {
  const data = await rawAnswer("/v1/agents/js-bot/trust");
  verifyAnswer(data, px.logKey);
  const env = decode("Signed", data);
  const report = decode("TrustReport", env.payload);
  const trusted = enumValue("Tier", "TIER_TRUSTED");
  report.state.tier = report.state.tier === trusted ? enumValue("Tier", "TIER_SUSPENDED") : trusted;
  env.payload = encode("TrustReport", report);
  assert.throws(() => verifyAnswer(encode("Signed", env), px.logKey), (e) => e instanceof VerificationError && /signature/.test(e.message));
  assert.throws(() => verifyAnswer(data, Key.generate().publicKey), /pinned key/);
});

test("a tampered proof is refused even when the answer is signed", async () => {
  // re-signed with a key of our own, so that only the proof is wrong
  const env = decode("Signed", await rawAnswer("/v1/agents/js-bot/evidence?limit=50"));
  const page = decode("EvidencePage", env.payload);
  const mine = Key.generate();
  const head = decode("Signed", page.head);
  page.head = seal(head.type, head.payload, head.signerId, mine);
  const type = enumValue("PayloadType", "PAYLOAD_EVIDENCE_PAGE");
  verifyAnswer(seal(type, encode("EvidencePage", page), env.signerId, mine), mine.publicKey);
  const entry = page.entries.find((e) => e.path.length > 0);
  assert.ok(entry);
  entry.path[0] = new Uint8Array(32);
  assert.throws(() => verifyAnswer(seal(type, encode("EvidencePage", page), env.signerId, mine), mine.publicKey), /NOT proven/);
});

test("RFC 6962 proofs on a tree built here", () => {
  const leaves = [0, 1, 2, 3, 4, 5, 6].map((i) => new Uint8Array([i, i, i]));
  const split = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; };
  const root = (xs) => (xs.length === 1 ? leafHash(xs[0]) : nodeHash(root(xs.slice(0, split(xs.length))), root(xs.slice(split(xs.length)))));
  const path = (m, xs) => {
    if (xs.length === 1) return [];
    const k = split(xs.length);
    return m < k ? [...path(m, xs.slice(0, k)), root(xs.slice(k))] : [...path(m - k, xs.slice(k)), root(xs.slice(0, k))];
  };
  const r = root(leaves);
  for (let m = 0; m < 7; m++) {
    assert.ok(verifyInclusion(leafHash(leaves[m]), m, 7, path(m, leaves), r));
    assert.ok(!verifyInclusion(leafHash(leaves[m]), (m + 1) % 7, 7, path(m, leaves), r));
  }
  assert.ok(verifyConsistency(4, 7, root(leaves.slice(0, 4)), r, [root(leaves.slice(4))]));
  const p3 = [root(leaves.slice(2, 3)), root(leaves.slice(3, 4)), root(leaves.slice(0, 2)), root(leaves.slice(4))];
  assert.ok(verifyConsistency(3, 7, root(leaves.slice(0, 3)), r, p3));
  assert.ok(!verifyConsistency(3, 7, root(leaves.slice(0, 3)), r, p3.slice(0, 3)));
});

test("webhooks bring each change signed, and a tampered one is refused", async () => {
  const market = Key.generate();
  const dir = mkdtempSync(join(tmpdir(), "pactum-market-"));
  market.save(join(dir, "market.key"));
  suite.cli("client", "register", "--id", "@jsmarket", "--key", join(dir, "market.key"), "--admin-key", suite.env.PACTUM_ADMIN_KEY_FILE, "--out", join(dir, "market.token"));
  const got = [];
  const server = createServer((req, res) => {
    const parts = [];
    req.on("data", (c) => parts.push(c));
    req.on("end", () => {
      got.push({ headers: req.headers, body: Buffer.concat(parts) });
      res.writeHead(200).end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}/hook`;
  try {
    await assert.rejects(px.subscribeWebhook("@jsmarket", Key.generate(), url), (e) => e instanceof PactumError && e.status === 403);
    const sub = (await px.subscribeWebhook("@jsmarket", market, url, { agents: ["js-bot"] })).subscription;
    await px.publish("js-bot", agent, [0, 1, 2].map((i) => ({ kind: "reply", eventId: `wh-${i}`, metrics: { latency_ms: 250 } })));
    await waitFor(() => got.length > 0, "a delivery");
    const { headers, body } = got[0];
    const doc = verifyWebhook(headers["pactum-signature"], body, px.logKey, { deliveryId: headers["pactum-delivery-id"] });
    assert.equal(doc.agent_id, "js-bot");
    assert.equal(doc.delivery_id, `${sub.id}-${doc.seq}`);
    assert.equal(Number(doc.notice.trustSeq), doc.seq);
    assert.throws(() => verifyWebhook(headers["pactum-signature"], Buffer.from(body.toString().replace("js-bot", "js-bou")), px.logKey), VerificationError);
    assert.throws(() => verifyWebhook(headers["pactum-signature"], body, Key.generate().publicKey), VerificationError);
    const reader = new Pactum({ oracle: suite.env.PACTUM_ORACLE_URL, token: readFileSync(join(dir, "market.token"), "utf8").trim() });
    assert.deepEqual((await reader.webhooks()).subscriptions.map((x) => x.id), [sub.id]);
    const ids = got.map((g) => g.headers["pactum-delivery-id"]);
    assert.equal(new Set(ids).size, ids.length);
  } finally {
    server.close();
  }
});

test("the example agents keep and break their pact", () => {
  for (const [mode, tier] of [["keep", "tier trusted"], ["break", "tier contained"]]) {
    const out = execFileSync("npx", ["tsx", "../../examples/agents/ts_agent.mts", mode], {
      encoding: "utf8",
      timeout: 120000,
      env: { ...process.env, PACTUM_ENV: join(suite.env.PACTUM_VAR, "suite.env") },
    });
    assert.match(out, new RegExp(tier), out);
  }
});
