"""Re-execution of a model in a fresh subprocess under a recorded configuration."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ogverify.errors import ReplayError, UsageError
from ogverify.runtime.config import ExecutionConfig

if TYPE_CHECKING:
    from ogverify.model.tensors import Array

# numpy is imported where arrays are handled, not here: `check` reaches this module on a path
# that leaves all numeric work to the re-execution process.

DEFAULT_TIMEOUT = 600.0
# The longest a re-execution may be given (about 11.6 days); also keeps waits within what the
# operating system's timers take.
MAX_TIMEOUT = 1_000_000.0


def checked_timeout(seconds: float, name: str = "timeout") -> float:
    """``seconds`` if it is a usable re-execution timeout; else a UsageError naming ``name``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= MAX_TIMEOUT:
        raise UsageError(f"{name} must be a number of seconds above 0 and at most {MAX_TIMEOUT:.0f}, not {seconds!r}")
    return float(seconds)


@dataclass(frozen=True)
class ReplayResult:
    """Outputs of one fresh-process run and what the runtime reports about it."""

    outputs: dict[str, Array]
    providers_used: tuple[str, ...]
    runtime_version: str
    seconds: Mapping[str, float] = field(default_factory=dict)
    process: str = "fresh"
    """``fresh``: a new process for this one run; ``worker``: a check worker's cached session."""

    def to_json(self) -> dict[str, Any]:
        return {
            "providers_used": list(self.providers_used),
            "runtime_version": self.runtime_version,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "process": self.process,
        }


