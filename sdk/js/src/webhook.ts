// Webhooks (docs/oracle-api.md#webhooks): the subscription an API client signs, and the checks
// a receiver makes on each delivery before it believes it.
import { decode, encode, enumValue, Msg } from "./proto.js";
import { seal, VerificationError } from "./envelope.js";
import { Key, verifySignature } from "./keys.js";
import { verifyAnswer } from "./verify.js";

const CONTEXT = Buffer.from("pactum-webhook-v1\n");

export const WEBHOOK_KINDS = ["tier_changed", "contained", "violation", "dispute_opened", "dispute_ruled", "reentry", "override", "settlement"];

/** A WebhookSubscription signed by the API client's registered key (a Signed envelope). */
export function webhookSubscription(clientId: string, key: Key, url: string, o: { agents?: string[]; kinds?: string[]; cancel?: boolean } = {}): Uint8Array {
  const sub = encode("WebhookSubscription", { clientId, url, agents: o.agents ?? [], kinds: o.kinds ?? [], tsMs: Date.now(), cancel: !!o.cancel });
  return seal(enumValue("PayloadType", "PAYLOAD_WEBHOOK_SUBSCRIPTION"), sub, clientId, key);
}

/**
 * Check a delivery: the Pactum-Signature header under the log key over the body, its time
 * within maxAgeMs of now, the Pactum-Delivery-Id (if given) against the body, and the signed
 * ChangeNotice inside against the body's seq and agent. Returns the body, with `notice` (the
 * verified ChangeNotice) added; throws VerificationError.
 */
export function verifyWebhook(signature: string, body: Uint8Array, key: Uint8Array, o: { maxAgeMs?: number; deliveryId?: string } = {}): Msg {
  const fields = Object.fromEntries([...(signature ?? "").matchAll(/([a-z0-9]+)=([^,\s]+)/g)].map((m) => [m[1], m[2]]));
  if (!/^[0-9]+$/.test(fields.t ?? "") || !fields.ed25519)
    throw new VerificationError("Pactum-Signature must be t=<ms>, keyid=<log id>, ed25519=<sig>");
  const signed = Buffer.concat([CONTEXT, Buffer.from(fields.t), Buffer.from("\n"), body]);
  if (!verifySignature(key, signed, Buffer.from(fields.ed25519, "base64")))
    throw new VerificationError("the delivery's signature does not verify under the log key");
  if (Math.abs(Date.now() - Number(fields.t)) > (o.maxAgeMs ?? 300000))
    throw new VerificationError("the delivery was signed too long ago (or too far ahead)");
  const doc = JSON.parse(Buffer.from(body).toString("utf8"));
  if (o.deliveryId !== undefined && doc.delivery_id !== o.deliveryId)
    throw new VerificationError("Pactum-Delivery-Id is not the body's delivery_id");
  const notice = verifyAnswer(new Uint8Array(Buffer.from(doc.signed, "base64")), key).answer;
  const change = decode("TrustChange", notice.change);
  if (Number(notice.trustSeq) !== doc.seq || notice.agentId !== doc.agent_id || change.agentId !== doc.agent_id)
    throw new VerificationError("the signed notice is not the change the body names");
  return { ...doc, notice };
}
