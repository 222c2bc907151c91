"""The SDK against a real suite: registration, signed events answered per event, answers
and proofs verified offline, and tampered answers and proofs refused."""

import base64
import json
import os
import time

import pytest

from conftest import cli
from pactum import (Event, Key, Pactum, PactumError, VerificationError, log_id, seal,
                    verify_answer, verify_consistency, verify_inclusion)
from pactum._gen import pactum_pb2 as pb
from pactum.verify import leaf_hash, node_hash

PACT = {
    "pactum": 1, "id": "py-pact", "agent": "py-bot",
    "clauses": [
        {"id": "latency", "promise": "replies within 2 s on average", "severity": "high",
         "kind": "objective", "metric": "latency_ms", "aggregate": "mean", "window": "5m",
         "op": "<=", "threshold": 2000, "min_samples": 1},
        {"id": "no-leak", "promise": "never leaks", "severity": "critical", "kind": "forbidden",
         "match": {"field": "labels.pii", "eq": "leaked"}, "window": "30d"},
    ],
}


def wait_for(fn, what, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {seconds} s")


@pytest.fixture(scope="module")
def world(suite, tmp_path_factory):
    owner, agent = Key.generate(), Key.generate()
    px = Pactum(gateway=suite["PACTUM_GATEWAY_URL"], oracle=suite["PACTUM_ORACLE_URL"],
                log_key=suite["PACTUM_LOG_KEY"])
    receipt = px.register_agent("py-bot", agent, owner)
    assert receipt["ok"], receipt
    receipt = px.register_pact(json.dumps(PACT), owner)
    assert receipt["ok"] and receipt["version"] == 1, receipt
    token_file = str(tmp_path_factory.mktemp("token") / "token")
    cli(suite, "client", "register", "--id", "@pysdk", "--admin-key",
        suite["PACTUM_ADMIN_KEY_FILE"], "--out", token_file)
    with open(token_file, encoding="utf-8") as f:
        px.token = f.read().strip()
    return px, owner, agent


def test_keys_load_what_the_cli_writes_and_the_cli_loads_what_they_write(suite, tmp_path):
    cli(suite, "keygen", "-o", str(tmp_path / "cli.key"))
    k = Key.load(str(tmp_path / "cli.key"))
    assert k.public.hex() == (tmp_path / "cli.key.pub").read_text().strip()
    mine = Key.generate()
    mine.save(str(tmp_path / "py.key"))
    assert os.stat(tmp_path / "py.key").st_mode & 0o777 == 0o600
    out = cli(suite, "log", "key", "--key", str(tmp_path / "py.key.pub"))
    assert log_id(mine.public) in out, out
    with pytest.raises(FileExistsError):
        mine.save(str(tmp_path / "py.key"))


def test_events_are_judged_per_event(world):
    px, _, agent = world
    good = [Event(kind="reply", event_id=f"ok-{i}", metrics={"latency_ms": 300}) for i in range(3)]
    r = px.publish("py-bot", agent, good)
    assert r.judged and r.accepted == 3 and r.refused == []
    again = px.publish("py-bot", agent, good[:1] + [Event(kind="reply", event_id="ok-3",
                                                          metrics={"latency_ms": 250})])
    assert again.accepted == 1
    assert [(x["event_id"], x["reason"]) for x in again.refused] == [("ok-0", "duplicate")]
    with pytest.raises(PactumError) as e:
        px.publish("py-bot", Key.generate(), good)  # not the agent's key
    assert e.value.status == 403 and e.value.reason == "bad_signature"


def test_answers_and_proofs_verify_and_the_loop_contains_a_leak(world):
    px, _, agent = world
    t = wait_for(lambda: (lambda a: a if a.answer.state.tier else None)(px.trust("py-bot")),
                 "a trust state for py-bot")
    assert t.type_name == "trust_report" and t.answer.agent_id == "py-bot"
    page = wait_for(lambda: (lambda a: a if len(a.answer.entries) >= 4 else None)(
        px.evidence("py-bot", limit=50)), "evidence in the log")
    assert any("is in the tree" in s for s in page.steps)
    d = px.authorize("py-bot", "reply")
    assert pb.Permit.Name(d.answer.permit) == "PERMIT_ALLOW", d.answer
    px.publish("py-bot", agent, [Event(kind="reply", event_id="leak-1", labels={"pii": "leaked"})])
    contained = pb.Tier.Value("TIER_CONTAINED")
    wait_for(lambda: px.trust("py-bot").answer.state.tier == contained, "containment")
    d = px.authorize("py-bot", "reply")
    assert pb.Permit.Name(d.answer.permit) == "PERMIT_DENY"
    at = wait_for(lambda: (lambda a: a if a.answer.tier == contained else None)(
        px.attestation("py-bot")), "an attestation of the containment")
    assert any("as logged" in s for s in at.steps)


def raw_answer(px, path):
    status, doc = px._call(px.oracle, "GET", path)
    assert status == 200
    return base64.b64decode(doc["signed"])


def test_a_tampered_answer_is_refused(world):
    px, _, _ = world
    data = bytearray(raw_answer(px, "/v1/agents/py-bot/trust"))
    verify_answer(bytes(data), px.log_key)
    env = pb.Signed()
    env.ParseFromString(bytes(data))
    report = pb.TrustReport()
    report.ParseFromString(env.payload)
    trusted = pb.Tier.Value("TIER_TRUSTED")
    report.state.tier = pb.Tier.Value("TIER_SUSPENDED") if report.state.tier == trusted else trusted
    env.payload = report.SerializeToString()
    with pytest.raises(VerificationError, match="signature"):
        verify_answer(env.SerializeToString(), px.log_key)
    with pytest.raises(VerificationError, match="pinned key"):
        verify_answer(bytes(data), Key.generate().public)


def test_a_tampered_proof_is_refused_even_when_signed(world):
    """An answer re-signed with a key of our own, so that only the proof is wrong: the
    signature checks and the inclusion proof does not."""
    px, _, _ = world
    env = pb.Signed()
    env.ParseFromString(raw_answer(px, "/v1/agents/py-bot/evidence?limit=50"))
    page = pb.EvidencePage()
    page.ParseFromString(env.payload)
    assert page.entries and any(e.path for e in page.entries)
    mine = Key.generate()
    head = pb.Signed()
    head.ParseFromString(page.head)
    page.head = seal(head.type, head.payload, head.signer_id, mine)
    tree_head = pb.PayloadType.Value("PAYLOAD_EVIDENCE_PAGE")
    verify_answer(seal(tree_head, page.SerializeToString(), env.signer_id, mine), mine.public)
    entry = next(e for e in page.entries if e.path)
    entry.path[0] = bytes(32)
    with pytest.raises(VerificationError, match="NOT proven"):
        verify_answer(seal(tree_head, page.SerializeToString(), env.signer_id, mine), mine.public)


def test_rfc6962_proofs_on_a_tree_built_here():
    leaves = [bytes([i]) * 3 for i in range(7)]

    def root(items):
        if len(items) == 1:
            return leaf_hash(items[0])
        k = 1
        while k * 2 < len(items):
            k *= 2
        return node_hash(root(items[:k]), root(items[k:]))

    def path(m, items):
        if len(items) == 1:
            return []
        k = 1
        while k * 2 < len(items):
            k *= 2
        if m < k:
            return path(m, items[:k]) + [root(items[k:])]
        return path(m - k, items[k:]) + [root(items[:k])]

    r = root(leaves)
    for m in range(7):
        assert verify_inclusion(leaf_hash(leaves[m]), m, 7, path(m, leaves), r)
        assert not verify_inclusion(leaf_hash(leaves[m]), (m + 1) % 7, 7, path(m, leaves), r)
    # consistency proofs (RFC 9162 2.1.4.1): from 4 to 7 the proof is MTH(D[4:7]); from 3 to
    # 7 it is MTH(D[2:3]), MTH(D[3:4]), MTH(D[0:2]), MTH(D[4:7]) (c, d, g, l in RFC 6962's example)
    assert verify_consistency(4, 7, root(leaves[:4]), r, [root(leaves[4:7])])
    assert not verify_consistency(4, 7, root(leaves[:4]), r, [root(leaves[4:6])])
    proof3 = [root(leaves[2:3]), root(leaves[3:4]), root(leaves[0:2]), root(leaves[4:7])]
    assert verify_consistency(3, 7, root(leaves[:3]), r, proof3)
    assert not verify_consistency(3, 7, root(leaves[:3]), r, proof3[:-1])


def test_webhooks_bring_each_change_signed_and_a_tampered_one_is_refused(world, suite, tmp_path):
    """A marketplace: an API client with a key subscribes a receiver to py-bot's changes; each
    delivery checks under the log key, once per idempotency id, and a changed byte does not."""
    import http.server
    import socket
    import threading
    from pactum import verify_webhook

    px, _, agent = world
    market = Key.generate()
    market.save(str(tmp_path / "market.key"))
    cli(suite, "client", "register", "--id", "@pymarket", "--key", str(tmp_path / "market.key"),
        "--admin-key", suite["PACTUM_ADMIN_KEY_FILE"], "--out", str(tmp_path / "market.token"))
    got = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(PactumError) as e:  # another key cannot subscribe for the client
            px.subscribe_webhook("@pymarket", Key.generate(), f"http://127.0.0.1:{port}/hook")
        assert e.value.status == 403
        sub = px.subscribe_webhook("@pymarket", market, f"http://127.0.0.1:{port}/hook",
                                   agents=["py-bot"])["subscription"]
        px.publish("py-bot", agent, [Event(kind="reply", event_id=f"wh-{i}",
                                           metrics={"latency_ms": 250}) for i in range(3)])
        wait_for(lambda: got, "a delivery")
        headers, body = got[0]
        doc = verify_webhook(headers["Pactum-Signature"], body, px.log_key,
                             delivery_id=headers["Pactum-Delivery-Id"])
        assert doc["agent_id"] == "py-bot" and doc["subscription_id"] == sub["id"]
        assert doc["delivery_id"] == f"{sub['id']}-{doc['seq']}"
        assert doc["notice"].trust_seq == doc["seq"]
        with pytest.raises(VerificationError):
            verify_webhook(headers["Pactum-Signature"], body.replace(b"py-bot", b"py-bou"),
                           px.log_key)
        with pytest.raises(VerificationError):
            verify_webhook(headers["Pactum-Signature"], body, Key.generate().public)
        reader = Pactum(oracle=suite["PACTUM_ORACLE_URL"],
                        token=(tmp_path / "market.token").read_text().strip())
        assert [x["id"] for x in reader.webhooks()["subscriptions"]] == [sub["id"]]
        shown = wait_for(lambda: (lambda w: w if w["deliveries"] else None)(reader.webhook(sub["id"])),
                         "the delivery log")
        assert shown["deliveries"][0]["ok"] and shown["delivered"] >= 1
        ids = [h["Pactum-Delivery-Id"] for h, _ in got]
        assert len(ids) == len(set(ids)), ids
    finally:
        server.shutdown()


def test_the_generated_protobuf_module_is_the_protocols():
    """pactum/_gen/pactum_pb2.py is made by protoc from proto/pactum/v1/pactum.proto; when the
    protocol changes it must be made again (the command is in sdk/python/README.md)."""
    import shutil
    import subprocess
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(os.path.join(here, "..", "..", ".."))
    protoc = shutil.which("protoc")
    assert protoc, "protoc (Debian: protobuf-compiler) is needed to check the generated module"
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([protoc, "-I", os.path.join(root, "proto", "pactum", "v1"),
                        "--python_out", out, "pactum.proto"], check=True)
        with open(os.path.join(out, "pactum_pb2.py"), "rb") as f:
            fresh = f.read()
    with open(os.path.join(here, "..", "pactum", "_gen", "pactum_pb2.py"), "rb") as f:
        assert f.read() == fresh, "run: protoc -I proto/pactum/v1 --python_out sdk/python/pactum/_gen pactum.proto"


@pytest.mark.parametrize("mode,tier", [("keep", "tier trusted"), ("break", "tier contained")])
def test_the_example_agents_keep_and_break_their_pact(suite, mode, tier):
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    example = os.path.join(here, "..", "..", "..", "examples", "agents", "python_agent.py")
    r = subprocess.run([sys.executable, example, mode, "--env",
                        os.path.join(suite["PACTUM_VAR"], "suite.env")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert tier in r.stdout, r.stdout
