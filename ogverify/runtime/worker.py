"""The re-execution worker: the one code that runs a job, and the process that runs one job.

``run_check_job`` is the numeric half of ``check``: it loads the packed inputs and claimed
outputs, checks each is what the manifest declares (the parent has checked the model's
external data and inputs), runs the model and compares each output under its comparison.
``run_run_job`` runs a model and returns its outputs (``pack --run``). Both take a session
provider: a fresh session per job here, a check worker's cached one in ``runner.SessionCache``.
Neither raises: every failure is a ``Failure`` in the result.

As a process: ``python -m ogverify.runtime.worker JOB.json``, or ``python -m
ogverify.runtime.worker --serve``, which imports numpy and onnxruntime and takes this machine's
fingerprint first and then reads the job's path from stdin: ``check`` starts it before it
verifies the bundle, so that the imports overlap that work and the parent never imports numpy,
onnx or onnxruntime on the way to a verdict. A fresh process per run matters: some onnxruntime
settings (denormals-as-zero, thread pools) stick to the process that set them. It reads the
job, writes the result file and the output values it names (a check: only when a comparison
fails) beside the job, and exits; the schemas are in ``ogverify.runtime.jobs``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ogverify.evidence.execution import ExecutionConfig
    from ogverify.model.values import Value
    from ogverify.runtime.jobs import CheckJob, CheckResult, Failure, RunFacts, RunJob, RunResult, TensorFile

class SessionProvider(Protocol):
    """(model path, execution configuration, model key, folder of its external data when not the
    model's own) -> an InferenceSession for them."""

    def __call__(self, model: str, config: ExecutionConfig, model_key: str, data_folder: str | None = None, /
                 ) -> Any: ...


def fresh_session(model: str, config: ExecutionConfig, model_key: str, data_folder: str | None = None) -> Any:
    """A new session for every job (the process runs one job, then exits: its only session)."""
    from ogverify.runtime.session import build_session

    return build_session(model, config, alone=True, data_folder=data_folder)


def run_check_job(job: CheckJob, sessions: SessionProvider = fresh_session) -> CheckResult:
    """Load and validate the packed tensors, run the model, compare; never raises."""
    from ogverify.runtime.jobs import CheckResult

    try:
        return _check(job, sessions)
    except Exception as exc:  # reported as data; the parent decides the finding
        return CheckResult(failure=describe_failure(exc, job.memory_limit))


def _check(job: CheckJob, sessions: SessionProvider) -> CheckResult:
    from ogverify.errors import EvidenceMismatchError, OgverifyError
    from ogverify.model.compare import compare_value
    from ogverify.model.signature import ValueType
    from ogverify.model.tensors import canonicalize
    from ogverify.model.values import is_tensor
    from ogverify.runtime.jobs import CheckResult, Failure, FailureKind

    try:
        inputs = load_tensors(job.inputs, "input")
        claimed = load_tensors(job.claimed, "claimed output")
    except EvidenceMismatchError as exc:
        return CheckResult(failure=Failure(FailureKind.MISMATCH, exc.message))
    except OgverifyError as exc:
        return CheckResult(failure=Failure(FailureKind.BUNDLE, exc.message))
    ran = _run(job.model, job.model_key, job.execution, inputs, list(claimed), sessions, job.data_folder)
    if not isinstance(ran, tuple):
        return CheckResult(failure=ran)
    facts, values = ran
    reproduced = {name: canonicalize(value, f"output {name!r}") if is_tensor(value) else value
                  for name, value in values.items()}
    types = {f.name: ValueType.parse(f.type) if f.type is not None else ValueType("tensor", f.dtype)
             for f in job.claimed}
    comparisons = tuple(
        compare_value(name, claimed[name], reproduced[name], job.comparisons[name], types[name]) for name in claimed
    )
    # The reproduced values are wanted only to explain a failure.
    return CheckResult(facts, comparisons, reproduced if any(not c.passed for c in comparisons) else {})


def run_run_job(job: RunJob, sessions: SessionProvider = fresh_session) -> RunResult:
    """Run the model on the job's inputs and return the outputs it names; never raises."""
    from ogverify.runtime.jobs import RunResult

    try:
        inputs = load_tensors(job.inputs, "input")
    except Exception as exc:  # reported as data; the caller decides what to raise
        return RunResult(failure=describe_failure(exc, job.memory_limit))
    return run_inputs(job.model, "", job.execution, inputs, list(job.outputs), sessions, job.memory_limit)


def run_inputs(
    model: str, model_key: str, config: ExecutionConfig, inputs: Mapping[str, Value], names: list[str],
    sessions: SessionProvider, memory_limit: int | None = None,
) -> RunResult:
    """Run the model on in-memory inputs and return the outputs named; never raises."""
    from ogverify.runtime.jobs import RunResult

    try:
        ran = _run(model, model_key, config, inputs, names, sessions)
    except Exception as exc:  # reported as data; the caller decides what to raise
        return RunResult(failure=describe_failure(exc, memory_limit))
    return RunResult(*ran) if isinstance(ran, tuple) else RunResult(failure=ran)


def load_tensors(files: Sequence[TensorFile], kind: str) -> dict[str, Value]:
    """Each file's value (a tensor, or a sequence, map or optional), checked against the type the
    manifest declares for it.

    Raises:
        EvidenceMismatchError: a value is not what the manifest says. BundleError: not a value file.
    """
    from ogverify.model.agreement import load_packed
    from ogverify.runtime.jobs import read_value

    values = {}
    for entry in files:
        what = f"{kind} '{entry.name}'"
        data = Path(entry.path).read_bytes()
        declared = entry.declared
        values[entry.name] = read_value(data, what) if declared is None else load_packed(data, declared, what)
    return values


def _run(
    model: str, model_key: str, config: ExecutionConfig, inputs: Mapping[str, Value], names: list[str],
    sessions: SessionProvider, data_folder: str | None = None,
) -> tuple[RunFacts, dict[str, Value]] | Failure:
    """Run the model: the run's facts and the named outputs, or why there are none.

    Raises:
        Exception: what onnxruntime raises loading or running the model (see ``describe_failure``).
    """
    import onnxruntime as ort

    from ogverify.errors import OgverifyError
    from ogverify.model.values import from_runtime_outputs, to_runtime
    from ogverify.runtime.jobs import Failure, FailureKind, RunFacts
    from ogverify.runtime.session import RuntimeUnavailableError, run_options

    started = time.perf_counter()
    try:
        session = sessions(model, config, model_key, data_folder)
    except RuntimeUnavailableError as exc:
        return Failure(FailureKind.ENVIRONMENT, exc.message)
    loaded = time.perf_counter()
    values = session.run(names, {name: to_runtime(value) for name, value in inputs.items()}, run_options(config))
    finished = time.perf_counter()
    try:  # sequences, maps and optionals read as the session declares them
        values = from_runtime_outputs(session, names, values)
    except OgverifyError as exc:
        return Failure(FailureKind.MODEL, exc.message)
    facts = RunFacts(tuple(session.get_providers()), str(ort.__version__),
                     {"load": loaded - started, "run": finished - loaded},
                     # 0: onnxruntime's default, which build_session verified started the recorded count
                     intra_op_num_threads=int(session.get_session_options().intra_op_num_threads)
                     or config.intra_op_num_threads)
    return facts, dict(zip(names, values, strict=True))


# How onnxruntime says an allocation failed (its arena, or a C++ std::bad_alloc turned into an exception).
_ALLOCATION_FAILED = ("Failed to allocate memory", "bad_alloc", "bad allocation", "Cannot allocate memory")
_UNKNOWN_OP = re.compile(r"([\w.]*):(\w+)\(-?\d+\) is not a registered function/op")


def memory_message(memory_limit: int) -> str:
    """The one line for a re-execution stopped by the memory limit."""
    return (f"re-execution exceeded the memory limit of {memory_limit} bytes "
            "(max_replay_memory); the model needs more memory than the policy allows")


def describe_failure(exc: BaseException, memory_limit: int | None) -> Failure:
    """The failure of a job that raised ``exc`` (call it inside the ``except``: it keeps the traceback)."""
    from ogverify.runtime.jobs import Failure, FailureKind

    text = str(exc).strip()
    first_line = (text.splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, MemoryError) or any(sign in text for sign in _ALLOCATION_FAILED):
        allocation = f"{type(exc).__name__}: allocation failed: {first_line[:300]}"
        if memory_limit is not None:
            return Failure(FailureKind.LIMIT, memory_message(memory_limit), allocation)
        return Failure(FailureKind.MEMORY, allocation)
    unknown = _UNKNOWN_OP.search(text)
    if unknown is not None:
        domain, op = unknown.group(1) or "ai.onnx", unknown.group(2)
        return Failure(FailureKind.MODEL, f"the model uses operator {op} from domain {domain!r}, which onnxruntime "
                                          "cannot load (custom operators are not supported)")
    import traceback

    return Failure(FailureKind.RUNTIME, f"{type(exc).__name__}: {first_line[:500]}", traceback.format_exc(limit=5))


def limit_memory(limit: int | None) -> int | None:
    """Cap this process's data memory (heap and anonymous mappings) at ``limit`` bytes.

    RLIMIT_DATA rather than RLIMIT_AS: address space that thread pools and GPU drivers merely
    reserve does not count, memory the model allocates does. Not enforced outside Linux.
    Never raises: a limit the system cannot take (larger than the hard limit, or than
    ``rlim_t`` holds) becomes the hard limit. Returns the limit set, or None when none was.
    """
    if limit is None:
        return None
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ImportError, ValueError, OverflowError, OSError):
        return None
    return limit


