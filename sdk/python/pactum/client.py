"""A client of a Pactum installation over HTTP: the gateway for registrations and signed
events (docs/http-api.md), the oracle for answers (docs/oracle-api.md), every answer
checked offline with the log's pinned key before it is returned."""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from ._gen import pactum_pb2 as pb
from .envelope import pop_message, seal, VerificationError
from .keys import load_public
from .verify import verify_answer, Verified
from .webhook import webhook_subscription

PT = pb.PayloadType


class PactumError(Exception):
    """A refusal: the HTTP status, the reason code and the server's sentence."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class Event:
    """One piece of evidence about an agent (docs/protocol.md, Event)."""

    kind: str
    event_id: str = ""
    agent_id: str = ""  # the signer's own agent when empty
    ts_ms: int = 0  # now when 0
    action: str = ""
    tool: str = ""
    resource: str = ""
    amount: float = 0.0
    currency: str = ""
    metrics: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)

    def to_pb(self, signer: str, n: int) -> pb.Event:
        ev = pb.Event(
            event_id=self.event_id or f"{signer}-{time.time_ns()}-{n}",
            agent_id=self.agent_id or signer,
            ts_ms=self.ts_ms or int(time.time() * 1000),
            kind=self.kind,
            action=self.action,
            tool=self.tool,
            resource=self.resource,
            amount=self.amount,
            currency=self.currency,
        )
        for k, v in self.metrics.items():
            ev.metrics.add(name=k, value=float(v))
        for k, v in self.labels.items():
            ev.labels.add(name=k, value=str(v))
        return ev


@dataclass
class Receipt:
    """What ingest made of an envelope: events accepted, and the refused with their reasons."""

    raw_seq: int
    judged: bool
    accepted: int
    refused: list  # [{"event_id", "reason", "message"}]


def batch_envelope(signer: str, key, events, receipt: bool = True) -> bytes:
    """A signed batch of events (at most 1,024) by signer."""
    b = pb.EventBatch(receipt=receipt)
    for n, e in enumerate(events):
        b.events.append(e.to_pb(signer, n) if isinstance(e, Event) else e)
    return seal(PT.Value("PAYLOAD_EVENT_BATCH"), b.SerializeToString(), signer, key)


def agent_registration(agent_id: str, agent_key, owner_key, display_name: str = "") -> bytes:
    """An agent registration signed by its owner, with the agent key's proof of possession."""
    reg = pb.AgentRegistration(
        agent_id=agent_id,
        agent_key=agent_key.public,
        owner_key=owner_key.public,
        display_name=display_name,
        agent_pop=agent_key.sign(pop_message(agent_id, owner_key.public)),
        ts_ms=int(time.time() * 1000),
    )
    return seal(PT.Value("PAYLOAD_AGENT_REGISTRATION"), reg.SerializeToString(), "", owner_key)


def pact_registration(document: str, owner_key) -> bytes:
    """A pact registration signed by the owner of the agent the document names."""
    doc = json.loads(document)
    reg = pb.PactRegistration(
        pact_id=doc.get("id", ""), document=document.encode(), ts_ms=int(time.time() * 1000)
    )
    return seal(PT.Value("PAYLOAD_PACT_REGISTRATION"), reg.SerializeToString(), "", owner_key)


