"""``pack``: turn a model, its inputs and its (claimed or computed) outputs into a bundle."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ogverify import __version__
from ogverify.errors import ModelError, ReplayError, UsageError
from ogverify.evidence.bundle import BundleWriter, check_writable
from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.manifest import Entry, Manifest, ModelFile, Provenance, TensorEntry, ValueEntry
from ogverify.evidence.paths import StrPath, require
from ogverify.evidence.signing import load_private_key, sign_manifest
from ogverify.evidence.trace import Profile, Trace
from ogverify.model.initializers import initializer_digests
from ogverify.model.signature import ModelSignature, TensorSpec, read_signature
from ogverify.model.tensors import Array, canonicalize, describe, dtype_name, load_tensor_file, to_npy_bytes
from ogverify.model.values import (
    MapValue,
    OptionalValue,
    SequenceValue,
    Value,
    canonical,
    describe_value,
    encode,
    is_tensor,
    load_value_file,
    read_proto_name,
    type_of,
)
from ogverify.runtime import fingerprint
from ogverify.runtime.runner import replay
from ogverify.runtime.threads import resolve_threads

ONNX_MEDIA_TYPE = "application/x-onnx"
TEST_DATA_FILE = re.compile(r"^(input|output)_(\d+)\.pb$")


@dataclass(frozen=True)
class PackResult:
    """Where the bundle went and what identifies it."""

    path: Path
    manifest: Manifest
    manifest_sha256: str
    signed_by: tuple[str, ...] = field(default_factory=tuple)
    # Why a trace asked for "if possible" (``trace="auto"``) was not recorded.
    trace_skipped: str | None = None


def runtime_version() -> str:
    """The installed onnxruntime's version."""
    import onnxruntime

    return str(onnxruntime.__version__)


def default_config() -> ExecutionConfig:
    """What a producer runs at defaults: the installed runtime, CPU, ORT_ENABLE_ALL, sequential, and
    the intra-op thread count onnxruntime's default resolves to here (``runtime.threads``),
    recorded as that number."""
    return ExecutionConfig(runtime_version=runtime_version(), intra_op_num_threads=resolve_threads(None))


def assign_tensors(args: Sequence[str], declared: Sequence[TensorSpec], what: str) -> dict[str, Value]:
    """Resolve ``-i``/``-O`` arguments (``NAME=PATH`` or ``PATH``) to named values.

    A .npz holds named arrays; a .pb carries its tensor's name; an unnamed .npy or .json goes to
    the one declared name not yet given, when there is exactly one. A sequence, map or optional
    is read as its declared type from .json or, given as ``NAME=PATH``, from its ONNX .pb
    (``ogverify.model.values``).

    Raises:
        UsageError: unreadable files, repeated or ambiguous names.
    """
    specs = {spec.name: spec for spec in declared}
    named: dict[str, Value] = {}
    unnamed: list[tuple[Path, Array | None]] = []  # an unnamed file: its array, or None to read once named
    for arg in args:
        name, sep, path_text = arg.partition("=")
        if not sep or (not Path(path_text).exists() and Path(arg).exists()):
            name, path_text = "", arg
        if sep and not name.strip() and path_text:
            raise UsageError(f"{what} {arg!r}: empty tensor name before '='")
        path = Path(path_text)
        spec = specs.get(name)
        if path.suffix.lower() == ".json" or (spec is not None and spec.value_type is not None):
            if name:
                _put(named, name, _load_value(path, name, specs, what), what)
            else:
                unnamed.append((path, None))
            continue
        arrays = load_tensor_file(path, f"{what} {path_text}")
        if name:
            if name in arrays:
                chosen = arrays[name]
            elif len(arrays) == 1:
                chosen = next(iter(arrays.values()))
            else:
                raise UsageError(f"{what} {path}: holds {', '.join(arrays)}; none is named {name!r}")
            _put(named, name, chosen, what)
            continue
        for key, array in arrays.items():
            if key and key in specs:
                _put(named, key, array, what)
            else:
                unnamed.append((path, array))
    for path, loaded in unnamed:
        remaining = [n for n in specs if n not in named]
        if len(remaining) != 1:
            raise UsageError(f"{what} {path}: cannot tell which value it is; write NAME={path}")
        _put(named, remaining[0], loaded if loaded is not None else _load_value(path, remaining[0], specs, what), what)
    return canonical_values(named, what)


def canonical_values(named: Mapping[str, Value], what: str) -> dict[str, Value]:
    """Each value stored canonically (``canonicalize`` for a tensor; its name in errors)."""
    return {name: _canonical(value, f"{what} {name!r}") for name, value in named.items()}


def _load_value(path: Path, name: str, specs: Mapping[str, TensorSpec], what: str) -> Value:
    if name not in specs:
        raise UsageError(f"{what} {name!r}: the model has no such value (declared: {', '.join(specs) or 'none'})")
    return load_value_file(path, specs[name].type, f"{what} {name!r} ({path})")


