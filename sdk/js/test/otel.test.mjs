// OpenTelemetry in: an agent traced with the real OpenTelemetry JS SDK, exporting GenAI spans
// with its OTLP/HTTP exporter to the gateway, is judged on them: a harmless tool call is
// evidence from the telemetry source, and a span showing the forbidden tool contains it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SpanStatusCode } from "@opentelemetry/api";
import { Key, Pactum, decode, enumValue } from "../dist/index.js";
import { startSuite, waitFor } from "./suite.mjs";

const PACT = JSON.stringify({
  pactum: 1, id: "otel-pact", agent: "otel-bot",
  clauses: [
    { id: "no-shell-rm", promise: "never runs shell.rm", severity: "critical", kind: "forbidden",
      window: "30d", sources: { self: 0.5, telemetry: 1 }, match: { field: "tool", eq: "shell.rm" } },
    { id: "errors", promise: "fewer than half of its tool calls fail", severity: "low", kind: "objective",
      when: { field: "kind", eq: "tool_call" }, metric: "error", aggregate: "mean", window: "1h",
      op: "<=", threshold: 0.5, min_samples: 1 },
  ],
});

let suite, px, provider, tracer;

before(async () => {
  suite = await startSuite();
  const owner = Key.generate(), agent = Key.generate();
  px = new Pactum({ gateway: suite.env.PACTUM_GATEWAY_URL, oracle: suite.env.PACTUM_ORACLE_URL, logKey: suite.env.PACTUM_LOG_KEY });
  assert.equal((await px.registerAgent("otel-bot", agent, owner)).ok, true);
  assert.equal((await px.registerPact(PACT, owner)).ok, true);
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": "otel-bot" }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${suite.env.PACTUM_OTLP_URL}/v1/traces` }))],
  });
  tracer = provider.getTracer("pactum-otel-test");
});

after(async () => {
  if (provider) await provider.shutdown();
  if (suite) await suite.stop();
});

function toolCall(tool, ok) {
  const span = tracer.startSpan(`execute_tool ${tool}`, {
    attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.request.model": "test-model", "gen_ai.usage.input_tokens": 42 },
  });
  if (!ok) span.setStatus({ code: SpanStatusCode.ERROR, message: "permission denied" });
  span.end();
}

async function telemetryEvents() {
  const page = await px.evidence("otel-bot", { limit: 100, kind: "event" });
  return page.answer.entries.map((e) => decode("Event", e.record)).filter((ev) => ev.reporterId === "@otel");
}

test("an exporter's GenAI spans become telemetry evidence and move the agent's tier", async () => {
  toolCall("search.docs", true);
  await provider.forceFlush();
  const first = await waitFor(async () => { const evs = await telemetryEvents(); return evs.length ? evs : null; }, "the span in the agent's evidence");
  assert.equal(first[0].source, enumValue("Source", "SOURCE_TELEMETRY"));
  assert.equal(first[0].kind, "tool_call");
  assert.equal(first[0].tool, "search.docs");
  assert.equal(first[0].metrics.find((m) => m.name === "input_tokens").value, 42);
  assert.notEqual((await px.trust("otel-bot")).answer.state.tier, enumValue("Tier", "TIER_CONTAINED"));

  toolCall("shell.rm", false);
  await provider.forceFlush();
  const contained = enumValue("Tier", "TIER_CONTAINED");
  const t = await waitFor(async () => { const r = await px.trust("otel-bot"); return r.answer.state.tier === contained ? r : null; }, "containment from a span");
  assert.ok(t.steps[0].includes("signed by log"));
});
