"""The files of an evidence log, after C2SP tlog-tiles (https://c2sp.org/tlog-tiles)::

    log.json                       the descriptor: origin, and the manifest every record shares
                                   (model files, execution, comparison, environment) without tensors
    size                           how many records are appended (decimal; unsigned: checkpoints sign)
    checkpoint                     the latest signed checkpoint (C2SP signed note)
    tile/<L>/<N>[.p/<W>]           hash tiles: 256 hashes of tree level 8L, 32 bytes each
    tile/entries/<N>[.p/<W>]       entry bundles: the leaves of records 256N.., each a 2-byte
                                   big-endian length and the leaf bytes
    data/<N>                       tensor packs: the .npy bytes of the records appended together,
                                   starting at record N, each distinct tensor once
    blobs/blake3/<hex>             the model file and its external-data files, once

``<N>`` is written in three-digit groups, all but the last prefixed ``x`` (1234067 →
``x001/x234/067``). A tile or bundle with fewer than 256 entries is partial: ``.p/<W>``. When it
grows, the wider one replaces it (the narrower is removed once ``size`` moved on); readers take
the prefix they need, so one file serves every tree size.

A record's leaf is the canonical JSON of ``RecordEntry``: its index, the sha256 of the shared
manifest, each input and claimed output (name, dtype and shape, or the type of a sequence, map or
optional; blake3, size, and where its bytes are: pack and offset) and, when the producer took
one, the record's trace (blake3, size, pack and offset of its canonical JSON, in the same pack).
The leaf commits to every byte of the record and of the model.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from ogverify.errors import BundleError
from ogverify.evidence import canonical_json
from ogverify.evidence.digest import HEX64
from ogverify.evidence.json_fields import JsonFields
from ogverify.evidence.log import merkle
from ogverify.evidence.log.store import LogStore
from ogverify.evidence.trace import MAX_TRACE_BYTES

FORMAT = "ogverify-log"
VERSION = 1
DESCRIPTOR = "log.json"
SIZE = "size"
CHECKPOINT = "checkpoint"
TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH = merkle.HASH_SIZE
MAX_ENTRY = 0xFFFF
MAX_DESCRIPTOR_BYTES = 16 << 20
MAX_SIZE_FILE = 32
MAX_RECORDS = (1 << 63) - 1
MAX_OFFSET = (1 << 53) - 1  # sizes and offsets in entries: exact in every JSON reader
MAX_TENSORS = 256
NAME_LIMIT = 1024
MAX_SHAPE = 1 << 40
# A record's trace is its canonical JSON: the traced outputs stop at MAX_TRACE_BYTES, plus the
# trace's own few fields and the separators.
MAX_TRACE_BLOB = MAX_TRACE_BYTES + (64 << 10)


class LogFormatError(BundleError):
    """A log's files do not have the form this module writes."""


def encode_index(n: int) -> str:
    """``1234067`` → ``x001/x234/067`` (tlog-tiles)."""
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _partial(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, n: int, width: int) -> str:
    return f"tile/{level}/{encode_index(n)}{_partial(width)}"


def entries_path(n: int, width: int) -> str:
    return f"tile/entries/{encode_index(n)}{_partial(width)}"


def pack_path(first: int) -> str:
    return f"data/{encode_index(first)}"


def blob_path(blake3: str) -> str:
    if not HEX64.match(blake3):
        raise LogFormatError(f"{blake3[:70]!r} is not a blake3 digest")
    return f"blobs/blake3/{blake3}"


def stored_width(level: int, n: int, size: int) -> int:
    """How many hashes tile ``n`` of ``level`` holds in a tree of ``size`` leaves (0: none)."""
    count = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, count - n * TILE_WIDTH))


# --- records --------------------------------------------------------------------------------


class Stored(TypedDict):
    """Where a stored piece of a record is: the blake3 and size of its bytes, and its pack and offset.

    Passed by name (``TensorRef(name, dtype, shape, **stored)``): three of the four are integers,
    which a positional tuple would let slip into one another's place unnoticed.
    """

    blake3: str
    size: int
    pack: int
    offset: int


