"""A log's records and model as local files: the model written out verified, a record as a bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ogverify.errors import BundleError
from ogverify.evidence import canonical_json
from ogverify.evidence.digest import digest_bytes
from ogverify.evidence.log.attached import LogProof, manifest_tensors
from ogverify.evidence.log.layout import Descriptor, LogFormatError, LogReader, RecordEntry, blob_path
from ogverify.evidence.manifest import Manifest, ModelFile
from ogverify.evidence.trace import Trace

MAX_TENSOR_BYTES = 1 << 40


def model_blob(reader: LogReader, entry: ModelFile) -> bytes:
    """A model file's bytes from the log, checked against its digest."""
    data = reader.store.read(blob_path(entry.artifact.blake3), entry.artifact.size)
    if len(data) != entry.artifact.size or digest_bytes(data).hex != entry.artifact.blake3:
        raise LogFormatError(f"the log's copy of model file {entry.name!r} does not match its digest")
    return data


def write_model(reader: LogReader, files: Sequence[ModelFile], folder: Path) -> Path:
    """Write the model and its external-data files into ``folder``; the model's path.

    Raises:
        LogFormatError: a file name that points outside ``folder``, or a file that does not match its digest.
    """
    folder = folder.resolve()
    for entry in files:
        target = (folder / entry.name).resolve()
        if not target.is_relative_to(folder) or target == folder:
            raise LogFormatError(f"model file name {entry.name!r} points outside the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(model_blob(reader, entry))
    return folder / files[0].name


def record_trace(reader: LogReader, entry: RecordEntry) -> dict[str, Any]:
    """Record ``entry``'s trace (the manifest's ``trace``), checked against its digest and canonical form.

    Raises:
        LogFormatError: no trace, or one that changed or is not a trace's canonical JSON.
    """
    if entry.trace is None:
        raise LogFormatError(f"record {entry.index} has no trace")
    data = reader.trace(entry.trace)
    what = f"record {entry.index}'s trace"
    try:
        raw = canonical_json.loads_strict(data, what)
        if not isinstance(raw, dict) or canonical_json.dumps(Trace.from_json(raw).to_json()) != data:
            raise LogFormatError(f"{what} is not the canonical JSON of a trace")
    except BundleError as exc:
        raise LogFormatError(f"{what}: {exc.message}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise LogFormatError(f"{what} is not a trace: {exc}") from exc
    return raw


def write_record_bundle(reader: LogReader, descriptor: Descriptor, files: Sequence[ModelFile], entry: RecordEntry,
                        out: Path, *, proof: LogProof | None = None, overwrite: bool = False) -> Path:
    """Record ``entry`` as an ordinary bundle at ``out``: the shared manifest with its tensors, stored
    plain, and its trace (as ``pack --trace`` stores one), and ``proof`` as its ``log-proof.json``."""
    from ogverify.evidence.bundle import BundleWriter

    inputs, outputs = manifest_tensors(entry)
    extra = {} if entry.trace is None else {"trace": record_trace(reader, entry)}
    try:
        manifest = Manifest.from_json({**descriptor.template, "inputs": inputs, "outputs": outputs, **extra})
    except (KeyError, TypeError, ValueError) as exc:
        raise LogFormatError(f"record {entry.index}: its manifest cannot be made: {exc}") from exc
    with BundleWriter(out, overwrite=overwrite, compress=False) as writer:
        for model_file in files:
            writer.add_bytes(model_blob(reader, model_file))
        for ref in (*entry.inputs, *entry.outputs):
            if writer.add_bytes(reader.tensor(ref, MAX_TENSOR_BYTES)).blake3 != ref.blake3:
                raise LogFormatError(f"record {entry.index}: tensor {ref.name!r} does not match its digest")
        return writer.publish(manifest, {}, log_proof=None if proof is None else proof.to_bytes())
