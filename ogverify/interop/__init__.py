"""Interop: evidence in other systems' formats, read into bundles and written out of them.

Owns one module per outside format: ``cyclonedx`` (a bundle as a CycloneDX ML-BOM),
``model_signatures`` (model_signing / sigstore signatures of model files), ``opengradient``
(on-chain inference records, decoded as the OpenGradient SDK decodes them; ``packing.opengradient``
makes bundles of them). IPFS CIDs, which check
itself recomputes, live in ``ogverify.evidence.cid``.
May import: runtime, model, evidence, errors. Packing and verify use it; it never imports them,
report or the CLI.
"""
