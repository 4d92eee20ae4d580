"""The log's Merkle tree and checkpoints against independent references: an RFC 9162 verifier
written from the RFC (tests/rfc9162_reference.py), the Certificate Transparency test tree, and
the signed-note test vector published with Go's golang.org/x/mod/sumdb/note."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ogverify.evidence.log import merkle, note
from tests import rfc9162_reference as rfc

# The leaves of the test tree used by RFC 6962 implementations (certificate-transparency-go).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]


def _leaves(n: int) -> list[bytes]:
    return [b"leaf %d" % i for i in range(n)]


def test_roots_match_the_ct_test_tree_and_the_rfc_definition() -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]
    assert merkle.root_of(hashes[:1]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.root_of(hashes).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.root_of([]) == rfc.mth([])
    for n in range(1, 40):
        leaves = _leaves(n)
        source = merkle.ListSource([merkle.leaf_hash(x) for x in leaves])
        assert merkle.tree_root(source, n) == rfc.mth(leaves) == merkle.root_of(source.leaves)


def test_inclusion_proofs_verify_with_the_rfc_algorithm() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        source = merkle.ListSource([merkle.leaf_hash(x) for x in leaves])
        root = rfc.mth(leaves)
        for i in range(n):
            path = merkle.inclusion_path(source, i, n)
            assert rfc.verify_inclusion(i, n, source.leaves[i], path, root), (i, n)
            assert merkle.verify_inclusion(i, n, source.leaves[i], path, root)
            if path:  # a changed sibling, a wrong index or a short path fails both
                bad = [bytes(32), *path[1:]]
                assert not rfc.verify_inclusion(i, n, source.leaves[i], bad, root)
                assert not merkle.verify_inclusion(i, n, source.leaves[i], bad, root)
                assert not merkle.verify_inclusion(i, n, source.leaves[i], path[:-1], root)
        assert not merkle.verify_inclusion(n, n, source.leaves[0], [], root)


def test_consistency_proofs_verify_with_the_rfc_algorithm() -> None:
    for n in range(1, 34):
        leaves = _leaves(n)
        source = merkle.ListSource([merkle.leaf_hash(x) for x in leaves])
        second = rfc.mth(leaves)
        for m in range(1, n):
            first = rfc.mth(leaves[:m])
            proof = merkle.consistency_path(source, m, n)
            assert rfc.verify_consistency(m, n, first, second, proof), (m, n)
            assert merkle.verify_consistency(m, n, first, second, proof)
            assert not merkle.verify_consistency(m, n, rfc.mth([*leaves[:m - 1], b"x"]), second, proof)
            assert not rfc.verify_consistency(m, n, rfc.mth([*leaves[:m - 1], b"x"]), second, proof)
            forked = rfc.mth([*leaves[:n - 1], b"fork"])
            assert not merkle.verify_consistency(m, n, first, forked, proof)
        assert merkle.verify_consistency(n, n, second, second, [])
        assert merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, second, [])


# From the documentation of golang.org/x/mod/sumdb/note.
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def test_go_note_test_vector_verifies() -> None:
    name, raw = note.parse_verifier_key(GO_VERIFIER)
    assert name == "PeterNeumann" and note.key_hash(name, raw).hex() == "c74f20a3"
    assert note.verifier_key(name, raw) == GO_VERIFIER
    parsed = note.parse_note(GO_NOTE)
    key = Ed25519PublicKey.from_public_bytes(raw)
    assert [n for n, _ in note.verified_by(parsed, [key])] == ["PeterNeumann"]
    tampered = note.parse_note(GO_NOTE.replace(b"answer", b"Answer"))
    assert note.verified_by(tampered, [key]) == []


def test_checkpoints_round_trip_and_refuse_malformed_notes() -> None:
    key = Ed25519PrivateKey.generate()
    checkpoint = note.Checkpoint("example.com/log", 1000, bytes(range(32)))
    signed = note.sign_note(checkpoint.body(), [("example.com/log", key)])
    lines = signed.decode().splitlines()
    assert lines[:3] == ["example.com/log", "1000", base64.b64encode(bytes(range(32))).decode()]
    assert lines[3] == "" and lines[4].startswith("\u2014 example.com/log ")
    parsed = note.parse_note(signed)
    assert note.Checkpoint.parse(parsed.text) == checkpoint
    assert note.verified_by(parsed, [key.public_key()])
    assert not note.verified_by(parsed, [Ed25519PrivateKey.generate().public_key()])
    many = checkpoint.body() + b"\n" + note.signature_line(checkpoint.body(), "k", key).encode() * 101
    with pytest.raises(note.NoteError, match="over the limit"):
        note.parse_note(many)
    for body in (b"o\n-1\nAAAA\n", b"o\n99999999999999999999\n" + base64.b64encode(bytes(32)) + b"\n",
                 b"o\n01\n" + base64.b64encode(bytes(32)) + b"\n", b"o\n1\nAAAA\n", b"o\n1\n"):
        with pytest.raises(note.NoteError):
            note.Checkpoint.parse(body)
    for raw in (b"no blank line\n", b"text\n\nnot a signature\n", b"text\n\n\xe2\x80\x94 a b c\n", b"\xff\n\n"):
        with pytest.raises(note.NoteError):
            note.parse_note(raw)


class _MemoryStore:
    """A LogStore in a dict (the tile files without a file system's cost per file)."""

    location = "memory"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def read(self, path: str, limit: int) -> bytes:
        return self.files[path][: limit + 1]

    def read_range(self, path: str, offset: int, length: int) -> bytes:
        return self.files[path][offset : offset + length]

    def exists(self, path: str) -> bool:
        return path in self.files

    def write(self, path: str, data: bytes) -> None:
        self.files[path] = bytes(data)

    def open_write(self, path: str) -> Any:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        self.files.pop(path, None)


def test_tiles_are_the_same_however_the_leaves_are_batched() -> None:
    """Appending in batches (hashed level by level) writes the files one leaf at a time would, across a
    level-2 tile boundary, and the tiles give RFC 9162's root at every size."""
    from ogverify.evidence.log import layout

    count = 256 * 256 + 2300
    leaves = _leaves(count)
    splits = {"one": [count], "ones": [1] * 100 + [count - 100], "mixed": [255, 1, 3000, 62280, 1, 2000, 299]}
    trees = {}
    for name, sizes in splits.items():
        store = _MemoryStore()
        store.write(layout.SIZE, b"0\n")
        at = 0
        for size in sizes:
            layout.TileWriter(store, at).append(leaves[at : at + size])  # a new writer reads the partials back
            at += size
            if name == "mixed" and at in (256, 65536, 65537, count):
                assert merkle.tree_root(layout.LogReader(store), at) == rfc.mth(leaves[:at])
        trees[name] = dict(store.files)
    assert trees["one"] == trees["ones"] == trees["mixed"]
    assert sum(splits["mixed"]) == count
    assert {"tile/2/000.p/1", "tile/1/001.p/8", "tile/1/000", "tile/0/263", "tile/0/264.p/252",
            "tile/entries/264.p/252"} <= set(trees["one"])
    assert sum(".p/" in name for name in trees["one"]) == 4  # only the newest partials are left
