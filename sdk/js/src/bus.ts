// Pactum over NATS, as a registered agent: its bus identity (the user JWT a registration
// returns, with the agent key's seed), signed envelopes on pactum.raw.<agent>, and ingest's
// receipt for each on pactum.ingest.receipt.<agent> (docs/protocol.md).
import { connect, jwtAuthenticator, NatsConnection, JetStreamClient } from "nats";
import { fromSeed } from "nkeys.js";
import { createRequire } from "node:module";
import { decode } from "./proto.js";
import { Key } from "./keys.js";
import { batchEnvelope, Event, Receipt } from "./client.js";

const require = createRequire(import.meta.url);
const { Codec } = require("nkeys.js/lib/codec.js");
const PREFIX_USER = 20 << 3; // nkeys' prefix byte of a user key ('U')

export interface BusOptions {
  servers: string; // "tls://127.0.0.1:4222" or "nats://..."
  agentId: string;
  key: Key; // the agent's key
  jwt: string; // its bus identity, from the registration receipt's credentials
  caFile?: string; // the bus's CA, when it speaks TLS
}

/** An agent's connection to the bus: publish signed events and wait for their receipts. */
export class AgentBus {
  private constructor(readonly agentId: string, private readonly key: Key, readonly nc: NatsConnection, private readonly js: JetStreamClient) {}

  static async connect(o: BusOptions): Promise<AgentBus> {
    const seed = Codec.encodeSeed(PREFIX_USER, o.key.seed) as Uint8Array;
    const user = fromSeed(seed).getPublicKey();
    const nc = await connect({
      servers: o.servers.replace(/^tls:\/\//, "nats://"),
      authenticator: jwtAuthenticator(o.jwt, seed),
      inboxPrefix: `_INBOX.${user}`, // the only inbox this user may read
      tls: o.caFile ? { caFile: o.caFile } : undefined,
      name: o.agentId,
    });
    return new AgentBus(o.agentId, o.key, nc, nc.jetstream());
  }

  /** Publish signed events through JetStream and wait (at most timeoutMs) for ingest's receipt. */
  async publish(events: Event[], timeoutMs = 10000): Promise<Receipt> {
    const sub = this.nc.subscribe(`pactum.ingest.receipt.${this.agentId}`, { timeout: timeoutMs });
    try {
      await this.nc.flush();
      const ack = await this.js.publish(`pactum.raw.${this.agentId}`, batchEnvelope(this.agentId, this.key, events, true));
      for await (const m of sub) {
        const r = decode("EnvelopeReceipt", m.data);
        if (r.rawSeq === ack.seq)
          return {
            rawSeq: r.rawSeq,
            judged: true,
            accepted: r.accepted,
            refused: r.refused.map((x: any) => ({ event_id: x.eventId, reason: String(x.reason), message: x.message })),
          };
      }
      throw new Error("the subscription ended before the receipt came");
    } finally {
      sub.unsubscribe();
    }
  }

  async close(): Promise<void> {
    await this.nc.drain();
  }
}
