"""What the re-execution worker is asked to do, and what it answers: typed values with a schema.

Two jobs, each answered by one result:

- ``RunJob`` → ``RunResult``: run a model on inputs and return the named outputs (``pack --run``).
- ``CheckJob`` → ``CheckResult``: the numeric half of ``check``: load the packed inputs and
  claimed outputs, check each is the type the manifest declares, run the model, compare every
  output under its comparison.

``ogverify.runtime.worker.run_check_job`` answers a CheckJob, whether in a fresh process (the
default ``check``) or inside a check worker's session cache (``check --jobs``): the rules
about validating, running and comparing live there once. Across a process boundary a job is
a JSON file (``to_json``/``from_json``, schema below) and a result is another; output values
travel as files beside it, written and read by ``write_value``/``read_value``.

Job file (``job.json``)::

    {"schema": "ogverify.check-job/1", "model": PATH, "model_key": STR,
     "inputs": [TENSOR...], "claimed": [TENSOR...], "comparisons": {NAME: "exact" | "ulp:N" ...},
     "execution": EXECUTION, "memory_limit": INT | null, "out_dir": PATH, "data_folder": PATH | null}
    {"schema": "ogverify.run-job/1", "model": PATH, "inputs": [TENSOR...], "outputs": [NAME...],
     "execution": EXECUTION, "memory_limit": INT | null, "out_dir": PATH}
    TENSOR = {"name": STR, "path": PATH, "dtype": STR | null, "shape": [INT...] | null, "type": STR | null}

``dtype``/``shape`` are what the manifest declares for a tensor, ``type`` for a sequence, map or
optional (``seq(map(int64,tensor(float)))``; ``ogverify.model.values``); all null: not checked,
for inputs ogverify wrote itself. EXECUTION is the manifest's ``execution`` object. ``data_folder``
(absent or null: the model's own folder) is where the model's external data lies: ``check``
hands the runtime a model whose external data it verified where the bundle holds it.

Result file (``result.json``)::

    {"schema": "ogverify.check-result/1" | "ogverify.run-result/1",
     "run": {"providers_used": [STR...], "runtime_version": STR, "seconds": {STR: FLOAT},
             "process": "fresh" | "worker", "intra_op_num_threads": INT | null} | null,
     "comparisons": [COMPARISON...],          (check results only; a report's comparison objects)
     "outputs": {NAME: PATH},                 (check: only when a comparison failed)
     "failure": {"kind": KIND, "message": STR, "detail": STR} | null,
     "environment": {...} | null}             (check: this machine's fingerprint, when taken)

The drift engine's trials (``ogverify.runtime.trials``) go to their own child process,
``python -m ogverify.runtime.probe JOB.json``, as a ``ProbeJob`` (several trials of one model
on shared inputs) answered by a ``ProbeResult`` (one outcome per trial, in order), written
beside the job as ``JOB.result.json``::

    {"schema": "ogverify.probe-job/1", "inputs": [TENSOR...], "trials": [TRIAL...]}
    TRIAL = {"model": PATH, "execution": EXECUTION, "disabled_optimizers": [STR...],
             "save_optimized": BOOL, "capture_transformers": BOOL, "outputs": [NAME...],
             "run": BOOL, "summarise": BOOL, "out_dir": PATH}
    {"schema": "ogverify.probe-result/1", "trials": [OUTCOME...]}
    OUTCOME = {"outputs": {NAME: PATH}, "summaries": {NAME: SUMMARY}, "applied_transformers": [STR...],
               "optimized_model": PATH | null, "error": STR | null}

A trial's ``error`` is the one line a report shows as is ("RuntimeError: ..."); when the probe
itself fails before any trial, its result holds a single outcome with that error. SUMMARY is a
trace's ``TensorSummary`` (``ogverify.evidence.trace``).

This module imports neither numpy nor onnxruntime at import time: ``check``'s parent process
builds jobs and reads results without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify.evidence.comparison import ComparisonSpec, OutputComparison
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import TensorSummary

CHECK_JOB = "ogverify.check-job/1"
RUN_JOB = "ogverify.run-job/1"
CHECK_RESULT = "ogverify.check-result/1"
RUN_RESULT = "ogverify.run-result/1"
PROBE_JOB = "ogverify.probe-job/1"
PROBE_RESULT = "ogverify.probe-result/1"

if TYPE_CHECKING:
    # An input or output value: a numpy array, or an ONNX sequence, map or optional.
    from ogverify.model.values import Value


class FailureKind(Enum):
    """Why a job produced no comparison; each kind becomes one kind of finding."""

    MISMATCH = "mismatch"
    """The bundle's pieces contradict each other (a packed tensor is not what the manifest says): FAIL."""
    BUNDLE = "bundle"
    """A packed tensor cannot be read: could not verify, message as is."""
    LIMIT = "limit"
    """The policy's ``max_replay_memory`` stopped the run: could not verify, message as is."""
    ENVIRONMENT = "environment"
    """This onnxruntime lacks a provider or optimisation level the configuration names."""
    MODEL = "model"
    """The model uses something re-execution cannot handle (custom operators, ...)."""
    MEMORY = "memory"
    """An allocation failed, with no memory limit to blame."""
    RUNTIME = "runtime"
    """onnxruntime raised while loading or running the model."""



