"""The Signed envelope: what Pactum signs, and how (docs/protocol.md)."""

import struct

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from ._gen import pactum_pb2 as pb

SIG_DOMAIN = b"pactum/v1\n"
POP_DOMAIN = b"pactum/v1/pop\n"


def signing_input(payload_type: int, payload: bytes) -> bytes:
    """The bytes a signature covers: the domain, the type (big-endian u32), the payload."""
    return SIG_DOMAIN + struct.pack(">I", payload_type) + payload


def seal(payload_type: int, payload: bytes, signer_id: str, key) -> bytes:
    """A Signed envelope of payload (serialized protobuf) by key, naming signer_id."""
    env = pb.Signed(
        version=1,
        type=payload_type,
        payload=payload,
        signer_id=signer_id,
        signer_key=key.public,
        signature=key.sign(signing_input(payload_type, payload)),
    )
    return env.SerializeToString()


def pop_message(agent_id: str, owner_key: bytes) -> bytes:
    """What an agent key signs to prove its owner holds it."""
    return POP_DOMAIN + agent_id.encode() + b"\n" + owner_key


class VerificationError(Exception):
    """An answer, head or proof that does not check; the message says which step failed."""


def open_signed(data: bytes, key: bytes = None) -> pb.Signed:
    """Decode an envelope and check its signature (under key when given, else its own key)."""
    env = pb.Signed()
    try:
        env.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise VerificationError(f"not a Signed envelope: {e}") from None
    if env.version != 1:
        raise VerificationError(f"envelope version {env.version}; this SDK reads version 1")
    if len(env.signer_key) != 32 or len(env.signature) != 64:
        raise VerificationError("the signer key or the signature has the wrong size")
    if key is not None and env.signer_key != key:
        raise VerificationError(
            f"signed by {env.signer_key.hex()}, not by the pinned key {key.hex()}"
        )
    try:
        VerifyKey(env.signer_key).verify(signing_input(env.type, env.payload), env.signature)
    except BadSignatureError:
        raise VerificationError("the signature does not verify") from None
    return env
