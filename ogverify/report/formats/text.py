"""Text reports for people: the verdict on the first line, then the findings as a tree.

Rendered with rich into a string (colour only when asked), so the CLI decides where it goes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ogverify.evidence.comparison import OutputComparison
from ogverify.report.findings import Finding, Report, Status, Verdict

WIDTH = 110
STATUS_STYLE = {
    Status.PASS: ("ok", "green"),
    Status.FAIL: ("FAIL", "bold red"),
    Status.ERROR: ("ERROR", "bold magenta"),
    Status.SKIP: ("skip", "dim"),
    Status.WARN: ("warn", "yellow"),
}
VERDICT_STYLE = {Verdict.VERIFIED: "bold green", Verdict.FAILED: "bold red", Verdict.ERROR: "bold magenta"}


def render_to_text(renderable: RenderableType, *, color: bool) -> str:
    """Render a rich renderable to a string of fixed width."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, soft_wrap=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _finding_label(finding: Finding) -> Text:
    word, style = STATUS_STYLE[finding.status]
    return Text.assemble((f"{word:<5} ", style), finding.message)


def _add_findings(tree: Tree, finding: Finding, depth: int) -> None:
    node = tree.add(_finding_label(finding))
    for child in finding.children:
        # Passing leaves are noise once their parent passed; failures always show.
        if child.status in (Status.PASS, Status.SKIP) and finding.status is Status.PASS and depth >= 0:
            continue
        _add_findings(node, child, depth + 1)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def comparison_table(comparisons: Sequence[OutputComparison]) -> Table:
    """Per-output numbers: equality, differing elements, diffs, ULPs, NaN/inf, argmax flips."""
    table = Table(title="outputs", title_justify="left", show_edge=False, pad_edge=False,
                  caption="bitwise: every bit equal; differing: elements whose bits differ; NaN/inf: elements "
                          "where only one side is NaN / where an infinity differs",
                  caption_justify="left")
    mode_width = max([len("mode"), *(len(str(c.spec)) for c in comparisons)])
    for column in ("output", "mode", "result", "bitwise", "differing", "max abs", "max rel", "max ULP",
                   "NaN/inf", "argmax flips"):
        # Names may be long: they fold; a mode (allclose:0.0001,1e-05) is one token and never
        # breaks; numbers never shrink to "…".
        wraps = column == "output"
        width = mode_width if column == "mode" else len(column)
        table.add_column(column, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis",
                         min_width=None if wraps else width)
    for c in comparisons:
        table.add_row(
            c.name, str(c.spec), "pass" if c.passed else "FAIL", "yes" if c.bitwise_equal else "no",
            f"{c.elements_differing}/{c.elements}", _number(c.max_abs_diff), _number(c.max_rel_diff),
            "-" if c.max_ulp is None else str(c.max_ulp), f"{c.nan_mismatches}/{c.inf_mismatches}",
            "-" if c.argmax_flips is None else str(c.argmax_flips),
        )
    return table


def report_renderable(report: Report) -> RenderableType:
    """One report below its headline: bundle identity, findings tree, output table."""
    parts: list[RenderableType] = []
    identity = f"bundle   {report.bundle}"
    if report.manifest_sha256:
        identity += f"\nmanifest sha256:{report.manifest_sha256}"
    parts.append(Text(identity))
    tree = Tree("findings", guide_style="dim")
    for finding in report.findings:
        _add_findings(tree, finding, 0)
    parts.append(tree)
    if report.comparisons:
        parts.append(comparison_table(report.comparisons))
    return Group(*parts)


class TextFormatter:
    """The default, human-readable format."""

    def __init__(self, *, color: bool = False) -> None:
        self.color = color

    def _headline(self, report: Report) -> str:
        # Never wrapped: `ogverify check B | head -1` must give the whole verdict and reason.
        cause = f"cause: {report.cause}\n" if report.cause else ""
        if not self.color:
            return report.headline + "\n" + cause
        return f"\x1b[{'32' if report.verdict is Verdict.VERIFIED else '31'};1m{report.headline}\x1b[0m\n" + cause

    def render(self, reports: Sequence[Report]) -> str:
        return "\n".join(self._headline(r) + render_to_text(report_renderable(r), color=self.color) for r in reports)


