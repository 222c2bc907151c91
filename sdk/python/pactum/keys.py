"""Ed25519 keys in the CLI's key-file format (what `pactum keygen` writes)."""

import json
import os

from nacl.signing import SigningKey, VerifyKey

SECRET_KIND = "pactum-ed25519-secret-key"


class Key:
    """A secret Ed25519 key: signs envelopes; `public` is its 32-byte public key."""

    def __init__(self, signing_key: SigningKey):
        self._sk = signing_key
        self.public = bytes(signing_key.verify_key)

    @classmethod
    def generate(cls) -> "Key":
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "Key":
        return cls(SigningKey(seed))

    @classmethod
    def load(cls, path: str) -> "Key":
        """A key file written by `pactum keygen` (or Key.save)."""
        mode = os.stat(path).st_mode & 0o077
        if mode:
            raise PermissionError(f"key file {path} is readable by others; run: chmod 600 {path}")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if doc.get("kind") != SECRET_KIND:
            raise ValueError(f"{path} is not a Pactum secret key file (make one with: pactum keygen)")
        key = cls.from_seed(bytes.fromhex(doc["seed"]))
        if key.public.hex() != doc["public_key"]:
            raise ValueError(f"key file {path}: public_key does not match the seed")
        return key

    def save(self, path: str) -> None:
        """Write the key file (mode 0600, never over an existing one) and PATH.pub."""
        doc = {"kind": SECRET_KIND, "public_key": self.public.hex(), "seed": bytes(self._sk).hex()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
        with open(path + ".pub", "w", encoding="utf-8") as f:
            f.write(self.public.hex() + "\n")

    def sign(self, message: bytes) -> bytes:
        return self._sk.sign(message).signature


def load_public(path_or_hex: str) -> bytes:
    """A public key: 64 hex digits, or a .pub file holding them."""
    text = path_or_hex.strip()
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        with open(path_or_hex, encoding="utf-8") as f:
            text = f.read().strip()
    key = bytes.fromhex(text)
    if len(key) != 32:
        raise ValueError("a public key is 32 bytes")
    VerifyKey(key)  # a point on the curve
    return key
