"""IPFS content identifiers of a file, as ``ipfs add`` computes them.

``ipfs add`` (kubo, js-ipfs) with its defaults: fixed 256 KiB chunks, a balanced DAG of at most
174 links a node, UnixFS ``File`` nodes in dag-pb, sha2-256. CIDv0 (``Qm...``) keeps every chunk
in a dag-pb leaf; CIDv1 (``ipfs add --cid-version 1``, ``bafy...``/``bafk...``) stores chunks as
``raw`` blocks ("raw leaves"). A one-chunk file is its own root.

The DAG is built here (a UnixFS node is three protobuf fields); CID and multihash encoding is
``multiformats``'s. One pass over the file gives both versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID, multihash

from ogverify.errors import UsageError

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
_UNIXFS_FILE = 2


@dataclass(frozen=True)
class FileCids:
    """A file's CIDs: ``v0`` with dag-pb leaves, ``v1`` with raw leaves, and its size."""

    v0: str
    v1: str
    size: int

    def matches(self, claimed: str) -> bool:
        """Whether ``claimed`` (any version, any multibase) names this file's content.

        A CIDv1 of the dag-pb-leaf DAG (``ipfs add --cid-version 1 --raw-leaves=false``) has the
        multihash of the CIDv0, so it matches too.
        """
        cid = parse_cid(claimed)
        if cid == CID.decode(self.v1):
            return True
        return cid.codec.name == "dag-pb" and bytes(cid.raw_digest) == bytes(CID.decode(self.v0).raw_digest) \
            and cid.hashfun.name == "sha2-256"

    def to_json(self) -> dict[str, object]:
        return {"cidv0": self.v0, "cidv1": self.v1, "size": self.size}


def parse_cid(text: str) -> CID:
    """A CID from its text form.

    Raises:
        UsageError: not a CID.
    """
    try:
        return CID.decode(text.strip())
    except Exception as exc:  # multiformats raises several types (ValueError, KeyError, its own)
        raise UsageError(f"{text!r} is not an IPFS CID ({exc})") from exc


@dataclass(frozen=True)
class _Link:
    """A child as its parent names it: binary CID, size of the serialised sub-DAG, bytes of file."""

    cid: CID
    tsize: int
    file_size: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _uint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _unixfs_file(file_size: int, data: bytes = b"", block_sizes: Iterable[int] = ()) -> bytes:
    """UnixFS ``Data`` of a File node (fields Type=1, Data=2, filesize=3, blocksizes=4, unpacked)."""
    encoded = _uint_field(1, _UNIXFS_FILE) + (_field(2, data) if data else b"") + _uint_field(3, file_size)
    return encoded + b"".join(_uint_field(4, size) for size in block_sizes)


def _dag_pb(data: bytes, links: Iterable[_Link] = ()) -> bytes:
    """A dag-pb ``PBNode``: links (field 2: Hash=1, Name=2 always "", Tsize=3) before Data (field 1)."""
    encoded = b"".join(
        _field(2, _field(1, bytes(link.cid)) + _field(2, b"") + _uint_field(3, link.tsize)) for link in links
    )
    return encoded + _field(1, data)


def _sha256(*parts: bytes) -> bytes:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part)
    return bytes(multihash.wrap(hasher.digest(), "sha2-256"))


class _Dag:
    """Leaves appended one by one; ``root`` reduces them level by level into parents of 174."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.leaves: list[_Link] = []

    def add_chunk(self, chunk: bytes) -> None:
        if self.version == 1:
            cid = CID("base32", 1, "raw", _sha256(chunk))
            self.leaves.append(_Link(cid, len(chunk), len(chunk)))
            return
        node = _dag_pb(_unixfs_file(len(chunk), chunk))
        self.leaves.append(_Link(self._node_cid(node), len(node), len(chunk)))

    def _node_cid(self, node: bytes) -> CID:
        if self.version == 0:
            return CID("base58btc", 0, "dag-pb", _sha256(node))
        return CID("base32", 1, "dag-pb", _sha256(node))

    def _parent(self, children: list[_Link]) -> _Link:
        file_size = sum(child.file_size for child in children)
        node = _dag_pb(_unixfs_file(file_size, block_sizes=(c.file_size for c in children)), children)
        return _Link(self._node_cid(node), len(node) + sum(c.tsize for c in children), file_size)

    def root(self) -> str:
        level = self.leaves
        while len(level) > 1:
            level = [self._parent(level[i:i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
        return str(level[0].cid)


def _chunks(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Fixed-size chunks of the concatenated pieces; no bytes at all are one empty chunk, as
    ``ipfs add`` has it."""
    pending = bytearray()
    emitted = False
    for piece in pieces:
        pending += piece
        while len(pending) >= CHUNK_SIZE:
            yield bytes(pending[:CHUNK_SIZE])
            del pending[:CHUNK_SIZE]
            emitted = True
    if pending or not emitted:
        yield bytes(pending)


def content_cids(pieces: Iterable[bytes]) -> FileCids:
    """The CIDv0 and CIDv1 (raw leaves) of the bytes ``pieces`` yield, in order."""
    dags = (_Dag(0), _Dag(1))
    size = 0
    for chunk in _chunks(pieces):
        size += len(chunk)
        for dag in dags:
            dag.add_chunk(chunk)
    return FileCids(dags[0].root(), dags[1].root(), size)


def file_cids(path: Path) -> FileCids:
    """The CIDs ``ipfs add`` gives the file at ``path``.

    Raises:
        UsageError: not a readable file.
    """
    if not path.is_file():
        raise UsageError(f"{path} is not a file")
    with path.open("rb") as stream:
        return content_cids(iter(lambda: stream.read(CHUNK_SIZE), b""))
