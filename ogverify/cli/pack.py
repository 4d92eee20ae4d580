"""``pack``: a model, its inputs and its outputs into an evidence bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ogverify.cli.common import (
    ExecutionModeOption,
    ForceBundleOption,
    InterThreadsOption,
    RunConfigOption,
    SessionConfigOption,
    SignKeysOption,
    ThreadsOption,
    echo,
    execution_options,
    guarded,
)
from ogverify.errors import UsageError

# pack records a trace unless told not to, when the model runs here: one more run of the model,
# in the process that records the environment (docs/drift.md, "Default and cost").
TRACE_BY_DEFAULT: Literal["auto"] = "auto"


@guarded
def pack(
    model: Annotated[Path, typer.Argument(
        metavar="MODEL", help="The ONNX model (external-data files beside it are packed too).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="BUNDLE", help="Bundle to write: NAME.ogb for one file, else a directory.")],
    input_args: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="NAME=PATH",
        help="A model input: .npy, .npz (all arrays), ONNX .pb, or .json (sequences, maps). Repeatable.")] = None,
    output_args: Annotated[list[str] | None, typer.Option(
        "--claimed-output", "-O", metavar="NAME=PATH",
        help="An output the producer claims, same file forms. Repeatable.")] = None,
    run: Annotated[bool, typer.Option("--run", help="Compute the outputs now (fresh process) instead.")] = False,
    test_data: Annotated[Path | None, typer.Option(
        "--test-data", metavar="DIR", help="An ONNX test_data_set_N dir of input_*.pb / output_*.pb.")] = None,
    opt_level: Annotated[str, typer.Option(
        "--opt-level", metavar="LEVEL", help="Graph optimisation: disable, basic, extended, layout or all.")] = "all",
    threads: ThreadsOption = None,
    inter_threads: InterThreadsOption = 1,
    execution_mode: ExecutionModeOption = "sequential",
    providers: Annotated[list[str] | None, typer.Option(
        "--provider", metavar="NAME",
        help="Execution provider, in priority order. Default: CPUExecutionProvider.")] = None,
    session_config: SessionConfigOption = None,
    run_config: RunConfigOption = None,
    compare: Annotated[str, typer.Option(
        "--compare", metavar="MODE", help="exact, ulp:N, allclose:RTOL,ATOL, topk:K or decimal:D,...")] = "exact",
    compare_output: Annotated[list[str] | None, typer.Option(
        "--compare-output", metavar="NAME=MODE", help="Comparison for one output. Repeatable.")] = None,
    sign_keys: SignKeysOption = None,
    annotate: Annotated[list[str] | None, typer.Option(
        "--annotate", metavar="KEY=VALUE", help="Free-form note in the manifest. Repeatable.")] = None,
    sha256: Annotated[bool, typer.Option("--sha256", help="Add per-blob sha256 digests and signed subjects.")] = False,
    force: ForceBundleOption = False,
    model_cid: Annotated[str | None, typer.Option(
        "--model-cid", metavar="CID", help="The model's IPFS CID, as claimed; check verifies it.")] = None,
    model_signature: Annotated[Path | None, typer.Option(
        "--model-signature", metavar="SIG",
        help="The publisher's model_signing signature of the model files, to attach.")] = None,
    trace: Annotated[bool | None, typer.Option(
        "--trace/--no-trace", help="Record a digest and sketch of every node output (docs/drift.md); "
        "default: when the model runs here.")] = None,
    profile: Annotated[bool, typer.Option(
        "--profile", help="Record which configuration knobs change this model's output bits.")] = False,
) -> None:
    """Pack a model, its inputs and its outputs into an evidence bundle."""
    from ogverify.evidence.bundle import check_writable
    from ogverify.evidence.execution import parse_key_values
    from ogverify.evidence.manifest import Provenance
    from ogverify.evidence.paths import require
    from ogverify.model.signature import read_signature
    from ogverify.packing.pack import assign_tensors, load_test_data, pack

    if run and output_args:
        raise UsageError("--run computes the outputs; do not also give --claimed-output")
    require(model, "model")
    config, comparison = execution_options(
        opt_level=opt_level,
        threads=threads,
        inter_threads=inter_threads,
        execution_mode=execution_mode,
        providers=providers,
        session_config=session_config,
        run_config=run_config,
        compare=compare,
        compare_output=compare_output,
    )
    signature = read_signature(model)
    inputs: dict[str, Any] = {}
    claimed: dict[str, Any] | None = None
    if test_data is not None:
        inputs, claimed = load_test_data(test_data, signature)
    inputs.update(assign_tensors(input_args or [], signature.inputs, "--input"))
    if output_args:
        claimed = {**(claimed or {}), **assign_tensors(output_args, signature.outputs, "--claimed-output")}
    if run:
        claimed = None
    elif claimed is None:
        raise UsageError("no outputs: give --claimed-output NAME=PATH, --test-data DIR, or --run")
    signature.check_inputs(inputs)  # before announcing a run that could not start
    if model_cid is not None:
        from ogverify.evidence.cid import parse_cid

        parse_cid(model_cid)
    if run:
        check_writable(out, overwrite=force)  # before announcing a run whose result could not be written
        echo("running the model in a fresh process to compute its outputs...")
    result = pack(
        model,
        out,
        inputs=inputs,
        claimed_outputs=claimed,
        config=config,
        comparison=comparison,
        sign_keys=sign_keys or [],
        annotations=parse_key_values(annotate or [], "--annotate"),
        with_sha256=sha256,
        overwrite=force,
        provenance=Provenance(model_cid=model_cid) if model_cid is not None else None,
        model_signature=model_signature,
        trace=TRACE_BY_DEFAULT if trace is None else trace,
        profile=profile,
    )
    if result.trace_skipped:
        echo(f"no trace recorded (the model does not run here): {result.trace_skipped}")
    signed = f", signed by {', '.join(k[:12] for k in result.signed_by)}" if result.signed_by else ", unsigned"
    echo(f"wrote {result.path} (manifest sha256:{result.manifest_sha256}{signed})")
