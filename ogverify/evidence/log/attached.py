"""The proof a record exported from a log carries (``log-proof.json``), and its verification.

A record is signed *through the log*: its leaf is in a tree whose root a checkpoint signs. The
proof holds the record's entry (the leaf's JSON), the tree size, the inclusion path and the
signed checkpoint. It counts as the bundle's signature when a trusted key signed the checkpoint,
the path leads from the entry's leaf to the checkpoint's root, and the entry names exactly the
bundle's manifest: the sha256 of its shared part, each input and claimed output, and its trace
(the blake3 of the trace's canonical JSON; none when the record has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ogverify.errors import BundleError
from ogverify.evidence import canonical_json
from ogverify.evidence.digest import HEX64
from ogverify.evidence.log import merkle, note
from ogverify.evidence.log.layout import RecordEntry, template_digest, template_of

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "ogverify-log-proof"
VERSION = 1
MAX_PATH = 64


@dataclass(frozen=True)
class LogProof:
    """A record's entry, its inclusion path in a tree of ``tree_size``, and the signed checkpoint."""

    entry: RecordEntry
    tree_size: int
    inclusion_path: tuple[bytes, ...]
    checkpoint: bytes

    def to_bytes(self) -> bytes:
        return canonical_json.dumps({
            "format": FORMAT, "version": VERSION, "entry": self.entry.to_json(), "tree_size": self.tree_size,
            "inclusion_path": [h.hex() for h in self.inclusion_path], "checkpoint": self.checkpoint.decode("utf-8"),
        })

    @classmethod
    def from_bytes(cls, raw: bytes) -> LogProof:
        parsed = canonical_json.loads_strict(raw, "log-proof.json")
        if not isinstance(parsed, dict) or parsed.get("format") != FORMAT or parsed.get("version") != VERSION:
            raise BundleError(f"log-proof.json is not an {FORMAT} document of version {VERSION}")
        size, path, checkpoint, entry = (parsed.get(k) for k in ("tree_size", "inclusion_path", "checkpoint", "entry"))
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= note.MAX_SIZE:
            raise BundleError("log-proof.json has no valid tree_size")
        if not isinstance(path, list) or len(path) > MAX_PATH or not all(
                isinstance(h, str) and HEX64.match(h) for h in path):
            raise BundleError("log-proof.json has no valid inclusion_path")
        if not isinstance(checkpoint, str) or not isinstance(entry, dict):
            raise BundleError("log-proof.json has no checkpoint or entry")
        index = entry.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise BundleError("log-proof.json: the entry's index is not in the tree")
        return cls(RecordEntry.from_json(entry, index), size, tuple(bytes.fromhex(h) for h in path),
                   checkpoint.encode("utf-8"))


@dataclass(frozen=True)
class LogSignature:
    """What a log proof shows. ``status``: ``trusted`` (signed through the log by a trusted key),
    ``untrusted`` (a valid proof, but no trusted key signed the checkpoint) or ``invalid``."""

    status: Literal["trusted", "untrusted", "invalid"]
    message: str
    origin: str = ""
    tree_size: int = 0
    index: int = -1
    signers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "origin": self.origin, "tree_size": self.tree_size, "index": self.index,
                "signers": list(self.signers)}


def manifest_tensors(entry: RecordEntry) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The manifest's ``inputs`` and ``outputs`` for a record entry (tensors stored plain)."""
    return [t.manifest_json() for t in entry.inputs], [t.manifest_json() for t in entry.outputs]


def _trace_digest(trace: Any) -> str | None:
    """The blake3 of a manifest's trace as a log stores it (its canonical JSON); None without one."""
    import blake3

    if trace is None:
        return None
    try:
        return blake3.blake3(canonical_json.dumps(trace)).hexdigest()
    except (BundleError, TypeError, ValueError):
        return "not canonical JSON"


def verify_log_proof(raw: bytes, manifest_json: Mapping[str, Any], keys: Iterable[Ed25519PublicKey],
                     names: Sequence[str] = ()) -> LogSignature:
    """Check ``log-proof.json`` bytes against a bundle's manifest (parsed) and trusted keys.

    ``names`` are labels for ``keys`` in messages (same order). Never raises for bad input.
    """
    keys = list(keys)
    try:
        proof = LogProof.from_bytes(raw)
        signed = note.parse_note(proof.checkpoint)
        checkpoint = note.Checkpoint.parse(signed.text)
    except BundleError as exc:
        return LogSignature("invalid", f"log proof: {exc.message}")
    entry = proof.entry

    def invalid(message: str) -> LogSignature:
        return LogSignature("invalid", message, checkpoint.origin, checkpoint.size, entry.index)

    if entry.log != template_digest(template_of(manifest_json)):
        return LogSignature("invalid", f"log proof: record {entry.index} of {checkpoint.origin} was made for "
                            "another model, configuration or manifest than this bundle's")
    inputs, outputs = manifest_tensors(entry)
    if inputs != manifest_json.get("inputs") or outputs != manifest_json.get("outputs"):
        return invalid(f"log proof: record {entry.index} of {checkpoint.origin} names other "
                            "inputs or claimed outputs than this bundle")
    if _trace_digest(manifest_json.get("trace")) != (None if entry.trace is None else entry.trace.blake3):
        return invalid(f"log proof: record {entry.index} of {checkpoint.origin} names another trace than "
                       "this bundle's")
    if checkpoint.size != proof.tree_size:
        return invalid(f"log proof: the path is for a tree of {proof.tree_size} records, the "
                            f"checkpoint signs {checkpoint.size}")
    leaf = merkle.leaf_hash(entry.leaf())
    if not merkle.verify_inclusion(entry.index, proof.tree_size, leaf, proof.inclusion_path, checkpoint.root):
        return invalid(f"log proof: record {entry.index} is not in the tree the checkpoint of "
                            f"{checkpoint.origin} signs (the inclusion proof does not hold)")
    signers = note.verified_by(signed, keys)
    if not signers:
        return LogSignature("untrusted", f"record {entry.index} is in {checkpoint.origin} at size "
                            f"{checkpoint.size}, but no trusted key signed that checkpoint",
                            checkpoint.origin, checkpoint.size, entry.index)
    labels = {id(k): n for k, n in zip(keys, names, strict=False)}
    who = tuple(f"{name} ({labels[id(key)]})" if id(key) in labels else name for name, key in signers)
    return LogSignature("trusted", f"signed through the log {checkpoint.origin}: record {entry.index} of "
                        f"{checkpoint.size}, checkpoint signed by {', '.join(who)}",
                        checkpoint.origin, checkpoint.size, entry.index, who)