def _stored_at(raw: Mapping[str, Any], index: int, what: str) -> Stored:
    """Where a stored piece of a record is, validated."""
    if not isinstance(raw["blake3"], str) or not HEX64.match(raw["blake3"]):
        raise LogFormatError(f"record {index}: {what} has no valid blake3 digest")
    for key in ("size", "pack", "offset"):
        if not _count(raw[key], MAX_OFFSET):
            raise LogFormatError(f"record {index}: {what} has no valid {key}")
    if raw["pack"] > index:
        raise LogFormatError(f"record {index}: {what} names a pack of later records")
    return Stored(blake3=raw["blake3"], size=raw["size"], pack=raw["pack"], offset=raw["offset"])


def _name(raw: Mapping[str, Any], index: int) -> str:
    name = raw["name"]
    if not isinstance(name, str) or not 0 < len(name) <= NAME_LIMIT:
        raise LogFormatError(f"record {index}: a tensor name is not a short string")
    return name


@dataclass(frozen=True)
class TensorRef(JsonFields):
    """One input or claimed output of a record, and where its .npy bytes are."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    blake3: str
    size: int
    pack: int
    offset: int

    def leaf_json(self) -> str:
        """Its part of a leaf: canonical JSON written directly (keys sorted; the dtype and digest are
        validated ASCII words, the numbers integers below 2**53)."""
        return (f'{{"blake3":"{self.blake3}","dtype":"{self.dtype}","name":{json.dumps(self.name, ensure_ascii=False)},'
                f'"offset":{self.offset},"pack":{self.pack},"shape":[{",".join(map(str, self.shape))}],'
                f'"size":{self.size}}}')

    def manifest_json(self) -> dict[str, Any]:
        """The manifest's TensorEntry for this tensor, stored plain (as an exported bundle holds it)."""
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
                "digest": {"blake3": self.blake3}, "size": self.size, "encoding": "identity",
                "stored_size": self.size}

    @classmethod
    def from_json(cls, raw: Any, index: int) -> TensorRef:
        if not isinstance(raw, dict) or set(raw) != {"name", "dtype", "shape", "blake3", "size", "pack", "offset"}:
            raise LogFormatError(f"record {index}: a tensor entry does not have the fields of one")
        name = _name(raw, index)
        dtype, shape = raw["dtype"], raw["shape"]
        if not isinstance(dtype, str) or not re.fullmatch(r"[a-z0-9]{1,16}", dtype):
            raise LogFormatError(f"record {index}: tensor {name!r} has no valid dtype")
        if not isinstance(shape, list) or len(shape) > 64 or not all(_count(d, MAX_SHAPE) for d in shape):
            raise LogFormatError(f"record {index}: tensor {name!r} has no valid shape")
        return cls(name, dtype, tuple(shape), **_stored_at(raw, index, f"tensor {name!r}"))


@dataclass(frozen=True)
class ValueRef(JsonFields):
    """A sequence, map or optional input or claimed output of a record: its type as onnxruntime
    writes it, and where its canonical value encoding (``ogverify.model.values``) is."""

    name: str
    type: str
    blake3: str
    size: int
    pack: int
    offset: int

    def leaf_json(self) -> str:
        return (f'{{"blake3":"{self.blake3}","name":{json.dumps(self.name, ensure_ascii=False)},'
                f'"offset":{self.offset},"pack":{self.pack},"size":{self.size},"type":"{self.type}"}}')

    def manifest_json(self) -> dict[str, Any]:
        """The manifest's ValueEntry for this value, stored plain."""
        return {"name": self.name, "type": self.type, "digest": {"blake3": self.blake3}, "size": self.size,
                "encoding": "identity", "stored_size": self.size}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], index: int) -> ValueRef:
        name = _name(raw, index)
        kind = raw["type"]
        if not isinstance(kind, str) or not VALUE_TYPE.fullmatch(kind):
            raise LogFormatError(f"record {index}: value {name!r} has no valid type")
        return cls(name, kind, **_stored_at(raw, index, f"value {name!r}"))


