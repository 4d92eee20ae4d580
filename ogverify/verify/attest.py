"""Signed verdicts: the auditor's result of ``check`` as an in-toto test-result attestation.

``check --attest KEY`` writes, per bundle, a DSSE envelope (the same envelope and PAE as bundle
signatures) over an in-toto Statement v1 whose subject is the bundle's ``manifest.json`` by
sha256 and whose predicate is the vetted test-result predicate
(https://in-toto.io/attestation/test-result/v0.1)::

    result         PASSED | WARNED | FAILED
    configuration  resource descriptors: the manifest, the model, the recorded execution
                   configuration and the checking environment (these two inline, base64)
    url            the CI run, when one is known from the environment
    passedTests / warnedTests / failedTests   stable names: integrity, output[logits].exact ...

``check --attestation FILE`` verifies such an envelope against the trusted keys and the bundle
it is about; the enterprise, the auditor and a regulator can all hold the same signed record.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ogverify.errors import BundleError, UsageError
from ogverify.evidence import canonical_json
from ogverify.evidence.json_fields import JsonFields
from ogverify.evidence.signing import STATEMENT_TYPE, TrustedKey, find_signer, keyid_of, parse_envelope, sign_statement
from ogverify.report.findings import Finding, Report, Status
from ogverify.report.results import outcome, partition

TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
SUFFIX = ".dsse.json"
MAX_ATTESTATION_BYTES = 4 << 20


def _inline(name: str, document: Any) -> dict[str, Any]:
    raw = canonical_json.dumps(document)
    return {
        "name": name,
        "digest": {"sha256": hashlib.sha256(raw).hexdigest()},
        "mediaType": "application/json",
        "content": base64.b64encode(raw).decode("ascii"),
    }


def ci_run_url() -> str | None:
    """The URL of the CI run this process belongs to, when the CI says (GitHub Actions, GitLab CI)."""
    env = os.environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
    return env.get("CI_JOB_URL") or None


@dataclass(frozen=True)
class PolicyRecord(JsonFields):
    """The policy a verdict was reached under: its file, and that file's sha256 (None: not a file)."""

    source: str
    sha256: str | None


@dataclass(frozen=True)
class VerdictFacts:
    """What a signed verdict records beside the report; each part optional.

    Attributes:
        model_name, model_blake3: the model the bundle names (from its manifest).
        execution: the manifest's execution configuration, as JSON.
        environment: the fingerprint of the machine that checked.
        policy: the policy applied.
    """

    model_name: str | None = None
    model_blake3: str | None = None
    execution: Mapping[str, Any] | None = None
    environment: Mapping[str, Any] | None = None
    policy: PolicyRecord | None = None


def verdict_statement(report: Report, facts: VerdictFacts) -> dict[str, Any]:
    """The in-toto Statement of ``report``.

    Args:
        report: a report with a manifest digest.
        facts: the model, execution configuration, checking environment and policy to record.

    Raises:
        UsageError: the report has no manifest digest (the bundle could not be read).
    """
    if not report.manifest_sha256:
        raise UsageError(f"{report.bundle}: no manifest digest to attest (the bundle could not be read)")
    configuration: list[dict[str, Any]] = [{
        "name": "manifest.json",
        "digest": {"sha256": report.manifest_sha256},
        "mediaType": "application/json",
        "annotations": {"bundle": report.bundle},
    }]
    if facts.model_name is not None and facts.model_blake3 is not None:
        configuration.append({"name": facts.model_name, "digest": {"blake3": facts.model_blake3},
                              "mediaType": "application/x-onnx"})
    if facts.execution is not None:
        configuration.append(_inline("execution-config.json", facts.execution))
    if facts.environment is not None:
        configuration.append(_inline("checker-environment.json", facts.environment))
    if facts.policy is not None:
        configuration.append(_inline("policy.json", facts.policy.to_json()))
    predicate: dict[str, Any] = {"result": outcome(report), "configuration": configuration, **partition(report)}
    url = ci_run_url()
    if url:
        predicate["url"] = url
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "manifest.json", "digest": {"sha256": report.manifest_sha256}}],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": predicate,
    }


def sign_verdict(report: Report, facts: VerdictFacts, key: Ed25519PrivateKey) -> tuple[str, bytes]:
    """(keyid, DSSE envelope bytes) of the signed verdict."""
    return sign_statement(verdict_statement(report, facts), key)


def attestation_name(bundle: str, keyid: str) -> str:
    """``<bundle file name>.verdict.<keyid>.dsse.json``, with the full 64-hex keyid (docs/format.md)."""
    base = Path(bundle.rstrip("/")).name or "bundle"
    return f"{base}.verdict.{keyid}{SUFFIX}"


# --- verifying ----------------------------------------------------------------------------


