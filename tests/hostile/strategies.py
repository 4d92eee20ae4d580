"""Hypothesis strategies for untrusted bundle bytes: raw noise, mutated honest inputs, and
structurally plausible forgeries (JSON trees, .npy headers, tar archives) for each parser.

Used by tests/hostile/test_properties.py (small budget, every test run) and tools/fuzz.py
(large budget, when atheris is not installed).
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import rfc8785
from hypothesis import strategies as st

JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                               max_size=4)),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few byte-level edits: flips, overwrites, cuts, insertions, duplications."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "duplicate"]))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif operation == "set" and data:
            data[position] = draw(st.sampled_from([0, 0x20, 0x30, 0x37, 0x7F, 0x80, 0xFF]))
        elif operation == "truncate":
            del data[position:]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif operation == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=600))]
        else:
            data[position:position] = data[position : position + draw(st.integers(min_value=1, max_value=1024))]
    return bytes(data)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def edited_json(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed document with one subtree replaced, removed or duplicated, serialised one way or another."""
    document = json.loads(seed)
    path = draw(st.sampled_from(_paths(document)))
    replacement = draw(JSON_VALUES)
    if path:
        parent: Any = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    else:
        document = replacement
    style = draw(st.sampled_from(["canonical", "compact", "pretty"]))
    try:
        if style == "canonical":
            return bytes(rfc8785.dumps(document))
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        pass
    return json.dumps(document, indent=2 if style == "pretty" else None).encode()


DESCRS = ["<f4", "<f8", "<i8", "|u1", "|b1", "<U3", ">f4", "|O", "<c8", "|S3", "|V8", "<M8[s]", "", "f4", "<f2"]


@st.composite
def npy_bytes(draw: st.DrawFn) -> bytes:
    """A .npy file whose header fields are drawn (some absurd), followed by data of a drawn length."""
    descr: Any = draw(st.one_of(st.sampled_from(DESCRS), st.text(max_size=8), st.integers()))
    shape: Any = draw(st.one_of(
        st.lists(st.integers(min_value=-2, max_value=2**40), max_size=4).map(tuple),
        st.lists(st.integers(min_value=0, max_value=6), max_size=3).map(tuple),
        st.text(max_size=10), st.none(),
    ))
    fortran: Any = draw(st.one_of(st.booleans(), st.none(), st.integers()))
    header_text = draw(st.one_of(
        st.just(repr({"descr": descr, "fortran_order": fortran, "shape": shape})),
        st.text(max_size=80),
    ))
    header = header_text.encode("latin1", "replace") + b"\n"
    version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x00"]))
    length_field = len(header).to_bytes(2 if version == b"\x01\x00" else 4, "little")
    if draw(st.booleans()):
        length_field = draw(st.binary(min_size=len(length_field), max_size=len(length_field)))
    data = draw(st.binary(max_size=256))
    return b"\x93NUMPY" + version + length_field + header + data


MEMBER_NAMES = [
    "ogverify-bundle.json", "manifest.json", "MANIFEST.json", "blobs/", "blobs/blake3/", "../x", "/etc/passwd",
    "blobs/blake3/" + "0" * 64, "signatures/" + "a" * 64 + ".dsse.json", "./manifest.json", "",
]
MEMBER_TYPES = [tarfile.REGTYPE, tarfile.REGTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE]


@st.composite
def tar_bytes(draw: st.DrawFn, members: dict[str, bytes]) -> bytes:
    """A tar built from honest members and drawn ones (names, types, contents), maybe with a drawn tail."""
    chosen = dict(members) if draw(st.booleans()) else {}
    names = draw(st.lists(st.one_of(st.sampled_from(MEMBER_NAMES + sorted(members)), st.text(max_size=30)),
                          max_size=4))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=draw(st.sampled_from(
            [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))) as tar:
        entries = [(name, tarfile.REGTYPE, data) for name, data in sorted(chosen.items())]
        for name in names:
            content = draw(st.one_of(st.sampled_from([*members.values(), b""]), st.binary(max_size=128)))
            entries.append((name, draw(st.sampled_from(MEMBER_TYPES)), content))
        for name, kind, content in draw(st.permutations(entries)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(content) if kind in (tarfile.REGTYPE, tarfile.CONTTYPE) else 0
            info.linkname = "../../etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            try:
                tar.addfile(info, io.BytesIO(content) if info.size else None)
            except ValueError:  # a name the chosen format cannot hold
                continue
    raw = buffer.getvalue()
    tail = draw(st.sampled_from(["", "", "cut", "garbage"]))
    if tail == "cut":
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    elif tail == "garbage":
        raw += draw(st.binary(min_size=1, max_size=1024))
    return raw


def inputs_for(target: str, seeds: list[bytes], members: dict[str, bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Every kind of input for one fuzz target: noise, mutated seeds and structured forgeries."""
    noise = st.binary(max_size=2048)
    mutations = st.sampled_from(seeds).flatmap(mutated)
    if target == "manifest":
        structured = st.sampled_from(seeds).flatmap(edited_json)
    elif target == "npy":
        structured = npy_bytes()
    elif target in ("log-entry", "log-proof"):
        structured = st.sampled_from(seeds).flatmap(edited_json if target == "log-proof" else mutated)
    elif target == "note":
        structured = st.sampled_from(seeds).flatmap(mutated)
    else:
        from tools.fuzz import seed_bundle_members

        structured = tar_bytes(members if members is not None else seed_bundle_members())
    return st.one_of(noise, mutations, structured)
