// The package carries the protocol's .proto (read at run time by protobufjs): copied from
// the repository's proto/ before each build, so the two never differ.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(join(here, "..", "proto"), { recursive: true });
copyFileSync(join(here, "..", "..", "..", "proto", "pactum", "v1", "pactum.proto"),
  join(here, "..", "proto", "pactum.proto"));
