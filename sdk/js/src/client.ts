// A client of a Pactum installation over HTTP: the gateway for registrations and signed
// events (docs/http-api.md), the oracle for answers (docs/oracle-api.md), every answer
// checked offline with the log's pinned key before it is returned.
import { encode, enumValue, Msg } from "./proto.js";
import { popMessage, seal, VerificationError } from "./envelope.js";
import { Key, loadPublic } from "./keys.js";
import { Verified, verifyAnswer } from "./verify.js";
import { webhookSubscription } from "./webhook.js";

/** A refusal: the HTTP status, the reason code and the server's sentence. */
export class PactumError extends Error {
  constructor(readonly status: number, readonly reason: string, readonly detail: string) {
    super(`${status} ${reason}: ${detail}`);
  }
}

/** One piece of evidence about an agent (docs/protocol.md, Event). */
export interface Event {
  kind: string;
  eventId?: string;
  agentId?: string; // the signer's own agent when absent
  tsMs?: number; // now when absent
  action?: string;
  tool?: string;
  resource?: string;
  amount?: number;
  currency?: string;
  metrics?: Record<string, number>;
  labels?: Record<string, string>;
}

/** What ingest made of an envelope: events accepted, and the refused with their reasons. */
export interface Receipt {
  rawSeq: number;
  judged: boolean;
  accepted: number;
  refused: { event_id: string; reason: string; message: string }[];
}

let counter = 0;

export function eventMessage(signer: string, e: Event): Msg {
  return {
    eventId: e.eventId ?? `${signer}-${Date.now()}-${process.pid}-${counter++}`,
    agentId: e.agentId ?? signer,
    tsMs: e.tsMs ?? Date.now(),
    kind: e.kind,
    action: e.action ?? "",
    tool: e.tool ?? "",
    resource: e.resource ?? "",
    amount: e.amount ?? 0,
    currency: e.currency ?? "",
    metrics: Object.entries(e.metrics ?? {}).map(([name, value]) => ({ name, value })),
    labels: Object.entries(e.labels ?? {}).map(([name, value]) => ({ name, value })),
  };
}

/** A signed batch of events (at most 1,024) by signer; with receipt, ingest answers per event. */
export function batchEnvelope(signer: string, key: Key, events: Event[], receipt = true): Uint8Array {
  const payload = encode("EventBatch", { events: events.map((e) => eventMessage(signer, e)), receipt });
  return seal(enumValue("PayloadType", "PAYLOAD_EVENT_BATCH"), payload, signer, key);
}

/** An agent registration signed by its owner, with the agent key's proof of possession. */
export function agentRegistration(agentId: string, agentKey: Key, ownerKey: Key, displayName = ""): Uint8Array {
  const payload = encode("AgentRegistration", {
    agentId,
    agentKey: agentKey.publicKey,
    ownerKey: ownerKey.publicKey,
    displayName,
    agentPop: agentKey.sign(popMessage(agentId, ownerKey.publicKey)),
    tsMs: Date.now(),
  });
  return seal(enumValue("PayloadType", "PAYLOAD_AGENT_REGISTRATION"), payload, "", ownerKey);
}

/** A pact registration signed by the owner of the agent the document names. */
export function pactRegistration(document: string, ownerKey: Key): Uint8Array {
  const payload = encode("PactRegistration", {
    pactId: JSON.parse(document).id ?? "",
    document: Buffer.from(document),
    tsMs: Date.now(),
  });
  return seal(enumValue("PayloadType", "PAYLOAD_PACT_REGISTRATION"), payload, "", ownerKey);
}

export interface PactumOptions {
  gateway?: string; // "http://127.0.0.1:7481"
  oracle?: string; // "http://127.0.0.1:7480"
  logKey?: string | Uint8Array; // the log's public key: hex, or a .pub file
  token?: string; // an API client's "<id>:<secret>", for authorize
  timeoutMs?: number;
}

/** Pactum over HTTP. */
export class Pactum {
  readonly gateway?: string;
  readonly oracle?: string;
  logKey?: Uint8Array;
  token?: string;
  readonly timeoutMs: number;

  constructor(o: PactumOptions) {
    this.gateway = o.gateway?.replace(/\/$/, "");
    this.oracle = o.oracle?.replace(/\/$/, "");
    this.logKey = typeof o.logKey === "string" ? loadPublic(o.logKey) : o.logKey;
    this.token = o.token;
    this.timeoutMs = o.timeoutMs ?? 10000;
  }

