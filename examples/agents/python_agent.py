#!/usr/bin/python3
"""A Python agent under a pact, through the HTTP gateway (sdk/python).

    scripts/up.sh                                                # in another terminal
    PYTHONPATH=sdk/python examples/agents/python_agent.py keep   # replies fast: trusted
    PYTHONPATH=sdk/python examples/agents/python_agent.py break  # leaks once: contained

It registers a new agent (fresh keys) under examples/pacts/support-bot.json, publishes
signed events, and prints the oracle's answer, checked with the log's key. The suite's
URLs and the log key come from var/suite.env (--env FILE for another)."""

import argparse
import json
import os
import secrets
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "sdk", "python"))

from pactum import Event, Key, Pactum  # noqa: E402
from pactum._gen import pactum_pb2 as pb  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["keep", "break"])
    ap.add_argument("--env", default=os.path.join(ROOT, "var", "suite.env"))
    args = ap.parse_args()
    with open(args.env, encoding="utf-8") as f:
        env = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)

    agent_id = f"py-{args.mode}er-{secrets.token_hex(3)}"
    owner, agent = Key.generate(), Key.generate()
    px = Pactum(gateway=env["PACTUM_GATEWAY_URL"], oracle=env["PACTUM_ORACLE_URL"],
                log_key=env["PACTUM_LOG_KEY"])
    with open(os.path.join(ROOT, "examples", "pacts", "support-bot.json"), encoding="utf-8") as f:
        pact = json.load(f)
    pact["id"], pact["agent"] = f"{agent_id}-pact", agent_id
    print("registered", px.register_agent(agent_id, agent, owner)["id"],
          "with pact version", px.register_pact(json.dumps(pact), owner)["version"])

    replies = [Event(kind="reply", metrics={"latency_ms": 300 + i}) for i in range(70)]
    r = px.publish(agent_id, agent, replies)
    print(f"70 replies: {r.accepted} accepted, {len(r.refused)} refused")
    if args.mode == "break":
        r = px.publish(agent_id, agent, [Event(kind="reply", labels={"pii": "leaked"})])
        print(f"a reply that leaks personal data: {r.accepted} accepted")

    want = pb.Tier.Value("TIER_CONTAINED" if args.mode == "break" else "TIER_TRUSTED")
    deadline = time.monotonic() + 30
    while True:
        t = px.trust(agent_id)
        if t.answer.state.tier == want or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    s = t.answer.state
    print(f"{agent_id}: tier {pb.Tier.Name(s.tier)[5:].lower()}, score {s.score_ppm / 1e6:.3f}, "
          f"lower bound {s.lower_ppm / 1e6:.3f} (verified: {t.steps[0]})")
    return 0 if s.tier == want else 1


if __name__ == "__main__":
    sys.exit(main())
