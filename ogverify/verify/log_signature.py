"""The signature a record exported from an evidence log carries: a signed checkpoint and an
inclusion proof (``log-proof.json``), checked as one of the bundle's signatures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ogverify.report.findings import Finding, Status

if TYPE_CHECKING:
    from ogverify.evidence.bundle import Bundle
    from ogverify.evidence.signing import TrustedKey


def log_signature_finding(bundle: Bundle, trusted_keys: Mapping[str, TrustedKey]) -> Finding | None:
    """PASS when a trusted key signed the checkpoint the record is proven in, WARN when the proof
    holds but no trusted key signed, FAIL when the proof does not hold; None without a log proof."""
    if bundle.log_proof is None:
        return None
    from ogverify.evidence.log.attached import verify_log_proof  # only for bundles that carry a log proof

    keys = list(trusted_keys.values())
    result = verify_log_proof(bundle.log_proof, bundle.manifest.to_json(), [k.key for k in keys],
                              [k.keyid[:12] for k in keys])
    status = {"trusted": Status.PASS, "untrusted": Status.WARN}.get(result.status, Status.FAIL)
    return Finding("signatures", "evidence log", status, result.message, result.to_json())