  /** One HTTP call; the JSON body, or a PactumError with the server's reason. */
  async call(base: string | undefined, method: string, path: string, body?: Uint8Array | string, type = "application/x-protobuf"): Promise<Msg> {
    if (!base) throw new Error("no URL for this call: give gateway and oracle");
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["Content-Type"] = type;
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    const payload = typeof body === "string" || body === undefined ? body : Buffer.from(body);
    const r = await fetch(base + path, { method, body: payload, headers, signal: AbortSignal.timeout(this.timeoutMs) });
    const text = await r.text();
    let doc: Msg;
    try {
      doc = text ? JSON.parse(text) : {};
    } catch {
      doc = { status: "error", message: text };
    }
    if (!r.ok) throw new PactumError(r.status, doc.status ?? doc.reason ?? "error", doc.message ?? "");
    return doc;
  }

  /** The signed answer of an oracle reply, checked with the pinned log key. */
  verified(doc: Msg): Verified {
    if (!this.logKey) throw new VerificationError("no log key pinned: give logKey");
    return verifyAnswer(new Uint8Array(Buffer.from(doc.signed, "base64")), this.logKey);
  }

  registerAgent(agentId: string, agentKey: Key, ownerKey: Key, displayName = ""): Promise<Msg> {
    return this.call(this.gateway, "POST", "/v1/agents", agentRegistration(agentId, agentKey, ownerKey, displayName));
  }

  registerPact(document: string, ownerKey: Key): Promise<Msg> {
    return this.call(this.gateway, "POST", "/v1/pacts", pactRegistration(document, ownerKey));
  }

  /** Sign events as signer and send them; with receipt, ingest's judgement of each. */
  async publish(signer: string, key: Key, events: Event[], receipt = true): Promise<Receipt> {
    const d = await this.call(this.gateway, "POST", "/v1/events", batchEnvelope(signer, key, events, receipt));
    return { rawSeq: d.raw_seq ?? 0, judged: !!d.judged, accepted: d.accepted ?? 0, refused: d.refused ?? [] };
  }

  async trust(agentId: string): Promise<Verified> {
    return this.verified(await this.call(this.oracle, "GET", `/v1/agents/${encodeURIComponent(agentId)}/trust`));
  }

  async authorize(agentId: string, request: { action: string; amount?: number; currency?: string; tool?: string; resource?: string; approval?: Uint8Array }): Promise<Verified> {
    const body: Msg = { ...request };
    if (request.approval) body.approval = Buffer.from(request.approval).toString("hex");
    return this.verified(await this.call(this.oracle, "POST", `/v1/agents/${encodeURIComponent(agentId)}/authorize`, JSON.stringify(body), "application/json"));
  }

  async evidence(agentId: string, opts: { from?: number; limit?: number; kind?: string } = {}): Promise<Verified> {
    const q = new URLSearchParams();
    if (opts.from) q.set("from", String(opts.from));
    if (opts.limit) q.set("limit", String(opts.limit));
    if (opts.kind) q.set("kind", opts.kind);
    return this.verified(await this.call(this.oracle, "GET", `/v1/agents/${encodeURIComponent(agentId)}/evidence?${q}`));
  }

  async attestation(agentId: string): Promise<Verified> {
    return this.verified(await this.call(this.oracle, "GET", `/v1/agents/${encodeURIComponent(agentId)}/attestation`));
  }

  async logHead(): Promise<Verified> {
    return this.verified(await this.call(this.oracle, "GET", "/v1/log/head"));
  }

  /** Subscribe url to trust changes (of agents, of kinds; none: all), signed by the API client's registered key. */
  subscribeWebhook(clientId: string, key: Key, url: string, o: { agents?: string[]; kinds?: string[] } = {}): Promise<Msg> {
    return this.call(this.oracle, "POST", "/v1/webhooks", webhookSubscription(clientId, key, url, o));
  }

  cancelWebhook(clientId: string, key: Key, url: string): Promise<Msg> {
    return this.call(this.oracle, "POST", "/v1/webhooks", webhookSubscription(clientId, key, url, { cancel: true }));
  }

  /** The client's subscriptions (this client's token). */
  webhooks(): Promise<Msg> {
    return this.call(this.oracle, "GET", "/v1/webhooks");
  }

  /** One subscription with its newest delivery attempts (this client's token). */
  webhook(id: string): Promise<Msg> {
    return this.call(this.oracle, "GET", `/v1/webhooks/${encodeURIComponent(id)}`);
  }
}
