// The protocol's messages, read from pactum.proto at load time (docs/protocol.md).
import protobuf from "protobufjs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = protobuf.loadSync(join(dirname(fileURLToPath(import.meta.url)), "..", "proto", "pactum.proto"));

export function type(name: string): protobuf.Type {
  return root.lookupType(`pactum.v1.${name}`);
}

export function enumValue(enumName: string, name: string): number {
  const e = root.lookupEnum(`pactum.v1.${enumName}`);
  const v = e.values[name];
  if (v === undefined) throw new Error(`${enumName} has no ${name}`);
  return v;
}

export function enumName(enumName: string, value: number): string {
  return root.lookupEnum(`pactum.v1.${enumName}`).valuesById[value] ?? `${value}`;
}

/** A protobuf message as a plain object (64-bit integers as numbers, bytes as Uint8Array). */
export type Msg = { [field: string]: any };

export function decode(name: string, bytes: Uint8Array): Msg {
  const t = type(name);
  return t.toObject(t.decode(bytes), { longs: Number, enums: Number, bytes: Uint8Array, defaults: true, arrays: true });
}

export function encode(name: string, fields: Msg): Uint8Array {
  const t = type(name);
  const err = t.verify(fields);
  if (err) throw new Error(`${name}: ${err}`);
  return t.encode(t.fromObject(fields)).finish();
}
