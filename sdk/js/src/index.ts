// Pactum for TypeScript and JavaScript: keys, signed events and registrations over HTTP or
// NATS, and every oracle answer and Merkle proof verified offline with the log's key.
export { Key, loadPublic, hex, unhex, verifySignature } from "./keys.js";
export { seal, openSigned, signingInput, popMessage, VerificationError } from "./envelope.js";
export { verifyAnswer, verifyInclusion, verifyConsistency, leafHash, nodeHash, logId } from "./verify.js";
export type { Verified } from "./verify.js";
export { Pactum, PactumError, batchEnvelope, agentRegistration, pactRegistration, eventMessage } from "./client.js";
export type { Event, Receipt, PactumOptions } from "./client.js";
export { webhookSubscription, verifyWebhook, WEBHOOK_KINDS } from "./webhook.js";
export { AgentBus } from "./bus.js";
export type { BusOptions } from "./bus.js";
export { decode, encode, enumName, enumValue } from "./proto.js";
