"""The manifest: plain data naming every artifact of a bundle by digest.

The manifest is serialised as RFC 8785 canonical JSON; its sha256 is what signatures cover.
Its JSON shape is fixed by ``schemas/manifest-v1.json``; this module turns that JSON into
frozen dataclasses and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ogverify.errors import BundleError
from ogverify.evidence import canonical_json
from ogverify.evidence.comparison import ComparisonPolicy
from ogverify.evidence.digest import Digest
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.schemas import validate
from ogverify.evidence.trace import Profile, Trace

FORMAT_VERSION = 1
Encoding = Literal["zstd", "identity"]


@dataclass(frozen=True)
class Artifact:
    """A blob: its blake3 digest and size (of the uncompressed bytes) and how it is stored."""

    blake3: str
    size: int
    encoding: Encoding
    stored_size: int
    sha256: str | None = None

    @property
    def digest(self) -> Digest:
        return Digest("blake3", self.blake3)

    @property
    def blob_path(self) -> str:
        return f"blobs/blake3/{self.blake3}"

    def to_json(self) -> dict[str, Any]:
        digest = {"blake3": self.blake3}
        if self.sha256 is not None:
            digest["sha256"] = self.sha256
        return {"digest": digest, "size": self.size, "encoding": self.encoding, "stored_size": self.stored_size}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Artifact:
        return cls(
            blake3=raw["digest"]["blake3"],
            size=raw["size"],
            encoding=raw["encoding"],
            stored_size=raw["stored_size"],
            sha256=raw["digest"].get("sha256"),
        )


@dataclass(frozen=True)
class ModelFile:
    """The model graph or one of its external-data files, by its path relative to the model."""

    name: str
    artifact: Artifact
    media_type: str = "application/octet-stream"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "media_type": self.media_type, **self.artifact.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ModelFile:
        return cls(raw["name"], Artifact.from_json(raw), raw["media_type"])


@dataclass(frozen=True, kw_only=True)
class TensorEntry:
    """A named tensor stored as canonical .npy: a model input or a claimed output (built by keyword:
    its name and dtype are both strings)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    artifact: Artifact

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), **self.artifact.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TensorEntry:
        return cls(name=raw["name"], dtype=raw["dtype"], shape=tuple(raw["shape"]), artifact=Artifact.from_json(raw))

    def describe(self) -> str:
        """``float32[1,4]``, as messages name a tensor."""
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"

    @property
    def declared(self) -> tuple[str, tuple[int, ...]]:
        """What the blob must hold: this dtype and shape."""
        return self.dtype, self.shape


@dataclass(frozen=True, kw_only=True)
class ValueEntry:
    """A named sequence, map or optional: its type as onnxruntime writes it
    (``seq(map(int64,tensor(float)))``), stored in ogverify's canonical value encoding
    (``ogverify.model.values``; docs/format.md). Built by keyword, as ``TensorEntry``."""

    name: str
    type: str
    artifact: Artifact

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, **self.artifact.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ValueEntry:
        return cls(name=raw["name"], type=raw["type"], artifact=Artifact.from_json(raw))

    def describe(self) -> str:
        return self.type

    @property
    def declared(self) -> str:
        """What the blob must hold: a value of this type."""
        return self.type


Entry = TensorEntry | ValueEntry
"""A model input or claimed output: a tensor or a non-tensor value."""


def entry_from_json(raw: Mapping[str, Any]) -> Entry:
    return ValueEntry.from_json(raw) if "type" in raw else TensorEntry.from_json(raw)


