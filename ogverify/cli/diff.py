"""``diff``: what differs between two models or two bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import TextJsonFormatOption, emit, emit_json, guarded, require_format


@guarded
def diff(
    a: Annotated[Path, typer.Argument(metavar="A", help="A model (.onnx) or a bundle.")],
    b: Annotated[Path, typer.Argument(metavar="B", help="Another model or bundle, of the same kind as A.")],
    output_format: TextJsonFormatOption = "text",
) -> None:
    """Show what differs between two models or bundles: tensors, attributes, opsets, config, environment.

    Exits 0 when nothing differs and 1 when something does.
    """

    from ogverify.evidence.paths import require
    from ogverify.verify.diff import diff_paths

    require_format(output_format, "text", "json")
    for path in (a, b):
        require(path, "", want="file or directory")
    difference = diff_paths(a, b)
    if output_format == "json":
        emit_json(difference.to_json())
    else:
        lines = difference.summary_lines()
        header = (
            f"identical: {a} and {b}" if difference.identical else f"{len(lines)} difference(s) between {a} and {b}"
        )
        emit("\n".join([header, *(f"  {line}" for line in lines)]) + "\n")
    raise typer.Exit(0 if difference.identical else 1)
