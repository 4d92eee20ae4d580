"""Where a job runs: a fresh subprocess per job, or a check worker's cache of sessions.

Both run the same code (``worker.run_check_job``/``run_run_job``) on the same typed jobs
(``jobs``); only what a session costs differs. ``replay`` runs a model once for ``pack``.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ogverify.errors import ReplayError, UsageError
from ogverify.evidence.execution import ExecutionConfig
from ogverify.runtime.jobs import CheckJob, CheckResult, FailureKind, RunJob, RunResult, TensorFile

if TYPE_CHECKING:
    from ogverify.model.values import Value
    from ogverify.runtime.jobs import ValueLoader

T = TypeVar("T")

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


def replay(
    model_path: Path,
    inputs: Mapping[str, Value],
    output_names: Sequence[str],
    config: ExecutionConfig,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    max_output_bytes: int | None = None,
) -> RunResult:
    """Run ``model_path`` once in a new Python process and return the requested outputs.

    Args:
        memory_limit: bytes of data memory the process may allocate (``RLIMIT_DATA``, Linux);
            None: no limit.
        max_output_bytes: refuse to read back an output file larger than this.

    Raises:
        ReplayError: the runtime failed to load or run the model, the process died, timed out or
            exceeded ``memory_limit``.
    """
    from ogverify.runtime.jobs import value_suffix, write_value

    with tempfile.TemporaryDirectory(prefix="ogverify-replay-") as work:
        work_dir = Path(work)
        files = []
        for index, (name, value) in enumerate(inputs.items()):
            path = work_dir / f"input_{index}{value_suffix(value)}"
            write_value(value, path, f"input {name!r}")
            files.append(TensorFile(name, str(path)))
        # The model by absolute path: the process runs in its own cwd.
        job = RunJob(str(model_path.resolve()), tuple(files), tuple(output_names), config, memory_limit)
        raw = run_fresh(job, work_dir, timeout=timeout)
        result = RunResult.from_json(raw, value_loader(max_output_bytes, strict=True))
    if result.failure is not None:
        raise ReplayError(result.failure.headline, result.failure.detail)
    return result


def check_fresh(job: CheckJob, *, timeout: float, max_output_bytes: int | None = None) -> CheckResult:
    """Answer ``job`` in a new Python process (``max_output_bytes``: reproduced values larger
    than this are not read back).

    Raises:
        ReplayError: the process died or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="ogverify-replay-") as work:
        raw = run_fresh(job, Path(work), timeout=timeout)
        return CheckResult.from_json(raw, value_loader(max_output_bytes))


def run_fresh(job: RunJob | CheckJob, work_dir: Path, *, timeout: float) -> dict[str, Any]:
    """Run ``python -m ogverify.runtime.worker`` on ``job`` in ``work_dir``; its result document.

    Raises:
        ReplayError: the process died or timed out.
    """
    job_path = work_dir / "job.json"
    job_path.write_text(json.dumps(job.to_json(work_dir)), encoding="utf-8")
    try:
        # cwd: anything the runtime writes by a relative path lands in the work dir and goes with it.
        process = subprocess.run(
            [sys.executable, "-m", "ogverify.runtime.worker", str(job_path)],
            capture_output=True, text=True, timeout=timeout, check=False, cwd=work_dir,
        )
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"re-execution did not finish within {timeout:g} s") from exc
    return read_result(work_dir, process.stderr, process.returncode, job.memory_limit)


def value_loader(limit: int | None, *, strict: bool = False) -> ValueLoader:
    """Reads an output value back from its file; one over ``limit`` bytes is skipped (``strict``: refused).

    Raises (when loading):
        ReplayError: ``strict`` and a file over ``limit``.
    """
    from ogverify.runtime.jobs import read_value

    def load(name: str, path: str) -> Value | None:
        what = f"reproduced output {name!r}"
        if limit is not None and Path(path).stat().st_size > limit:
            if strict:
                raise ReplayError(f"{what} is larger than the max_tensor_bytes limit ({limit})")
            return None
        return read_value(Path(path).read_bytes(), what)

    return load


