#!/usr/bin/python3
"""An independent check of a Pactum log's tiles, written from RFC 6962 and the C2SP
tlog-tiles specification, sharing no code with Pactum:

    tiles_check.py CHECKPOINT HASH_TILE ENTRIES_TILE

CHECKPOINT is the body of GET /checkpoint (its signature is checked elsewhere), HASH_TILE
the body of GET /tile/0/000.p/<size> and ENTRIES_TILE that of GET /tile/entries/000.p/<size>,
for a log of fewer than 256 leaves. Exit 0 if each entry's leaf hash, SHA-256(0x00 || entry),
is the tile's hash at its place, and the RFC 6962 root of those hashes is the checkpoint's
root; 1 otherwise, saying why."""
import base64
import hashlib
import sys


def fail(why):
    print("tiles: " + why)
    sys.exit(1)


def mth(hashes):
    """RFC 6962 Merkle tree hash over leaf hashes."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


def main():
    lines = open(sys.argv[1], "rb").read().decode("utf-8").split("\n")
    size, root = int(lines[1]), base64.b64decode(lines[2])
    tile = open(sys.argv[2], "rb").read()
    bundle = open(sys.argv[3], "rb").read()
    if size == 0 or size >= 256:
        fail("this check takes a log of 1 to 255 leaves, not %d" % size)
    if len(tile) != 32 * size:
        fail("the hash tile holds %d bytes, not 32 x %d" % (len(tile), size))
    hashes = [tile[i * 32:(i + 1) * 32] for i in range(size)]
    entries, off = [], 0
    while off < len(bundle):
        if off + 2 > len(bundle):
            fail("the entry bundle ends inside a length")
        n = int.from_bytes(bundle[off:off + 2], "big")
        entries.append(bundle[off + 2:off + 2 + n])
        off += 2 + n
    if off != len(bundle) or len(entries) != size:
        fail("the entry bundle holds %d entries, not %d" % (len(entries), size))
    for i, e in enumerate(entries):
        if hashlib.sha256(b"\x00" + e).digest() != hashes[i]:
            fail("entry %d does not hash to the tile's hash %d" % (i, i))
    if mth(hashes) != root:
        fail("the root of the tile's hashes is not the checkpoint's")
    print("tiles: %d entries hash to the tile, whose root is the checkpoint's" % size)


main()
