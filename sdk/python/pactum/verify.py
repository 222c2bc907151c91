"""Oracle answers checked offline with nothing but the log's public key: the same steps
as `pactum verify` (libs/common/src/verify.c), RFC 6962 proofs included."""

import hashlib
import time

from ._gen import pactum_pb2 as pb
from .envelope import VerificationError, open_signed

PT = pb.PayloadType

ANSWERS = {
    PT.Value("PAYLOAD_TRUST_REPORT"): pb.TrustReport,
    PT.Value("PAYLOAD_PACT_REPORT"): pb.PactReport,
    PT.Value("PAYLOAD_EVIDENCE_PAGE"): pb.EvidencePage,
    PT.Value("PAYLOAD_ATTESTATION"): pb.Attestation,
    PT.Value("PAYLOAD_TREE_HEAD"): pb.TreeHead,
    PT.Value("PAYLOAD_LOG_ANSWER"): pb.LogAnswer,
    PT.Value("PAYLOAD_DECISION"): pb.AuthorizeDecision,
    PT.Value("PAYLOAD_FIGURES"): pb.GovernanceFigures,
    PT.Value("PAYLOAD_CHANGE_NOTICE"): pb.ChangeNotice,
}

OK = pb.QueryStatus.Value("QUERY_OK")


def log_id(key: bytes) -> str:
    """The log's id: the first 16 bytes of SHA-256 of its public key, in hex."""
    return hashlib.sha256(key).hexdigest()[:32]


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf_h: bytes, index: int, size: int, path, root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: is leaf_h at index in the tree of size with root?"""
    if index >= size or len(path) > 64:
        return False
    fn, sn, r = index, size - 1, leaf_h
    for p in path:
        if len(p) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, path) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree of size1 a prefix of the tree of size2?"""
    if size1 > size2 or len(path) > 64 or any(len(p) != 32 for p in path):
        return False
    if size1 == size2:
        return not path and root1 == root2
    if size1 == 0:
        return not path
    path = list(path)
    if not path:
        return False
    if size1 & (size1 - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


class Verified:
    """A checked answer: its type, the decoded payload, and each step that passed."""

    def __init__(self, payload_type: int, answer, steps):
        self.type = payload_type
        self.answer = answer
        self.steps = steps

    @property
    def type_name(self) -> str:
        return PT.Name(self.type)[len("PAYLOAD_"):].lower()


def _head(data: bytes, key: bytes, what: str, steps) -> pb.TreeHead:
    if not data:
        raise VerificationError(f"{what}: missing")
    env = open_signed(data, key)
    if env.type != PT.Value("PAYLOAD_TREE_HEAD"):
        raise VerificationError(f"{what}: not a signed tree head")
    th = pb.TreeHead()
    th.ParseFromString(env.payload)
    if len(th.root) != 32:
        raise VerificationError(f"{what}: the root is not 32 bytes")
    steps.append(f"{what}: signed tree head of log {th.log_id}, {th.size} leaves")
    return th


def _leaf(leaf: bytes, index: int, path, record: bytes, th, steps) -> pb.LogLeaf:
    decoded = pb.LogLeaf()
    try:
        decoded.ParseFromString(leaf)
    except Exception:
        raise VerificationError(f"leaf {index} does not decode") from None
    if not verify_inclusion(leaf_hash(leaf), index, th.size, list(path), th.root):
        raise VerificationError(f"leaf {index} is NOT proven in the tree of {th.size} leaves")
    steps.append(f"leaf {index} ({decoded.stream} #{decoded.stream_seq}) is in the tree of {th.size}")
    if record:
        if hashlib.sha256(record).digest() != decoded.data_sha256:
            raise VerificationError(f"the record given for leaf {index} is not the one it commits to")
        steps.append(f"the record of leaf {index} is the one it commits to")
    return decoded


def _answered(status: int, message: str):
    if status != OK:
        raise VerificationError(f"the answer is a refusal: {message}")


def verify_answer(data: bytes, key: bytes) -> Verified:
    """Check a signed answer (the Signed envelope's bytes) under the log key `key`, with
    every check its type allows; raises VerificationError at the first step that fails."""
    env = open_signed(data, key)
    cls = ANSWERS.get(env.type)
    if cls is None:
        raise VerificationError(f"payload type {env.type} is not an oracle answer")
    m = cls()
    try:
        m.ParseFromString(env.payload)
    except Exception:
        raise VerificationError("the signed answer does not decode") from None
    steps = [f"{PT.Name(env.type)} signed by log {log_id(key)}"]
    name = PT.Name(env.type)
    if name == "PAYLOAD_EVIDENCE_PAGE":
        _answered(m.status, m.message)
        th = _head(m.head, key, "head", steps)
        for e in m.entries:
            leaf = _leaf(e.leaf, e.index, e.path, e.record, th, steps)
            if leaf.agent_id != m.agent_id:
                raise VerificationError(f"leaf {e.index} is about {leaf.agent_id}, not {m.agent_id}")
    elif name == "PAYLOAD_ATTESTATION":
        _answered(m.status, m.message)
        th = _head(m.head, key, "head", steps)
        leaf = _leaf(m.leaf, m.log_index, m.path, m.record, th, steps)
        if leaf.kind != pb.LeafKind.Value("LEAF_TRUST_CHANGE") or leaf.agent_id != m.agent_id:
            raise VerificationError(f"leaf {m.log_index} is not a trust change of {m.agent_id}")
        tc = pb.TrustChange()
        tc.ParseFromString(m.record)
        s = tc.state
        if (tc.agent_id, s.score_ppm, s.lower_ppm, s.tier) != (
            m.agent_id, m.score_ppm, m.lower_ppm, m.tier):
            raise VerificationError("the attested score, bound or tier differ from the logged change")
        if time.time() * 1000 > m.valid_until_ms:
            raise VerificationError("the attestation has expired")
        steps.append(f"{m.agent_id}: tier {pb.Tier.Name(m.tier)}, as logged")
    elif name == "PAYLOAD_LOG_ANSWER":
        _answered(m.status, m.message)
        th = _head(m.head, key, "head", steps)
        if m.leaf:
            _leaf(m.leaf, m.index, m.path, m.record, th, steps)
        elif m.first_head:
            first = _head(m.first_head, key, "first head", steps)
            if not verify_consistency(first.size, th.size, first.root, th.root, list(m.path)):
                raise VerificationError(
                    f"the tree of {first.size} leaves is NOT proven a prefix of {th.size}")
            steps.append(f"the tree of {first.size} leaves is a prefix of the tree of {th.size}")
    elif name in ("PAYLOAD_TRUST_REPORT", "PAYLOAD_FIGURES") and m.log_head:
        _head(m.log_head, key, "log head", steps)
    return Verified(env.type, m, steps)
