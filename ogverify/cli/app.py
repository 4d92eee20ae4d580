"""The ``ogverify`` command line: the only module that parses arguments, prints and exits.

Heavy libraries (onnxruntime, onnx, numpy) are imported inside the commands, so that
``ogverify --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from ogverify import __version__
from ogverify.errors import ExitCode, OgverifyError, UsageError

P = ParamSpec("P")
R = TypeVar("R")

HELP = """Pack the evidence of an AI inference into a signed, content-addressed bundle, and
check it by re-executing the model under the recorded configuration.

Exit codes: 0 verified, 1 verification failed (the evidence does not hold),
2 usage error, 3 could not verify (unreadable bundle, internal error)."""

app = typer.Typer(
    help=HELP,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100},
)


def _fail(message: str, code: int, detail: str = "") -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if detail and os.environ.get("OGVERIFY_DEBUG"):
        typer.echo(detail, err=True)
    raise typer.Exit(code)


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn every error into one line on stderr and the right exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except OgverifyError as exc:
            _fail(exc.message, int(exc.exit_code), exc.detail)
        except KeyboardInterrupt as exc:
            from ogverify.evidence.bundle import remove_unfinished

            remove_unfinished()  # staging files an interruption caught before their clean-up was in place
            if isinstance(exc, Terminated):
                _fail("terminated", 128 + signal.SIGTERM)
            _fail("interrupted", 130)
        except MemoryError:
            _fail("out of memory", int(ExitCode.CANNOT_VERIFY))
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), int(ExitCode.CANNOT_VERIFY))
        except Exception as exc:  # the promise: no traceback, and never exit 0 or 1 on a crash
            import traceback

            _fail(f"internal error: {type(exc).__name__}: {exc}", int(ExitCode.CANNOT_VERIFY), traceback.format_exc())

    return wrapper


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from ogverify.evidence.bundle import write_member_atomically

    if not output.parent.is_dir():
        raise UsageError(f"directory {output.parent} does not exist")
    write_member_atomically(output, text.encode("utf-8"))
    typer.echo(f"wrote {output}", err=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ogverify {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Pack and check evidence bundles of ONNX inferences."""


# --- keygen --------------------------------------------------------------------------------


