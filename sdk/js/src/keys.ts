// Ed25519 keys (node:crypto) in the CLI's key-file format (what `pactum keygen` writes).
import { createPrivateKey, createPublicKey, KeyObject, randomBytes, sign, verify } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";

const SECRET_KIND = "pactum-ed25519-secret-key";
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const unhex = (s: string): Uint8Array => {
  if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error("not hex");
  return new Uint8Array(Buffer.from(s, "hex"));
};

/** A secret Ed25519 key; `publicKey` is its 32-byte public key. */
export class Key {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  private readonly key: KeyObject;

  private constructor(seed: Uint8Array) {
    if (seed.length !== 32) throw new Error("a seed is 32 bytes");
    this.seed = seed;
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    this.publicKey = new Uint8Array(createPublicKey(this.key).export({ format: "der", type: "spki" }).subarray(12));
  }

  static generate(): Key {
    return new Key(new Uint8Array(randomBytes(32)));
  }

  static fromSeed(seed: Uint8Array): Key {
    return new Key(seed);
  }

  /** A key file written by `pactum keygen` (or Key.save). */
  static load(path: string): Key {
    if (statSync(path).mode & 0o077) throw new Error(`key file ${path} is readable by others; run: chmod 600 ${path}`);
    const doc = JSON.parse(readFileSync(path, "utf8"));
    if (doc.kind !== SECRET_KIND) throw new Error(`${path} is not a Pactum secret key file (make one with: pactum keygen)`);
    const k = new Key(unhex(doc.seed));
    if (hex(k.publicKey) !== doc.public_key) throw new Error(`key file ${path}: public_key does not match the seed`);
    return k;
  }

  /** Write the key file (mode 0600, never over an existing one) and PATH.pub. */
  save(path: string): void {
    const doc = { kind: SECRET_KIND, public_key: hex(this.publicKey), seed: hex(this.seed) };
    writeFileSync(path, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600, flag: "wx" });
    writeFileSync(path + ".pub", hex(this.publicKey) + "\n");
  }

  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.key));
  }
}

/** A public key from 64 hex digits or a .pub file holding them. */
export function loadPublic(pathOrHex: string): Uint8Array {
  const text = /^[0-9a-fA-F]{64}$/.test(pathOrHex.trim()) ? pathOrHex.trim() : readFileSync(pathOrHex, "utf8").trim();
  const k = unhex(text);
  if (k.length !== 32) throw new Error("a public key is 32 bytes");
  return k;
}

export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    const pub = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: "der", type: "spki" });
    return verify(null, message, pub, signature);
  } catch {
    return false;
  }
}
