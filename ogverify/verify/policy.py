"""Compliance policy: what a CI gate or an auditor accepts, from ``ogverify.toml``.

A policy file (``ogverify.toml``, or the ``[tool.ogverify]`` table of ``pyproject.toml``) is
validated against ``schemas/policy-v1.json`` and says:

- ``[signatures]``: trusted keys, keys that must each have signed, the least number of
  distinct trusted signers, and whether unsigned bundles are accepted;
- ``[comparison]``: the comparison modes a bundle may ask for, globally and per model/output;
- ``[environment]``: environment differences that are acceptable (``allow``) or not
  (``forbid``, a FAIL), by fingerprint field name or glob, optionally by version part;
- ``[limits]``: the fields of :class:`ogverify.evidence.bundle.Limits`;
- ``[check]``: timeout, rerun and jobs defaults.

Everything here is plain data (picklable), so a policy travels to check workers as it is.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ogverify.errors import BundleError, OgverifyError, UsageError
from ogverify.evidence.bundle import DEFAULT_LIMITS, Limits
from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.paths import require
from ogverify.report.findings import EnvironmentDifference, Finding, Report, Status

POLICY_FILE = "ogverify.toml"
PYPROJECT = "pyproject.toml"
MODE_NAMES = ("exact", "ulp", "allclose", "topk", "decimal")
VersionPart = Literal["major", "minor", "patch"]
_PART_DEPTH = {"major": 1, "minor": 2, "patch": 3}


# --- environment rules ---------------------------------------------------------------------


def _version_prefix(value: Any, depth: int) -> tuple[str, ...] | None:
    if not isinstance(value, str):
        return None
    parts = re.split(r"[.+-]", value.strip())
    return tuple(parts[:depth])


@dataclass(frozen=True)
class EnvironmentRule:
    """``cpu.*`` or ``runtime.version:major``: which environment differences a rule is about.

    The pattern is an fnmatch glob over fingerprint field names (``cpu.numeric_flags``); a
    field also matches a pattern naming one of its parents (``cpu`` matches ``cpu.model``).
    With a version part the rule matches only when the versions differ in that part or an
    earlier one: ``runtime.version:major`` matches 1.17.0 → 2.0.0 but not 1.17.0 → 1.18.0.
    """

    text: str
    pattern: str
    part: VersionPart | None = None

    @classmethod
    def parse(cls, text: str) -> EnvironmentRule:
        pattern, _, part = text.partition(":")
        if part and part not in _PART_DEPTH:
            raise UsageError(f"environment rule {text!r}: the part after ':' must be major, minor or patch")
        return cls(text, pattern, part or None)  # type: ignore[arg-type]

    def matches(self, difference: EnvironmentDifference) -> bool:
        name = difference.field
        if not (fnmatch.fnmatchcase(name, self.pattern) or name.startswith(self.pattern + ".")):
            return False
        if self.part is None:
            return True
        depth = _PART_DEPTH[self.part]
        before, after = _version_prefix(difference.recorded, depth), _version_prefix(difference.current, depth)
        if before is None or after is None:
            return True  # not a version on one side: any difference counts
        return before != after


@dataclass(frozen=True)
class EnvironmentPolicy:
    """Which environment differences are acceptable (``allow``) and which fail (``forbid``)."""

    allow: tuple[EnvironmentRule, ...] = ()
    forbid: tuple[EnvironmentRule, ...] = ()

    def decide(self, difference: EnvironmentDifference) -> tuple[Literal["allow", "forbid"], str] | None:
        """``forbid`` wins over ``allow``; None when no rule speaks about this difference."""
        for rule in self.forbid:
            if rule.matches(difference):
                return "forbid", rule.text
        for rule in self.allow:
            if rule.matches(difference):
                return "allow", rule.text
        return None


# --- comparison rules ----------------------------------------------------------------------


def spec_allowed(spec: ComparisonSpec, allowed: Sequence[str]) -> bool:
    """Whether ``spec`` is among ``allowed`` (mode names, or modes with their loosest parameters).

    ``exact`` is always allowed: it is stricter than every other mode. ``ulp:4`` allows ULP
    bounds up to 4; ``allclose:R,A`` allows rtol ≤ R and atol ≤ A; ``topk:K`` allows k ≥ K
    (comparing more of the top indices is stricter).
    """
    if spec.mode == "exact":
        return True
    for entry in allowed:
        if entry == spec.mode:
            return True
        if ":" not in entry:
            continue
        bound = ComparisonSpec.parse(entry)
        if bound.mode != spec.mode:
            continue
        if spec.mode == "ulp" and spec.ulp <= bound.ulp:
            return True
        if spec.mode == "allclose" and spec.rtol <= bound.rtol and spec.atol <= bound.atol:
            return True
        if spec.mode == "topk" and spec.k >= bound.k:
            return True
    return False


@dataclass(frozen=True)
class ComparisonRule:
    """The comparison modes allowed for outputs of models matching ``model`` and ``output``."""

    allowed: tuple[str, ...]
    model: str = "*"
    output: str = "*"

    def applies(self, model_name: str, model_blake3: str, output: str) -> bool:
        if self.model.startswith("blake3:"):
            model_ok = self.model.removeprefix("blake3:").lower() == model_blake3
        else:
            model_ok = fnmatch.fnmatchcase(model_name, self.model)
        return model_ok and fnmatch.fnmatchcase(output, self.output)


# --- the policy ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy. Key paths are already resolved against the policy's folder.

    Attributes:
        source: where it was read from.
        trusted_keys: public key files / keyring directories to trust.
        required_keys: keyid → key file, for keys that must each have signed.
        min_signatures: least number of distinct trusted signers.
        allow_unsigned: None leaves the command line's choice.
        allowed_modes: comparison modes allowed where no rule applies (None: any).
        comparison_rules: first matching rule wins.
        environment: allow/forbid rules for environment differences.
        limits: field name → value, applied over the defaults of ``Limits``.
        timeout, rerun, jobs: defaults for ``check`` (None leaves the command line's).
    """

    source: str = "(built-in)"
    trusted_keys: tuple[Path, ...] = ()
    required_keys: Mapping[str, str] = field(default_factory=dict)
    min_signatures: int = 0
    allow_unsigned: bool | None = None
    allowed_modes: tuple[str, ...] | None = None
    comparison_rules: tuple[ComparisonRule, ...] = ()
    environment: EnvironmentPolicy = field(default_factory=EnvironmentPolicy)
    limits: Mapping[str, int] = field(default_factory=dict)
    timeout: float | None = None
    rerun: bool | None = None
    jobs: int | None = None

    def apply_limits(self, base: Limits = DEFAULT_LIMITS) -> Limits:
        """``base`` with this policy's ``[limits]`` applied by field name."""
        return replace(base, **dict(self.limits))

    def allowed_for(self, model_name: str, model_blake3: str, output: str) -> tuple[str, ...] | None:
        for rule in self.comparison_rules:
            if rule.applies(model_name, model_blake3, output):
                return rule.allowed
        return self.allowed_modes

    @property
    def checks_comparisons(self) -> bool:
        return self.allowed_modes is not None or bool(self.comparison_rules)


