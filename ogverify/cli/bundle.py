"""``inspect`` and ``extract``: what a bundle holds, and its files unpacked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ogverify.cli.common import TextJsonFormatOption, echo, emit, emit_json, guarded, require_format, use_color


@guarded
def inspect(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to describe.")],
    output_format: TextJsonFormatOption = "text",
) -> None:
    """Show what a bundle holds, from its manifest: nothing is executed or verified."""

    from ogverify.evidence.inspection import inspect_bundle
    from ogverify.report.formats.text import render_inspection

    require_format(output_format, "text", "json")
    summary = inspect_bundle(bundle)
    if output_format == "json":
        emit_json(summary)
    else:
        emit(render_inspection(summary, color=use_color()))


@guarded
def extract(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to unpack.")],
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Target directory (must not exist or be empty).")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty target directory.")] = False,
) -> None:
    """Unpack model files, tensors (.npy) and manifest, verifying every blob."""
    from ogverify.evidence.extract import extract_bundle

    target = extract_bundle(bundle, directory, overwrite=force)
    echo(f"extracted {bundle} into {target}")