# A value type as onnxruntime writes it: seq(map(int64,tensor(float))), optional(...) (checked in
# full where the value is decoded; here only its alphabet and length).
VALUE_TYPE = re.compile(r"[a-z0-9(),]{1,256}")

Ref = TensorRef | ValueRef
"""An input or claimed output of a record."""


def ref_from_json(raw: Any, index: int) -> Ref:
    """A tensor's entry, or a sequence's, map's or optional's (it has a ``type``)."""
    if isinstance(raw, dict) and set(raw) == {"name", "type", "blake3", "size", "pack", "offset"}:
        return ValueRef.from_json(raw, index)
    return TensorRef.from_json(raw, index)


@dataclass(frozen=True, kw_only=True)
class TraceRef(JsonFields):
    """Where a record's trace is: the blake3 and size of its canonical JSON, its pack and offset
    (built by name, as ``Stored``)."""

    blake3: str
    size: int
    pack: int
    offset: int

    def leaf_json(self) -> str:
        return f'{{"blake3":"{self.blake3}","offset":{self.offset},"pack":{self.pack},"size":{self.size}}}'

    @classmethod
    def from_json(cls, raw: Any, index: int) -> TraceRef:
        if not isinstance(raw, dict) or set(raw) != {"blake3", "size", "pack", "offset"}:
            raise LogFormatError(f"record {index}: the trace entry does not have the fields of one")
        ref = cls(**_stored_at(raw, index, "the trace"))
        if ref.size > MAX_TRACE_BLOB:
            raise LogFormatError(f"record {index}: the trace declares {ref.size} bytes, over the "
                                 f"{MAX_TRACE_BLOB}-byte limit of a trace")
        return ref


def _count(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


@dataclass(frozen=True, kw_only=True)
class RecordEntry:
    """A record as its leaf commits to it (``trace``: where its trace is, when the producer took one).

    Built by keyword: ``inputs`` and ``outputs`` have one type, and a leaf that swapped them would
    still be well formed."""

    index: int
    log: str
    inputs: tuple[Ref, ...]
    outputs: tuple[Ref, ...]
    trace: TraceRef | None = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "log": self.log, "inputs": [t.to_json() for t in self.inputs],
                "outputs": [t.to_json() for t in self.outputs],
                **({} if self.trace is None else {"trace": self.trace.to_json()})}

    def leaf(self) -> bytes:
        """The leaf bytes: canonical (RFC 8785) JSON, written directly (keys in sorted order; dtypes,
        types and digests are validated ASCII words, numbers integers below 2**53)."""
        trace = "" if self.trace is None else f',"trace":{self.trace.leaf_json()}'
        text = (f'{{"index":{self.index},"inputs":[{",".join(t.leaf_json() for t in self.inputs)}],'
                f'"log":"{self.log}","outputs":[{",".join(t.leaf_json() for t in self.outputs)}]{trace}}}')
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate in a tensor name
            raise LogFormatError(f"record {self.index}: a tensor name is not valid Unicode text") from exc

    @classmethod
    def from_json(cls, raw: Any, index: int) -> RecordEntry:
        if not isinstance(raw, dict) or set(raw) - {"trace"} != {"index", "log", "inputs", "outputs"}:
            raise LogFormatError(f"record {index}: the entry does not have the fields of one")
        if raw["index"] != index or isinstance(raw["index"], bool):
            raise LogFormatError(f"record {index}: the entry says it is record {str(raw['index'])[:30]}")
        if not isinstance(raw["log"], str) or not HEX64.match(raw["log"]):
            raise LogFormatError(f"record {index}: the entry names no log")
        tensors = []
        for key in ("inputs", "outputs"):
            items = raw[key]
            if not isinstance(items, list) or len(items) > MAX_TENSORS:
                raise LogFormatError(f"record {index}: {key} is not a list of at most {MAX_TENSORS}")
            tensors.append(tuple(ref_from_json(item, index) for item in items))
        trace = TraceRef.from_json(raw["trace"], index) if "trace" in raw else None
        return cls(index=index, log=raw["log"], inputs=tensors[0], outputs=tensors[1], trace=trace)

    @classmethod
    def parse(cls, leaf: bytes, index: int) -> RecordEntry:
        """A record from its leaf bytes, which must be the canonical JSON this module writes."""
        try:
            parsed = canonical_json.loads_strict(leaf, f"record {index}")
        except BundleError as exc:
            raise LogFormatError(f"record {index}: {exc.message}") from exc
        entry = cls.from_json(parsed, index)
        if entry.leaf() != leaf:
            raise LogFormatError(f"record {index}: the entry is not canonical JSON")
        return entry


