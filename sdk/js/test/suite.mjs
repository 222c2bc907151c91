// A real Pactum suite for the tests: scripts/up.sh (nats-server with TLS and a JWT per user,
// the four services, the HTTP gateway) on free loopback ports with its data in a temporary
// folder; stop() ends it by process group.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export async function startSuite() {
  const dir = mkdtempSync(join(tmpdir(), "pactum-sdk-js-"));
  const log = openSync(join(dir, "up.log"), "w");
  const child = spawn(join(ROOT, "scripts", "up.sh"), [], {
    env: { ...process.env, PACTUM_VAR: dir, PACTUM_BUILD: process.env.PACTUM_BUILD ?? join(ROOT, "build") },
    stdio: ["ignore", log, log],
    detached: true,
  });
  const ready = join(dir, "suite.env");
  const deadline = Date.now() + 600000;
  while (!existsSync(ready) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const stop = async () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
    const until = Date.now() + 60000;
    while (child.exitCode === null && child.signalCode === null && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (child.exitCode === null && child.signalCode === null) {
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  };
  if (!existsSync(ready)) {
    const text = readFileSync(join(dir, "up.log"), "utf8").slice(-4000);
    await stop();
    throw new Error(`the suite did not start:\n${text}`);
  }
  const env = Object.fromEntries(readFileSync(ready, "utf8").split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  env.PACTUM_VAR = dir;
  const cli = (...args) =>
    execFileSync(env.PACTUM_CLI, args, {
      cwd: dir,
      encoding: "utf8",
      timeout: 60000,
      env: { ...process.env, PACTUM_NATS_URL: env.PACTUM_NATS_URL, PACTUM_NATS_CA: env.PACTUM_NATS_CA, PACTUM_NATS_CREDS: env.PACTUM_NATS_CREDS },
    });
  return { env, stop, cli };
}

export async function waitFor(fn, what, ms = 30000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const got = await fn();
    if (got) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${ms / 1000} s`);
}
