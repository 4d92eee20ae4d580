"""``ogverify log ...`` (make and prove an evidence log) and ``ogverify audit`` (sample and verify one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ogverify.cli.common import (
    ExecutionModeOption,
    InterThreadsOption,
    ReportFormatOption,
    RunConfigOption,
    SessionConfigOption,
    ThreadsOption,
    echo,
    emit,
    emit_json,
    execution_options,
    guarded,
    require_writable,
    typer_group,
)
from ogverify.errors import UsageError

log_app = typer_group("Evidence logs: one model and configuration, an append-only Merkle log of inference records.")

LogArg = Annotated[str, typer.Argument(metavar="LOG", help="The log: a directory or an fsspec URL (s3://...).")]
RecordIndexOption = Annotated[int, typer.Option("--index", metavar="I", help="The record.")]


@log_app.command()
@guarded
def init(
    log: LogArg,
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="The ONNX model every record runs.")],
    opt_level: Annotated[str, typer.Option("--opt-level", metavar="LEVEL",
                                           help="disable, basic, extended, layout or all.")] = "all",
    threads: ThreadsOption = None,
    inter_threads: InterThreadsOption = 1,
    execution_mode: ExecutionModeOption = "sequential",
    providers: Annotated[list[str] | None, typer.Option("--provider", metavar="NAME",
                                                        help="Execution provider, in priority order.")] = None,
    session_config: SessionConfigOption = None,
    run_config: RunConfigOption = None,
    compare: Annotated[str, typer.Option("--compare", metavar="MODE",
                                         help="exact, ulp:N, allclose:RTOL,ATOL or topk:K.")] = "exact",
    compare_output: Annotated[list[str] | None, typer.Option("--compare-output", metavar="NAME=MODE",
                                                             help="Comparison for one output.")] = None,
    origin: Annotated[str | None, typer.Option("--origin", metavar="ORIGIN",
                                               help="The checkpoints' origin line (default: from the model).")] = None,
    annotate: Annotated[list[str] | None, typer.Option("--annotate", metavar="KEY=VALUE",
                                                       help="Free-form note in every record's manifest.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Start an existing log again, empty.")] = False,
) -> None:
    """Create an evidence log for MODEL under pack's execution options."""
    from ogverify.evidence.execution import parse_key_values
    from ogverify.packing.log import EvidenceLog

    config, policy = execution_options(
        opt_level=opt_level, threads=threads, inter_threads=inter_threads, execution_mode=execution_mode,
        providers=providers, session_config=session_config, run_config=run_config,
        compare=compare, compare_output=compare_output)
    created = EvidenceLog.create(log, model, config=config, comparison=policy, origin=origin,
                                 annotations=parse_key_values(annotate or [], "--annotate"), overwrite=force)
    typer.echo(f"created log {log} (origin {created.origin})", err=True)


def _npz(path: Path, what: str) -> dict[str, Any]:
    from ogverify.model.tensors import load_tensor_file

    if path.suffix != ".npz":
        raise UsageError(f"{what} {path}: expected an .npz file")
    return load_tensor_file(path, f"{what} {path}")


@log_app.command()
@guarded
def append(
    log: LogArg,
    input_args: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="NAME=PATH", help="A record's input (.npy, .npz, .pb). Repeatable.")] = None,
    output_args: Annotated[list[str] | None, typer.Option(
        "--claimed-output", "-O", metavar="NAME=PATH", help="An output the producer claims. Repeatable.")] = None,
    inputs_npz: Annotated[Path | None, typer.Option(
        "--inputs-npz", metavar="X.npz",
        help="Many records' inputs: the first axis of every array indexes them.")] = None,
    claimed_npz: Annotated[Path | None, typer.Option(
        "--claimed-npz", metavar="Y.npz", help="Their claimed outputs, row for row.")] = None,
    run: Annotated[bool, typer.Option("--run", help="Compute the outputs now instead of claiming them.")] = False,
    trace: Annotated[bool, typer.Option(
        "--trace", help="Record each record's trace of node outputs (one more run per record).")] = False,
) -> None:
    """Append one record (-i ... with --claimed-output or --run) or many (--inputs-npz); prints their indices."""
    from ogverify.packing.log import EvidenceLog
    from ogverify.packing.pack import assign_tensors

    if inputs_npz is not None and input_args:
        raise UsageError("give records either with -i or with --inputs-npz, not both")
    if inputs_npz is None and not input_args:
        raise UsageError("no record: give -i NAME=PATH or --inputs-npz X.npz")
    claims_given = bool(output_args) or claimed_npz is not None
    if run == claims_given:
        raise UsageError("give the claimed outputs (--claimed-output / --claimed-npz) or --run, exactly one")
    if inputs_npz is None and claimed_npz is not None:
        raise UsageError("--claimed-npz goes with --inputs-npz")
    if inputs_npz is not None and output_args:
        raise UsageError("--inputs-npz goes with --claimed-npz, not --claimed-output")
    with EvidenceLog.open(log) as opened:
        if inputs_npz is not None:
            if run:
                typer.echo("running the model for every record...", err=True)
            indices = opened.append_batch(_npz(inputs_npz, "--inputs-npz"),
                                          None if claimed_npz is None else _npz(claimed_npz, "--claimed-npz"),
                                          trace=trace)
        else:
            signature = opened.signature()
            inputs = assign_tensors(input_args or [], signature.inputs, "--input")
            claimed = None if run else assign_tensors(output_args or [], signature.outputs, "--claimed-output")
            indices = range(opened.append(inputs, claimed, trace=trace), opened.size)
    typer.echo("\n".join(str(i) for i in indices))
    typer.echo(f"appended {len(indices)} record(s) to {log}", err=True)