@dataclass(frozen=True)
class Failure:
    """A job that could not be done: its kind, one line, and optional detail (a traceback)."""

    kind: FailureKind
    message: str
    detail: str = ""

    @property
    def headline(self) -> str:
        """The finding's line: the message where it stands alone, else "re-execution failed: ..."."""
        if self.kind in (FailureKind.MISMATCH, FailureKind.BUNDLE, FailureKind.LIMIT):
            return self.message
        return f"re-execution failed: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "detail": self.detail}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Failure:
        return cls(FailureKind(raw["kind"]), str(raw["message"]), str(raw.get("detail", "")))


@dataclass(frozen=True)
class TensorFile:
    """A value in a file (a tensor as ``.npy``, a sequence, map or optional in its canonical
    encoding), with the type the manifest declares for it: a tensor's ``dtype`` and ``shape``, a
    non-tensor's ``type`` (all None: unchecked)."""

    name: str
    path: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    type: str | None = None

    @property
    def declared(self) -> tuple[str, tuple[int, ...]] | str | None:
        """What the file must hold (``model.agreement.load_packed``), or None when unchecked."""
        if self.type is not None:
            return self.type
        return None if self.dtype is None or self.shape is None else (self.dtype, self.shape)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "dtype": self.dtype,
                "shape": None if self.shape is None else list(self.shape), "type": self.type}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TensorFile:
        shape = raw.get("shape")
        return cls(str(raw["name"]), str(raw["path"]), raw.get("dtype"),
                   None if shape is None else tuple(int(n) for n in shape), raw.get("type"))


@dataclass(frozen=True)
class RunFacts:
    """What the runtime reports about one run: providers, version, seconds, which process ran it,
    and the intra-op thread count of the session that ran (read back from its options).

    ``process``: ``fresh``, a new process for this one run; ``worker``, a check worker's cached session.
    """

    providers_used: tuple[str, ...]
    runtime_version: str
    seconds: Mapping[str, float] = field(default_factory=dict)
    process: str = "fresh"
    intra_op_num_threads: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The report's ``replay`` object."""
        return {
            "providers_used": list(self.providers_used),
            "runtime_version": self.runtime_version,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "process": self.process,
            "intra_op_num_threads": self.intra_op_num_threads,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunFacts:
        threads = raw.get("intra_op_num_threads")
        return cls(tuple(str(p) for p in raw["providers_used"]), str(raw["runtime_version"]),
                   {str(k): float(v) for k, v in raw["seconds"].items()}, str(raw.get("process", "fresh")),
                   None if threads is None else int(threads))


def _config(raw: Mapping[str, Any]) -> ExecutionConfig:
    return ExecutionConfig.from_json(raw["execution"])


@dataclass(frozen=True)
class RunJob:
    """Run ``model`` on ``inputs`` under ``execution`` and return the ``outputs`` named."""

    model: str
    inputs: tuple[TensorFile, ...]
    outputs: tuple[str, ...]
    execution: ExecutionConfig
    memory_limit: int | None = None

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        return {"schema": RUN_JOB, "model": self.model, "inputs": [t.to_json() for t in self.inputs],
                "outputs": list(self.outputs), "execution": self.execution.to_json(),
                "memory_limit": self.memory_limit, "out_dir": str(out_dir)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunJob:
        return cls(str(raw["model"]), tuple(TensorFile.from_json(t) for t in raw["inputs"]),
                   tuple(str(n) for n in raw["outputs"]), _config(raw), raw.get("memory_limit"))


@dataclass(frozen=True)
class CheckJob:
    """Check ``claimed`` against a run of ``model`` on ``inputs``, each output under its comparison.

    ``model_key`` names the model by content (its files' digests), so that a worker may re-use
    a session across bundles of one model; ``memory_limit`` is the policy's ``max_replay_memory``;
    ``data_folder`` is where the model's external data lies, when not beside the model
    (``session.build_session``).
    """

    model: str
    inputs: tuple[TensorFile, ...]
    claimed: tuple[TensorFile, ...]
    comparisons: Mapping[str, ComparisonSpec]
    execution: ExecutionConfig
    model_key: str = ""
    memory_limit: int | None = None
    data_folder: str | None = None

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        return {"schema": CHECK_JOB, "model": self.model, "model_key": self.model_key,
                "inputs": [t.to_json() for t in self.inputs], "claimed": [t.to_json() for t in self.claimed],
                "comparisons": {name: str(spec) for name, spec in self.comparisons.items()},
                "execution": self.execution.to_json(), "memory_limit": self.memory_limit, "out_dir": str(out_dir),
                "data_folder": self.data_folder}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CheckJob:
        return cls(
            str(raw["model"]), tuple(TensorFile.from_json(t) for t in raw["inputs"]),
            tuple(TensorFile.from_json(t) for t in raw["claimed"]),
            {str(name): ComparisonSpec.parse(spec) for name, spec in raw["comparisons"].items()},
            _config(raw), str(raw.get("model_key", "")), raw.get("memory_limit"),
            None if raw.get("data_folder") is None else str(raw["data_folder"]),
        )


# Reads an output value back from its file (the reader applies its own size limit); None skips it.
ValueLoader = Callable[[str, str], "Value | None"]


def _load_outputs(raw: Mapping[str, Any], load: ValueLoader | None) -> dict[str, Value]:
    outputs: dict[str, Value] = {}
    if load is not None:
        for name, path in raw.get("outputs", {}).items():
            value = load(str(name), str(path))
            if value is not None:
                outputs[str(name)] = value
    return outputs


@dataclass(frozen=True)
class RunResult:
    """The outputs of a RunJob and the facts of its run, or why it failed."""

    run: RunFacts | None = None
    outputs: Mapping[str, Value] = field(default_factory=dict)
    failure: Failure | None = None

    def to_json(self, output_files: Mapping[str, str]) -> dict[str, Any]:
        return {"schema": RUN_RESULT, "run": None if self.run is None else _facts_json(self.run),
                "outputs": dict(output_files), "failure": None if self.failure is None else self.failure.to_json()}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], load: ValueLoader | None = None) -> RunResult:
        return cls(_facts(raw), _load_outputs(raw, load), _failure(raw))


