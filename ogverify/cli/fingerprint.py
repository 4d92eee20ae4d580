"""``fingerprint``: this machine's execution-environment fingerprint."""

from __future__ import annotations

from ogverify.cli.common import TextJsonFormatOption, emit, emit_json, guarded, require_format, use_color


@guarded
def fingerprint(
    output_format: TextJsonFormatOption = "text",
) -> None:
    """Print this machine's execution-environment fingerprint."""

    from ogverify.report.formats.text import render_fingerprint
    from ogverify.runtime.fingerprint import capture

    require_format(output_format, "text", "json")
    current = capture()
    if output_format == "json":
        emit_json(current)
    else:
        emit(render_fingerprint(current, color=use_color()))
