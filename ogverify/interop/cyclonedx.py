"""A bundle as a CycloneDX 1.6 ML-BOM (JSON), for compliance teams that collect BOMs.

- the model: a ``machine-learning-model`` component with its SHA-256 and BLAKE3 (read from the
  bundle and checked against the manifest), its IPFS CIDs, and its inputs and outputs in the model
  card; external-data files are ``file`` components inside it;
- the inputs and claimed outputs: ``data`` components, by the BLAKE3 of their canonical ``.npy``;
- the runtime: a ``library`` component at its recorded version, with the recorded configuration;
- the last verdict, when a check report is given: ``ogverify:check:*`` properties;
- outside provenance (a publisher's model signature, an OpenGradient transaction): properties.

The BOM is written from the bundle alone (no clock, no random serial number): exporting a bundle
twice gives the same bytes. Its ``serialNumber`` is a UUID derived from the manifest's sha256.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ogverify import __version__
from ogverify.errors import BundleError, UsageError
from ogverify.evidence.bundle import BlobError, Bundle, open_bundle
from ogverify.evidence.manifest import Artifact, Entry, Manifest, ValueEntry

SPEC_VERSION = "1.6"
_PREFIX = "ogverify:"


def export_bundle(bundle_path: Path, report_path: Path | None = None) -> dict[str, Any]:
    """The ML-BOM of the bundle at ``bundle_path``, with the verdict of ``report_path`` if given.

    Raises:
        BundleError: an unreadable bundle, or a model that does not match its digest.
        UsageError: a report that is unreadable, not a check report, or about another bundle.
    """
    with open_bundle(bundle_path) as bundle:
        report = _load_report(report_path, bundle.manifest_sha256.hex) if report_path is not None else None
        return _bom(bundle, report)


def dumps(bom: Mapping[str, Any]) -> str:
    """The BOM as indented JSON text, keys in a stable order."""
    return json.dumps(bom, indent=2, ensure_ascii=False) + "\n"


def _load_report(path: Path, manifest_sha256: str) -> dict[str, Any]:
    from ogverify.evidence.schemas import validate

    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--report {path} cannot be read as JSON: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        validate(document, "report-v1.json", f"--report {path}")
    except BundleError as exc:
        raise UsageError(f"{exc.message} (give the output of `ogverify check --format json`)") from exc
    reports = document.get("reports", [document])
    for report in reports:
        if report.get("manifest_sha256") == manifest_sha256:
            return dict(report)
    raise UsageError(f"--report {path} is not a check of this bundle (manifest sha256 {manifest_sha256[:12]}...)")


def _property(name: str, value: object) -> dict[str, str]:
    return {"name": _PREFIX + name, "value": value if isinstance(value, str) else json.dumps(value)}


def _hashes(artifact: Artifact, sha256: str | None = None) -> list[dict[str, str]]:
    hashes = []
    if sha256 or artifact.sha256:
        hashes.append({"alg": "SHA-256", "content": sha256 or artifact.sha256 or ""})
    hashes.append({"alg": "BLAKE3", "content": artifact.blake3})
    return hashes


def _read_model(bundle: Bundle) -> tuple[str, dict[str, str]]:
    """The model file's sha256 and IPFS CIDs, from its bytes in the bundle (blake3-checked)."""
    from ogverify.evidence.cid import content_cids
    from ogverify.evidence.regions import new_hasher

    model = bundle.manifest.model
    blake3, sha256 = new_hasher("blake3"), new_hasher("sha256")

    def pieces() -> Iterator[bytes]:
        for piece in bundle.iter_blob(model.artifact):
            blake3.update(piece)
            sha256.update(piece)
            yield piece

    try:
        cids = content_cids(pieces())
    except BlobError as exc:
        raise BundleError(f"model '{model.name}': {exc}") from exc
    if blake3.hexdigest() != model.artifact.blake3:
        raise BundleError(f"model '{model.name}' does not match its blake3 digest: the bundle is damaged")
    return sha256.hexdigest(), {"ipfs:cidv0": cids.v0, "ipfs:cidv1": cids.v1}


def _tensor_format(entry: Entry) -> str:
    if isinstance(entry, ValueEntry):
        return f"{entry.name}: {entry.type}"
    return f"{entry.name}: {entry.dtype}[{', '.join(str(d) for d in entry.shape)}]"