@dataclass(frozen=True)
class CheckResult:
    """A CheckJob's comparisons, the reproduced outputs when one failed (for the drift engine),
    the facts of the run, or why there are none; and this machine's fingerprint when the
    process took it."""

    run: RunFacts | None = None
    comparisons: tuple[OutputComparison, ...] = ()
    reproduced: Mapping[str, Value] = field(default_factory=dict)
    failure: Failure | None = None
    environment: Mapping[str, Any] | None = None

    def to_json(self, output_files: Mapping[str, str]) -> dict[str, Any]:
        return {"schema": CHECK_RESULT, "run": None if self.run is None else _facts_json(self.run),
                "comparisons": [c.to_json() for c in self.comparisons], "outputs": dict(output_files),
                "failure": None if self.failure is None else self.failure.to_json(),
                "environment": None if self.environment is None else dict(self.environment)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], load: ValueLoader | None = None) -> CheckResult:
        environment = raw.get("environment")
        return cls(
            _facts(raw), tuple(OutputComparison.from_json(c) for c in raw.get("comparisons", [])),
            _load_outputs(raw, load), _failure(raw), environment if isinstance(environment, dict) else None,
        )


def _facts_json(facts: RunFacts) -> dict[str, Any]:
    return {"providers_used": list(facts.providers_used), "runtime_version": facts.runtime_version,
            "seconds": dict(facts.seconds), "process": facts.process,
            "intra_op_num_threads": facts.intra_op_num_threads}


def _facts(raw: Mapping[str, Any]) -> RunFacts | None:
    run = raw.get("run")
    return None if run is None else RunFacts.from_json(run)


def _failure(raw: Mapping[str, Any]) -> Failure | None:
    failure = raw.get("failure")
    return None if failure is None else Failure.from_json(failure)


def write_value(value: Value, path: Path, what: str) -> None:
    """Write a value to ``path`` in its canonical form: ``.npy`` for a tensor, the canonical value
    encoding for a sequence, map or optional (``ogverify.model.values``)."""
    from ogverify.model.tensors import canonicalize, to_npy_bytes
    from ogverify.model.values import encode, is_tensor, type_of

    path.write_bytes(to_npy_bytes(canonicalize(value, what)) if is_tensor(value) else encode(value, type_of(value)))


def value_suffix(value: Value) -> str:
    """The file suffix ``write_value`` writes ``value`` under: ``.npy`` or ``.value``."""
    from ogverify.model.values import VALUE_SUFFIX, is_tensor

    return ".npy" if is_tensor(value) else VALUE_SUFFIX