def render_summary(reports: Sequence[Report], *, color: bool = False) -> str:
    """Several reports in one table (bundle, verdict, reason), then a line counting the verdicts.

    For people watching a check of many bundles: the CLI writes it to stderr, whatever format
    the reports themselves go out in.
    """
    table = Table(title="summary", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("bundle", "verdict", "reason"):
        table.add_column(column)
    for r in reports:
        # Text(): a reason such as "output 'y' [exact]: ..." is not rich markup.
        table.add_row(Text(r.bundle), r.verdict.value, Text(r.headline.partition(": ")[2]))
    counts = ", ".join(f"{sum(r.verdict is v for r in reports)} {v.value}" for v in Verdict)
    return render_to_text(table, color=color) + f"{len(reports)} bundles: {counts}\n"


def _kv_table(rows: list[tuple[str, str]]) -> Table:
    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, value)
    return table


def render_inspection(summary: dict[str, Any], *, color: bool = False) -> str:
    """Text for ``ogverify inspect``."""
    execution = summary["execution"]
    session = execution["session_options"]
    entries = session["config_entries"]
    rows = [
        ("bundle", f"{summary['bundle']} ({summary['form']} form, format {summary['format_version']})"),
        ("manifest", f"sha256:{summary['manifest_sha256']}"),
        ("producer", f"{summary['producer'].get('tool')} {summary['producer'].get('version')}"),
        ("model", f"{summary['model']['name']}  {summary['model']['size']} bytes  "
                  f"blake3:{summary['model']['blake3'][:16]}…"),
    ]
    rows += [("model file", f"{f['name']}  {f['size']} bytes") for f in summary["model_files"]]
    rows += [
        ("runtime", f"onnxruntime {execution['runtime']['version']} on "
                    + ", ".join(p["name"] for p in execution["providers"])),
        ("session", f"{session['graph_optimization_level']}, intra {session['intra_op_num_threads']}, "
                    f"inter {session['inter_op_num_threads']}, {session['execution_mode']}"),
        ("config", ", ".join(f"{k}={v}" for k, v in entries.items()) or "(none)"),
        ("comparison", _comparison_text(summary["comparison"])),
        ("signatures", ", ".join(k[:12] for s in summary["signatures"] for k in s["keyids"]) or "(unsigned)"),
        ("size", f"{summary['totals']['size']} bytes in {summary['totals']['artifacts']} blobs, "
                 f"{summary['totals']['stored_size']} stored"),
    ]
    trace = summary.get("trace")
    if trace is not None:
        rows.append(("trace", f"{trace['outputs']} node outputs at {trace['level']} ({trace['bytes']} bytes"
                              + (f", {trace['omitted']} left out" if trace["omitted"] else "") + ")"))
    if summary.get("depends_on"):
        rows.append(("sensitivity", summary["depends_on"]))
    rows += [(f"annotation {k}", v) for k, v in summary["annotations"].items()]
    tensors = Table(show_edge=False, pad_edge=False)
    for column in ("kind", "name", "type", "bytes", "stored as"):
        tensors.add_column(column, no_wrap=True)
    for kind in ("inputs", "outputs"):
        for t in summary[kind]:
            described = t["type"] if "type" in t else f"{t['dtype']}[{','.join(str(d) for d in t['shape'])}]"
            tensors.add_row("input" if kind == "inputs" else "claimed output", t["name"],
                            described, str(t["size"]), t["encoding"])
    return render_to_text(Group(_kv_table(rows), Text(""), tensors), color=color)


def _comparison_text(comparison: dict[str, Any]) -> str:
    from ogverify.evidence.comparison import ComparisonSpec

    text = str(ComparisonSpec.from_json(comparison["default"]))
    overrides = [f"{name}: {ComparisonSpec.from_json(spec)}" for name, spec in comparison["outputs"].items()]
    return text + (f" ({'; '.join(overrides)})" if overrides else "")


def render_fingerprint(fingerprint: dict[str, Any], *, color: bool = False) -> str:
    """Text for ``ogverify fingerprint``."""
    rows = []

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, f"{prefix}.{key}" if prefix else key)
        else:
            rows.append((prefix, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))

    walk(fingerprint, "")
    return render_to_text(_kv_table(rows), color=color)