def limit_fields() -> dict[str, type]:
    """The fields of ``Limits`` that ``[limits]`` may set, with their types."""
    return {f.name: type(getattr(DEFAULT_LIMITS, f.name)) for f in fields(Limits)}


def discover_policy(folder: Path) -> Path | None:
    """``ogverify.toml`` in ``folder``, else its ``pyproject.toml`` if it has ``[tool.ogverify]``."""
    candidate = folder / POLICY_FILE
    if candidate.is_file():
        return candidate
    pyproject = folder / PYPROJECT
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None
        if isinstance(data.get("tool"), dict) and "ogverify" in data["tool"]:
            return pyproject
    return None


def load_policy(path: Path) -> Policy:
    """Read, validate and resolve a policy file.

    Raises:
        UsageError: the file is missing, not TOML, or does not match the policy schema.
    """
    from ogverify.evidence.schemas import validate
    from ogverify.evidence.signing import load_public_key, load_trusted_keys

    require(path, "policy file")
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"policy file {path} is not valid TOML: {exc}") from exc
    if path.name == PYPROJECT:
        tool = data.get("tool")
        if not isinstance(tool, dict) or "ogverify" not in tool:
            raise UsageError(f"{path} has no [tool.ogverify] table")
        data = tool["ogverify"]
    try:
        validate(data, "policy-v1.json", f"policy {path}")
    except BundleError as exc:
        raise UsageError(exc.message) from exc
    base = path.parent
    signatures = data.get("signatures", {})
    comparison = data.get("comparison", {})
    environment = data.get("environment", {})
    check = data.get("check", {})
    try:
        for entry in [*comparison.get("allowed", []), *(a for r in comparison.get("rules", []) for a in r["allowed"])]:
            if ":" in entry:
                ComparisonSpec.parse(entry)
        trusted = tuple(base / p for p in signatures.get("trusted_keys", []))
        load_trusted_keys(trusted)  # fail now, naming the policy, rather than in every worker
        required = {}
        for text in signatures.get("required_keys", []):
            key = load_public_key(base / text)
            required[key.keyid] = str(base / text)
        env = EnvironmentPolicy(
            tuple(EnvironmentRule.parse(t) for t in environment.get("allow", [])),
            tuple(EnvironmentRule.parse(t) for t in environment.get("forbid", [])),
        )
    except OgverifyError as exc:
        raise UsageError(f"policy {path}: {exc.message}") from exc
    return Policy(
        source=str(path),
        trusted_keys=trusted,
        required_keys=required,
        min_signatures=int(signatures.get("min_signatures", 0)),
        allow_unsigned=signatures.get("allow_unsigned"),
        allowed_modes=tuple(comparison["allowed"]) if "allowed" in comparison else None,
        comparison_rules=tuple(
            ComparisonRule(tuple(r["allowed"]), r.get("model", "*"), r.get("output", "*"))
            for r in comparison.get("rules", [])
        ),
        environment=env,
        limits={k: int(v) for k, v in data.get("limits", {}).items()},
        timeout=float(check["timeout"]) if "timeout" in check else None,
        rerun=check.get("rerun"),
        jobs=check.get("jobs"),
    )