@dataclass(frozen=True)
class InitializerDigest:
    """One initializer of the model's main graph, by the blake3 of its raw little-endian bytes.

    ``location`` names the external-data file it is stored in (a ``model_files`` name), or is
    None for a tensor stored inside the model file.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    blake3: str
    location: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "blake3": self.blake3,
                "location": self.location}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> InitializerDigest:
        return cls(raw["name"], raw["dtype"], tuple(raw["shape"]), raw["blake3"], raw["location"])


@dataclass(frozen=True)
class ChainRecord:
    """An on-chain inference the bundle was imported from (``ogverify import opengradient``).

    ``files`` are the records themselves as they were given (the transaction and its receipt, or
    the SDK's decoded JSON), stored as blobs.
    """

    network: str
    inference_mode: str
    model_id: str
    is_simulation_result: bool
    transaction_hash: str | None = None
    files: tuple[ModelFile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "inference_mode": self.inference_mode, "model_id": self.model_id,
                "is_simulation_result": self.is_simulation_result, "files": [f.to_json() for f in self.files]} | (
            {} if self.transaction_hash is None else {"transaction_hash": self.transaction_hash})

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ChainRecord:
        return cls(raw["network"], raw["inference_mode"], raw["model_id"], raw["is_simulation_result"],
                   raw.get("transaction_hash"), tuple(ModelFile.from_json(f) for f in raw["files"]))


@dataclass(frozen=True)
class Provenance:
    """Evidence from outside ogverify that ``check`` verifies beside the re-execution.

    ``model_cid``: the IPFS CID the producer claims for the model file (``pack --model-cid``).
    ``model_signature``: the publisher's model_signing (sigstore) signature of the model files
    (``pack --model-signature``), stored as a blob.
    ``chain``: the on-chain inference record the bundle was imported from.
    """

    model_cid: str | None = None
    model_signature: ModelFile | None = None
    chain: ChainRecord | None = None

    def artifacts(self) -> list[tuple[str, Artifact]]:
        named = [] if self.model_signature is None else [
            (f"model signature '{self.model_signature.name}'", self.model_signature.artifact)]
        if self.chain is not None:
            named += [(f"chain record '{f.name}'", f.artifact) for f in self.chain.files]
        return named

    def to_json(self) -> dict[str, Any]:
        return ({} if self.model_cid is None else {"model_cid": self.model_cid}) | (
            {} if self.model_signature is None else {"model_signature": self.model_signature.to_json()}) | (
            {} if self.chain is None else {"chain": self.chain.to_json()})

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Provenance:
        signature, chain = raw.get("model_signature"), raw.get("chain")
        return cls(model_cid=raw.get("model_cid"),
                   model_signature=ModelFile.from_json(signature) if signature is not None else None,
                   chain=ChainRecord.from_json(chain) if chain is not None else None)


@dataclass(frozen=True)
class Manifest:
    """Everything a bundle claims, by digest."""

    model: ModelFile
    model_files: tuple[ModelFile, ...]
    inputs: tuple[Entry, ...]
    outputs: tuple[Entry, ...]
    execution: ExecutionConfig
    environment: Mapping[str, Any]
    comparison: ComparisonPolicy
    producer: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    # Optional: absent from bundles packed before per-initializer digests existed.
    initializers: tuple[InitializerDigest, ...] | None = None
    # Optional: absent unless the producer gave outside evidence (a model CID, ...).
    provenance: Provenance | None = None
    # Optional: the producer's trace of node outputs (``pack --trace``) and sensitivity profile
    # (``pack --profile``); signed with the rest.
    trace: Trace | None = None
    profile: Profile | None = None

    def artifacts(self) -> list[tuple[str, Artifact]]:
        """Every artifact with the name a person would use for it, in manifest order."""
        named = [(f"model '{self.model.name}'", self.model.artifact)]
        named += [(f"model file '{f.name}'", f.artifact) for f in self.model_files]
        named += [(f"input '{t.name}'", t.artifact) for t in self.inputs]
        named += [(f"claimed output '{t.name}'", t.artifact) for t in self.outputs]
        return named + (self.provenance.artifacts() if self.provenance is not None else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model.to_json(),
            "model_files": [f.to_json() for f in self.model_files],
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "execution": self.execution.to_json(),
            "environment": dict(self.environment),
            "comparison": self.comparison.to_json(),
            "producer": dict(self.producer),
            "annotations": dict(sorted(self.annotations.items())),
        } | ({} if self.initializers is None else {"initializers": [i.to_json() for i in self.initializers]}) | (
            {} if self.provenance is None else {"provenance": self.provenance.to_json()}) | (
            {} if self.trace is None else {"trace": self.trace.to_json()}) | (
            {} if self.profile is None else {"profile": self.profile.to_json()})

    def to_bytes(self) -> bytes:
        """The canonical manifest bytes, as stored in ``manifest.json`` and signed."""
        return canonical_json.dumps(self.to_json())

    @classmethod
    def from_json(cls, raw: Any) -> Manifest:
        """Build a manifest from parsed JSON, validating it against the schema first.

        Raises:
            BundleError: unknown format version or a document the schema rejects.
        """
        if isinstance(raw, dict) and isinstance(raw.get("format_version"), int):
            version = raw["format_version"]
            if version > FORMAT_VERSION:
                raise BundleError(
                    f"manifest format version {version} is newer than this ogverify supports "
                    f"({FORMAT_VERSION}); this bundle needs a newer ogverify"
                )
        validate(raw, "manifest-v1.json", "manifest.json")
        try:
            return cls(
                model=ModelFile.from_json(raw["model"]),
                model_files=tuple(ModelFile.from_json(f) for f in raw["model_files"]),
                inputs=tuple(entry_from_json(t) for t in raw["inputs"]),
                outputs=tuple(entry_from_json(t) for t in raw["outputs"]),
                execution=ExecutionConfig.from_json(raw["execution"]),
                environment=raw["environment"],
                comparison=ComparisonPolicy.from_json(raw["comparison"]),
                producer=raw["producer"],
                annotations=raw["annotations"],
                format_version=raw["format_version"],
                initializers=None if "initializers" not in raw
                else tuple(InitializerDigest.from_json(i) for i in raw["initializers"]),
                provenance=Provenance.from_json(raw["provenance"]) if "provenance" in raw else None,
                trace=Trace.from_json(raw["trace"]) if "trace" in raw else None,
                profile=Profile.from_json(raw["profile"]) if "profile" in raw else None,
            )
        except Exception as exc:  # an OgverifyError from a nested value, e.g. an unknown opt level
            message = getattr(exc, "message", str(exc))
            raise BundleError(f"manifest.json is invalid: {message}") from exc

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        """Parse manifest bytes strictly (duplicate keys, NaN, non-canonical bytes are rejected)."""
        parsed = canonical_json.loads_strict(raw, "manifest.json")
        manifest = cls.from_json(parsed)
        if not canonical_json.is_canonical(raw, parsed):
            raise BundleError("manifest.json is not canonical JSON (RFC 8785); it was not written by a packer")
        return manifest
