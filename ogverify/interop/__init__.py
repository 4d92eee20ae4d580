"""Interop: evidence in other systems' formats, into and out of bundles.

Owns one module per outside format: ``cyclonedx`` (a bundle as a CycloneDX ML-BOM). IPFS CIDs,
which check itself verifies, live in ``ogverify.evidence.cid``.
May import: packing, runtime, model, evidence, errors; never verify, report or the CLI.
"""