@app.command()
@guarded
def keygen(
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="KEY", help="Private key file; the public key goes to KEY.pub.")
    ] = Path("ogverify.key"),
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Create an ed25519 signing key pair (private key file mode 0600)."""
    from ogverify.evidence.signing import generate_key_pair

    private, public, keyid = generate_key_pair(out, overwrite=force)
    typer.echo(f"wrote {private} (private, keep it secret) and {public}", err=True)
    typer.echo(f"keyid {keyid}")


# --- pack ----------------------------------------------------------------------------------


@app.command()
@guarded
def pack(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="The ONNX model (external-data files beside it are packed too).")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="BUNDLE", help="Bundle to write: NAME.ogb for one file, else a directory."),
    ],
    input_args: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="NAME=PATH",
            help="A model input: .npy, .npz (all arrays) or ONNX TensorProto .pb. Repeatable.",
        ),
    ] = None,
    output_args: Annotated[
        list[str] | None,
        typer.Option(
            "--claimed-output",
            "-O",
            metavar="NAME=PATH",
            help="An output the producer claims, same file forms. Repeatable.",
        ),
    ] = None,
    run: Annotated[bool, typer.Option("--run", help="Compute the outputs now (fresh process) instead.")] = False,
    test_data: Annotated[
        Path | None,
        typer.Option("--test-data", metavar="DIR", help="An ONNX test_data_set_N dir of input_*.pb / output_*.pb."),
    ] = None,
    opt_level: Annotated[
        str,
        typer.Option(
            "--opt-level", metavar="LEVEL", help="Graph optimisation: disable, basic, extended, layout or all."
        ),
    ] = "all",
    threads: Annotated[
        int, typer.Option("--threads", metavar="N", help="intra_op_num_threads (0 = runtime default).")
    ] = 1,
    inter_threads: Annotated[int, typer.Option("--inter-threads", metavar="N", help="inter_op_num_threads.")] = 1,
    execution_mode: Annotated[
        str, typer.Option("--execution-mode", metavar="MODE", help="sequential or parallel.")
    ] = "sequential",
    providers: Annotated[
        list[str] | None,
        typer.Option(
            "--provider", metavar="NAME", help="Execution provider, in priority order. Default: CPUExecutionProvider."
        ),
    ] = None,
    session_config: Annotated[
        list[str] | None,
        typer.Option("--session-config", metavar="KEY=VALUE", help="Session config entry. Repeatable."),
    ] = None,
    run_config: Annotated[
        list[str] | None,
        typer.Option("--run-config", metavar="KEY=VALUE", help="Run-options config entry. Repeatable."),
    ] = None,
    compare: Annotated[
        str, typer.Option("--compare", metavar="MODE", help="exact, ulp:N, allclose:RTOL,ATOL or topk:K.")
    ] = "exact",
    compare_output: Annotated[
        list[str] | None,
        typer.Option("--compare-output", metavar="NAME=MODE", help="Comparison for one output. Repeatable."),
    ] = None,
    sign_keys: Annotated[
        list[Path] | None, typer.Option("--sign", metavar="KEY", help="Sign with this private key. Repeatable.")
    ] = None,
    annotate: Annotated[
        list[str] | None,
        typer.Option("--annotate", metavar="KEY=VALUE", help="Free-form note in the manifest. Repeatable."),
    ] = None,
    sha256: Annotated[bool, typer.Option("--sha256", help="Add per-blob sha256 digests and signed subjects.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle at --out.")] = False,
) -> None:
    """Pack a model, its inputs and its outputs into an evidence bundle."""
    from ogverify.evidence.comparison import ComparisonSpec
    from ogverify.evidence.manifest import ComparisonPolicy
    from ogverify.model.signature import read_signature
    from ogverify.packing.pack import assign_tensors, load_test_data, pack, runtime_version
    from ogverify.runtime.config import (
        ExecutionConfig,
        ProviderSpec,
        parse_execution_mode,
        parse_key_values,
        parse_opt_level,
    )

    if run and output_args:
        raise UsageError("--run computes the outputs; do not also give --claimed-output")
    if not model.is_file():
        raise UsageError(f"model {model} does not exist")
    config = ExecutionConfig(
        runtime_version=runtime_version(),
        providers=tuple(ProviderSpec(name) for name in (providers or ["CPUExecutionProvider"])),
        graph_optimization_level=parse_opt_level(opt_level),
        intra_op_num_threads=threads,
        inter_op_num_threads=inter_threads,
        execution_mode=parse_execution_mode(execution_mode),
        config_entries=parse_key_values(session_config or [], "--session-config"),
        run_config_entries=parse_key_values(run_config or [], "--run-config"),
    )
    comparison = ComparisonPolicy(
        ComparisonSpec.parse(compare),
        {
            name: ComparisonSpec.parse(mode)
            for name, mode in parse_key_values(compare_output or [], "--compare-output").items()
        },
    )
    signature = read_signature(model)
    inputs: dict[str, Any] = {}
    claimed: dict[str, Any] | None = None
    if test_data is not None:
        inputs, claimed = load_test_data(test_data, signature)
    inputs.update(assign_tensors(input_args or [], signature.input_names, "--input"))
    if output_args:
        claimed = {**(claimed or {}), **assign_tensors(output_args, signature.output_names, "--claimed-output")}
    if run:
        claimed = None
    elif claimed is None:
        raise UsageError("no outputs: give --claimed-output NAME=PATH, --test-data DIR, or --run")
    signature.check_inputs(inputs)  # before announcing a run that could not start
    if run:
        typer.echo("running the model in a fresh process to compute its outputs...", err=True)
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
    )
    signed = f", signed by {', '.join(k[:12] for k in result.signed_by)}" if result.signed_by else ", unsigned"
    typer.echo(f"wrote {result.path} (manifest sha256:{result.manifest_sha256}{signed})", err=True)


# --- sign ----------------------------------------------------------------------------------


@app.command()
@guarded
def sign(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to sign (either form).")],
    keys: Annotated[list[Path], typer.Option("--key", "-k", metavar="KEY", help="Private key. Repeatable.")],
) -> None:
    """Add a signature (DSSE envelope over an in-toto statement) to a bundle."""
    from ogverify.evidence.signing import sign_bundle

    for key in keys:
        keyid = sign_bundle(bundle, key)
        typer.echo(f"signed {bundle} with key {keyid[:12]}", err=True)


# --- check ---------------------------------------------------------------------------------


@app.command()
@guarded
def check(
    ctx: typer.Context,
    bundles: Annotated[
        list[str],
        typer.Argument(
            metavar="BUNDLE",
            help="Bundles to check: .ogb files, bundle directories, directories of bundles, quoted globs or URLs.",
        ),
    ],
    trusted_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key", "-k", metavar="PUB", help="Trusted public key, or a directory of .pub files. Repeatable."
        ),
    ] = None,
    allow_unsigned: Annotated[
        bool, typer.Option("--allow-unsigned", help="Accept bundles with no signature from a trusted key.")
    ] = False,
    no_rerun: Annotated[
        bool, typer.Option("--no-rerun", help="Stop after integrity and signatures; do not execute the model.")
    ] = False,
    output_format: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="text, json, markdown, junit or sarif.")
    ] = "text",
    output: Annotated[
        Path | None, typer.Option("--output", metavar="FILE", help="Write the report here instead of stdout.")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N",
            help="Check N bundles at once on N worker processes that keep loaded models "
            "(default 1: every re-execution in a fresh process).",
        ),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            metavar="FILE",
            help="Policy file (default: ogverify.toml, or [tool.ogverify] in pyproject.toml, of this directory).",
        ),
    ] = None,
    no_policy: Annotated[
        bool, typer.Option("--no-policy", help="Ignore a policy file in the current directory.")
    ] = False,
    dask_scheduler: Annotated[
        str | None,
        typer.Option("--dask-scheduler", metavar="ADDRESS", help="Distribute the checks over this Dask cluster."),
    ] = None,
    attest_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--attest",
            metavar="KEY",
            help="Sign each verdict with this private key (in-toto test-result attestation). Repeatable.",
        ),
    ] = None,
    attest_dir: Annotated[
        Path | None,
        typer.Option("--attest-dir", metavar="DIR", help="Where --attest writes (default: beside each bundle)."),
    ] = None,
    attestations: Annotated[
        list[Path] | None,
        typer.Option(
            "--attestation", metavar="FILE", help="Verify this signed verdict about a checked bundle. Repeatable."
        ),
    ] = None,
    also_reports: Annotated[
        list[str] | None,
        typer.Option(
            "--report",
            metavar="FORMAT=FILE",
            help="Also write the report in FORMAT to FILE, from the same run (sarif=out.sarif). Repeatable.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Seconds one re-execution may take.")
    ] = 600.0,
    explain: Annotated[
        bool,
        typer.Option("--explain/--no-explain", help="On a failed reproduction, search for the drifted knob."),
    ] = True,
    explain_budget: Annotated[
        int, typer.Option("--explain-budget", metavar="RUNS", help="Most trial runs the explanation may spend.")
    ] = 32,
    candidate_model: Annotated[
        Path | None,
        typer.Option("--candidate-model", metavar="MODEL", help="A model that may have produced the claim instead."),
    ] = None,
) -> None:
    """Verify bundles: integrity, signatures, re-execution and comparison of outputs."""
    from ogverify.evidence.signing import load_trusted_keys
    from ogverify.report.formats import get_formatter
    from ogverify.runtime.config import parse_key_values
    from ogverify.verify.gate import apply_policy, resolve_policy, run_gate
    from ogverify.verify.pipeline import CheckOptions

    formatter = get_formatter(output_format, color=output is None and _use_color())
    also = [
        (get_formatter(fmt).render, functools.partial(_emit, output=Path(file)))
        for fmt, file in parse_key_values(also_reports or [], "--report").items()
    ]
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    if explain_budget < 0:
        raise UsageError("--explain-budget must be 0 or more")
    if candidate_model is not None and not candidate_model.is_file():
        raise UsageError(f"--candidate-model {candidate_model} does not exist")
    options = CheckOptions(
        trusted_keys=load_trusted_keys(trusted_keys or []),
        allow_unsigned=allow_unsigned,
        rerun=not no_rerun,
        timeout=timeout,
        explain=explain,
        explain_budget=explain_budget,
        candidate_model=candidate_model.resolve() if candidate_model is not None else None,
        while_waiting=formatter.load,
    )
    given = {"allow_unsigned": "allow_unsigned", "rerun": "no_rerun", "timeout": "timeout"}
    explicit = {k for k, p in given.items() if getattr(ctx.get_parameter_source(p), "name", "") == "COMMANDLINE"}
    policy = resolve_policy(policy_file, discover=not no_policy)
    if policy is not None and policy_file is None:
        typer.echo(f"using policy {policy.source}", err=True)
    code = run_gate(
        bundles,
        apply_policy(options, policy, explicit),
        render=formatter.render,
        emit=lambda text: _emit(text, output),
        echo=lambda line: typer.echo(line, err=True),
        policy=policy,
        jobs=jobs,
        dask_scheduler=dask_scheduler,
        attest_keys=attest_keys or [],
        attest_dir=attest_dir,
        attestations=attestations or [],
        summary=output is not None or output_format != "text",
        also=also,
    )
    raise typer.Exit(code)


# --- diff ----------------------------------------------------------------------------------


@app.command()
@guarded
def diff(
    a: Annotated[Path, typer.Argument(metavar="A", help="A model (.onnx) or a bundle.")],
    b: Annotated[Path, typer.Argument(metavar="B", help="Another model or bundle, of the same kind as A.")],
    output_format: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text or json.")] = "text",
) -> None:
    """Show what differs between two models or bundles: tensors, attributes, opsets, config, environment.

    Exits 0 when nothing differs and 1 when something does.
    """
    import json

    from ogverify.verify.diff import diff_paths

    if output_format not in ("text", "json"):
        raise UsageError(f"unknown format {output_format!r}; use text or json")
    for path in (a, b):
        if not path.exists():
            raise UsageError(f"{path} does not exist")
    difference = diff_paths(a, b)
    if output_format == "json":
        _emit(json.dumps(difference.to_json(), indent=2, sort_keys=True) + "\n", None)
    else:
        lines = difference.summary_lines()
        header = (
            f"identical: {a} and {b}" if difference.identical else f"{len(lines)} difference(s) between {a} and {b}"
        )
        _emit("\n".join([header, *(f"  {line}" for line in lines)]) + "\n", None)
    raise typer.Exit(0 if difference.identical else 1)


# --- inspect / extract / fingerprint -------------------------------------------------------


@app.command()
@guarded
def inspect(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to describe.")],
    output_format: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text or json.")] = "text",
) -> None:
    """Show what a bundle holds, from its manifest: nothing is executed or verified."""
    import json

    from ogverify.evidence.inspection import inspect_bundle
    from ogverify.report.formats.text import render_inspection

    if output_format not in ("text", "json"):
        raise UsageError(f"unknown format {output_format!r}; use text or json")
    summary = inspect_bundle(bundle)
    if output_format == "json":
        _emit(json.dumps(summary, indent=2, sort_keys=True) + "\n", None)
    else:
        _emit(render_inspection(summary, color=_use_color()), None)


@app.command()
@guarded
def extract(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle to unpack.")],
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Target directory (must not exist or be empty).")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty target directory.")] = False,
) -> None:
    """Unpack model files, tensors (.npy) and manifest, verifying every blob."""
    from ogverify.evidence.extract import extract_bundle

    target = extract_bundle(bundle, directory, overwrite=force)
    typer.echo(f"extracted {bundle} into {target}", err=True)


@app.command()
@guarded
def fingerprint(
    output_format: Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="text or json.")] = "text",
) -> None:
    """Print this machine's execution-environment fingerprint."""
    import json

    from ogverify.report.formats.text import render_fingerprint
    from ogverify.runtime.fingerprint import capture

    if output_format not in ("text", "json"):
        raise UsageError(f"unknown format {output_format!r}; use text or json")
    current = capture()
    if output_format == "json":
        _emit(json.dumps(current, indent=2, sort_keys=True) + "\n", None)
    else:
        _emit(render_fingerprint(current, color=_use_color()), None)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program is, so that clean-up (staging directories) runs as for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated()


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from ogverify.cli.coercion import install

        install()
    except (ImportError, AttributeError):  # typer's internals moved: its own (slower) conversion still works
        pass
    app(prog_name="ogverify")