def _canonical(value: Value, what: str) -> Value:
    if isinstance(value, SequenceValue | MapValue | OptionalValue):
        return canonical(value)
    return canonicalize(np.asarray(value), what)


def _put(named: dict[str, Value], name: str, value: Value, what: str) -> None:
    if name in named:
        raise UsageError(f"{what} {name!r} is given twice")
    named[name] = value


def load_test_data(folder: Path, signature: ModelSignature) -> tuple[dict[str, Value], dict[str, Value]]:
    """Inputs and expected outputs of an ONNX ``test_data_set_N`` folder.

    Files ``input_N.pb``/``output_N.pb`` map to the model's N-th input/output, unless the
    proto names a declared value. A sequence, map or optional is read as its declared type from
    a ``SequenceProto``/``MapProto``/``OptionalProto``.
    """
    if not folder.is_dir():
        raise UsageError(f"--test-data {folder} is not a directory")
    found: dict[str, dict[int, Path]] = {"input": {}, "output": {}}
    for path in folder.iterdir():
        match = TEST_DATA_FILE.match(path.name)
        if match:
            found[match.group(1)][int(match.group(2))] = path
    if not found["input"] or not found["output"]:
        raise UsageError(f"--test-data {folder} needs input_N.pb and output_N.pb files")
    from ogverify.model.tensors import load_tensor_proto_file

    def resolve(kind: str, declared: tuple[TensorSpec, ...]) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for index in sorted(found[kind]):
            path = found[kind][index]
            what = f"--test-data {path.name}"
            by_position = declared[index] if index < len(declared) else None
            if by_position is not None and by_position.value_type is not None:
                name = read_proto_name(path, by_position.value_type, what)
                spec = next((s for s in declared if s.name == name), by_position)
                _put(values, spec.name, load_value_file(path, spec.type, what), f"--test-data {kind}")
                continue
            name, array = load_tensor_proto_file(path, what)
            if name not in [s.name for s in declared]:
                if by_position is None:
                    raise UsageError(f"{what}: the model has only {len(declared)} {kind}s")
                name = by_position.name
            _put(values, name, array, f"--test-data {kind}")
        return {n: _canonical(v, f"--test-data {kind} {n!r}") for n, v in values.items()}

    return resolve("input", signature.inputs), resolve("output", signature.outputs)


def _model_files(model: Path, signature: ModelSignature) -> list[tuple[str, Path]]:
    files = []
    for location in signature.external_data:
        path = model.parent / location
        if not path.is_file():
            raise ModelError(f"external data file {location!r} of {model.name} is missing")
        files.append((location, path))
    return files


def _check_claimed(outputs: Mapping[str, Value], signature: ModelSignature) -> None:
    from ogverify.model.signature import fits

    declared = {spec.name: spec for spec in signature.outputs}
    for name, value in outputs.items():
        if name not in declared:
            raise ModelError(f"the model has no output {name!r} (outputs: {', '.join(declared)})")
        spec = declared[name]
        if is_tensor(value):
            if spec.value_type is None and (spec.dtype is None or spec.dtype == dtype_name(value.dtype)):
                continue
            got = describe(value)
        elif spec.value_type is not None and fits(str(type_of(value)), spec.value_type):
            continue
        else:
            got = describe_value(value, type_of(value))
        raise ModelError(f"claimed output {name!r}: the model produces {spec.describe()}, got {got}")
    if not outputs:
        raise UsageError("no claimed outputs: give -O NAME=PATH, --test-data DIR, or --run")


def record_environment(model: Path, inputs: Mapping[str, Value], config: ExecutionConfig) -> dict[str, object]:
    """The fingerprint of this machine plus the graph onnxruntime makes of ``model`` here.

    Costs a session build in a fresh process; callers that pack many runs of one model under
    one configuration (the Recorder) compute it once and pass it to ``pack(environment=...)``.
    """
    return _record(model, inputs, config, None, trace=False)[0]


def require_tensors(values: Mapping[str, Value], what: str) -> dict[str, Array]:
    """``values`` when every one is a tensor (a trace and a profile follow tensors only).

    Raises:
        UsageError: a sequence, map or optional among them.
    """
    arrays = {name: value for name, value in values.items() if is_tensor(value)}
    for name in values:
        if name not in arrays:
            raise UsageError(f"{what} follows tensors only, and {name!r} is a {type_of(values[name])}")
    return arrays