def read_value(data: bytes, what: str) -> Value:
    """A value from the bytes ``write_value`` wrote (an owned copy; checked as a bundle's blob is)."""
    from ogverify.model.tensors import parse_npy
    from ogverify.model.values import MAGIC, decode

    if data.startswith(MAGIC):
        return decode(data, what)[1]
    return parse_npy(data, what).copy()


@dataclass(frozen=True)
class ProbeTrial:
    """One trial as the probe process sees it: a session to create (and run) and where its files go.

    ``outputs`` empty: every graph output; ``run`` False only builds the session; ``summarise``
    returns each output's summary instead of its values (``ogverify.runtime.trials.Trial``).
    """

    model: str
    execution: ExecutionConfig
    out_dir: str
    disabled_optimizers: tuple[str, ...] = ()
    save_optimized: bool = False
    capture_transformers: bool = False
    outputs: tuple[str, ...] = ()
    run: bool = True
    summarise: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "execution": self.execution.to_json(),
                "disabled_optimizers": list(self.disabled_optimizers), "save_optimized": self.save_optimized,
                "capture_transformers": self.capture_transformers, "outputs": list(self.outputs),
                "run": self.run, "summarise": self.summarise, "out_dir": self.out_dir}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProbeTrial:
        return cls(str(raw["model"]), _config(raw), str(raw["out_dir"]),
                   tuple(str(n) for n in raw.get("disabled_optimizers", [])), bool(raw.get("save_optimized")),
                   bool(raw.get("capture_transformers")), tuple(str(n) for n in raw.get("outputs", [])),
                   bool(raw.get("run", True)), bool(raw.get("summarise")))


@dataclass(frozen=True)
class ProbeJob:
    """Several trials of one model on the same ``inputs``, in one probe process."""

    inputs: tuple[TensorFile, ...]
    trials: tuple[ProbeTrial, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema": PROBE_JOB, "inputs": [t.to_json() for t in self.inputs],
                "trials": [t.to_json() for t in self.trials]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProbeJob:
        """Raises: ValueError: not a probe job this version knows."""
        if raw.get("schema") != PROBE_JOB:
            raise ValueError(f"unknown probe job schema {raw.get('schema')!r}")
        return cls(tuple(TensorFile.from_json(t) for t in raw["inputs"]),
                   tuple(ProbeTrial.from_json(t) for t in raw["trials"]))


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial left: output files, summaries, the transformers that changed the graph, the
    optimised graph's file; or the one line saying why it failed."""

    outputs: Mapping[str, str] = field(default_factory=dict)
    summaries: Mapping[str, TensorSummary] = field(default_factory=dict)
    applied_transformers: tuple[str, ...] = ()
    optimized_model: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"outputs": dict(self.outputs), "summaries": {n: s.to_json() for n, s in self.summaries.items()},
                "applied_transformers": list(self.applied_transformers),
                "optimized_model": self.optimized_model, "error": self.error}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TrialOutcome:
        optimized, error = raw.get("optimized_model"), raw.get("error")
        return cls({str(n): str(p) for n, p in raw.get("outputs", {}).items()},
                   {str(n): TensorSummary.from_json(s) for n, s in raw.get("summaries", {}).items()},
                   tuple(str(n) for n in raw.get("applied_transformers", [])),
                   None if optimized is None else str(optimized), None if error is None else str(error))


@dataclass(frozen=True)
class ProbeResult:
    """A ProbeJob's outcomes, one per trial in order (or one error when the probe itself failed)."""

    trials: tuple[TrialOutcome, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema": PROBE_RESULT, "trials": [t.to_json() for t in self.trials]}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProbeResult:
        """Raises: ValueError: not a probe result this version knows."""
        if raw.get("schema") != PROBE_RESULT:
            raise ValueError(f"unknown probe result schema {raw.get('schema')!r}")
        return cls(tuple(TrialOutcome.from_json(t) for t in raw["trials"]))


def job_from_json(raw: Mapping[str, Any]) -> RunJob | CheckJob:
    """The job a ``job.json`` describes.

    Raises:
        ValueError: a schema this version does not know.
    """
    schema = raw.get("schema")
    if schema == CHECK_JOB:
        return CheckJob.from_json(raw)
    if schema == RUN_JOB:
        return RunJob.from_json(raw)
    raise ValueError(f"unknown job schema {schema!r}")


def tensor_files(names_and_paths: Sequence[tuple[str, str]]) -> tuple[TensorFile, ...]:
    """Tensors ogverify wrote itself (nothing to check against a manifest)."""
    return tuple(TensorFile(name, path) for name, path in names_and_paths)
