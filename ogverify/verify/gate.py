"""The CI gate behind ``ogverify check``: policy, many bundles, attestations, one exit code.

The CLI parses arguments and builds ``CheckOptions``; the gate checks every bundle, applies the
policy, verifies and writes attestations, and returns what it found (``GateResult``): the CLI
renders the reports and draws. While it works the gate tells a ``GateObserver`` (the CLI's draws
progress on stderr; by default nobody is told). ``apply_policy`` is shared with the Python API
(``ogverify.check_many``), so both read a policy the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from ogverify.errors import UsageError
from ogverify.report.findings import Report, worst_exit_code
from ogverify.verify.batch import Checked, CheckSpec, check_all, collect_targets
from ogverify.verify.pipeline import CheckOptions
from ogverify.verify.policy import Policy, discover_policy, load_policy

PolicySetting = Literal["allow_unsigned", "rerun", "timeout"]


def resolve_policy(policy_path: Path | None, *, discover: bool = True, cwd: Path | None = None) -> Policy | None:
    """``--policy FILE``, else ``ogverify.toml`` / ``[tool.ogverify]`` found in ``cwd`` (when ``discover``)."""
    if policy_path is not None:
        return load_policy(policy_path)
    if not discover:
        return None
    found = discover_policy(cwd or Path.cwd())
    return load_policy(found) if found is not None else None


def apply_policy(
    options: CheckOptions, policy: Policy | None, explicit: Collection[PolicySetting] = ()
) -> CheckOptions:
    """``options`` with the policy's settings applied.

    Trusted keys are added to those given; limits and environment rules come from the policy;
    ``allow_unsigned``, ``rerun`` and ``timeout`` come from the policy unless named in ``explicit``
    (given on the command line).
    """
    if policy is None:
        return options
    from ogverify.evidence.signing import load_trusted_keys

    trusted = dict(options.trusted_keys)
    trusted.update(load_trusted_keys([*policy.trusted_keys, *(Path(p) for p in policy.required_keys.values())]))

    def setting(name: PolicySetting, given: Any, from_policy: Any) -> Any:
        return given if from_policy is None or name in explicit else from_policy

    return replace(
        options,
        trusted_keys=trusted,
        limits=policy.apply_limits(options.limits),
        environment_policy=policy.environment,
        allow_unsigned=setting("allow_unsigned", options.allow_unsigned, policy.allow_unsigned),
        rerun=setting("rerun", options.rerun, policy.rerun),
        timeout=setting("timeout", options.timeout, policy.timeout),
    )


class GateObserver(Protocol):
    """What the gate tells while it works; the CLI draws it, the default ``QuietObserver`` ignores it."""

    def started(self, targets: Sequence[str], *, parallel: bool) -> None:
        """Checking ``targets`` begins; ``parallel``: several at once, finishing in any order."""

    def checking(self, target: str) -> None:
        """One at a time: ``target`` is checked next."""

    def checked(self, result: Checked) -> None:
        """A check finished (in the order checks finish)."""

    def finished(self) -> None:
        """Every check finished, or the gate stopped on an error."""

    def attested(self, path: Path, report: Report, keyid: str) -> None:
        """A signed verdict about ``report`` was written to ``path``."""

    def not_attested(self, report: Report, reason: str) -> None:
        """No verdict about ``report`` could be signed, for ``reason``."""


class QuietObserver:
    """A ``GateObserver`` that ignores everything."""

    def started(self, targets: Sequence[str], *, parallel: bool) -> None:
        pass

    def checking(self, target: str) -> None:
        pass

    def checked(self, result: Checked) -> None:
        pass

    def finished(self) -> None:
        pass

    def attested(self, path: Path, report: Report, keyid: str) -> None:
        pass

    def not_attested(self, report: Report, reason: str) -> None:
        pass


@dataclass(frozen=True)
class GateResult:
    """What one gate run found: every check in target order, and what the attestations came to.

    Attributes:
        checked: one per target, in the order the targets were given or found.
        attestations_written: the signed verdicts ``--attest`` wrote.
        unmatched_attestations: ``--attestation`` files about none of the checked bundles.
    """

    checked: tuple[Checked, ...]
    attestations_written: tuple[Path, ...] = ()
    unmatched_attestations: tuple[Path, ...] = ()

    @property
    def reports(self) -> list[Report]:
        return [c.report for c in self.checked]

    @property
    def exit_code(self) -> int:
        """The worst verdict's exit code (could not verify over failed over verified)."""
        return worst_exit_code(self.reports)