# --- the policy stage ----------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestFacts:
    """What the policy stage needs from a bundle's manifest."""

    model_name: str
    model_blake3: str
    comparisons: Mapping[str, ComparisonSpec]


def policy_finding(policy: Policy, report: Report, facts: ManifestFacts | None) -> Finding | None:
    """The ``policy`` stage: signer requirements and allowed comparison modes (None: nothing to say)."""
    children: list[Finding] = []
    if policy.min_signatures or policy.required_keys:
        signers = sorted({
            str(f.evidence.get("keyid")) for top in report.findings if top.stage == "signatures"
            for f in top.walk() if f.evidence.get("status") == "trusted"
        })
        missing = [source for keyid, source in policy.required_keys.items() if keyid not in signers]
        evidence = {"trusted_signers": signers, "min_signatures": policy.min_signatures,
                    "required_keys": sorted(policy.required_keys)}
        # Every unmet rule is its own finding: fixing one must not reveal the next.
        if missing:
            children.append(Finding("policy", "required keys", Status.FAIL,
                                    f"policy requires a signature by {', '.join(missing)}, which is missing", evidence))
        if len(signers) < policy.min_signatures:
            children.append(Finding("policy", "min signatures", Status.FAIL,
                                    f"policy requires {policy.min_signatures} trusted signature(s), "
                                    f"the bundle has {len(signers)}", evidence))
        if not missing and len(signers) >= policy.min_signatures:
            children.append(Finding("policy", "signatures", Status.PASS,
                                    f"{len(signers)} trusted signature(s) meet the policy", evidence))
    if policy.checks_comparisons and facts is not None:
        for output, spec in facts.comparisons.items():
            allowed = policy.allowed_for(facts.model_name, facts.model_blake3, output)
            if allowed is None:
                continue
            evidence = {"mode": str(spec), "allowed": list(allowed)}
            if spec_allowed(spec, allowed):
                children.append(Finding("policy", f"output '{output}'", Status.PASS,
                                        f"output '{output}' compares {spec}, allowed by policy", evidence))
            else:
                children.append(Finding("policy", f"output '{output}'", Status.FAIL,
                                        f"output '{output}' compares {spec}, which the policy does not allow "
                                        f"(allowed: {', '.join(allowed)})", evidence))
    if not children:
        return None
    failed = [c for c in children if c.status is Status.FAIL]
    if failed:
        message = failed[0].message if len(failed) == 1 else (
            f"{len(failed)} policy rules fail: {'; '.join(f.message for f in failed)}")
        return Finding("policy", "policy", Status.FAIL, message, {"policy": policy.source}, tuple(children))
    return Finding("policy", "policy", Status.PASS, f"bundle meets the policy {policy.source}",
                   {"policy": policy.source}, tuple(children))