class Pactum:
    """Pactum over HTTP. gateway and oracle are base URLs ("http://127.0.0.1:7481");
    log_key is the log's public key (hex or a .pub file) every answer is checked with."""

    def __init__(self, gateway: str = None, oracle: str = None, log_key=None, token: str = None,
                 timeout: float = 10.0):
        self.gateway = gateway.rstrip("/") if gateway else None
        self.oracle = oracle.rstrip("/") if oracle else None
        self.log_key = load_public(log_key) if isinstance(log_key, str) else log_key
        self.token = token
        self.timeout = timeout

    # --- plumbing -------------------------------------------------------------------

    def _call(self, base, method, path, body=None, ctype="application/x-protobuf",
              auth=None):
        if not base:
            raise ValueError("no URL for this call: give Pactum(gateway=..., oracle=...)")
        req = urllib.request.Request(base + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", ctype)
        if auth:
            req.add_header("Authorization", "Bearer " + auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                doc = json.loads(text)
            except ValueError:
                doc = {"status": "error", "message": text.decode(errors="replace")}
            raise PactumError(e.code, doc.get("status") or doc.get("reason") or "error",
                              doc.get("message", "")) from None

    def _answer(self, doc) -> Verified:
        """The signed answer of an oracle reply, checked with the pinned log key."""
        if self.log_key is None:
            raise VerificationError("no log key pinned: give Pactum(log_key=...)")
        return verify_answer(base64.b64decode(doc["signed"]), self.log_key)

    # --- registration (gateway) -----------------------------------------------------

    def register_agent(self, agent_id: str, agent_key, owner_key, display_name: str = "") -> dict:
        """Register an agent owned by owner_key; the receipt carries its bus identities."""
        _, doc = self._call(self.gateway, "POST", "/v1/agents",
                            agent_registration(agent_id, agent_key, owner_key, display_name))
        return doc

    def register_pact(self, document: str, owner_key) -> dict:
        """Register (a new version of) a pact; the receipt has its version and hash."""
        _, doc = self._call(self.gateway, "POST", "/v1/pacts",
                            pact_registration(document, owner_key))
        return doc

    # --- events (gateway) -----------------------------------------------------------

    def publish(self, signer: str, key, events, receipt: bool = True) -> Receipt:
        """Sign events as signer and send them; with receipt, wait for ingest's judgement
        of each (accepted, or refused with its reason)."""
        status, doc = self._call(self.gateway, "POST", "/v1/events",
                                 batch_envelope(signer, key, events, receipt))
        return Receipt(raw_seq=doc.get("raw_seq", 0), judged=bool(doc.get("judged")),
                       accepted=doc.get("accepted", 0), refused=doc.get("refused", []))

    # --- answers (oracle), each verified ---------------------------------------------

    def trust(self, agent_id: str) -> Verified:
        return self._answer(self._call(self.oracle, "GET",
                                       f"/v1/agents/{urllib.parse.quote(agent_id)}/trust")[1])

    def authorize(self, agent_id: str, action: str, amount: float = 0, currency: str = "",
                  tool: str = "", resource: str = "", approval: bytes = None) -> Verified:
        body = {"action": action}
        for k, v in (("amount", amount), ("currency", currency), ("tool", tool),
                     ("resource", resource)):
            if v:
                body[k] = v
        if approval:
            body["approval"] = approval.hex()
        _, doc = self._call(self.oracle, "POST",
                            f"/v1/agents/{urllib.parse.quote(agent_id)}/authorize",
                            json.dumps(body).encode(), "application/json", auth=self.token)
        return self._answer(doc)

    def evidence(self, agent_id: str, start: int = 0, limit: int = 20, kind: str = "") -> Verified:
        q = urllib.parse.urlencode({k: v for k, v in (("from", start), ("limit", limit),
                                                      ("kind", kind)) if v})
        return self._answer(self._call(
            self.oracle, "GET", f"/v1/agents/{urllib.parse.quote(agent_id)}/evidence?{q}")[1])

    def attestation(self, agent_id: str) -> Verified:
        return self._answer(self._call(
            self.oracle, "GET", f"/v1/agents/{urllib.parse.quote(agent_id)}/attestation")[1])

    def log_head(self) -> Verified:
        return self._answer(self._call(self.oracle, "GET", "/v1/log/head")[1])

    def log_key_info(self) -> dict:
        """What the oracle says its log key is (pin it from a channel you trust)."""
        return self._call(self.oracle, "GET", "/v1/log/key")[1]

    # --- webhooks (oracle) -------------------------------------------------------------

    def subscribe_webhook(self, client_id: str, key, url: str, agents=(), kinds=()) -> dict:
        """Subscribe url to trust changes (of agents, of kinds; none: all), signed by the API
        client's registered key; again with other filters to change them."""
        return self._call(self.oracle, "POST", "/v1/webhooks",
                          webhook_subscription(client_id, key, url, agents, kinds))[1]

    def cancel_webhook(self, client_id: str, key, url: str) -> dict:
        return self._call(self.oracle, "POST", "/v1/webhooks",
                          webhook_subscription(client_id, key, url, cancel=True))[1]

    def webhooks(self) -> dict:
        """The client's subscriptions (this client's token)."""
        return self._call(self.oracle, "GET", "/v1/webhooks", auth=self.token)[1]

    def webhook(self, subscription_id: str) -> dict:
        """One subscription with its newest delivery attempts (this client's token)."""
        return self._call(self.oracle, "GET",
                          f"/v1/webhooks/{urllib.parse.quote(subscription_id)}",
                          auth=self.token)[1]