def canonical_dumps(value: Any) -> bytes:
    """RFC 8785 JSON of a value made of dicts with ASCII keys, lists, strings and integers below 2**53
    (a record entry): for those, Python's sorted compact JSON is byte for byte the canonical form."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate in a tensor name
        raise LogFormatError(f"a tensor name is not valid Unicode text: {exc}") from exc


def template_digest(template: Mapping[str, Any]) -> str:
    """The sha256 hex of the shared manifest (a manifest without inputs and outputs)."""
    import hashlib

    return hashlib.sha256(canonical_json.dumps(dict(template))).hexdigest()


RECORD_KEYS = ("inputs", "outputs", "trace")
"""What a record adds to the shared manifest: its inputs, claimed outputs and trace."""


def template_of(manifest_json: Mapping[str, Any]) -> dict[str, Any]:
    """A bundle manifest's shared part: everything but what a record adds (``RECORD_KEYS``)."""
    return {k: v for k, v in manifest_json.items() if k not in RECORD_KEYS}


def encode_entries(leaves: Iterable[bytes]) -> bytes:
    out = bytearray()
    for leaf in leaves:
        if len(leaf) > MAX_ENTRY:
            raise ValueError(f"a record entry of {len(leaf)} bytes is over the {MAX_ENTRY}-byte limit")
        out += len(leaf).to_bytes(2, "big") + leaf
    return bytes(out)