def _read_bounded(path: Path) -> bytes:
    """At most ``MAX_ATTESTATION_BYTES + 1`` bytes of ``path``: its size as ``stat`` tells it is no
    bound (``/dev/zero``, a file still growing); a FIFO or device is refused before it is opened."""
    from ogverify.evidence.paths import require

    require(path, "attestation")
    with path.open("rb") as handle:
        return handle.read(MAX_ATTESTATION_BYTES + 1)


def _fail(path: str, message: str, **evidence: Any) -> Finding:
    return Finding("attestation", f"attestation {Path(path).name}", Status.FAIL, message, {"file": path, **evidence})


def verify_attestation(
    path: Path, report: Report, trusted: Mapping[str, TrustedKey], *, this_outcome: str | None = None
) -> Finding:
    """A finding on whether the attestation at ``path`` is a valid signed verdict about ``report``'s bundle."""
    source = str(path)
    try:
        raw = _read_bounded(path)
        if len(raw) > MAX_ATTESTATION_BYTES:
            return _fail(source, f"attestation {source} is larger than {MAX_ATTESTATION_BYTES} bytes")
        envelope = parse_envelope(raw, source)
    except OSError as exc:
        raise UsageError(f"cannot read attestation {source}: {exc.strerror or exc}") from exc
    except BundleError as exc:
        return _fail(source, f"attestation {exc.message}")
    payload = envelope.payload
    signer: TrustedKey | None = None
    claimed = ""
    for entry in envelope.signatures:
        claimed = entry.keyid
        if entry.sig is None:
            continue
        signer = find_signer(claimed, entry.sig, payload, trusted)
        if signer is not None:
            break
    if signer is None:
        if claimed in trusted:
            return _fail(source, f"attestation {source}: signature by trusted key {claimed[:12]} does not verify",
                         keyid=claimed)
        return _fail(source, f"attestation {source} is not signed by a trusted key"
                             + (f" (signed by {claimed[:12]})" if claimed else ""), keyid=claimed)
    try:
        statement = canonical_json.loads_strict(payload, f"{source} statement")
    except BundleError as exc:
        return _fail(source, exc.message, keyid=signer.keyid)
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        return _fail(source, f"attestation {source} does not hold an in-toto Statement v1", keyid=signer.keyid)
    if statement.get("predicateType") != TEST_RESULT_PREDICATE:
        return _fail(source, f"attestation {source} is a {statement.get('predicateType')!r} statement, "
                             "not a test-result verdict", keyid=signer.keyid)
    digests = {
        str(s.get("digest", {}).get("sha256")) for s in statement.get("subject") or []
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
    }
    if report.manifest_sha256 not in digests:
        return _fail(source, f"attestation {source} is about a different bundle "
                             f"(sha256:{', '.join(sorted(digests))[:64]})", keyid=signer.keyid)
    raw_predicate = statement.get("predicate")
    predicate: dict[str, Any] = raw_predicate if isinstance(raw_predicate, dict) else {}
    result = str(predicate.get("result"))
    evidence = {"file": source, "keyid": signer.keyid, "result": result,
                "failedTests": list(predicate.get("failedTests") or [])}
    label = f"verdict attestation by trusted key {signer.keyid[:12]}: {result}"
    if this_outcome is not None and result != this_outcome:
        return Finding("attestation", f"attestation {Path(source).name}", Status.WARN,
                       f"{label}, but this check says {this_outcome}", evidence)
    return Finding("attestation", f"attestation {Path(source).name}", Status.PASS, label, evidence)


def subject_digests(path: Path) -> set[str]:
    """The manifest digests an attestation names, read without verifying it (only to route it)."""
    try:
        payload = parse_envelope(_read_bounded(path)[:MAX_ATTESTATION_BYTES], str(path)).payload
        statement = canonical_json.loads_strict(payload, str(path))
        return {str(s["digest"]["sha256"]) for s in statement.get("subject") or []}
    except (OSError, BundleError, ValueError, TypeError, KeyError, AttributeError):
        return set()


def attach_attestations(reports: list[Report], paths: list[Path], trusted: Mapping[str, TrustedKey]) -> list[Path]:
    """Add an ``attestation`` finding to the report each attestation is about; return those about none.

    With one report, every attestation is checked against it (one about another bundle fails).
    With several, each goes to the report whose manifest digest its subject names.
    """
    unmatched = []
    extra: list[list[Finding]] = [[] for _ in reports]
    for path in paths:
        if len(reports) == 1:
            index: int | None = 0
        else:
            digests = subject_digests(path)
            index = next((i for i, r in enumerate(reports) if r.manifest_sha256 in digests), None)
        if index is None:
            unmatched.append(path)
            continue
        extra[index].append(verify_attestation(path, reports[index], trusted, this_outcome=outcome(reports[index])))
    for index, findings in enumerate(extra):
        if findings:
            reports[index] = replace(reports[index], findings=(*reports[index].findings, *findings))
    return unmatched


def keyid_of_private(key: Ed25519PrivateKey) -> str:
    return keyid_of(key.public_key())