def replay(
    model_path: Path,
    inputs: Mapping[str, Array],
    output_names: Sequence[str],
    config: ExecutionConfig,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    max_output_bytes: int | None = None,
) -> ReplayResult:
    """Run ``model_path`` once in a new Python process and return the requested outputs.

    Args:
        memory_limit: bytes of data memory the process may allocate (``RLIMIT_DATA``, Linux);
            None: no limit.
        max_output_bytes: refuse to read back an output file larger than this.

    Raises:
        ReplayError: the runtime failed to load or run the model, the process died, timed out or
            exceeded ``memory_limit``.
    """
    import numpy as np

    from ogverify.model.tensors import parse_npy

    with tempfile.TemporaryDirectory(prefix="ogverify-replay-") as work:
        work_dir = Path(work)
        input_files = {}
        for index, (name, array) in enumerate(inputs.items()):
            path = work_dir / f"input_{index}.npy"
            np.save(path, array, allow_pickle=False)
            input_files[name] = str(path)
        job = {
            "model": str(model_path.resolve()),  # the child runs in its own cwd
            "inputs": input_files,
            "outputs": list(output_names),
            "execution": config.to_json(),
            "out_dir": str(work_dir),
            "memory_limit": memory_limit,
        }
        job_path = work_dir / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        try:
            # cwd: anything the runtime writes by a relative path lands in the work dir and goes with it.
            process = subprocess.run(
                [sys.executable, "-m", "ogverify.runtime.worker", str(job_path)],
                capture_output=True, text=True, timeout=timeout, check=False, cwd=work_dir,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReplayError(f"re-execution did not finish within {timeout:g} s") from exc
        result = read_result(work_dir, process.stderr, process.returncode, memory_limit)
        if "error" in result:
            raise ReplayError(f"re-execution failed: {result['error']}", result.get("traceback", ""))
        outputs = {}
        for name, path in result["outputs"].items():
            what = f"reproduced output {name!r}"
            if max_output_bytes is not None and Path(path).stat().st_size > max_output_bytes:
                raise ReplayError(f"{what} is larger than the max_tensor_bytes limit ({max_output_bytes})")
            outputs[name] = parse_npy(Path(path).read_bytes(), what).copy()
        return ReplayResult(
            outputs, tuple(result["providers_used"]), str(result["runtime_version"]), result["seconds"]
        )


def read_result(work_dir: Path, stderr: str, returncode: int | None, memory_limit: int | None) -> dict[str, Any]:
    """The result document a ``_replay`` process left in ``work_dir``.

    Raises:
        ReplayError: no result (the process died; out of memory when its stderr says so), or a
            result that reports the memory limit was hit.
    """
    result_path = work_dir / "result.json"
    if not result_path.is_file():
        if memory_limit is not None and _out_of_memory(stderr):
            raise ReplayError(memory_message(memory_limit))
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise ReplayError(f"re-execution process died (exit {returncode}): {tail[:300]}")
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    if result.get("kind") == "memory" and memory_limit is not None:
        raise ReplayError(memory_message(memory_limit), result["error"])
    return result


def memory_message(memory_limit: int) -> str:
    """The one line for a re-execution stopped by the memory limit."""
    return (f"re-execution exceeded the memory limit of {memory_limit} bytes "
            "(max_replay_memory); the model needs more memory than the policy allows")


def _out_of_memory(stderr: str) -> bool:
    return any(sign in stderr for sign in ("MemoryError", "std::bad_alloc", "Cannot allocate memory"))


class Replayer(Protocol):
    """Something that re-executes a materialised model: ``check`` calls it once per bundle."""

    def __call__(
        self,
        model_path: Path,
        inputs: Mapping[str, Array],
        output_names: Sequence[str],
        config: ExecutionConfig,
        *,
        timeout: float,
        model_key: str,
        memory_limit: int | None = None,
        max_output_bytes: int | None = None,
    ) -> ReplayResult: ...


class SessionCache:
    """In-worker re-execution: InferenceSessions kept per (model digest, execution config).

    A check worker is itself a fresh process with respect to the CLI, and it re-uses one loaded
    session for every bundle that shares both the model (by digest) and the configuration: a
    batch of 1000 bundles of one model loads it once per worker, not 1000 times. Configurations
    with process-sticky settings (``session.is_process_sticky``) fall back to ``replay``, a new
    process per run. A run that exceeds its timeout cannot be interrupted inside a process: the
    cache is then marked ``poisoned`` and the worker that owns it must exit; so does one that ran
    out of memory.

    ``process_memory_limit`` is the data-memory limit the owning worker process runs under (a
    pool worker sets ``RLIMIT_DATA`` to the policy's ``max_replay_memory`` when it starts). A run
    asking for a stricter limit than that goes to a fresh process that can enforce it.

    Thread-safe: sessions are created under a lock and ``InferenceSession.run`` is re-entrant.
    """

    def __init__(self, max_sessions: int = 4, process_memory_limit: int | None = None) -> None:
        self.max_sessions = max_sessions
        self.process_memory_limit = process_memory_limit
        self._sessions: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        self.reuses = 0
        self.fresh_runs = 0
        self.poisoned = False

    def __call__(
        self,
        model_path: Path,
        inputs: Mapping[str, Array],
        output_names: Sequence[str],
        config: ExecutionConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        model_key: str,
        memory_limit: int | None = None,
        max_output_bytes: int | None = None,
    ) -> ReplayResult:
        stricter = (memory_limit is not None and self.process_memory_limit is not None
                    and memory_limit < self.process_memory_limit)
        from ogverify.runtime.session import is_process_sticky

        if is_process_sticky(config) or stricter:
            with self._lock:
                self.fresh_runs += 1
            return replay(model_path, inputs, output_names, config, timeout=timeout, memory_limit=memory_limit,
                          max_output_bytes=max_output_bytes)
        import onnxruntime as ort

        from ogverify.model.tensors import canonicalize, for_runtime
        from ogverify.runtime.session import run_options

        started = time.perf_counter()
        session = self._session(model_path, config, model_key)
        loaded = time.perf_counter()
        options = run_options(config)
        import numpy as np

        feeds = {name: for_runtime(np.asarray(array)) for name, array in inputs.items()}
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["values"] = session.run(list(output_names), feeds, options)
            except Exception as exc:  # reported as a ReplayError below
                box["error"] = exc

        thread = threading.Thread(target=run, name="ogverify-replay", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self.poisoned = True
            with self._lock:
                self._sessions.pop(self._key(model_key, config), None)
            raise ReplayError(f"re-execution did not finish within {timeout:g} s")
        if "error" in box:
            exc = box["error"]
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if isinstance(exc, MemoryError) or "bad_alloc" in first_line:
                self.poisoned = True
                if self.process_memory_limit is not None:
                    raise ReplayError(memory_message(self.process_memory_limit))
            raise ReplayError(f"re-execution failed: {type(exc).__name__}: {first_line[:500]}")
        ran = time.perf_counter()
        outputs: dict[str, Array] = {}
        for name, value in zip(output_names, box["values"], strict=True):
            if not isinstance(value, np.ndarray):
                raise ReplayError(f"re-execution failed: output {name!r} is a {type(value).__name__}, not a tensor; "
                                  "only tensor outputs can be compared")
            if max_output_bytes is not None and value.nbytes > max_output_bytes:
                raise ReplayError(f"reproduced output {name!r} is larger than the max_tensor_bytes limit "
                                  f"({max_output_bytes})")
            outputs[name] = canonicalize(value, f"output {name!r}").copy()
        return ReplayResult(
            outputs, tuple(session.get_providers()), str(ort.__version__),
            {"load": loaded - started, "run": ran - loaded}, process="worker",
        )

    def session(self, model_path: Path, config: ExecutionConfig, model_key: str) -> Any:
        """The cached InferenceSession for this model and configuration (loaded now if need be), for
        callers that run many inputs themselves (an audit's batch of records).

        Raises:
            ReplayError: the session cannot be created here.
        """
        return self._session(model_path, config, model_key)

    @staticmethod
    def _key(model_key: str, config: ExecutionConfig) -> tuple[str, str]:
        return model_key, json.dumps(config.to_json(), sort_keys=True)

    def _session(self, model_path: Path, config: ExecutionConfig, model_key: str) -> Any:
        from ogverify.runtime.session import RuntimeUnavailableError, build_session

        key = self._key(model_key, config)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                self.reuses += 1
                return session
            try:
                session = build_session(model_path, config)
            except RuntimeUnavailableError as exc:
                raise ReplayError(f"re-execution failed: {exc.message}") from exc
            except Exception as exc:
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ReplayError(f"re-execution failed: {type(exc).__name__}: {first_line[:500]}") from exc
            self.loads += 1
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session
