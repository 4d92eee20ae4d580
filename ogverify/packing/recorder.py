"""Recording evidence at inference time: an onnxruntime session whose every ``run()`` is packed.

::

    import ogverify

    recorder = ogverify.Recorder("model.onnx", "evidence/", sign_keys=["producer.key"])
    logits, = recorder.run(["logits"], {"x": x})   # exactly what InferenceSession.run returns
    recorder.bundles[-1]                           # evidence/run-000001.ogb

Wrapping an existing ``onnxruntime.InferenceSession`` records the options the session really
has (``get_session_options()``: optimisation level, thread counts, execution mode, and the
session config entries known to change numerics), its providers with their options, and the
model file it was created from. Session config entries that onnxruntime cannot list can be
declared with ``config_entries=``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from ogverify.errors import UsageError
from ogverify.evidence.comparison import ComparisonPolicy
from ogverify.evidence.execution import ExecutionConfig, ProviderSpec
from ogverify.evidence.paths import StrPath, require
from ogverify.model.signature import ValueType
from ogverify.model.tensors import canonicalize
from ogverify.model.values import Value, from_python, from_runtime_outputs, is_tensor
from ogverify.packing.pack import PackResult, default_config, pack, record_environment
from ogverify.runtime.threads import resolve_threads

# Session config entries that change numerics or kernels; onnxruntime has no way to list the
# entries a session holds, so these are asked for one by one.
KNOWN_SESSION_ENTRIES = (
    "session.set_denormal_as_zero",
    "session.disable_prepacking",
    "session.disable_aot_function_inlining",
    "session.qdqisint8allowed",
    "session.enable_quant_qdq_cleanup",
    "session.disable_quant_qdq",
    "session.disable_double_qdq_remover",
    "session.disable_gemm_fast_gelu_fusion",
    "optimization.enable_gelu_approximation",
    "optimization.disable_specified_optimizers",
    "optimization.minimal_build_optimizations",
    "mlas.enable_gemm_fastmath_arm64_bfloat16",
    "mlas.use_lut_gemm",
    "session.use_env_allocators",
)


def _entry(options: Any, key: str) -> str | None:
    try:
        value = options.get_session_config_entry(key)
    except Exception:  # onnxruntime raises when the key was never set
        return None
    return str(value) if value not in (None, "") else None


def config_of_session(session: Any, extra_entries: Mapping[str, str] | None = None) -> ExecutionConfig:
    """The ExecutionConfig an existing InferenceSession really runs with."""
    import onnxruntime as ort

    options = session.get_session_options()
    entries = {key: value for key in KNOWN_SESSION_ENTRIES if (value := _entry(options, key)) is not None}
    entries.update(extra_entries or {})
    provider_options = session.get_provider_options()
    providers = tuple(
        ProviderSpec(name, {str(k): str(v) for k, v in provider_options.get(name, {}).items()})
        for name in session.get_providers()
    )
    return ExecutionConfig(
        runtime_version=str(ort.__version__),
        providers=providers,
        graph_optimization_level=options.graph_optimization_level.name,
        # 0 (the default): onnxruntime chose; record the number it ran, as pack does.
        intra_op_num_threads=resolve_threads(int(options.intra_op_num_threads) or None),
        inter_op_num_threads=int(options.inter_op_num_threads),
        execution_mode=options.execution_mode.name,
        config_entries=entries,
    )


class Recorder:
    """An onnxruntime session that packs each ``run()`` into a bundle in ``out_dir``.

    Args:
        session_or_model: an ``onnxruntime.InferenceSession`` (created from a model file), or
            the path of an ONNX model to open under ``config``.
        out_dir: folder for the bundles (created if missing).
        sign_keys: private keys each bundle is signed with.
        config: for a model path: how to open it (default: ``pack``'s, ``default_config()``:
            CPU, ORT_ENABLE_ALL, onnxruntime's default intra-op thread count here, recorded as the
            number it resolves to).
        config_entries: session config entries of a given session that cannot be read back.
        run_config_entries: the run-options config entries the runs use (recorded as given).
        model: the model file of a given session, when the session does not know it.
        comparison: how ``check`` should compare outputs (mode string or ComparisonPolicy).
        annotations: strings stored in every manifest (the run number is added).
        form: ``"file"`` (``run-000001.ogb``) or ``"directory"`` bundles.
        trace: record each run's trace of node outputs (``pack --trace``; docs/drift.md). It
            costs one more run per recorded run, in a fresh process, which also tells whether
            the recorded configuration reproduces the session's outputs there
            (``manifest.trace.claim_reproduced``). An evidence log takes the same record per log
            record: ``EvidenceLog.append(..., trace=True)`` (or a ``Trace`` from ``record_trace``).
    """

    def __init__(
        self,
        session_or_model: Any,
        out_dir: StrPath,
        *,
        sign_keys: Sequence[StrPath] = (),
        config: ExecutionConfig | None = None,
        config_entries: Mapping[str, str] | None = None,
        run_config_entries: Mapping[str, str] | None = None,
        model: StrPath | None = None,
        comparison: ComparisonPolicy | str | None = None,
        annotations: Mapping[str, str] | None = None,
        form: str = "file",
        trace: bool = False,
    ) -> None:
        from ogverify.evidence.comparison import ComparisonSpec
        from ogverify.runtime.session import build_session

        if form not in ("file", "directory"):
            raise UsageError(f"form must be 'file' or 'directory', not {form!r}")
        if isinstance(session_or_model, str | PathLike):
            if config_entries:
                raise UsageError("config_entries is for a given session; put entries in config")
            self.model = Path(session_or_model)
            require(self.model, "model")
            self.config = config or default_config()
            self.session = build_session(self.model, self.config)
        else:
            if config is not None:
                raise UsageError("config is for a model path; a given session already has its options")
            self.session = session_or_model
            known = model if model is not None else getattr(session_or_model, "_model_path", None)
            if not known:
                raise UsageError("the session was not created from a model file; pass model=PATH")
            self.model = Path(known)
            self.config = config_of_session(session_or_model, config_entries)
        if run_config_entries:
            self.config = replace(self.config, run_config_entries={**self.config.run_config_entries,
                                                                   **run_config_entries})
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.sign_keys = [Path(k) for k in sign_keys]
        self.comparison = (ComparisonPolicy(ComparisonSpec.parse(comparison)) if isinstance(comparison, str)
                           else comparison)
        self.annotations = dict(annotations or {})
        self.form = form
        self.trace = trace
        self.bundles: list[Path] = []
        self.results: list[PackResult] = []
        self._count = 0
        self._lock = threading.Lock()
        self._environment: dict[str, object] | None = None

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> Any:
        """``InferenceSession.run``, unchanged in what it returns; the run is packed as a bundle.

        onnxruntime cannot list a RunOptions' config entries: declare those that matter with
        ``run_config_entries=`` when creating the Recorder.
        """
        values = self.session.run(output_names, dict(input_feed), run_options)
        names = list(output_names) if output_names else [o.name for o in self.session.get_outputs()]
        # Sequences, maps and optionals are read as the session declares them (ogverify.model.values).
        outputs = from_runtime_outputs(self.session, names, list(values))
        claimed = {name: canonicalize(value, f"output {name!r}") if is_tensor(value) else value
                   for name, value in zip(names, outputs, strict=True)}
        declared = {arg.name: arg.type for arg in self.session.get_inputs()}
        inputs: dict[str, Value] = {}
        for name, value in input_feed.items():
            what = f"input {name!r}"
            value_type = _declared_type(declared.get(name))
            inputs[name] = (canonicalize(np.asarray(value), what) if value_type is None or value_type.is_tensor
                            else from_python(value, value_type, what))
        with self._lock:
            self._count += 1
            index = self._count
        suffix = ".ogb" if self.form == "file" else ""
        out = self.out_dir / f"run-{index:06d}{suffix}"
        with self._lock:
            if self._environment is None:  # one fingerprint (and one optimised-graph build) per recorder
                self._environment = record_environment(self.model, inputs, self.config)
            environment = self._environment
        result = pack(self.model, out, inputs=inputs, claimed_outputs=claimed, config=self.config,
                      comparison=self.comparison, sign_keys=self.sign_keys,
                      annotations={**self.annotations, "ogverify.recorder.run": str(index)},
                      environment=environment, trace=self.trace)
        with self._lock:
            self.bundles.append(result.path)
            self.results.append(result)
        return values

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_inputs, get_outputs, get_providers ...) is the session's.
        return getattr(self.session, name)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def _declared_type(text: str | None) -> ValueType | None:
    try:
        return None if text is None else ValueType.parse(text)
    except ValueError:
        return None
