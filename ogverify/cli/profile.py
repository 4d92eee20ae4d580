"""``ogverify profile``: which configuration knobs change a model's output bits on given inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import TextJsonFormatOption, emit, emit_json, guarded, require_format
from ogverify.errors import UsageError


@guarded
def profile(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="The ONNX model.")],
    input_args: Annotated[list[str] | None, typer.Option(
        "--input", "-i", metavar="NAME=PATH", help="A model input (.npy, .npz, .pb). Repeatable.")] = None,
    output_format: TextJsonFormatOption = "text",
    opt_level: Annotated[str, typer.Option(
        "--opt-level", metavar="LEVEL",
        help="Baseline optimisation: disable, basic, extended, layout or all.")] = "all",
    threads: Annotated[int | None, typer.Option(
        "--threads", metavar="N",
        help="Baseline intra_op_num_threads (default: as pack records it, this machine's physical cores).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", metavar="N", help="Trial processes at once (default: the cores).")] = None,
) -> None:
    """Measure which configuration knobs change a model's output bits on given inputs.

    Varies each alone from the baseline: the optimisation level, intra-op threads, execution mode,
    prepacking, the GELU approximation, denormals, and each graph transformer the model triggers.
    """
    import tempfile

    from ogverify.evidence.execution import ExecutionConfig, parse_opt_level
    from ogverify.model.signature import read_signature
    from ogverify.packing.pack import assign_tensors, require_tensors, runtime_version
    from ogverify.runtime.sensitivity import describe, profile_model
    from ogverify.runtime.threads import resolve_threads

    require_format(output_format, "text", "json")
    if not model.is_file():
        raise UsageError(f"model {model} does not exist")
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    signature = read_signature(model)
    inputs = assign_tensors(input_args or [], signature.inputs, "--input")
    signature.check_inputs(inputs)
    config = ExecutionConfig(runtime_version=runtime_version(), graph_optimization_level=parse_opt_level(opt_level),
                             intra_op_num_threads=resolve_threads(threads))
    with tempfile.TemporaryDirectory(prefix="ogverify-profile-") as work:
        result = profile_model(model.resolve(), require_tensors(inputs, "profile"), config, Path(work), parallel=jobs)
    if output_format == "json":
        emit_json(result.to_json())
        return
    from ogverify.evidence.trace import knob_phrase

    sensitive = [knob_phrase(k.knob) for k in result.sensitive()]
    head = (f"this model's outputs depend on {_join(sensitive)}" if sensitive
            else "no knob tried changes this model's output bits on these inputs")
    emit("\n".join([head, *(f"  {line}" for line in describe(result))]) + "\n")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