def decode_entries(data: bytes, count: int, what: str) -> list[bytes]:
    """The first ``count`` entries of an entry bundle."""
    leaves: list[bytes] = []
    position = 0
    for _ in range(count):
        if position + 2 > len(data):
            raise LogFormatError(f"{what} ends before its entry {len(leaves)}")
        length = int.from_bytes(data[position : position + 2], "big")
        end = position + 2 + length
        if end > len(data):
            raise LogFormatError(f"{what} ends inside its entry {len(leaves)}")
        leaves.append(data[position + 2 : end])
        position = end
    return leaves


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    """``log.json``: the origin and the manifest every record shares."""

    origin: str
    template: Mapping[str, Any]

    @functools.cached_property
    def digest(self) -> str:
        """The sha256 of the shared manifest, which every record's entry names."""
        return template_digest(self.template)

    def to_bytes(self) -> bytes:
        return canonical_json.dumps({"format": FORMAT, "version": VERSION, "origin": self.origin,
                                     "manifest": dict(self.template)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Descriptor:
        parsed = canonical_json.loads_strict(raw, DESCRIPTOR)
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
            raise LogFormatError(f"{DESCRIPTOR} does not name the {FORMAT} format")
        if parsed.get("version") != VERSION:
            raise LogFormatError(f"log format version {parsed.get('version')!r} is not supported")
        origin, template = parsed.get("origin"), parsed.get("manifest")
        if not isinstance(origin, str) or not origin or "\n" in origin or not isinstance(template, dict):
            raise LogFormatError(f"{DESCRIPTOR} has no valid origin and manifest")
        if any(key in template for key in RECORD_KEYS):
            raise LogFormatError(f"{DESCRIPTOR}: the shared manifest must not hold tensors or a trace")
        return cls(origin, template)


class LogReader:
    """Reads a log's files, checking their form; a ``merkle.HashSource`` for the log's tree."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._bundles: dict[int, list[bytes]] = {}
        self._perfect: dict[tuple[int, int], bytes] = {}
        self._size: int | None = None

    def descriptor(self) -> Descriptor:
        return Descriptor.from_bytes(self.store.read(DESCRIPTOR, MAX_DESCRIPTOR_BYTES))

    @property
    def size(self) -> int:
        """The number of records the log says it holds (``size``), unsigned."""
        if self._size is None:
            raw = self.store.read(SIZE, MAX_SIZE_FILE).decode("ascii", "replace").strip()
            if not re.fullmatch(r"0|[1-9][0-9]{0,18}", raw) or int(raw) > MAX_RECORDS:
                raise LogFormatError(f"the log's size file holds {raw[:30]!r}, not a record count")
            self._size = int(raw)
        return self._size

    def _tile(self, level: int, n: int) -> bytes:
        """Tile ``n`` of ``level`` as stored now (partial while the log's size leaves it so)."""
        key = (level, n)
        if key not in self._tiles:
            width = stored_width(level, n, self.size)
            if width == 0:
                raise LogFormatError(f"tile {level}/{n} is beyond the log's {self.size} records")
            data = self.store.read(tile_path(level, n, width), TILE_WIDTH * HASH)
            if len(data) != width * HASH:
                raise LogFormatError(f"tile {tile_path(level, n, width)} holds {len(data)} bytes, not {width * HASH}")
            self._tiles[key] = data
        return self._tiles[key]

    def perfect(self, level: int, index: int) -> bytes:
        known = self._perfect.get((level, index))
        if known is None:
            known = self._perfect[(level, index)] = self._compute_perfect(level, index)
        return known

    def _compute_perfect(self, level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        start = index << height
        count = 1 << height
        data = self._tile(tile_level, start // TILE_WIDTH)
        offset = start % TILE_WIDTH
        if (offset + count) * HASH > len(data):
            raise LogFormatError(f"the log's tiles do not hold subtree {level}/{index}")
        hashes = [data[(offset + i) * HASH : (offset + i + 1) * HASH] for i in range(count)]
        return merkle.root_of(hashes) if count > 1 else hashes[0]

    def leaf_hash(self, index: int) -> bytes:
        return self.perfect(0, index)

    def leaf(self, index: int) -> bytes:
        """The leaf bytes of record ``index``, from its entry bundle."""
        n = index // TILE_WIDTH
        if n not in self._bundles:
            width = stored_width(0, n, self.size)
            if width == 0:
                raise LogFormatError(f"record {index} is beyond the log's {self.size} records")
            path = entries_path(n, width)
            data = self.store.read(path, width * (MAX_ENTRY + 2))
            self._bundles = {n: decode_entries(data, width, f"entry bundle {path}")}
        return self._bundles[n][index % TILE_WIDTH]

    def record(self, index: int) -> RecordEntry:
        return RecordEntry.parse(self.leaf(index), index)

    def tensor(self, ref: Ref, limit: int) -> bytes:
        """A tensor's .npy bytes (a value's encoding) as stored (the caller verifies the digest)."""
        if ref.size > limit:
            raise LogFormatError(f"tensor {ref.name!r} declares {ref.size} bytes, over the {limit}-byte limit")
        return self.store.read_range(pack_path(ref.pack), ref.offset, ref.size)

    def trace(self, ref: TraceRef) -> bytes:
        """A record's trace, its canonical JSON, checked against its blake3 digest."""
        import blake3

        data = self.store.read_range(pack_path(ref.pack), ref.offset, ref.size)
        if blake3.blake3(data).hexdigest() != ref.blake3:
            raise LogFormatError("the record's trace does not match its digest (the stored bytes changed)")
        return data


# --- writing --------------------------------------------------------------------------------


class TileWriter:
    """Appends leaves: keeps the log's partial tiles in memory and writes what changed.

    Full tiles are written once; the partial tile of each level is written anew after every
    append and the narrower one it replaces is removed after ``size`` moved on.
    """

    def __init__(self, store: LogStore, size: int) -> None:
        self.store = store
        self.size = size
        self.committed = size
        reader = LogReader(store)
        reader._size = size
        self.partial: list[list[bytes]] = []
        level = 0
        while (size >> (TILE_HEIGHT * level)) > 0:
            n, width = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
            hashes: list[bytes] = []
            if width:
                data = reader._tile(level, n)
                hashes = [data[i * HASH : (i + 1) * HASH] for i in range(width)]
            self.partial.append(hashes)
            level += 1
        n, width = divmod(size, TILE_WIDTH)
        self.entries: list[bytes] = []
        if width:
            reader.leaf(size - 1)
            self.entries = list(reader._bundles[n])

    def append(self, leaves: Sequence[bytes]) -> None:
        """Add the leaves and commit: full tiles as they complete, then the partial ones and ``size``."""
        self.add(leaves)
        self.commit()

    def add(self, leaves: Sequence[bytes], write: Callable[[str, bytes], object] | None = None) -> None:
        """Add leaves, writing the tiles and entry bundles they complete (through ``write``, default
        the store's); readers see them only after ``commit`` (``size`` still names the old tree,
        whose files are unchanged).

        A batch is hashed level by level: the leaf hashes at once, then each tile completed on a
        level gives one hash to the level above (the files are those of one leaf at a time).
        """
        write = write or self.store.write
        old_size = self.size
        entries = self.entries + list(leaves)
        bundle = old_size // TILE_WIDTH
        full = len(entries) // TILE_WIDTH
        for k in range(full):
            write(entries_path(bundle + k, TILE_WIDTH), encode_entries(entries[k * TILE_WIDTH : (k + 1) * TILE_WIDTH]))
        self.entries = entries[full * TILE_WIDTH :]
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        before = old_size  # hashes of this level before the append
        level = 0
        while hashes:
            while len(self.partial) <= level:
                self.partial.append([])
            current = self.partial[level] + hashes
            n = before // TILE_WIDTH
            full = len(current) // TILE_WIDTH
            hashes = []
            for k in range(full):
                tile = current[k * TILE_WIDTH : (k + 1) * TILE_WIDTH]
                write(tile_path(level, n + k, TILE_WIDTH), b"".join(tile))
                hashes.append(merkle.root_of(tile))
            self.partial[level] = current[full * TILE_WIDTH :]
            before >>= TILE_HEIGHT
            level += 1
        self.size += len(leaves)

    def commit(self) -> None:
        """Write the partial tiles, then ``size``; remove the partials the committed size no longer names."""
        for path, data in self._partials():
            self.store.write(path, data)
        self.store.write(SIZE, f"{self.size}\n".encode("ascii"))
        for path in self._partial_paths(self.committed) - self._partial_paths(self.size):
            self.store.remove(path)
        self.committed = self.size

    def _partials(self) -> list[tuple[str, bytes]]:
        out = []
        for level, hashes in enumerate(self.partial):
            if hashes:
                n = (self.size >> (TILE_HEIGHT * level)) // TILE_WIDTH
                out.append((tile_path(level, n, len(hashes)), b"".join(hashes)))
        if self.entries:
            out.append((entries_path(self.size // TILE_WIDTH, len(self.entries)), encode_entries(self.entries)))
        return out

    @staticmethod
    def _partial_paths(size: int) -> set[str]:
        paths = set()
        level = 0
        while (size >> (TILE_HEIGHT * level)) > 0:
            n, width = divmod(size >> (TILE_HEIGHT * level), TILE_WIDTH)
            if width:
                paths.add(tile_path(level, n, width))
            level += 1
        n, width = divmod(size, TILE_WIDTH)
        if width:
            paths.add(entries_path(n, width))
        return paths
