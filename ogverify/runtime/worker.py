"""Child process of ``runner``: run one model once under one configuration, then exit.

Invoked as ``python -m ogverify.runtime.worker JOB.json``, or as ``python -m ogverify.runtime.worker --serve``,
which imports numpy and onnxruntime first and then reads the job's path from stdin: ``check``
starts it before it verifies the bundle, so that the imports overlap that work. A fresh process
per run matters: some onnxruntime settings (denormals-as-zero, thread pools) stick to the
process that set them. It reads the job, writes each output as .npy (a ``check`` job: only when a
comparison fails) and a result.json, and never raises past main.

A ``check`` job (``"kind": "check"``) also does the numeric half of ``check``: it loads the
packed tensors, validates them against the manifest (the parent has checked the model's
external data and inputs), compares the reproduced outputs with the claimed ones and takes
this machine's fingerprint, so that the parent never imports numpy, onnx or onnxruntime on
the way to a verdict.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run the job and return the result document (outputs are written next to the job)."""
    import numpy as np

    from ogverify.model.tensors import for_runtime

    started = time.perf_counter()
    feeds = {name: for_runtime(np.load(path, allow_pickle=False)) for name, path in job["inputs"].items()}
    result, values = execute(job, feeds, started)
    if values is not None:
        result["outputs"] = write_outputs(job, values)
    return result


def execute(job: dict[str, Any], feeds: dict[str, Any], started: float) -> tuple[dict[str, Any], list[Any] | None]:
    """Run the model on ``feeds``: the result document (no outputs yet) and the output values,
    or an error document and None."""
    import numpy as np
    import onnxruntime as ort

    from ogverify.runtime.config import ExecutionConfig
    from ogverify.runtime.session import RuntimeUnavailableError, build_session, run_options

    config = ExecutionConfig.from_json(job["execution"])
    try:
        session = build_session(job["model"], config)
    except RuntimeUnavailableError as exc:
        return {"error": exc.message, "kind": "environment"}, None
    loaded = time.perf_counter()
    values = session.run(job["outputs"], feeds, run_options(config))
    ran = time.perf_counter()
    for name, value in zip(job["outputs"], values, strict=True):
        if not isinstance(value, np.ndarray):
            return {"error": f"output {name!r} is a {type(value).__name__}, not a tensor; "
                             "only tensor outputs can be compared", "kind": "model"}, None
    return {
        "providers_used": list(session.get_providers()),
        "runtime_version": ort.__version__,
        "seconds": {"load": loaded - started, "run": ran - loaded},
    }, values


def write_outputs(job: dict[str, Any], values: list[Any]) -> dict[str, str]:
    """Write each output as .npy next to the job; name -> path."""
    import numpy as np

    from ogverify.model.tensors import canonicalize

    out_dir = Path(job["out_dir"])
    files = {}
    for index, (name, value) in enumerate(zip(job["outputs"], values, strict=True)):
        path = out_dir / f"output_{index}.npy"
        np.save(path, canonicalize(value, f"output {name!r}"), allow_pickle=False)
        files[name] = str(path)
    return files


# How onnxruntime says an allocation failed (its arena, or a C++ std::bad_alloc turned into an exception).
_ALLOCATION_FAILED = ("Failed to allocate memory", "bad_alloc", "bad allocation", "Cannot allocate memory")
_UNKNOWN_OP = re.compile(r"([\w.]*):(\w+)\(-?\d+\) is not a registered function/op")


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


def describe_failure(exc: BaseException) -> dict[str, Any]:
    """The result document for a run that raised ``exc``: a one-line error and its kind."""
    text = str(exc).strip()
    first_line = (text.splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, MemoryError) or any(sign in text for sign in _ALLOCATION_FAILED):
        return {"error": f"{type(exc).__name__}: allocation failed: {first_line[:300]}", "kind": "memory"}
    unknown = _UNKNOWN_OP.search(text)
    if unknown is not None:
        domain, op = unknown.group(1) or "ai.onnx", unknown.group(2)
        return {"error": f"the model uses operator {op} from domain {domain!r}, which onnxruntime cannot load "
                         "(custom operators are not supported)", "kind": "model"}
    import traceback

    return {"error": f"{type(exc).__name__}: {first_line[:500]}", "kind": "runtime",
            "traceback": traceback.format_exc(limit=5)}


def check_job(job: dict[str, Any], environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load and validate the packed tensors, run the model, compare; see the module docstring.

    ``environment``: this machine's fingerprint, when it was already taken (while waiting).
    """
    from ogverify.errors import EvidenceMismatchError, OgverifyError
    from ogverify.evidence.comparison import ComparisonSpec
    from ogverify.model.agreement import check_tensor
    from ogverify.model.compare import compare_output
    from ogverify.model.tensors import canonicalize, for_runtime, parse_npy
    from ogverify.runtime.fingerprint import capture

    environment = environment if environment is not None else capture()
    try:
        tensors = {}
        for kind, entries in (("input", job["inputs"]), ("claimed output", job["claimed"])):
            for name, entry in entries.items():
                what = f"{kind} '{name}'"
                array = parse_npy(Path(entry["path"]).read_bytes(), what)
                check_tensor(array, entry["dtype"], entry["shape"], what)
                tensors[(kind, name)] = array
        inputs = {name: a for (kind, name), a in tensors.items() if kind == "input"}
    except EvidenceMismatchError as exc:
        return {"mismatch": str(exc), "environment": environment}
    except OgverifyError as exc:
        return {"error": exc.message, "kind": "bundle", "environment": environment}
    job = {**job, "outputs": list(job["claimed"])}
    result, values = execute(job, {name: for_runtime(a) for name, a in inputs.items()}, time.perf_counter())
    result["environment"] = environment
    if values is None:
        return result
    reproduced = [canonicalize(value, f"output {name!r}") for name, value in zip(job["outputs"], values, strict=True)]
    comparisons = [
        compare_output(name, tensors[("claimed output", name)], value, ComparisonSpec.parse(job["specs"][name]))
        for name, value in zip(job["outputs"], reproduced, strict=True)
    ]
    result["comparisons"] = [c.to_json() for c in comparisons]
    # The parent reads the reproduced values only to explain a failure.
    result["outputs"] = write_outputs(job, reproduced) if any(not c.passed for c in comparisons) else {}
    return result


def _serve() -> tuple[str | None, dict[str, Any]]:
    # Pay for the heavy imports, and take the fingerprint, while the parent is still verifying.
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    from ogverify.runtime.fingerprint import capture

    environment = capture()
    line = sys.stdin.readline().strip()
    return line or None, environment


def main(argv: list[str]) -> int:
    environment = None
    if argv[1:] == ["--serve"]:
        job_file, environment = _serve()
        if job_file is None:  # the parent did not need a re-execution after all
            return 0
    else:
        job_file = argv[1]
    job_path = Path(job_file)
    result_path = job_path.with_name("result.json")
    try:
        job = json.loads(job_path.read_text(encoding="utf-8"))
        limit_memory(job.get("memory_limit"))
        result = check_job(job, environment) if job.get("kind") == "check" else run_job(job)
    except Exception as exc:  # reported to the parent as data; the parent decides the exit code
        result = describe_failure(exc)
    result_path.write_text(json.dumps(result), encoding="utf-8")
    if argv[1:] == ["--serve"]:
        # The parent waits for this process to end: skip tearing down onnxruntime and numpy.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