@log_app.command()
@guarded
def checkpoint(
    log: LogArg,
    sign: Annotated[list[Path], typer.Option("--sign", metavar="KEY", help="Private key to sign with. Repeatable.")],
    key_name: Annotated[str | None, typer.Option(
        "--key-name", metavar="NAME", help="The key's name in the note (default: the log's origin).")] = None,
) -> None:
    """Sign the log's tree size and root: a C2SP tlog-checkpoint in a signed note, printed and kept in the log."""
    from ogverify.packing.log import EvidenceLog

    with EvidenceLog.open(log) as opened:
        typer.echo(opened.checkpoint(sign, key_name).decode("utf-8"), nl=False)


@log_app.command()
@guarded
def prove(
    log: LogArg,
    index: RecordIndexOption,
    size: Annotated[int | None, typer.Option("--size", metavar="N", help="The tree size (default: all).")] = None,
) -> None:
    """Print the RFC 9162 inclusion proof of record I (JSON, hex SHA-256)."""
    from ogverify.packing.log import EvidenceLog

    with EvidenceLog.open(log) as opened:
        emit_json(opened.prove(index, size).to_json())


@log_app.command()
@guarded
def consistency(
    log: LogArg,
    first: Annotated[int, typer.Option("--from", metavar="M", help="The earlier tree size.")],
    second: Annotated[int | None, typer.Option("--to", metavar="N", help="The later tree size (default: all).")] = None,
) -> None:
    """Print the RFC 9162 consistency proof from tree size M to N (JSON, hex SHA-256)."""
    from ogverify.packing.log import EvidenceLog

    with EvidenceLog.open(log) as opened:
        emit_json(opened.consistency(first, second).to_json())


@guarded
def audit(
    log: LogArg,
    trusted_keys: Annotated[list[Path], typer.Option(
        "--trusted-key", "-k", metavar="PUB", help="Public key trusted to sign checkpoints. Repeatable.")],
    previous: Annotated[Path | None, typer.Option(
        "--previous-checkpoint", metavar="FILE", help="A checkpoint kept from an earlier audit.")] = None,
    sample: Annotated[str | None, typer.Option(
        "--sample", metavar="N|all",
        help="Records to re-execute (default: the fewest --max-failure-rate needs).")] = None,
    confidence: Annotated[float, typer.Option("--confidence", metavar="C", help="Confidence of the bound.")] = 0.95,
    max_failure_rate: Annotated[float | None, typer.Option(
        "--max-failure-rate", metavar="P", help="Fail unless at most this share of records can fail (0.01).")] = None,
    seed: Annotated[str | None, typer.Option(
        "--seed", metavar="HEX", help="The sample's nonce, to repeat an audit (default: random, printed).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="N", help="Worker processes.")] = 1,
    dask_scheduler: Annotated[str | None, typer.Option(
        "--dask-scheduler", metavar="ADDRESS", help="Re-execute on this Dask cluster.")] = None,
    output_format: ReportFormatOption = "text",
    output: Annotated[Path | None, typer.Option("--output", metavar="FILE", help="Write the report here.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS", help="Seconds one run may take.")] = 600.0,
    explain: Annotated[bool, typer.Option("--explain/--no-explain",
                                          help="Search why failed records do not reproduce.")] = True,
    explain_budget: Annotated[int, typer.Option(
        "--explain-budget", metavar="RUNS", help="Most trial runs one record's explanation may spend.")] = 32,
    explain_records: Annotated[int, typer.Option(
        "--explain-records", metavar="N", help="Most failed records to explain.")] = 3,
) -> None:
    """Audit an evidence log: trust its checkpoint, prove it append-only, re-execute a sample, bound the rest."""
    from ogverify.evidence.signing import load_trusted_keys
    from ogverify.report.formats import get_formatter
    from ogverify.verify.audit import AuditOptions, audit_log, parse_sample, parse_seed

    if previous is not None and not previous.is_file():
        raise UsageError(f"--previous-checkpoint {previous} does not exist")
    formatter = None if output_format == "json" else get_formatter(output_format, color=False)
    require_writable(output, "--output")
    options = AuditOptions(
        trusted_keys=load_trusted_keys(trusted_keys),
        previous_checkpoint=previous.read_bytes() if previous is not None else None,
        sample=parse_sample(sample), confidence=confidence, max_failure_rate=max_failure_rate,
        seed=parse_seed(seed), jobs=jobs, dask_scheduler=dask_scheduler, timeout=timeout, explain=explain,
        explain_budget=explain_budget, explain_records=explain_records,
    )
    result = audit_log(log, options, progress=echo)
    if formatter is None:
        emit_json(result.to_json(), output)
    else:
        emit(formatter.render([result.report]), output)
    echo(result.statement)
    raise typer.Exit(int(result.exit_code))


@log_app.command()
@guarded
def export(
    log: LogArg,
    index: RecordIndexOption,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="BUNDLE", help="The bundle to write (.ogb: one file).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")] = False,
) -> None:
    """Write record I as a bundle, signed through the log (inclusion proof and the latest checkpoint)."""
    from ogverify.packing.log import EvidenceLog

    with EvidenceLog.open(log) as opened:
        path = opened.export(index, out, overwrite=force)
    typer.echo(f"wrote {path}", err=True)
