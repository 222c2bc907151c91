"""Webhooks (docs/oracle-api.md#webhooks): the subscription an API client signs, and the
checks a receiver makes on each delivery before it believes it."""

import base64
import json
import re
import time

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ._gen import pactum_pb2 as pb
from .envelope import VerificationError, seal
from .verify import verify_answer

CONTEXT = b"pactum-webhook-v1\n"
KINDS = ("tier_changed", "contained", "violation", "dispute_opened", "dispute_ruled", "reentry",
         "override", "settlement")


def webhook_subscription(client_id: str, key, url: str, agents=(), kinds=(),
                         cancel: bool = False) -> bytes:
    """A WebhookSubscription signed by the API client's registered key (a Signed envelope)."""
    sub = pb.WebhookSubscription(client_id=client_id, url=url, agents=list(agents),
                                 kinds=list(kinds), ts_ms=int(time.time() * 1000), cancel=cancel)
    return seal(pb.PayloadType.Value("PAYLOAD_WEBHOOK_SUBSCRIPTION"), sub.SerializeToString(),
                client_id, key)


def verify_webhook(signature: str, body: bytes, key: bytes, max_age_s: float = 300,
                   delivery_id: str = None) -> dict:
    """Check a delivery: the Pactum-Signature header under the log key `key` over the body,
    its time within max_age_s of now, the Pactum-Delivery-Id (if given) against the body, and
    the signed ChangeNotice inside against the body's seq, agent and change. Returns the body
    as a dict, with "notice" (the verified ChangeNotice) added; raises VerificationError."""
    fields = dict(re.findall(r"([a-z0-9]+)=([^,\s]+)", signature or ""))
    if "t" not in fields or "ed25519" not in fields or not fields["t"].isdigit():
        raise VerificationError("Pactum-Signature must be t=<ms>, keyid=<log id>, ed25519=<sig>")
    try:
        sig = base64.b64decode(fields["ed25519"], validate=True)
        VerifyKey(key).verify(CONTEXT + fields["t"].encode() + b"\n" + body, sig)
    except (BadSignatureError, ValueError):
        raise VerificationError("the delivery's signature does not verify under the log key") \
            from None
    if abs(time.time() * 1000 - int(fields["t"])) > max_age_s * 1000:
        raise VerificationError(f"the delivery was signed more than {max_age_s} s from now")
    doc = json.loads(body)
    if delivery_id is not None and doc.get("delivery_id") != delivery_id:
        raise VerificationError("Pactum-Delivery-Id is not the body's delivery_id")
    notice = verify_answer(base64.b64decode(doc["signed"]), key).answer
    change = pb.TrustChange()
    change.ParseFromString(notice.change)
    if (notice.trust_seq, notice.agent_id, change.agent_id) != (doc["seq"], doc["agent_id"],
                                                                doc["agent_id"]):
        raise VerificationError("the signed notice is not the change the body names")
    doc["notice"] = notice
    return doc
