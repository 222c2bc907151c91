"""Pactum for Python: keys, signed events and registrations over HTTP, and every oracle
answer and Merkle proof checked offline with the log's key."""

from .client import Event, Pactum, PactumError, Receipt, agent_registration, batch_envelope, \
    pact_registration
from .envelope import VerificationError, open_signed, seal
from .keys import Key, load_public
from .verify import Verified, log_id, verify_answer, verify_consistency, verify_inclusion
from .webhook import verify_webhook, webhook_subscription

__all__ = [
    "Event", "Key", "Pactum", "PactumError", "Receipt", "Verified", "VerificationError",
    "agent_registration", "batch_envelope", "load_public", "log_id", "open_signed",
    "pact_registration", "seal", "verify_answer", "verify_consistency", "verify_inclusion",
    "verify_webhook", "webhook_subscription",
]