def _record(
    model: Path, inputs: Mapping[str, Value], config: ExecutionConfig, claimed: Mapping[str, Value] | None, *,
    trace: bool,
) -> tuple[dict[str, object], Trace | None]:
    """The environment, and with ``trace`` the trace, taken in one fresh process."""
    import tempfile

    from ogverify.runtime.trace import finish_or_raise, plan_trace

    environment = fingerprint.capture()
    with tempfile.TemporaryDirectory(prefix="ogverify-pack-") as work:
        plan = (plan_trace(model.resolve(), config, Path(work) / "trace",
                           None if claimed is None else require_tensors(claimed, "--trace")) if trace else None)
        graph, results = fingerprint.optimized_graph_and(model.resolve(), inputs, config, Path(work),
                                                         plan.trials if plan is not None else ())
        recorded_trace = finish_or_raise(plan, results) if plan is not None else None
    if graph is not None:
        environment["optimized_graph"] = graph
    return environment, recorded_trace


def _profile(model: Path, inputs: Mapping[str, Value], config: ExecutionConfig) -> Profile:
    import tempfile

    from ogverify.runtime.sensitivity import profile_model

    with tempfile.TemporaryDirectory(prefix="ogverify-profile-") as work:
        return profile_model(model.resolve(), require_tensors(inputs, "--profile"), config, Path(work))