def write_attestations(
    checked: Sequence[Checked], keys: Sequence[Path], directory: Path | None, policy: Policy | None,
    observer: GateObserver,
) -> list[Path]:
    """Sign each report's verdict with each key; write ``<bundle>.verdict.<keyid12>.dsse.json``."""
    from ogverify.evidence.bundle import write_member_atomically
    from ogverify.evidence.signing import load_private_key
    from ogverify.verify.attest import PolicyRecord, VerdictFacts, attestation_name, sign_verdict
    from ogverify.verify.batch import is_url

    private = [load_private_key(k) for k in keys]
    written: list[Path] = []
    policy_record = None
    if policy is not None:
        import hashlib

        source = Path(policy.source)
        policy_record = PolicyRecord(str(source),
                                     hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None)
    for item in checked:
        report = item.report
        if not report.manifest_sha256:
            observer.not_attested(report, "the bundle could not be read")
            continue
        facts = replace(item.facts or VerdictFacts(), policy=policy_record)
        for key in private:
            keyid, envelope = sign_verdict(report, facts, key)
            folder = directory if directory is not None else (
                Path.cwd() if is_url(report.bundle) else Path(report.bundle.rstrip("/")).parent)
            target = folder / attestation_name(report.bundle, keyid)
            if target in written:
                raise UsageError(f"two bundles would write the same attestation {target}; give --attest-dir per run")
            if not folder.is_dir():
                raise UsageError(f"directory {folder} does not exist")
            write_member_atomically(target, envelope)
            written.append(target)
            observer.attested(target, report, keyid)
    return written


def run_gate(
    args: Sequence[str | Path],
    options: CheckOptions,
    *,
    policy: Policy | None = None,
    jobs: int | None = None,
    dask_scheduler: Any = None,
    attest_keys: Sequence[Path] = (),
    attest_dir: Path | None = None,
    attestations: Sequence[Path] = (),
    observer: GateObserver | None = None,
) -> GateResult:
    """Check everything ``args`` names; verify ``attestations`` and sign verdicts with ``attest_keys``.

    Args:
        args: bundles, directories of bundles, globs and URLs.
        options: the check options, with the policy already applied (``apply_policy``).
        policy: the policy: its signer and comparison rules become a ``policy`` finding, its
            ``jobs`` the default parallelism; signed verdicts record it.
        jobs: worker processes (None: the policy's, else 1); ``dask_scheduler``: a Dask cluster.
        observer: told of progress as it happens.

    Raises:
        UsageError: ``jobs`` below 1, a glob that matches nothing, a bad attestation key or folder.
    """
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    observer = observer if observer is not None else QuietObserver()
    targets = collect_targets(args)
    jobs = jobs or (policy.jobs if policy is not None and policy.jobs else 1)
    for key in attest_keys:
        from ogverify.evidence.signing import load_private_key

        load_private_key(key)  # a bad key fails before any work
    for path in attestations:
        from ogverify.evidence.paths import require

        require(path, "--attestation")  # a missing file (or /dev/zero) fails before any work
    spec = CheckSpec.from_options(options, policy=policy, collect_facts=bool(attest_keys))
    parallel = dask_scheduler is not None or (jobs > 1 and len(targets) > 1)
    observer.started(targets, parallel=parallel)
    try:
        if parallel:
            checked = check_all(targets, spec, jobs=jobs, dask_scheduler=dask_scheduler, on_result=observer.checked)
        else:
            checked = []
            for index, target in enumerate(targets):
                observer.checking(target)
                (one,) = check_all([target], spec)
                checked.append(replace(one, index=index))
                observer.checked(checked[-1])
    finally:
        observer.finished()
    unmatched: list[Path] = []
    if attestations:
        from ogverify.verify.attest import attach_attestations

        reports = [c.report for c in checked]
        unmatched = attach_attestations(reports, list(attestations), options.trusted_keys)
        checked = [replace(c, report=r) for c, r in zip(checked, reports, strict=True)]
    written = write_attestations(checked, attest_keys, attest_dir, policy, observer) if attest_keys else []
    return GateResult(tuple(checked), tuple(written), tuple(unmatched))
