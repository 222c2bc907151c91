// The Signed envelope: what Pactum signs, and how (docs/protocol.md).
import { decode, encode, Msg } from "./proto.js";
import { hex, Key, verifySignature } from "./keys.js";

const SIG_DOMAIN = Buffer.from("pactum/v1\n");
const POP_DOMAIN = Buffer.from("pactum/v1/pop\n");

/** An answer, head or proof that does not check; the message says which step failed. */
export class VerificationError extends Error {}

export function signingInput(payloadType: number, payload: Uint8Array): Uint8Array {
  const t = Buffer.alloc(4);
  t.writeUInt32BE(payloadType);
  return Buffer.concat([SIG_DOMAIN, t, payload]);
}

/** A Signed envelope of payload (serialized protobuf) by key, naming signerId. */
export function seal(payloadType: number, payload: Uint8Array, signerId: string, key: Key): Uint8Array {
  return encode("Signed", {
    version: 1,
    type: payloadType,
    payload,
    signerId,
    signerKey: key.publicKey,
    signature: key.sign(signingInput(payloadType, payload)),
  });
}

export function popMessage(agentId: string, ownerKey: Uint8Array): Uint8Array {
  return Buffer.concat([POP_DOMAIN, Buffer.from(agentId), Buffer.from("\n"), ownerKey]);
}

/** Decode an envelope and check its signature (under key when given, else its own key). */
export function openSigned(data: Uint8Array, key?: Uint8Array): Msg {
  let env: Msg;
  try {
    env = decode("Signed", data);
  } catch (e) {
    throw new VerificationError(`not a Signed envelope: ${(e as Error).message}`);
  }
  if (env.version !== 1) throw new VerificationError(`envelope version ${env.version}; this SDK reads version 1`);
  if (env.signerKey.length !== 32 || env.signature.length !== 64)
    throw new VerificationError("the signer key or the signature has the wrong size");
  if (key && hex(env.signerKey) !== hex(key))
    throw new VerificationError(`signed by ${hex(env.signerKey)}, not by the pinned key ${hex(key)}`);
  if (!verifySignature(env.signerKey, signingInput(env.type, env.payload), env.signature))
    throw new VerificationError("the signature does not verify");
  return env;
}
