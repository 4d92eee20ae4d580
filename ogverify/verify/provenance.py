"""The ``provenance`` stage: evidence from outside ogverify, checked against the bundle's files.

A model's claimed IPFS CID is recomputed from the packed model bytes; a publisher's model_signing
signature is verified over the packed model files with the publisher's key; an on-chain record the
bundle was imported from is reported (a simulated result, which never settled, is a warning). Bundles without a
``provenance`` entry get no finding from this stage, unless a publisher key demands a signature.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from ogverify.errors import OgverifyError
from ogverify.evidence.bundle import BlobError, Bundle
from ogverify.evidence.manifest import ChainRecord, ModelFile, Provenance
from ogverify.report.findings import Finding, Status


def check_provenance(bundle: Bundle, integrity: Finding, model_signing_key: Path | None = None) -> tuple[Finding, ...]:
    """What the bundle's outside evidence says: one finding, or none when it has none.

    ``model_signing_key``: the publisher's public key; the bundle must then carry a model
    signature by it over its model files.
    """
    provenance = bundle.manifest.provenance or Provenance()
    if provenance == Provenance() and model_signing_key is None:
        return ()
    if integrity.status is not Status.PASS:
        return (Finding("provenance", "provenance", Status.SKIP, "provenance skipped: integrity does not hold"),)
    children: list[Finding] = []
    if provenance.model_cid is not None:
        children.append(_model_cid(bundle, provenance.model_cid))
    if provenance.model_signature is not None or model_signing_key is not None:
        children.append(_model_signature(bundle, provenance.model_signature, model_signing_key))
    if provenance.chain is not None:
        children.append(_chain(provenance.chain))
    failed = [c for c in children if c.status is not Status.PASS]
    if failed:
        worst = next((c for c in failed if c.status is Status.FAIL), failed[0])
        return (Finding("provenance", "provenance", worst.status, worst.message, children=tuple(children)),)
    return (Finding("provenance", "provenance", Status.PASS,
                    "; ".join(c.message for c in children) or "nothing to check", children=tuple(children)),)


def _model_cid(bundle: Bundle, claimed: str) -> Finding:
    from ogverify.evidence.cid import content_cids, parse_cid
    from ogverify.evidence.regions import new_hasher

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


def _model_signature(bundle: Bundle, signature: ModelFile | None, public_key: Path | None) -> Finding:
    from ogverify.evidence.materialise import materialise_model
    from ogverify.interop.model_signatures import (
        ModelSignatureMismatchError,
        signed_names,
        verify_model_signature,
    )

    subject = "model signature"
    if signature is None:
        return Finding("provenance", subject, Status.FAIL,
                       "the bundle carries no model signature, but --model-signing-key asks for one")
    evidence = {"file": signature.name, "media_type": signature.media_type}
    if public_key is None:
        return Finding("provenance", subject, Status.WARN,
                       f"model signature '{signature.name}' not verified: give the publisher's key "
                       "(--model-signing-key)", evidence)
    model_name = bundle.manifest.model.name
    try:
        with tempfile.TemporaryDirectory(prefix="ogverify-model-signature-") as work:
            model_dir = Path(work) / "model"
            materialise_model(bundle, model_dir)
            signature_path = Path(work) / "model.sig"
            bundle.write_blob(signature.artifact, signature_path, f"model signature '{signature.name}'")
            signed = verify_model_signature(signature_path, model_dir, model_name, public_key)
    except ModelSignatureMismatchError as exc:
        return Finding("provenance", subject, Status.FAIL, f"model signature '{signature.name}': {exc}",
                       {**evidence, "key": str(public_key)})
    except OgverifyError as exc:
        return Finding("provenance", subject, Status.ERROR,
                       f"cannot verify model signature '{signature.name}': {exc.message}", evidence)
    names = signed_names(signed, model_name)
    return Finding("provenance", subject, Status.PASS,
                   f"model files {', '.join(repr(n) for n in names)} are signed by the publisher's key "
                   f"{public_key.name} (model_signing)", {**evidence, "key": str(public_key), "files": names})


def _chain(chain: ChainRecord) -> Finding:
    where = f"transaction {chain.transaction_hash}" if chain.transaction_hash else "an SDK result (no transaction)"
    evidence = {**chain.to_json(), "files": [f.name for f in chain.files]}
    if chain.is_simulation_result:
        return Finding("provenance", "chain record", Status.WARN,
                       f"OpenGradient {chain.inference_mode} inference from {where} is a simulation result: "
                       "it never settled on chain", evidence)
    return Finding("provenance", "chain record", Status.PASS,
                   f"OpenGradient {chain.inference_mode} inference of {chain.model_id} from {where}", evidence)