def read_result(work_dir: Path, stderr: str, returncode: int | None, memory_limit: int | None) -> dict[str, Any]:
    """The result document a worker process left in ``work_dir``.

    Raises:
        ReplayError: no result (the process died; out of memory when its stderr says so).
    """
    from ogverify.runtime.worker import memory_message

    result_path = work_dir / "result.json"
    if not result_path.is_file():
        if memory_limit is not None and _out_of_memory(stderr):
            raise ReplayError(memory_message(memory_limit))
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise ReplayError(f"re-execution process died (exit {returncode}): {tail[:300]}")
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result


def _out_of_memory(stderr: str) -> bool:
    return any(sign in stderr for sign in ("MemoryError", "std::bad_alloc", "Cannot allocate memory"))


class Replayer(Protocol):
    """Something that answers a CheckJob: ``check`` calls it once per bundle it re-executes."""

    def __call__(self, job: CheckJob, *, timeout: float, max_output_bytes: int | None = None) -> CheckResult: ...


class SessionCache:
    """In-worker re-execution: InferenceSessions kept per (model digest, execution config).

    A check worker is itself a fresh process with respect to the CLI, and it re-uses one loaded
    session for every bundle that shares both the model (by digest) and the configuration: a
    batch of 1000 bundles of one model loads it once per worker, not 1000 times. Configurations
    with process-sticky settings (``session.is_process_sticky``) fall back to ``check_fresh``, a
    new process per run. A run that exceeds its timeout cannot be interrupted inside a process:
    the cache is then marked ``poisoned`` and the worker that owns it must exit; so does one that
    ran out of memory.

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

    def __call__(self, job: CheckJob, *, timeout: float = DEFAULT_TIMEOUT,
                 max_output_bytes: int | None = None) -> CheckResult:
        from ogverify.runtime.session import is_process_sticky
        from ogverify.runtime.worker import run_check_job

        stricter = (job.memory_limit is not None and self.process_memory_limit is not None
                    and job.memory_limit < self.process_memory_limit)
        if is_process_sticky(job.execution) or stricter:
            with self._lock:
                self.fresh_runs += 1
            return check_fresh(job, timeout=timeout, max_output_bytes=max_output_bytes)
        result = self._in_thread(lambda: run_check_job(job, self._session), timeout, job.model_key, job.execution)
        if result.failure is not None and result.failure.kind in (FailureKind.MEMORY, FailureKind.LIMIT):
            self.poisoned = True
        return replace(result, run=replace(result.run, process="worker")) if result.run is not None else result

    def check_many(self, jobs: Sequence[CheckJob], *, timeout: float = DEFAULT_TIMEOUT,
                   max_output_bytes: int | None = None) -> Iterator[CheckResult | ReplayError]:
        """Each job's answer, in order: what ``self(job)`` answers, or the ReplayError it raises.

        For a batch of one model's records (``audit``): the jobs that run here run one after
        another on one thread, with no thread started between two runs, each within ``timeout``.
        After a run that does not finish the cache is poisoned, and the jobs after it are answered
        with that error.
        """
        from ogverify.runtime.session import is_process_sticky
        from ogverify.runtime.worker import run_check_job

        if not jobs:
            return
        if any(is_process_sticky(job.execution) for job in jobs) or any(
            job.memory_limit is not None and self.process_memory_limit is not None
            and job.memory_limit < self.process_memory_limit for job in jobs
        ):
            for job in jobs:  # fresh processes: each job on its own
                try:
                    yield self(job, timeout=timeout, max_output_bytes=max_output_bytes)
                except ReplayError as exc:
                    yield exc
            return
        answers: queue.Queue[CheckResult] = queue.Queue()

        def work() -> None:
            for job in jobs:
                answers.put(run_check_job(job, self._session))

        threading.Thread(target=work, name="ogverify-replay", daemon=True).start()
        for index, job in enumerate(jobs):
            try:
                result = answers.get(timeout=timeout)
            except queue.Empty:
                self.poisoned = True  # the run still holds the session: the worker must start afresh
                with self._lock:
                    self._sessions.pop(self._key(job.model_key, job.execution), None)
                late = ReplayError(f"re-execution did not finish within {timeout:g} s")
                yield from [late] * (len(jobs) - index)
                return
            if result.failure is not None and result.failure.kind in (FailureKind.MEMORY, FailureKind.LIMIT):
                self.poisoned = True
            yield replace(result, run=replace(result.run, process="worker")) if result.run is not None else result

    def run_model(
        self,
        model_path: Path,
        inputs: Mapping[str, Value],
        output_names: Sequence[str],
        config: ExecutionConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        model_key: str,
        memory_limit: int | None = None,
        max_output_bytes: int | None = None,
    ) -> RunResult:
        """``replay`` on a cached session: run a model on in-memory inputs and return the named
        outputs (canonical copies). Process-sticky or stricter-memory runs get a fresh process.

        Raises:
            ReplayError: the run failed, timed out, or gave an output over ``max_output_bytes``.
        """
        from ogverify.model.tensors import canonicalize
        from ogverify.model.values import is_tensor, leaves
        from ogverify.runtime.session import is_process_sticky
        from ogverify.runtime.worker import run_inputs

        stricter = (memory_limit is not None and self.process_memory_limit is not None
                    and memory_limit < self.process_memory_limit)
        if is_process_sticky(config) or stricter:
            with self._lock:
                self.fresh_runs += 1
            return replay(model_path, inputs, output_names, config, timeout=timeout, memory_limit=memory_limit,
                          max_output_bytes=max_output_bytes)
        result = self._in_thread(
            lambda: run_inputs(str(model_path), model_key, config, inputs, list(output_names), self._session,
                               memory_limit),
            timeout, model_key, config,
        )
        if result.failure is not None:
            self.poisoned = self.poisoned or result.failure.kind in (FailureKind.MEMORY, FailureKind.LIMIT)
            raise ReplayError(result.failure.headline, result.failure.detail)
        outputs: dict[str, Value] = {}
        for name, value in result.outputs.items():
            if max_output_bytes is not None and sum(leaf.nbytes for leaf in leaves(value)) > max_output_bytes:
                raise ReplayError(f"reproduced output {name!r} is larger than the max_tensor_bytes limit "
                                  f"({max_output_bytes})")
            outputs[name] = canonicalize(value, f"output {name!r}").copy() if is_tensor(value) else value
        assert result.run is not None
        return RunResult(replace(result.run, process="worker"), outputs)

    def _in_thread(self, work: Callable[[], T], timeout: float, model_key: str, config: ExecutionConfig) -> T:
        """``work()`` on a thread, waited for at most ``timeout`` seconds.

        Raises:
            ReplayError: it did not finish in time; the cache is then poisoned (the run still holds
                the session), and the worker that owns it must exit.
        """
        box: list[T] = []
        thread = threading.Thread(target=lambda: box.append(work()), name="ogverify-replay", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self.poisoned = True
            with self._lock:
                self._sessions.pop(self._key(model_key, config), None)
            raise ReplayError(f"re-execution did not finish within {timeout:g} s")
        return box[0]

    @staticmethod
    def _key(model_key: str, config: ExecutionConfig) -> tuple[str, str]:
        return model_key, json.dumps(config.to_json(), sort_keys=True)

    def _session(self, model: str, config: ExecutionConfig, model_key: str, data_folder: str | None = None) -> Any:
        """The cached session for (model_key, config), built on first use (``worker.SessionProvider``);
        one built on external data read in place (``data_folder``) serves this run only."""
        from ogverify.runtime.session import build_session

        key = self._key(model_key, config)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                self.reuses += 1
                return session
            session = build_session(model, config, data_folder=data_folder)
            self.loads += 1
            if data_folder is not None:
                # Built on a bundle's own files (verified in place): onnxruntime maps external data
                # and reads it as the model runs, so the session is sound only within that bundle's
                # check, whose re-hash after the run covers it. Kept, it would read that file for
                # other bundles too, after the file's own check is over.
                return session
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session
