"""Commands for evidence in other systems' formats: ``cid``, ``import``, ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import (
    ForceBundleOption,
    SignKeysOption,
    TextJsonFormatOption,
    echo,
    emit,
    emit_json,
    guarded,
    require_format,
)
from ogverify.errors import UsageError

# --- cid -----------------------------------------------------------------------------------


@guarded
def cid(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Files to name, e.g. a model.")],
    output_format: TextJsonFormatOption = "text",
) -> None:
    """Print each file's IPFS CIDs as `ipfs add` computes them: CIDv0, then CIDv1 (raw leaves).

    256 KiB chunks, balanced DAG of at most 174 links, UnixFS in dag-pb, sha2-256: the CIDv1 is
    what `ipfs add --cid-version 1` prints.
    """
    from ogverify.evidence.cid import file_cids

    require_format(output_format, "text", "json")
    named = [(path, file_cids(path)) for path in files]
    if output_format == "json":
        document = [{"file": str(path), **cids.to_json()} for path, cids in named]
        emit_json(document)
    else:
        emit("".join(f"{cids.v0} {cids.v1} {path}\n" for path, cids in named))


# --- export --------------------------------------------------------------------------------

export_app = typer.Typer(help="Write a bundle in another system's format.", no_args_is_help=True)


@export_app.command("cyclonedx")
@guarded
def export_cyclonedx(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The bundle to describe.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the BOM (JSON).")],
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="FILE",
        help="A check report of this bundle (check --format json): its verdict goes into the BOM.")] = None,
) -> None:
    """Write a CycloneDX 1.6 ML-BOM: the model, its input and output tensors, the runtime, the verdict."""
    from ogverify.interop.cyclonedx import dumps, export_bundle

    if not bundle.exists():
        raise UsageError(f"bundle {bundle} does not exist")
    emit(dumps(export_bundle(bundle, report)), out)

# --- import --------------------------------------------------------------------------------

import_app = typer.Typer(help="Make a bundle from evidence recorded elsewhere.", no_args_is_help=True)


@import_app.command("opengradient")
@guarded
def import_opengradient(
    model: Annotated[Path, typer.Option(
        "--model", metavar="MODEL", help="The ONNX model; its CID must be the record's modelId.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="BUNDLE", help="Bundle to write (.ogb: one file).")],
    tx: Annotated[Path | None, typer.Option(
        "--tx", metavar="TX.json", help="The run() transaction (eth_getTransactionByHash result).")] = None,
    receipt: Annotated[Path | None, typer.Option(
        "--receipt", metavar="RECEIPT.json", help="Its receipt (eth_getTransactionReceipt result).")] = None,
    input_json: Annotated[Path | None, typer.Option(
        "--input-json", metavar="FILE", help="Or: the SDK's model input (numbers, strings).")] = None,
    output_json: Annotated[Path | None, typer.Option(
        "--output-json", metavar="FILE",
        help="and the SDK's ModelOutput (numbers, strings, jsons, is_simulation_result).")] = None,
    inference_mode: Annotated[str, typer.Option(
        "--inference-mode", metavar="MODE", help="With --input-json: VANILLA, ZKML or TEE.")] = "VANILLA",
    sign_keys: SignKeysOption = None,
    force: ForceBundleOption = False,
) -> None:
    """Make a bundle of an OpenGradient on-chain ONNX inference, decoded as the OpenGradient SDK does.

    Number outputs are compared in decimal mode: at the decimals the chain kept for each element.
    """
    from dataclasses import replace

    from ogverify.interop.opengradient import INFERENCE_MODES, read_record, read_sdk_json
    from ogverify.packing.opengradient import import_record

    if (tx is None) != (receipt is None) or (input_json is None) != (output_json is None) \
            or (tx is None) == (input_json is None):
        raise UsageError("give --tx and --receipt, or --input-json and --output-json")
    if not model.is_file():
        raise UsageError(f"model {model} does not exist")
    if tx is not None and receipt is not None:
        record, files = read_record(tx, receipt)
    else:
        assert input_json is not None and output_json is not None
        if inference_mode not in INFERENCE_MODES:
            raise UsageError(f"unknown --inference-mode {inference_mode!r}; use VANILLA, ZKML or TEE")
        from ogverify.evidence.cid import file_cids

        record, files = read_sdk_json(input_json, output_json, file_cids(model).v0)
        record = replace(record, inference_mode=inference_mode)
    result = import_record(model, out, record, files, sign_keys=sign_keys or [], overwrite=force)
    if record.model_output.is_simulation_result:
        echo("warning: the record is a simulation result: its output never settled on chain")
    signed = f", signed by {', '.join(k[:12] for k in result.signed_by)}" if result.signed_by else ", unsigned"
    echo(f"wrote {result.path} (manifest sha256:{result.manifest_sha256}{signed})")