def write_values(values: Mapping[str, Value], out_dir: Path) -> dict[str, str]:
    """Write each value into ``out_dir`` (``output_<index>``); name -> path."""
    from ogverify.runtime.jobs import value_suffix, write_value

    files = {}
    for index, (name, value) in enumerate(values.items()):
        path = out_dir / f"output_{index}{value_suffix(value)}"
        write_value(value, path, f"output {name!r}")
        files[name] = str(path)
    return files


def answer(raw: Mapping[str, Any], environment: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run the job ``raw`` describes and return the result document (its output files written)."""
    from dataclasses import replace

    from ogverify.runtime.jobs import CheckJob, CheckResult, job_from_json

    out_dir = Path(raw["out_dir"])
    try:
        job = job_from_json(raw)
        limit_memory(job.memory_limit)
        if isinstance(job, CheckJob):
            checked = replace(run_check_job(job), environment=environment)
            return checked.to_json(write_values(checked.reproduced, out_dir))
        ran = run_run_job(job)
        return ran.to_json(write_values(ran.outputs, out_dir))
    except Exception as exc:  # a job that cannot even be read, an output that cannot be written
        return CheckResult(failure=describe_failure(exc, None), environment=environment).to_json({})


def _serve() -> tuple[str | None, dict[str, Any]]:
    # Pay for the imports a check job needs, and take the fingerprint, while the parent is still verifying.
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    import ogverify.model.agreement
    import ogverify.model.compare
    import ogverify.runtime.jobs
    import ogverify.runtime.session  # noqa: F401
    from ogverify.runtime.fingerprint import capture

    environment = capture()
    line = sys.stdin.readline().strip()
    return line or None, environment


def main(argv: list[str]) -> int:
    serve = argv[1:] == ["--serve"]
    environment = None
    if serve:
        job_file, environment = _serve()
        if job_file is None:  # the parent did not need a re-execution after all
            return 0
    else:
        job_file = argv[1]
    job_path = Path(job_file)
    if serve:  # started before its work directory existed: whatever the runtime writes goes there
        os.chdir(job_path.parent)
    try:
        raw = json.loads(job_path.read_text(encoding="utf-8"))
        document = answer(raw, environment)
    except Exception as exc:  # reported to the parent as data; the parent decides the exit code
        from ogverify.runtime.jobs import CheckResult

        document = CheckResult(failure=describe_failure(exc, None), environment=environment).to_json({})
    job_path.with_name("result.json").write_text(json.dumps(document), encoding="utf-8")
    if serve:
        # The parent waits for this process to end: skip tearing down onnxruntime and numpy.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
