"""Commands for evidence in other systems' formats: ``cid``, ``import``, ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import emit, guarded, require_format

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

