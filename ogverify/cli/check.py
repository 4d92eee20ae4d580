"""``check``: verify bundles, the CI gate (policy, many bundles, attestations, reports)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import ReportFormatOption, echo, emit, guarded, require_writable, use_color
from ogverify.errors import UsageError


@guarded
def check(
    ctx: typer.Context,
    bundles: Annotated[list[str], typer.Argument(
        metavar="BUNDLE...",
        help="Bundles to check: .ogb files, bundle directories, directories of bundles, quoted globs or URLs.")],
    trusted_keys: Annotated[list[Path] | None, typer.Option(
        "--trusted-key", "-k", metavar="PUB",
        help="Trusted public key, or a directory of .pub files. Repeatable.")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        "--allow-unsigned", help="Accept bundles with no signature from a trusted key.")] = False,
    no_rerun: Annotated[bool, typer.Option(
        "--no-rerun", help="Stop after integrity and signatures; do not execute the model.")] = False,
    output_format: ReportFormatOption = "text",
    output: Annotated[Path | None, typer.Option(
        "--output", metavar="FILE", help="Write the report here instead of stdout.")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", metavar="N",
        help="Check N bundles at once on N worker processes that keep loaded models "
             "(default 1: every re-execution in a fresh process).")] = None,
    policy_file: Annotated[Path | None, typer.Option(
        "--policy", metavar="FILE",
        help="Policy file (default: ogverify.toml, or [tool.ogverify] in pyproject.toml, of this directory).")] = None,
    no_policy: Annotated[bool, typer.Option(
        "--no-policy", help="Ignore a policy file in the current directory.")] = False,
    dask_scheduler: Annotated[str | None, typer.Option(
        "--dask-scheduler", metavar="ADDRESS", help="Distribute the checks over this Dask cluster.")] = None,
    attest_keys: Annotated[list[Path] | None, typer.Option(
        "--attest", metavar="KEY",
        help="Sign each verdict with this private key (in-toto test-result attestation). Repeatable.")] = None,
    attest_dir: Annotated[Path | None, typer.Option(
        "--attest-dir", metavar="DIR", help="Where --attest writes (default: beside each bundle).")] = None,
    attestations: Annotated[list[Path] | None, typer.Option(
        "--attestation", metavar="FILE", help="Verify this signed verdict about a checked bundle. Repeatable.")] = None,
    also_reports: Annotated[list[str] | None, typer.Option(
        "--report", metavar="FORMAT=FILE",
        help="Also write the report in FORMAT to FILE, from the same run (sarif=out.sarif). Repeatable.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", help="Seconds one re-execution may take.")] = 600.0,
    explain: Annotated[bool, typer.Option(
        "--explain/--no-explain", help="On a failed reproduction, search for the drifted knob.")] = True,
    explain_budget: Annotated[int, typer.Option(
        "--explain-budget", metavar="RUNS", help="Most trial runs the explanation may spend.")] = 32,
    candidate_model: Annotated[Path | None, typer.Option(
        "--candidate-model", metavar="MODEL", help="A model that may have produced the claim instead.")] = None,
    model_signing_key: Annotated[Path | None, typer.Option(
        "--model-signing-key", metavar="PUB",
        help="The model publisher's EC public key: verify the bundle's model_signing signature.")] = None,
) -> None:
    """Verify bundles: integrity, signatures, re-execution and comparison of outputs."""
    from ogverify.cli.progress import StderrProgress
    from ogverify.evidence.execution import parse_key_values
    from ogverify.evidence.paths import require
    from ogverify.evidence.signing import load_trusted_keys
    from ogverify.report.formats import get_formatter
    from ogverify.runtime.runner import checked_timeout
    from ogverify.verify.gate import PolicySetting, apply_policy, resolve_policy, run_gate
    from ogverify.verify.pipeline import CheckOptions

    formatter = get_formatter(output_format, color=output is None and use_color())
    also = [
        (get_formatter(fmt).render, functools.partial(emit, output=Path(file)))
        for fmt, file in parse_key_values(also_reports or [], "--report").items()
    ]
    require_writable(output, "--output")
    for file in parse_key_values(also_reports or [], "--report").values():
        require_writable(Path(file), "--report")
    checked_timeout(timeout, "--timeout")
    if explain_budget < 0:
        raise UsageError("--explain-budget must be 0 or more")
    for path, option in ((candidate_model, "--candidate-model"), (model_signing_key, "--model-signing-key")):
        if path is not None:
            require(path, option)
    options = CheckOptions(
        trusted_keys=load_trusted_keys(trusted_keys or []),
        allow_unsigned=allow_unsigned,
        rerun=not no_rerun,
        timeout=timeout,
        explain=explain,
        explain_budget=explain_budget,
        candidate_model=candidate_model.resolve() if candidate_model is not None else None,
        while_waiting=formatter.load,
        model_signing_key=model_signing_key.resolve() if model_signing_key is not None else None,
    )
    given: dict[PolicySetting, str] = {"allow_unsigned": "allow_unsigned", "rerun": "no_rerun", "timeout": "timeout"}
    explicit = {k for k, p in given.items() if getattr(ctx.get_parameter_source(p), "name", "") == "COMMANDLINE"}
    policy = resolve_policy(policy_file, discover=not no_policy)
    if policy is not None and policy_file is None:
        echo(f"using policy {policy.source}")
    result = run_gate(
        bundles,
        apply_policy(options, policy, explicit),
        policy=policy,
        jobs=jobs,
        dask_scheduler=dask_scheduler,
        attest_keys=attest_keys or [],
        attest_dir=attest_dir,
        attestations=attestations or [],
        observer=StderrProgress(),
    )
    reports = result.reports
    emit(formatter.render(reports), output)
    for render, write in also:
        write(render(reports))
    if len(reports) > 1:  # for the person watching; the reports themselves went out above
        from ogverify.report.formats.text import render_summary

        sys.stderr.write(render_summary(reports))
    if result.unmatched_attestations:
        raise UsageError(f"attestation {result.unmatched_attestations[0]} is about none of the checked bundles")
    raise typer.Exit(result.exit_code)