def pack(
    model: StrPath,
    out: StrPath,
    *,
    inputs: Mapping[str, Value],
    claimed_outputs: Mapping[str, Value] | None = None,
    config: ExecutionConfig | None = None,
    comparison: ComparisonPolicy | str | None = None,
    sign_keys: Sequence[StrPath] = (),
    annotations: Mapping[str, str] | None = None,
    with_sha256: bool = False,
    overwrite: bool = False,
    environment: Mapping[str, object] | None = None,
    provenance: Provenance | None = None,
    model_cid: str | None = None,
    model_signature: StrPath | None = None,
    chain_files: Mapping[str, bytes] | None = None,
    trace: bool | Trace | Literal["auto"] = False,
    profile: bool | Profile = False,
) -> PackResult:
    """Pack a model run into an evidence bundle at ``out`` (``.ogb`` → one file, else a directory).

    This is ``ogverify.pack``, the public API, and what the CLI, the Recorder and the OpenGradient
    import call.

    Args:
        model: the ONNX model file; external-data files next to it are packed too.
        out: the bundle's path.
        inputs: input name → value: a numpy array (or anything ``numpy.asarray`` takes), or a
            sequence, map or optional of ``ogverify.model.values``; validated against the model's
            declared inputs and stored canonically (little-endian, C order).
        claimed_outputs: output name → value as the producer claims them; ``None`` runs the
            model now (in a fresh process, under ``config``) and records what it produced.
        config: the execution configuration; defaults to ``default_config()``: the installed
            runtime, CPU, ORT_ENABLE_ALL, onnxruntime's default intra-op thread count here (recorded
            as the number it resolves to), one inter-op thread.
        comparison: how ``check`` compares outputs: a ComparisonPolicy, or a mode string such as
            ``"allclose:1e-4,1e-5"``; exact by default.
        sign_keys: private key files to sign the manifest with.
        annotations: free-form strings stored in the manifest.
        with_sha256: add per-blob sha256 digests (and signed subjects).
        overwrite: replace an existing bundle at ``out``.
        environment: a fingerprint from ``record_environment`` for this model and configuration
            (default: taken now).
        provenance: outside evidence to record for ``check`` (the on-chain records, ...).
        model_cid: the model's IPFS CID as the producer claims it; ``check`` verifies it.
        model_signature: the publisher's model_signing signature file of the model files, to attach.
        chain_files: the on-chain records (name → bytes) behind ``provenance.chain``, to store with it.
        trace: record the trace of node outputs (``record_trace``; True: take it now; "auto":
            take it if the model runs here, else pack without it and say why in ``trace_skipped``).
        profile: record the sensitivity profile (``profile_model``; True: measure it now).

    Raises:
        UsageError / ModelError: bad inputs, model or arguments. ReplayError: ``--run`` failed.
    """
    model, out = Path(model), Path(out)
    model_signature = None if model_signature is None else Path(model_signature)
    inputs = canonical_values(inputs, "input")
    claimed_outputs = None if claimed_outputs is None else canonical_values(claimed_outputs, "claimed output")
    if isinstance(comparison, str):
        comparison = ComparisonPolicy(ComparisonSpec.parse(comparison))
    if model_cid is not None:
        provenance = replace(provenance or Provenance(), model_cid=model_cid)
    require(model, "model")
    check_writable(out, overwrite=overwrite)  # before the model runs: a wrong --out fails at once
    keys = [load_private_key(Path(path)) for path in sign_keys]
    if provenance is not None and provenance.model_cid is not None:
        from ogverify.evidence.cid import parse_cid

        parse_cid(provenance.model_cid)
    signature = read_signature(model)
    signature.check_inputs(dict(inputs))
    model_files = _model_files(model, signature)
    signed = None
    if model_signature is not None:
        from ogverify.interop.model_signatures import check_covers

        if not model_signature.is_file():
            raise UsageError(f"--model-signature {model_signature} does not exist")
        signed = check_covers(model_signature.read_bytes(), f"--model-signature {model_signature.name}",
                              {model.name: model, **dict(model_files)}, model.name)
    config = config or default_config()
    computed = claimed_outputs is None
    if claimed_outputs is None:
        names = signature.output_names
        result = replay(model, {n: inputs[n] for n in signature.input_names}, names, config)
        claimed_outputs = {name: _canonical(result.outputs[name], f"output {name!r}") for name in names}
    _check_claimed(claimed_outputs, signature)
    # The trace is taken in the process that records the environment. With claimed outputs given
    # (not computed now), that process also runs the recorded configuration: did it reproduce them?
    recorded_trace = trace if isinstance(trace, Trace) else None
    tensors_only = all(is_tensor(v) for v in (*inputs.values(), *claimed_outputs.values()))
    take = trace is True or (trace == "auto" and tensors_only)  # "auto" skips what a trace cannot follow
    skipped = None
    try:
        if environment is None:
            environment, taken = _record(model, inputs, config, None if computed else claimed_outputs, trace=take)
            recorded_trace = taken or recorded_trace
        elif take:
            from ogverify.runtime.trace import record_trace

            with tempfile.TemporaryDirectory(prefix="ogverify-trace-") as work:
                recorded_trace = record_trace(model.resolve(), require_tensors(inputs, "--trace"), config, Path(work),
                                              claimed=None if computed else require_tensors(claimed_outputs, "--trace"))
    except ReplayError as exc:
        if trace != "auto":
            raise
        skipped = exc.message
        if environment is None:
            environment, _ = _record(model, inputs, config, None, trace=False)
    if take and recorded_trace is not None and computed:
        recorded_trace = dataclasses.replace(recorded_trace, claim_reproduced=True)
    recorded_profile = profile if isinstance(profile, Profile) else (
        _profile(model, inputs, config) if profile is True else None)
    comparison = comparison or ComparisonPolicy()
    for name in comparison.outputs:
        if name not in claimed_outputs:
            raise UsageError(f"--compare-output names {name!r}, which is not a claimed output")
    initializers = initializer_digests(model)
    with BundleWriter(out, with_sha256=with_sha256, overwrite=overwrite) as writer:
        model_entry = ModelFile(model.name, writer.add_file(model), ONNX_MEDIA_TYPE)
        file_entries = tuple(ModelFile(name, writer.add_file(path)) for name, path in model_files)
        if model_signature is not None and signed is not None:
            attached = ModelFile(model_signature.name, writer.add_file(model_signature), signed.media_type)
            provenance = replace(provenance or Provenance(), model_signature=attached)
        if provenance is not None and provenance.chain is not None and chain_files:
            records = tuple(ModelFile(name, writer.add_bytes(data), "application/json")
                            for name, data in chain_files.items())
            provenance = replace(provenance, chain=replace(provenance.chain, files=records))

        def entry(name: str, value: Value, spec: TensorSpec) -> Entry:
            if is_tensor(value):
                blob = writer.add_bytes(to_npy_bytes(value))
                return TensorEntry(name=name, dtype=dtype_name(value.dtype), shape=tuple(value.shape), artifact=blob)
            # The declared type where the value cannot show it (an empty sequence's element type).
            value_type = spec.value_type or type_of(value)
            return ValueEntry(name=name, type=str(value_type), artifact=writer.add_bytes(encode(value, value_type)))

        def entries(values: Mapping[str, Value], specs: Sequence[TensorSpec]) -> tuple[Entry, ...]:
            return tuple(entry(spec.name, values[spec.name], spec) for spec in specs if spec.name in values)

        manifest = Manifest(
            model=model_entry,
            model_files=file_entries,
            inputs=entries(inputs, signature.inputs),
            outputs=entries(claimed_outputs, signature.outputs),
            execution=config,
            environment=dict(environment),
            comparison=comparison,
            producer={"tool": "ogverify", "version": __version__},
            annotations=dict(annotations or {}),
            initializers=initializers,
            provenance=provenance,
            trace=recorded_trace,
            profile=recorded_profile,
        )
        try:
            manifest_bytes = manifest.to_bytes()
        except ValueError as exc:  # e.g. an annotation that is not valid Unicode text
            raise UsageError(f"the manifest cannot be written: {exc}") from exc
        signatures = dict(sign_manifest(manifest, manifest_bytes, key) for key in keys)
        path = writer.publish(manifest, signatures)
    from ogverify.evidence.digest import digest_bytes

    return PackResult(path, manifest, digest_bytes(manifest_bytes, "sha256").hex, tuple(sorted(signatures)),
                      skipped)
