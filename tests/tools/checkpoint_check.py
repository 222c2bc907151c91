#!/usr/bin/python3
"""An independent check of a Pactum checkpoint, written from the C2SP specifications
(signed-note, tlog-checkpoint) with PyNaCl, sharing no code with Pactum:

    checkpoint_check.py CHECKPOINT KEY_JSON HEAD_JSON [--same] [--witness VKEY ...]

CHECKPOINT is the body of GET /checkpoint, KEY_JSON that of GET /v1/log/key (the verifier
key is taken from it, but its public key must equal the one pinned in HEAD_JSON's "key"),
HEAD_JSON that of GET /v1/log/head. Exit 0 if the note's signature verifies under the
verifier key, the key id is right, and the checkpoint names the head's tree (size and root;
with --same, exactly that tree, else that or a later one), and, for each --witness verifier
key, the note carries a valid cosignature/v1 (C2SP tlog-cosignature) by that witness; 1
otherwise, saying why."""
import base64
import hashlib
import json
import sys

import nacl.exceptions
import nacl.signing


def fail(why):
    print("checkpoint: " + why)
    sys.exit(1)


def main():
    note = open(sys.argv[1], "rb").read().decode("utf-8")
    key = json.load(open(sys.argv[2]))
    head = json.load(open(sys.argv[3]))

    # the verifier key: <name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 key)>
    name, key_id_hex, enc64 = key["note_verifier_key"].split("+", 2)
    enc = base64.b64decode(enc64)
    if len(enc) != 33 or enc[0] != 0x01:
        fail("not an Ed25519 verifier key")
    pub = enc[1:]
    if pub.hex() != head["key"]:
        fail("the note key is not the key that signed the tree head")
    want_id = hashlib.sha256(name.encode() + b"\n" + enc).digest()[:4]
    if want_id.hex() != key_id_hex:
        fail("the verifier key's id is not SHA-256(name, newline, key)[:4]")

    # the note: text, a blank line, signature lines "\u2014 name base64(id || sig)"
    if "\n\n" not in note or not note.endswith("\n"):
        fail("not a signed note")
    text, sigs = note.split("\n\n", 1)
    text += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            fail("a signature line does not start with an em dash: " + line)
        sig_name, sig64 = line[2:].split(" ")
        raw = base64.b64decode(sig64)
        if sig_name != name or raw[:4] != want_id:
            continue
        try:
            nacl.signing.VerifyKey(pub).verify(text.encode(), raw[4:])
            verified = True
        except nacl.exceptions.BadSignatureError:
            fail("the signature does not verify")
    if not verified:
        fail("no signature by " + name)

    # the checkpoint: origin, tree size, base64 root hash
    lines = text.split("\n")
    origin, size, root64 = lines[0], lines[1], lines[2]
    if origin != name:
        fail("origin %r is not the key's name %r" % (origin, name))
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        fail("tree size %r is not a decimal number" % size)
    answer = head["answer"]
    answer = answer["head"]["tree_head"] if "head" in answer else answer
    if int(size) < int(answer["size"]) or ("--same" in sys.argv and int(size) != int(answer["size"])):
        fail("the checkpoint's tree (%s) is not the head's (%s)" % (size, answer["size"]))
    if int(size) == int(answer["size"]) and base64.b64decode(root64).hex() != answer["root"]:
        fail("the checkpoint's root is not the head's, at the same size")
    print("checkpoint %s: tree size %s, root %s, signed by %s" % (origin, size, root64, key_id_hex))

    # witnesses: "\u2014 <name> base64(key id || 8-byte big-endian time || signature)", the key
    # id SHA-256(name, newline, 0x04, key)[:4], the signature over "cosignature/v1\ntime <t>\n"
    # followed by the checkpoint's text
    args = sys.argv[4:]
    for i, a in enumerate(args):
        if a != "--witness":
            continue
        w_name, w_id_hex, w_enc64 = args[i + 1].split("+", 2)
        w_enc = base64.b64decode(w_enc64)
        if len(w_enc) != 33 or w_enc[0] != 0x04:
            fail("not a cosignature/v1 verifier key: " + args[i + 1])
        w_id = hashlib.sha256(w_name.encode() + b"\n" + w_enc).digest()[:4]
        if w_id.hex() != w_id_hex:
            fail("the witness key's id is not SHA-256(name, newline, 0x04, key)[:4]")
        good = None
        for line in sigs.splitlines():
            sig_name, sig64 = line[2:].split(" ")
            raw = base64.b64decode(sig64)
            if sig_name != w_name or raw[:4] != w_id or len(raw) != 4 + 8 + 64:
                continue
            when = int.from_bytes(raw[4:12], "big")
            msg = b"cosignature/v1\ntime %d\n" % when + text.encode()
            try:
                nacl.signing.VerifyKey(w_enc[1:]).verify(msg, raw[12:])
                good = when
            except nacl.exceptions.BadSignatureError:
                fail("the cosignature of %s does not verify" % w_name)
        if good is None:
            fail("no cosignature by witness " + w_name)
        print("cosigned by %s at %d" % (w_name, good))


main()
