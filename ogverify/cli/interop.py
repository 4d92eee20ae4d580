"""Commands for evidence in other systems' formats: ``cid``, ``import``, ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import emit, guarded, require_format
from ogverify.errors import UsageError

# --- cid -----------------------------------------------------------------------------------


@guarded
def cid(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Files to name, e.g. a model.")],
    output_format: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text or json.")] = "text",
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
        emit(json.dumps(document, indent=2) + "\n")
    else:
        emit("".join(f"{cids.v0} {cids.v1} {path}\n" for path, cids in named))


# --- export --------------------------------------------------------------------------------

export_app = typer.Typer(help="Write a bundle in another system's format.", no_args_is_help=True)


@export_app.command("cyclonedx")
@guarded
def export_cyclonedx(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="The bundle to describe.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Where to write the BOM (JSON).")],
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="A check report of this bundle (check --format json): "
                     "its verdict goes into the BOM."),
    ] = None,
) -> None:
    """Write a CycloneDX 1.6 ML-BOM: the model, its input and output tensors, the runtime, the verdict."""
    from ogverify.interop.cyclonedx import dumps, export_bundle

    if not bundle.exists():
        raise UsageError(f"bundle {bundle} does not exist")
    emit(dumps(export_bundle(bundle, report)), out)
