// A TypeScript agent under a pact, through the HTTP gateway (sdk/js).
//
//   scripts/up.sh                                       # in another terminal
//   cd sdk/js && npm ci && npm run build                # once
//   npx tsx ../../examples/agents/ts_agent.mts keep      # replies fast: trusted
//   npx tsx ../../examples/agents/ts_agent.mts break     # leaks once: contained
//
// It registers a new agent (fresh keys) under examples/pacts/support-bot.json, publishes
// signed events, and prints the oracle's answer, checked with the log's key. The suite's
// URLs and the log key come from var/suite.env (PACTUM_ENV=FILE for another).
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
// in a project of your own: from "@pactum/sdk"
import { Key, Pactum, enumName, enumValue } from "../../sdk/js/dist/index.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const mode = process.argv[2];
if (mode !== "keep" && mode !== "break") throw new Error("usage: ts_agent.mts keep|break");
const env: Record<string, string> = Object.fromEntries(
  readFileSync(process.env.PACTUM_ENV ?? join(root, "var", "suite.env"), "utf8")
    .split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));

const agentId = `ts-${mode}er-${randomBytes(3).toString("hex")}`;
const owner = Key.generate(), agent = Key.generate();
const px = new Pactum({ gateway: env.PACTUM_GATEWAY_URL, oracle: env.PACTUM_ORACLE_URL, logKey: env.PACTUM_LOG_KEY });
const pact = JSON.parse(readFileSync(join(root, "examples", "pacts", "support-bot.json"), "utf8"));
pact.id = `${agentId}-pact`;
pact.agent = agentId;
await px.registerAgent(agentId, agent, owner);
console.log("registered", agentId, "with pact version", (await px.registerPact(JSON.stringify(pact), owner)).version);

const r = await px.publish(agentId, agent, Array.from({ length: 70 }, (_, i) => ({ kind: "reply", metrics: { latency_ms: 300 + i } })));
console.log(`70 replies: ${r.accepted} accepted, ${r.refused.length} refused`);
if (mode === "break") {
  const leak = await px.publish(agentId, agent, [{ kind: "reply", labels: { pii: "leaked" } }]);
  console.log(`a reply that leaks personal data: ${leak.accepted} accepted`);
}

const want = enumValue("Tier", mode === "break" ? "TIER_CONTAINED" : "TIER_TRUSTED");
const deadline = Date.now() + 30000;
let t = await px.trust(agentId);
while (t.answer.state.tier !== want && Date.now() < deadline) {
  await new Promise((res) => setTimeout(res, 300));
  t = await px.trust(agentId);
}
const s = t.answer.state;
console.log(`${agentId}: tier ${enumName("Tier", s.tier).slice(5).toLowerCase()}, score ${(s.scorePpm / 1e6).toFixed(3)}, lower bound ${(s.lowerPpm / 1e6).toFixed(3)} (verified: ${t.steps[0]})`);
process.exit(s.tier === want ? 0 : 1);