def _data(entry: Entry, role: str) -> dict[str, Any]:
    if isinstance(entry, ValueEntry):  # a sequence, map or optional (docs/format.md, "Non-tensor values")
        stored = "stored in ogverify's canonical value encoding"
        contents = [_property("type", entry.type)]
    else:
        stored = "stored as canonical .npy"
        contents = [_property("dtype", entry.dtype), _property("shape", list(entry.shape))]
    return {
        "type": "data",
        "bom-ref": f"{role}:{entry.name}",
        "name": entry.name,
        "description": f"{role} {'value' if isinstance(entry, ValueEntry) else 'tensor'} {_tensor_format(entry)}, "
                       f"{stored}",
        "hashes": _hashes(entry.artifact),
        "data": [{
            "type": "dataset",
            "name": entry.name,
            "classification": role,
            "contents": {"properties": contents},
        }],
        "properties": [_property("role", role)],
    }


def _model(manifest: Manifest, sha256: str, cids: dict[str, str]) -> dict[str, Any]:
    properties = [_property(name, value) for name, value in cids.items()]
    if manifest.provenance is not None and manifest.provenance.model_cid is not None:
        properties.append(_property("ipfs:claimed_cid", manifest.provenance.model_cid))
    component: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": manifest.model.name,
        "mime-type": manifest.model.media_type,
        "hashes": _hashes(manifest.model.artifact, sha256),
        "externalReferences": [{"type": "distribution", "url": f"ipfs://{cids['ipfs:cidv1']}",
                                "comment": "the model file's IPFS CID (ipfs add --cid-version 1)"}],
        "modelCard": {"modelParameters": {
            "inputs": [{"format": _tensor_format(t)} for t in manifest.inputs],
            "outputs": [{"format": _tensor_format(t)} for t in manifest.outputs],
        }},
        "properties": properties,
    }
    if manifest.model_files:
        component["components"] = [
            {"type": "file", "bom-ref": f"model-file:{f.name}", "name": f.name, "hashes": _hashes(f.artifact),
             "properties": [_property("role", "external data")]}
            for f in manifest.model_files
        ]
    return component


def _runtime(manifest: Manifest) -> dict[str, Any]:
    execution = manifest.execution
    return {
        "type": "library",
        "bom-ref": "runtime",
        "name": "onnxruntime",
        "version": execution.runtime_version,
        "purl": f"pkg:pypi/onnxruntime@{execution.runtime_version}",
        "properties": [
            _property("providers", [p.name for p in execution.providers]),
            _property("graph_optimization_level", execution.graph_optimization_level),
            _property("intra_op_num_threads", execution.intra_op_num_threads),
            _property("inter_op_num_threads", execution.inter_op_num_threads),
            _property("execution_mode", execution.execution_mode),
        ],
    }


def _verdict(report: Mapping[str, Any]) -> list[dict[str, str]]:
    return [
        _property("check:verdict", str(report["verdict"])),
        _property("check:exit_code", report["exit_code"]),
        _property("check:headline", str(report["headline"])),
        _property("check:rerun", report["rerun"]),
    ]


def _provenance(manifest: Manifest) -> list[dict[str, str]]:
    provenance = manifest.provenance
    if provenance is None:
        return []
    found = []
    if provenance.model_signature is not None:
        found.append(_property("model_signature", provenance.model_signature.name))
    chain = provenance.chain
    if chain is not None:
        found += [_property(f"{chain.network}:inference_mode", chain.inference_mode),
                  _property(f"{chain.network}:model_id", chain.model_id),
                  _property(f"{chain.network}:is_simulation_result", chain.is_simulation_result)]
        if chain.transaction_hash is not None:
            found.append(_property(f"{chain.network}:transaction_hash", chain.transaction_hash))
    return found


def _bom(bundle: Bundle, report: Mapping[str, Any] | None) -> dict[str, Any]:
    manifest = bundle.manifest
    manifest_sha256 = bundle.manifest_sha256.hex
    sha256, cids = _read_model(bundle)
    data = [_data(t, "input") for t in manifest.inputs] + [_data(t, "claimed output") for t in manifest.outputs]
    subject: dict[str, Any] = {
        "type": "data",
        "bom-ref": "bundle",
        "name": bundle.path.name,
        "description": "ogverify evidence bundle: a model run, packed to be checked by re-execution",
        "properties": [_property("manifest_sha256", manifest_sha256),
                       *(_property(f"annotation:{k}", v) for k, v in sorted(manifest.annotations.items())),
                       *_provenance(manifest),
                       *(_verdict(report) if report is not None else [])],
    }
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'ogverify:manifest:{manifest_sha256}')}",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "ogverify", "version": __version__}]},
            "component": subject,
        },
        "components": [_model(manifest, sha256, cids), *data, _runtime(manifest)],
        "dependencies": [
            {"ref": "bundle", "dependsOn": ["model", *(d["bom-ref"] for d in data), "runtime"]},
            {"ref": "model", "dependsOn": ["runtime"]},
        ],
    }
