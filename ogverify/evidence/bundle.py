"""Reading and writing evidence bundles, in directory form and as a single ``.ogb`` tar file.

Layout (both forms)::

    ogverify-bundle.json          {"format": "ogverify-bundle", "version": 1}
    manifest.json                 canonical JSON manifest
    blobs/blake3/<64 hex>         one artifact each, named by the blake3 of its uncompressed bytes
    signatures/<keyid>.dsse.json  DSSE envelopes
    log-proof.json                optional: a record exported from an evidence log, signed through
                                  the log (its entry, inclusion proof and signed checkpoint)

Every bundle is untrusted input: member names must match the layout exactly, only regular
files are accepted, sizes are bounded, and blobs are decompressed no further than their
declared size. Writers stage into a temporary sibling and rename, so an interrupted pack
never leaves a partial bundle at the target path.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import secrets
import shutil
import signal
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import zstandard

from ogverify.errors import BundleError, EvidenceMismatchError, TargetExistsError, UsageError
from ogverify.evidence import canonical_json, storing
from ogverify.evidence.digest import Algorithm, Digest, Hasher, digest_bytes, digest_file_multi
from ogverify.evidence.manifest import Artifact, Manifest
from ogverify.evidence.paths import problem
from ogverify.evidence.regions import CHUNK, digest_region_isolated, hash_region, new_hasher
from ogverify.evidence.storing import MemberOpener, MemberSource

MARKER = "ogverify-bundle.json"
MANIFEST = "manifest.json"
MARKER_CONTENT = {"format": "ogverify-bundle", "version": 1}
BLOB_NAME = re.compile(r"^blobs/blake3/[0-9a-f]{64}$")
SIGNATURE_NAME = re.compile(r"^signatures/[0-9a-f]{64}\.dsse\.json$")
LOG_PROOF = "log-proof.json"
MAX_LOG_PROOF_BYTES = 2 << 20

Form = Literal["directory", "file"]


@dataclass(frozen=True)
class Limits:
    """Bounds on what a bundle may make ogverify read, allocate or write.

    The field names are the keys of a policy's ``[limits]`` table; docs/threat-model.md explains
    each one. Every field is a positive integer (bytes, a count, or seconds); going over a limit
    means "cannot verify" (exit 3).

    Every field is at most ``MAX_LIMIT`` (4 EiB: more than any machine has, and what the
    operating system's limits can still hold).

    Attributes:
        max_members: files in a bundle (tar members or directory entries).
        max_manifest_bytes: size of ``manifest.json``.
        max_signature_bytes: size of one ``signatures/*.dsse.json`` envelope (it carries a copy of
            the manifest, so it must allow about 4/3 of ``max_manifest_bytes``).
        max_signatures: number of signature envelopes.
        max_blob_bytes: declared (uncompressed) size of one artifact; also bounds what a blob may
            decompress to and what ``check`` writes to disk for one model file.
        max_total_bytes: declared size of all artifacts together.
        max_tensor_bytes: size of one input, claimed output or reproduced output held in memory.
        max_replay_memory: bytes of data memory the re-execution process may allocate (Linux
            ``RLIMIT_DATA``); a model that needs more is stopped and the check cannot verify.
        max_download_bytes: size of a bundle fetched over http(s).
        max_download_seconds: time a bundle's download may take, from the request to the last
            byte (a server that trickles bytes cannot hold a check forever).
    """

    max_members: int = 10_000
    max_manifest_bytes: int = 16 << 20
    max_signature_bytes: int = 24 << 20
    max_signatures: int = 16
    max_blob_bytes: int = 1 << 40
    max_total_bytes: int = 1 << 42
    max_tensor_bytes: int = 4 << 30
    max_replay_memory: int = 16 << 30
    max_download_bytes: int = 16 << 30
    max_download_seconds: int = 3600

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"limit {name} must be a positive integer, not {value!r}")
            if value > MAX_LIMIT:
                raise UsageError(f"limit {name} must be at most {MAX_LIMIT} (4 EiB), not {value}")
        if self.max_download_seconds > MAX_DOWNLOAD_SECONDS:
            raise UsageError(f"limit max_download_seconds must be at most {MAX_DOWNLOAD_SECONDS}, "
                             f"not {self.max_download_seconds}")
        if self.max_replay_memory < MIN_REPLAY_MEMORY:
            raise UsageError(
                f"limit max_replay_memory must be at least {MIN_REPLAY_MEMORY} bytes "
                "(the runtime itself needs that much to start)"
            )


# The largest value of any limit: 2**62 bytes, which RLIMIT_DATA (a signed 64-bit value) can hold.
MAX_LIMIT = 1 << 62
# About 11.6 days: as for the re-execution's timeout, what every timer takes.
MAX_DOWNLOAD_SECONDS = 1_000_000
# Python, numpy and onnxruntime need about 150 MiB of data memory before loading any model.
MIN_REPLAY_MEMORY = 256 << 20
# pax and GNU long-name headers: ours hold a short path; a hostile one could claim gigabytes.
MAX_TAR_HEADER = 64 << 10
# After the end-of-archive marker, a tar writer pads to its record size (10 KiB by default).
MAX_TAR_TAIL = 1 << 20
TAR_BLOCK = 512

DEFAULT_LIMITS = Limits()


def form_for(path: Path) -> Form:
    """``.ogb`` names the single-file form; anything else is the directory form."""
    return "file" if path.suffix == ".ogb" else "directory"


def _allowed_member(name: str) -> bool:
    return name in (MARKER, MANIFEST, LOG_PROOF) or bool(BLOB_NAME.match(name) or SIGNATURE_NAME.match(name))


class BundleSource(Protocol):
    """Random access to a bundle's members, whichever form it has."""

    def names(self) -> list[str]: ...

    def stored_size(self, name: str) -> int: ...

    def open(self, name: str) -> BinaryIO: ...

    def region(self, name: str) -> contextlib.AbstractContextManager[tuple[BinaryIO, int]]:
        """The file that holds the member's bytes and their offset in it (for pread and kernel copies)."""
        ...

    def place(self, name: str) -> tuple[Path, int]:
        """The real path of the file that holds the member's bytes (symlinks resolved), and their offset."""
        ...

    def close(self) -> None: ...


class DirectorySource:
    """Members of a bundle directory; symlinks and special files are refused outright."""

    def __init__(self, root: Path, limits: Limits) -> None:
        self.root = root
        self._sizes: dict[str, int] = {}
        if not (root / MARKER).is_file() and not (root / MANIFEST).is_file():
            raise BundleError(f"{root} is not an ogverify bundle (no {MARKER} / {MANIFEST})")
        self._walk(root, "", limits)

    def _walk(self, folder: Path, prefix: str, limits: Limits) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                name = f"{prefix}{entry.name}"
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    if name not in ("blobs", "blobs/blake3", "signatures"):
                        raise BundleError(f"bundle holds an unexpected directory {name!r}")
                    self._walk(Path(entry.path), f"{name}/", limits)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    raise BundleError(f"bundle member {name!r} is not a regular file")
                if not _allowed_member(name):
                    raise BundleError(f"bundle holds an unexpected file {name!r}")
                self._sizes[name] = info.st_size
                if len(self._sizes) > limits.max_members:
                    raise BundleError(f"bundle has more than {limits.max_members} members")

    def names(self) -> list[str]:
        return list(self._sizes)

    def stored_size(self, name: str) -> int:
        return self._sizes[name]

    def open(self, name: str) -> BinaryIO:
        return (self.root / name).open("rb")

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[tuple[BinaryIO, int]]:
        with self.open(name) as handle:
            yield handle, 0

    def place(self, name: str) -> tuple[Path, int]:
        return (self.root / name).resolve(), 0

    def close(self) -> None:
        return None


class _MemberReader(io.RawIOBase):
    """A read-only window onto one tar member's data."""

    def __init__(self, handle: BinaryIO, start: int, size: int) -> None:
        self._handle, self._start, self._size, self._pos = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._size - self._pos)
        if count <= 0:
            return 0
        self._handle.seek(self._start + self._pos)
        chunk = self._handle.read(count)
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class _HeaderReader:
    """The file as tarfile sees it: header reads only, each bounded by ``MAX_TAR_HEADER``.

    tarfile reads a pax or GNU long-name header's whole data in one ``read(size)`` with ``size``
    taken from the (untrusted) header; member data is never read through this object.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.mode = "rb"

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > MAX_TAR_HEADER:
            raise BundleError(f"tar header claims {size} bytes, over the {MAX_TAR_HEADER}-byte limit")
        return self._handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


class TarSource:
    """Members of a ``.ogb`` file: a plain tar whose members are read in place."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self._path = path.resolve()
        self._handle: BinaryIO = self._path.open("rb")
        self._members: dict[str, tuple[int, int]] = {}
        try:
            self._index(path, limits)
        except BaseException:
            self._handle.close()
            raise

    def _index(self, path: Path, limits: Limits) -> None:
        file_size = path.stat().st_size
        headers = _HeaderReader(self._handle)
        try:
            try:
                archive = tarfile.open(fileobj=headers, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
            except tarfile.TarError as exc:
                raise BundleError(f"{path} is not a bundle: not a tar archive or a bundle directory") from exc
            with archive:
                while True:
                    try:
                        member = archive.next()
                    except tarfile.TarError as exc:
                        raise BundleError(f"{path}: damaged tar archive ({exc})") from exc
                    if member is None:
                        break
                    self._add(member, file_size, limits)
                    # tarfile keeps every member object; forget them so huge archives stay bounded.
                    archive.members.clear()
                end = archive.offset
        except (RecursionError, ValueError, OverflowError, UnicodeError) as exc:
            # A chain of thousands of pax/GNU headers makes tarfile recurse; odd fields make it raise.
            raise BundleError(f"{path}: damaged tar archive ({type(exc).__name__})") from exc
        self._check_end(path, end, file_size)

    def _add(self, member: tarfile.TarInfo, file_size: int, limits: Limits) -> None:
        name = member.name
        if not member.isreg() or member.issparse():
            raise BundleError(f"bundle member {name!r} is not a regular file")
        if not _allowed_member(name):
            raise BundleError(f"bundle holds an unexpected member {name!r}")
        if name in self._members:
            raise BundleError(f"bundle member {name!r} appears twice")
        if member.size < 0:
            raise BundleError(f"bundle member {name!r} has an invalid size")
        if member.offset_data + member.size > file_size:
            raise BundleError(f"bundle member {name!r} is truncated")
        self._members[name] = (member.offset_data, member.size)
        if len(self._members) > limits.max_members:
            raise BundleError(f"bundle has more than {limits.max_members} members")

    def _check_end(self, path: Path, end: int, file_size: int) -> None:
        """What follows the last member must be the end-of-archive marker and zero padding, nothing else.

        tarfile stops quietly at a damaged or cut-off header once it has read one member, so a
        truncated archive, or one with data appended, would otherwise pass for a shorter one.
        """
        tail_size = file_size - end
        self._handle.seek(end)
        tail = self._handle.read(min(tail_size, MAX_TAR_TAIL))
        marker = tail[: 2 * TAR_BLOCK]
        if any(marker):
            if tail_size < TAR_BLOCK:
                raise BundleError(f"{path}: tar archive is truncated (cut off inside a header)")
            raise BundleError(f"{path}: damaged tar archive (data at offset {end} is not a tar header)")
        if tail_size < 2 * TAR_BLOCK:
            raise BundleError(f"{path}: tar archive is truncated (no end-of-archive marker)")
        if tail_size > MAX_TAR_TAIL or any(tail):
            raise BundleError(f"{path}: unexpected data after the end of the tar archive")

    def names(self) -> list[str]:
        return list(self._members)

    def stored_size(self, name: str) -> int:
        return self._members[name][1]

    def open(self, name: str) -> BinaryIO:
        start, size = self._members[name]
        return io.BufferedReader(_MemberReader(self._handle, start, size), CHUNK)

    @contextlib.contextmanager
    def region(self, name: str) -> Iterator[tuple[BinaryIO, int]]:
        yield self._handle, self._members[name][0]

    def place(self, name: str) -> tuple[Path, int]:
        return self._path, self._members[name][0]

    def close(self) -> None:
        self._handle.close()


@dataclass(frozen=True)
class BlobPlace:
    """Where a verified, uncompressed blob's bytes lie on disk, and what the file was when they were hashed.

    ``check`` lets onnxruntime read a large model file there instead of copying it
    (``Bundle.verify_in_place``); ``Bundle.recheck`` proves afterwards that the file still holds
    the bytes that were hashed (docs/performance.md, "Verified in place").

    Attributes:
        path: the file's real path (symlinks resolved).
        offset: where the blob starts in it (0 for a bundle directory, the member's data in a ``.ogb``).
        size: the blob's length.
        identity: (device, inode, size, mtime ns, ctime ns) of the file when the blob was hashed.
        noted_at_ns: this machine's clock (``time.time_ns``) just before ``identity`` was taken.
    """

    path: Path
    offset: int
    size: int
    identity: tuple[int, int, int, int, int]
    noted_at_ns: int

    @property
    def settled(self) -> bool:
        """The file had not changed for ``SETTLED_NS`` when it was hashed: any write since moves its ctime.

        A write sets the ctime to the clock at that moment, at the file system's granularity; a
        file last changed well before the identity was noted cannot be written afterwards and
        keep that ctime. A file changed just before it (within one timestamp tick) could, which
        is git's "racy" case: such a file is hashed again instead (``Bundle.recheck``).
        """
        return self.identity[4] < self.noted_at_ns - SETTLED_NS


# A file whose ctime is this much older than the moment its identity was noted is "settled" (above):
# more than any local file system's timestamp granularity (FAT's 2 s included).
SETTLED_NS = 3_000_000_000


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


class BlobError(EvidenceMismatchError):
    """A blob does not hold what the manifest says (missing, wrong size or digest).

    Raised and caught inside ``Bundle``: its callers get the problem as text (``verify_blob``,
    ``copy_verified``) or as a ``BundleError`` naming the artifact (``read_blob``, ``write_blob``).
    """


class Bundle:
    """An opened bundle: its source, manifest bytes, parsed manifest and signature envelopes."""

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        if path.is_dir():
            self.form: Form = "directory"
            self.source: BundleSource = DirectorySource(path, limits)
        elif path.is_file():
            self.form = "file"
            self.source = TarSource(path, limits)
        else:
            found = problem(path, want="file or directory") or "cannot be read"
            raise BundleError(f"no such bundle: {path}" if found == "does not exist" else
                              f"{path} is not a bundle: it {found}")
        try:
            self._load()
        except BaseException:
            self.source.close()
            raise

    def _load(self) -> None:
        names = set(self.source.names())
        if MARKER not in names or MANIFEST not in names:
            raise BundleError(f"{self.path} is not an ogverify bundle (no {MARKER} / {MANIFEST})")
        marker = canonical_json.loads_strict(self.read_member(MARKER, 4096), MARKER)
        if not isinstance(marker, dict) or marker.get("format") != "ogverify-bundle":
            raise BundleError(f"{MARKER} does not name the ogverify-bundle format")
        version = marker.get("version")
        if version != MARKER_CONTENT["version"]:
            raise BundleError(f"bundle format version {version!r} is not supported; this bundle needs a newer ogverify")
        self.manifest_bytes = self.read_member(MANIFEST, self.limits.max_manifest_bytes)
        self.manifest = Manifest.from_bytes(self.manifest_bytes)
        envelope_names = sorted(name for name in names if SIGNATURE_NAME.match(name))
        if len(envelope_names) > self.limits.max_signatures:
            raise BundleError(
                f"bundle holds {len(envelope_names)} signature envelopes, over the max_signatures limit "
                f"({self.limits.max_signatures})"
            )
        self.signature_envelopes: dict[str, bytes] = {
            name: self.read_member(name, self.limits.max_signature_bytes) for name in envelope_names
        }
        self.log_proof = self.read_member(LOG_PROOF, MAX_LOG_PROOF_BYTES) if LOG_PROOF in names else None
        # Refuse impossible sizes before reading a byte of any blob.
        for label, artifact in self.manifest.artifacts():
            if artifact.size > self.limits.max_blob_bytes:
                limit = self.limits.max_blob_bytes
                raise BundleError(f"{label} declares {artifact.size} bytes, over the max_blob_bytes limit ({limit})")
        declared = sum(a.size for _, a in self.manifest.artifacts())
        if declared > self.limits.max_total_bytes:
            raise BundleError(
                f"bundle declares {declared} bytes of artifacts, over the max_total_bytes limit "
                f"({self.limits.max_total_bytes})"
            )

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.source.close()

    @property
    def manifest_sha256(self) -> Digest:
        return digest_bytes(self.manifest_bytes, "sha256")

    def read_member(self, name: str, limit: int) -> bytes:
        """Read a small member whole, refusing one larger than ``limit``."""
        size = self.source.stored_size(name)
        if size > limit:
            raise BundleError(f"bundle member {name!r} is {size} bytes, over the {limit}-byte limit")
        with self.source.open(name) as handle:
            return handle.read(size)

    def blob_names(self) -> set[str]:
        return {name for name in self.source.names() if BLOB_NAME.match(name)}

    def _stored_plain(self, artifact: Artifact) -> bool:
        """Check what can be checked without reading the blob; True when it is stored uncompressed.

        Raises:
            BlobError: missing blob, stored size not as declared, declared size over the limit.
        """
        name = artifact.blob_path
        if name not in self.source.names():
            raise BlobError("blob is missing from the bundle")
        if artifact.size > self.limits.max_blob_bytes:
            raise BlobError(f"declared size {artifact.size} is over the {self.limits.max_blob_bytes}-byte limit")
        stored = self.source.stored_size(name)
        if stored != artifact.stored_size:
            raise BlobError(f"stored size is {stored} bytes, manifest says {artifact.stored_size}")
        if artifact.encoding == "identity":
            if stored != artifact.size:
                raise BlobError(f"size is {stored} bytes, manifest says {artifact.size}")
            return True
        return False

    def iter_blob(self, artifact: Artifact) -> Iterator[bytes]:
        """Yield a blob's uncompressed bytes, checking stored size and declared size as it goes.

        The digest is not checked here; callers hash what they consume (see ``verify_blob``).

        Raises:
            BlobError: missing blob, stored size or decompressed size not as declared,
                corrupt compressed data.
        """
        plain = self._stored_plain(artifact)
        with self.source.open(artifact.blob_path) as raw:
            if plain:
                yield from iter(lambda: raw.read(CHUNK), b"")
                return
            yield from _bounded_zstd(raw, artifact.size)

    def read_blob(self, artifact: Artifact, what: str, limit: int) -> bytes:
        """A verified blob, whole, for small artifacts such as tensors."""
        if artifact.size > limit:
            raise BundleError(f"{what} is {artifact.size} bytes, over the {limit}-byte limit")
        try:
            data = b"".join(self.iter_blob(artifact))
        except BlobError as exc:
            raise BundleError(f"{what}: {exc}") from exc
        if digest_bytes(data).hex != artifact.blake3:
            raise BundleError(f"{what}: blake3 digest does not match the manifest")
        return data

    def verify_blob(self, artifact: Artifact) -> str | None:
        """Read a blob through its digests where it lies; return what is wrong with it, or None."""
        try:
            if self._stored_plain(artifact):
                with self.source.region(artifact.blob_path) as (handle, offset):
                    digests = digest_region_isolated(handle, offset, artifact.size, _algorithms(artifact))
            else:
                hashers = _hashers(artifact)
                for chunk in self.iter_blob(artifact):
                    for hasher in hashers.values():
                        hasher.update(chunk)
                digests = _hex(hashers)
        except BlobError as exc:
            return str(exc)
        except ValueError:  # the file got shorter while it was read
            return "blob ends early (the bundle changed while it was read)"
        return _digest_problem(artifact, digests)

    def verify_in_place(self, artifact: Artifact) -> tuple[str | None, BlobPlace | None]:
        """``verify_blob``, and for a blob stored uncompressed, where it lies (None when compressed).

        The file's identity is taken before the first byte is hashed, so ``recheck`` notices any
        write from that moment on, as well as a different file renamed into its place.
        """
        try:
            if not self._stored_plain(artifact):
                return self.verify_blob(artifact), None
            path, offset = self.source.place(artifact.blob_path)
            with self.source.region(artifact.blob_path) as (handle, start):
                noted_at = time.time_ns()
                identity = _identity(os.fstat(handle.fileno()))
                digests = digest_region_isolated(handle, start, artifact.size, _algorithms(artifact))
        except BlobError as exc:
            return str(exc), None
        except ValueError:  # the file got shorter while it was read
            return "blob ends early (the bundle changed while it was read)", None
        problem = _digest_problem(artifact, digests)
        return problem, (BlobPlace(path, offset, artifact.size, identity, noted_at) if problem is None else None)

    @staticmethod
    def recheck(place: BlobPlace, artifact: Artifact) -> str | None:
        """Whether ``place`` still holds the verified blob: the same file, not written since it was
        hashed (device, inode, size, mtime, ctime), and, unless the file was ``settled`` then, the
        same digests when hashed again; what is wrong, or None."""
        changed = "the bundle changed while the model ran"
        try:
            with place.path.open("rb") as handle:
                if _identity(os.fstat(handle.fileno())) != place.identity:
                    return f"{changed} (its file was written or replaced after it was verified)"
                if place.settled:
                    return None
                digests = digest_region_isolated(handle, place.offset, place.size, _algorithms(artifact))
        except OSError as exc:
            return f"{changed} ({exc.strerror or exc})"
        except ValueError:
            return f"{changed} (its file got shorter)"
        problem = _digest_problem(artifact, digests)
        return None if problem is None else f"{changed}: {problem}"

    def write_blob(self, artifact: Artifact, target: Path, what: str) -> None:
        """Write a blob's verified content to ``target`` (removed again if it does not verify).

        Raises:
            BundleError: the blob does not verify (the message starts with ``what``).
        """
        problem = self.copy_verified(artifact, target)
        if problem is not None:
            raise BundleError(f"{what}: {problem}")

    def copy_verified(self, artifact: Artifact, target: Path) -> str | None:
        """Write a blob's content to ``target`` and verify it there; return what is wrong, or None.

        An uncompressed blob is copied by the kernel and then hashed from the copy: what is
        verified is what the caller will use, whatever happens to the bundle meanwhile. A blob
        that does not verify leaves no file behind.

        Raises:
            OSError: ``target`` cannot be written.
        """
        hashers = _hashers(artifact)
        try:
            plain = self._stored_plain(artifact)
            with target.open("xb") as out:
                if plain:
                    with self.source.region(artifact.blob_path) as (handle, offset):
                        if storing.copy_region(handle.fileno(), offset, out.fileno(), artifact.size) != artifact.size:
                            raise BlobError("blob ends early (the bundle changed while it was read)")
                else:
                    for chunk in self.iter_blob(artifact):
                        for hasher in hashers.values():
                            hasher.update(chunk)
                        out.write(chunk)
            if plain:
                with target.open("rb") as copy:
                    hash_region(copy, 0, artifact.size, list(hashers.values()))
            problem = _digest_problem(artifact, _hex(hashers))
        except BlobError as exc:
            problem = str(exc)
        if problem is not None:
            target.unlink(missing_ok=True)
        return problem


def _algorithms(artifact: Artifact) -> tuple[Algorithm, ...]:
    return ("blake3",) if artifact.sha256 is None else ("blake3", "sha256")


def _hashers(artifact: Artifact) -> dict[Algorithm, Hasher]:
    return {algorithm: new_hasher(algorithm) for algorithm in _algorithms(artifact)}


def _hex(hashers: dict[Algorithm, Hasher]) -> dict[Algorithm, str]:
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _digest_problem(artifact: Artifact, digests: dict[Algorithm, str]) -> str | None:
    if digests["blake3"] != artifact.blake3:
        return "blake3 digest does not match the manifest (content changed)"
    if artifact.sha256 is not None and digests["sha256"] != artifact.sha256:
        return "sha256 digest does not match the manifest (content changed)"
    return None


def _bounded_zstd(raw: BinaryIO, declared: int) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    produced = 0
    try:
        while True:
            chunk = reader.read(min(CHUNK, declared - produced + 1))
            if not chunk:
                break
            produced += len(chunk)
            if produced > declared:
                raise BlobError(f"decompresses to more than its declared {declared} bytes")
            yield chunk
    except zstandard.ZstdError as exc:
        raise BlobError(f"corrupt zstd data ({exc})") from exc
    if produced != declared:
        raise BlobError(f"decompresses to {produced} bytes, manifest says {declared}")


def open_bundle(path: Path, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Open and validate a bundle (either form); close it with ``close()`` or ``with``."""
    return Bundle(path, limits)


# --- writing -------------------------------------------------------------------------------


class BundleWriter:
    """Stages blobs for a new bundle, then publishes it atomically at its target path.

    Blobs are deduplicated by digest; each is zstd-compressed only when that pays (see
    ``ogverify.evidence.storing.worth_compressing``: a sample spread over the blob decides first, so
    incompressible weights are never compressed whole). Files are hashed through bounded mmap
    windows with every core, and copied file-to-file in the kernel; for the ``.ogb`` form an
    uncompressed file blob is copied once, straight from its source into the tar, never staged.
    """

    def __init__(
        self, target: Path, *, with_sha256: bool = False, overwrite: bool = False, compress: bool = True
    ) -> None:
        if target.exists() and not overwrite:
            raise TargetExistsError(target)
        if not target.parent.is_dir():
            raise UsageError(f"directory {target.parent} does not exist")
        self.target = target
        self.with_sha256 = with_sha256
        self.overwrite = overwrite
        self.compress = compress
        self._staging = new_staging(target, directory=True)[0]
        (self._staging / "blobs" / "blake3").mkdir(parents=True)
        self._artifacts: dict[str, Artifact] = {}
        # .ogb form: blob name → (source file, its stat when hashed); copied into the tar at publish.
        self._sources: dict[str, tuple[Path, os.stat_result]] = {}

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove the staging area (a no-op once published)."""
        shutil.rmtree(self._staging, ignore_errors=True)
        _UNFINISHED.discard(self._staging)

    @property
    def _algorithms(self) -> list[Algorithm]:
        return ["blake3", "sha256"] if self.with_sha256 else ["blake3"]

    def add_bytes(self, data: bytes) -> Artifact:
        """Add an in-memory artifact (a tensor)."""
        digests = {algorithm: digest_bytes(data, algorithm) for algorithm in self._algorithms}
        known = self._known(digests)
        if known is not None:
            return known
        blob = self._blob_path(digests)
        sampled = storing.sample(lambda offset, length: data[offset : offset + length], len(data))
        if self.compress and storing.worth_compressing(sampled, len(data)):
            packed = storing.compressor().compress(data)
            if len(packed) <= len(data) * (1 - storing.MIN_SAVING):
                blob.write_bytes(packed)
                return self._record(digests, len(data), "zstd", len(packed))
        blob.write_bytes(data)
        return self._record(digests, len(data), "identity", len(data))

    def add_file(self, path: Path) -> Artifact:
        """Add a file's content, streamed (model weights): hashed once, copied once.

        Raises:
            UsageError: the file changed while it was being packed.
        """
        before = path.stat()
        try:
            digests = digest_file_multi(path, self._algorithms)
        except ValueError as exc:  # the file shrank while it was being hashed
            raise UsageError(f"{path} changed while it was being packed; pack again") from exc
        known = self._known(digests)
        if known is not None:
            return known
        size = before.st_size
        blob = self._blob_path(digests)
        if self.compress:
            with path.open("rb") as handle:
                sampled = storing.file_sample(handle, size)
            if storing.worth_compressing(sampled, size):
                stored = storing.compress_file(path, blob, size)
                if stored <= size * (1 - storing.MIN_SAVING):
                    _check_unchanged(path, before)
                    return self._record(digests, size, "zstd", stored)
                blob.unlink()
        if form_for(self.target) == "file":
            self._sources[blob.name] = (path, before)
        else:
            shutil.copyfile(path, blob)  # sendfile / copy_file_range: the kernel copies
            _check_unchanged(path, before)
        return self._record(digests, size, "identity", size)

    def _known(self, digests: dict[Algorithm, Digest]) -> Artifact | None:
        return self._artifacts.get(digests["blake3"].hex)

    def _blob_path(self, digests: dict[Algorithm, Digest]) -> Path:
        return self._staging / "blobs" / "blake3" / digests["blake3"].hex

    def _record(
        self, digests: dict[Algorithm, Digest], size: int, encoding: Literal["zstd", "identity"], stored_size: int
    ) -> Artifact:
        sha256 = digests["sha256"].hex if "sha256" in digests else None
        artifact = Artifact(digests["blake3"].hex, size, encoding, stored_size, sha256)
        self._artifacts[artifact.blake3] = artifact
        return artifact

    def publish(self, manifest: Manifest, signatures: dict[str, bytes], log_proof: bytes | None = None) -> Path:
        """Write manifest and signatures, then move the finished bundle to its target.

        Args:
            manifest: the manifest naming exactly the blobs added.
            signatures: keyid → DSSE envelope bytes.
            log_proof: the ``log-proof.json`` of a record exported from an evidence log.

        Raises:
            UsageError: a packed file changed before it was copied into the bundle.
        """
        (self._staging / MARKER).write_bytes(canonical_json.dumps(MARKER_CONTENT))
        (self._staging / MANIFEST).write_bytes(manifest.to_bytes())
        if log_proof is not None:
            (self._staging / LOG_PROOF).write_bytes(log_proof)
        if signatures:
            (self._staging / "signatures").mkdir()
            for keyid, envelope in signatures.items():
                (self._staging / "signatures" / f"{keyid}.dsse.json").write_bytes(envelope)
        if form_for(self.target) == "file":
            members: list[tuple[str, int, MemberSource]] = list(_directory_members(self._staging))
            members += [(f"blobs/blake3/{name}", info.st_size, path) for name, (path, info) in self._sources.items()]

            def unchanged() -> None:
                for path, info in self._sources.values():
                    _check_unchanged(path, info)

            write_tar(self.target, members, overwrite=self.overwrite, before_publish=unchanged)
            self.discard()
        else:
            publish_mode(self._staging)
            _replace(self._staging, self.target, self.overwrite)
        return self.target


def _check_unchanged(path: Path, before: os.stat_result) -> None:
    after = path.stat()
    if (after.st_size, after.st_mtime_ns, after.st_ino, after.st_dev) != (
        before.st_size, before.st_mtime_ns, before.st_ino, before.st_dev
    ):
        raise UsageError(f"{path} changed while it was being packed; pack again")


def _open_file(path: Path) -> BinaryIO:
    return path.open("rb")


def _directory_members(root: Path) -> list[tuple[str, int, MemberOpener]]:
    members: list[tuple[str, int, MemberOpener]] = []
    for path in root.rglob("*"):
        if path.is_file():
            name = path.relative_to(root).as_posix()
            members.append((name, path.stat().st_size, functools.partial(_open_file, path)))
    return members


def bundle_members(bundle: Bundle) -> list[tuple[str, int, MemberOpener]]:
    """Every member of an opened bundle, as (name, size, opener) for ``write_tar``."""
    return [
        (name, bundle.source.stored_size(name), functools.partial(bundle.source.open, name))
        for name in bundle.source.names()
    ]


def write_tar(
    target: Path,
    members: Sequence[tuple[str, int, MemberSource]],
    *,
    overwrite: bool,
    before_publish: Callable[[], None] | None = None,
) -> None:
    """Write a deterministic tar (sorted, mtime 0, root-owned, 0644) and rename it into place.

    Streams every member (a Path source is copied file-to-file by the kernel); ``before_publish``
    runs after the last byte is written and before the rename, and may refuse by raising.
    """
    temp, handle = new_staging(target, directory=False)
    try:
        try:
            storing.write_members(handle, sorted(members, key=lambda m: m[0]))
        finally:
            os.close(handle)
        if before_publish is not None:
            before_publish()
        publish_mode(temp)
        _replace(temp, target, overwrite)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        _UNFINISHED.discard(temp)


def _replace(source: Path, target: Path, overwrite: bool) -> None:
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise TargetExistsError(target)
        if target.is_dir() and not target.is_symlink():
            if source.is_dir():
                # Swap through a sibling name so the target is never missing *and* half written.
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                source.rename(target)
                shutil.rmtree(old, ignore_errors=True)
                return
            shutil.rmtree(target)
        elif source.is_dir():
            target.unlink()
    os.replace(source, target)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: Path) -> None:
    """Give a staged file or directory the permissions a plain create would have (mkstemp uses 0600/0700)."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_current_umask())


def write_member_atomically(path: Path, data: bytes) -> None:
    """Write one small file next to its final name, then rename it there."""
    temp, handle = new_staging(path, directory=False)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        publish_mode(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        _UNFINISHED.discard(temp)


# --- staging paths and interruptions ---------------------------------------------------------------

# Staging paths this process created and has not yet published or removed. An interruption can land
# between a path's creation and the try/finally that would remove it; the CLI removes what is left
# here when SIGINT/SIGTERM unwinds it (``remove_unfinished``).
_UNFINISHED: set[Path] = set()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Delay SIGINT/SIGTERM until the block ends (main thread, POSIX; elsewhere a no-op)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def new_staging(target: Path, *, directory: bool) -> tuple[Path, int]:
    """A hidden ``*.partial`` sibling of ``target`` (a directory, or a file open for writing).

    Recorded before it is created, so that ``remove_unfinished`` knows it from the moment it
    exists, even when an interruption lands between the two (holding signals does not cover
    that once other threads run: one of them takes the signal and the main thread handles it).
    Returns the path and, for a file, its open descriptor (-1 for a directory).
    """
    while True:
        path = target.parent / f".{target.name}.{secrets.token_hex(6)}.partial"
        with _signals_held():
            _UNFINISHED.add(path)
            try:
                if directory:
                    os.mkdir(path, 0o700)
                    return path, -1
                return path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            except FileExistsError:
                _UNFINISHED.discard(path)  # someone else's: draw another name
            except OSError as exc:  # named by the target the user gave, not by a staging name they never saw
                _UNFINISHED.discard(path)
                raise UsageError(f"cannot write {target}: {exc.strerror or exc} (in {target.parent})") from exc


def check_writable(target: Path, *, overwrite: bool) -> None:
    """Fail now, before long work, if nothing can be written at ``target`` (a bundle, a directory).

    Tries for real (creates and removes a staging directory beside it): permissions alone do not
    tell, on a read-only file system or for root.
    """
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise TargetExistsError(target)
    if not target.parent.is_dir():
        raise UsageError(f"directory {target.parent} does not exist")
    probe = new_staging(target, directory=True)[0]
    probe.rmdir()
    finished_staging(probe)


def finished_staging(path: Path) -> None:
    """``path`` was published (renamed into place) or removed: forget it."""
    _UNFINISHED.discard(path)


def remove_unfinished() -> None:
    """Remove every staging path this process left behind (after an interruption)."""
    for path in list(_UNFINISHED):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        _UNFINISHED.discard(path)
