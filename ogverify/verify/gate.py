"""The CI gate behind ``ogverify check``: policy, many bundles, progress, attestations, one exit code.

The CLI parses arguments and builds ``CheckOptions``; everything after that lives here so the
Python API (``ogverify.check_many``) and the CLI behave the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ogverify.errors import UsageError
from ogverify.report.findings import Report, Verdict
from ogverify.report.formats.json import worst_exit_code
from ogverify.verify.batch import Checked, CheckSpec, check_all, collect_targets
from ogverify.verify.policy import Policy, discover_policy, load_policy


def resolve_policy(policy_path: Path | None, *, discover: bool = True, cwd: Path | None = None) -> Policy | None:
    """``--policy FILE``, else ``ogverify.toml`` / ``[tool.ogverify]`` found in ``cwd`` (when ``discover``)."""
    if policy_path is not None:
        return load_policy(policy_path)
    if not discover:
        return None
    found = discover_policy(cwd or Path.cwd())
    return load_policy(found) if found is not None else None


def apply_policy(options: Any, policy: Policy | None, explicit: Collection[str] = ()) -> Any:
    """``options`` (a ``verify.CheckOptions``) with the policy's settings applied.

    Trusted keys are added to those given; limits and environment rules come from the policy;
    ``allow_unsigned``, ``rerun`` and ``timeout`` come from the policy unless named in ``explicit``
    (given on the command line).
    """
    if policy is None:
        return options
    from ogverify.evidence.signing import load_trusted_keys

    trusted = dict(options.trusted_keys)
    trusted.update(load_trusted_keys([*policy.trusted_keys, *(Path(p) for p in policy.required_keys.values())]))
    changes: dict[str, Any] = {
        "trusted_keys": trusted,
        "limits": policy.apply_limits(options.limits),
        "environment_policy": policy.environment,
    }
    if policy.allow_unsigned is not None and "allow_unsigned" not in explicit:
        changes["allow_unsigned"] = policy.allow_unsigned
    if policy.rerun is not None and "rerun" not in explicit:
        changes["rerun"] = policy.rerun
    if policy.timeout is not None and "timeout" not in explicit:
        changes["timeout"] = policy.timeout
    return replace(options, **changes)


def _progress(total: int) -> tuple[Callable[[Checked], None], Callable[[], None]]:
    """A rich progress bar on stderr: (advance with a result, stop)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("checking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[failed]} not verified"),
        console=Console(file=sys.stderr, highlight=False), transient=False,
    )
    task = progress.add_task("check", total=total, failed=0)
    failed = 0
    progress.start()

    def advance(checked: Checked) -> None:
        nonlocal failed
        failed += checked.report.verdict is not Verdict.VERIFIED
        progress.update(task, advance=1, failed=failed)

    return advance, progress.stop


def summary_table(reports: Sequence[Report]) -> str:
    """One table: bundle, verdict, reason; and the totals."""
    from rich.table import Table
    from rich.text import Text

    from ogverify.report.formats.text import render_to_text

    table = Table(title="summary", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("bundle", "verdict", "reason"):
        table.add_column(column)
    for r in reports:
        table.add_row(Text(r.bundle), r.verdict.value, Text(r.headline.partition(": ")[2]))
    counts = ", ".join(f"{sum(r.verdict is v for r in reports)} {v.value}" for v in Verdict)
    return render_to_text(table, color=False) + f"{len(reports)} bundles: {counts}\n"


def write_attestations(
    checked: Sequence[Checked], keys: Sequence[Path], directory: Path | None, policy: Policy | None,
    echo: Callable[[str], None],
) -> list[Path]:
    """Sign each report's verdict with each key; write ``<bundle>.verdict.<keyid12>.dsse.json``."""
    from ogverify.evidence.bundle import write_member_atomically
    from ogverify.evidence.signing import load_private_key
    from ogverify.verify.attest import attestation_name, sign_verdict
    from ogverify.verify.batch import is_url

    private = [load_private_key(k) for k in keys]
    written: list[Path] = []
    policy_fact = None
    if policy is not None:
        import hashlib

        source = Path(policy.source)
        policy_fact = {"source": str(source),
                       "sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None}
    for item in checked:
        report = item.report
        if not report.manifest_sha256:
            echo(f"not attested: {report.bundle}: the bundle could not be read")
            continue
        facts = dict(item.facts or {})
        if policy_fact is not None:
            facts["policy"] = policy_fact
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
            echo(f"wrote {target} ({report.bundle}: signed verdict by {keyid[:12]})")
    return written


def run_gate(
    args: Sequence[str | Path],
    options: Any,
    *,
    render: Callable[[Sequence[Report]], str],
    emit: Callable[[str], None],
    echo: Callable[[str], None],
    policy: Policy | None = None,
    jobs: int | None = None,
    dask_scheduler: Any = None,
    attest_keys: Sequence[Path] = (),
    attest_dir: Path | None = None,
    attestations: Sequence[Path] = (),
    summary: bool = False,
    progress: bool = True,
    also: Sequence[tuple[Callable[[Sequence[Report]], str], Callable[[str], None]]] = (),
) -> int:
    """Check everything ``args`` names; emit the rendered reports; return the worst exit code.

    Args:
        args: bundles, directories of bundles, globs and URLs.
        options: ``verify.CheckOptions`` with the policy already applied (``apply_policy``).
        render: the formatter's ``render``.
        emit: where the rendered reports go (stdout or ``--output``).
        echo: one line to stderr.
        summary: also print the summary table to stderr (when the reports go elsewhere).
        also: more (render, emit) pairs: the same reports in other formats, other places.
    """
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    targets = collect_targets(args)
    jobs = jobs or (policy.jobs if policy is not None and policy.jobs else 1)
    for key in attest_keys:
        from ogverify.evidence.signing import load_private_key

        load_private_key(key)  # a bad key fails before any work
    spec = CheckSpec.from_options(options, policy=policy, collect_facts=bool(attest_keys))
    parallel = dask_scheduler is not None or (jobs > 1 and len(targets) > 1)
    advance: Callable[[Checked], None] | None = None
    stop: Callable[[], None] | None = None
    if len(targets) > 1 and parallel and progress:
        advance, stop = _progress(len(targets))
    try:
        if len(targets) > 1 and not parallel:
            checked = []
            for index, target in enumerate(targets):
                echo(f"checking {target} ...")
                (one,) = check_all([target], spec)
                checked.append(replace(one, index=index))
        else:
            checked = check_all(targets, spec, jobs=jobs, dask_scheduler=dask_scheduler, on_result=advance)
    finally:
        if stop is not None:
            stop()
    reports = [c.report for c in checked]
    unmatched: list[Path] = []
    if attestations:
        from ogverify.verify.attest import attach_attestations

        unmatched = attach_attestations(reports, list(attestations), options.trusted_keys)
        checked = [replace(c, report=r) for c, r in zip(checked, reports, strict=True)]
    if attest_keys:
        write_attestations(checked, attest_keys, attest_dir, policy, echo)
    emit(render(reports))
    for other_render, other_emit in also:
        other_emit(other_render(reports))
    if summary and len(reports) > 1:
        sys.stderr.write(summary_table(reports))
    if unmatched:
        raise UsageError(f"attestation {unmatched[0]} is about none of the checked bundles")
    return worst_exit_code(reports)
