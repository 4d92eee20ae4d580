"""The ``provenance`` stage: evidence from outside ogverify, checked against the bundle's files.

A model's claimed IPFS CID is recomputed from the packed model bytes. Bundles without a
``provenance`` entry get no finding from this stage.
"""

from __future__ import annotations

from collections.abc import Iterator

from ogverify.errors import OgverifyError
from ogverify.evidence.bundle import BlobError, Bundle
from ogverify.report.findings import Finding, Status


def check_provenance(bundle: Bundle, integrity: Finding) -> tuple[Finding, ...]:
    """What the bundle's outside evidence says: one finding, or none when it has none."""
    provenance = bundle.manifest.provenance
    if provenance is None:
        return ()
    if integrity.status is not Status.PASS:
        return (Finding("provenance", "provenance", Status.SKIP, "provenance skipped: integrity does not hold"),)
    children: list[Finding] = []
    if provenance.model_cid is not None:
        children.append(_model_cid(bundle, provenance.model_cid))
    failed = [c for c in children if c.status is not Status.PASS]
    if failed:
        worst = next((c for c in failed if c.status is Status.FAIL), failed[0])
        return (Finding("provenance", "provenance", worst.status, worst.message, children=tuple(children)),)
    return (Finding("provenance", "provenance", Status.PASS,
                    "; ".join(c.message for c in children) or "nothing to check", children=tuple(children)),)


def _model_cid(bundle: Bundle, claimed: str) -> Finding:
    from ogverify.evidence.cid import content_cids, parse_cid
    from ogverify.evidence.digest import new_hasher

    model = bundle.manifest.model
    subject = f"model '{model.name}' CID"
    hasher = new_hasher("blake3")

    def verified_pieces() -> Iterator[bytes]:
        for piece in bundle.iter_blob(model.artifact):
            hasher.update(piece)
            yield piece

    try:
        parse_cid(claimed)
        cids = content_cids(verified_pieces())
        if hasher.hexdigest() != model.artifact.blake3:
            raise BlobError("blake3 digest does not match the manifest")
    except (OgverifyError, BlobError) as exc:
        message = exc.message if isinstance(exc, OgverifyError) else str(exc)
        return Finding("provenance", subject, Status.ERROR, f"cannot check the model's CID: {message}",
                       {"claimed": claimed})
    evidence = {"claimed": claimed, **cids.to_json()}
    if cids.matches(claimed):
        return Finding("provenance", subject, Status.PASS, f"model '{model.name}' is IPFS CID {claimed}", evidence)
    return Finding("provenance", subject, Status.FAIL,
                   f"model '{model.name}' is not IPFS CID {claimed}: its CIDs are {cids.v0} and {cids.v1}", evidence)
