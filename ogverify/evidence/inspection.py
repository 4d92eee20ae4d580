"""``inspect``: what a bundle holds, read from its manifest, without executing anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ogverify.evidence import canonical_json
from ogverify.evidence.bundle import open_bundle
from ogverify.evidence.manifest import Artifact, Entry, ValueEntry
from ogverify.evidence.trace import Profile, Trace, knob_phrase


def _artifact(artifact: Artifact) -> dict[str, Any]:
    return {"blake3": artifact.blake3, "size": artifact.size, "encoding": artifact.encoding,
            "stored_size": artifact.stored_size}


def _signers(envelope: bytes) -> list[str]:
    # Only for display: names the keyids an envelope claims, without verifying anything.
    try:
        parsed = json.loads(envelope)
        return [str(s.get("keyid", "")) for s in parsed.get("signatures", []) if isinstance(s, dict)]
    except (ValueError, AttributeError, TypeError):
        return []


def _trace(trace: Trace | None) -> dict[str, Any] | None:
    if trace is None:
        return None
    return {"level": trace.level, "outputs": len(trace.outputs), "omitted": trace.omitted,
            "claim_reproduced": trace.claim_reproduced,
            "bytes": len(canonical_json.dumps(trace.to_json()))}


def _depends_on(profile: Profile | None) -> str | None:
    """"this model's outputs depend on the intra-op thread count", from the producer's profile."""
    if profile is None:
        return None
    phrases = [knob_phrase(k.knob) for k in profile.knobs if k.changes_bits]
    if not phrases:
        return f"no knob of the {len(profile.knobs)} profiled changes this model's output bits on these inputs"
    joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"this model's outputs depend on {joined}"


def inspect_bundle(path: Path) -> dict[str, Any]:
    """A JSON-ready summary of the bundle at ``path``; signatures are listed, not verified."""
    with open_bundle(path) as bundle:
        manifest = bundle.manifest
        artifacts = manifest.artifacts()
        unique = {a.blake3: a for _, a in artifacts}
        envelopes = []
        for name, raw in bundle.signature_envelopes.items():
            envelopes.append({"file": name, "keyids": _signers(raw)})
        return {
            "bundle": str(path),
            "form": bundle.form,
            "format_version": manifest.format_version,
            "manifest_sha256": bundle.manifest_sha256.hex,
            "producer": dict(manifest.producer),
            "model": {"name": manifest.model.name, **_artifact(manifest.model.artifact)},
            "model_files": [{"name": f.name, **_artifact(f.artifact)} for f in manifest.model_files],
            "inputs": [_entry(t) for t in manifest.inputs],
            "outputs": [_entry(t) for t in manifest.outputs],
            "execution": manifest.execution.to_json(),
            "comparison": manifest.comparison.to_json(),
            "environment": dict(manifest.environment),
            "annotations": dict(manifest.annotations),
            **({"provenance": manifest.provenance.to_json()} if manifest.provenance is not None else {}),
            "trace": _trace(manifest.trace),
            "profile": manifest.profile.to_json() if manifest.profile is not None else None,
            "depends_on": _depends_on(manifest.profile),
            "signatures": envelopes,
            "totals": {
                "artifacts": len(unique),
                "size": sum(a.size for a in unique.values()),
                "stored_size": sum(a.stored_size for a in unique.values()),
            },
        }


def _entry(entry: Entry) -> dict[str, Any]:
    """An input or output: a tensor's dtype and shape, or a non-tensor value's type."""
    if isinstance(entry, ValueEntry):
        return {"name": entry.name, "type": entry.type, **_artifact(entry.artifact)}
    return {"name": entry.name, "dtype": entry.dtype, "shape": list(entry.shape), **_artifact(entry.artifact)}
