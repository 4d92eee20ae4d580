"""The re-execution process ``check`` starts before it needs it.

The process (``python -m ogverify.runtime.worker --serve``) imports numpy and onnxruntime and takes
this machine's fingerprint while the parent parses its arguments and verifies the bundle; it
then runs the one job it is given. The console entry point starts it before anything else is
imported, so this module imports only what spawning a process needs.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import sys

# No ``typing`` (~2 ms) before the process starts; type checkers read this as typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ogverify.runtime.jobs import CheckJob, CheckResult

_prestarted: list[ReplayChild] = []


def prestart() -> None:
    """Start a re-execution process now, for the next ``take_prestarted`` (the CLI's first check)."""
    child = ReplayChild()
    _prestarted.append(child)
    atexit.register(child.close)


def take_prestarted() -> ReplayChild | None:
    """The process ``prestart`` started, once; None when there is none."""
    return _prestarted.pop() if _prestarted else None


class ReplayChild:
    """A fresh re-execution process started before it is needed.

    It imports numpy and onnxruntime while the parent verifies the bundle, then runs the one
    job it is given (``run``). Unused, it is told to exit (``close``). It starts in the caller's
    folder, kept off its ``sys.path`` (``-P``), and moves into the job's work directory when the
    job comes, so whatever the runtime writes by a relative path goes away with that directory.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-P", "-m", "ogverify.runtime.worker", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        # After the start: the sooner it starts, the sooner it is ready.
        import tempfile
        from pathlib import Path

        self.work_dir = Path(tempfile.mkdtemp(prefix="ogverify-replay-"))

    def run(
        self, job: CheckJob, *, timeout: float, max_output_bytes: int | None = None,
        while_waiting: Callable[[], object] | None = None,
    ) -> CheckResult:
        """Hand the job over, call ``while_waiting``, and wait for the result.

        ``max_output_bytes``: reproduced values larger than this are not read back.

        Raises:
            ReplayError: the process died, timed out or exceeded the job's memory limit, or was already used.
        """
        import json

        from ogverify.errors import ReplayError
        from ogverify.runtime.jobs import CheckResult
        from ogverify.runtime.runner import read_result, value_loader

        process = self._process
        if process is None:
            raise ReplayError("the re-execution process was already used")
        self._process = None
        job_path = self.work_dir / "job.json"
        job_path.write_text(json.dumps(job.to_json(self.work_dir)), encoding="utf-8")
        try:
            assert process.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # it died already: its result says why
                process.stdin.write(f"{job_path}\n")
                process.stdin.flush()
            if while_waiting is not None:
                while_waiting()
        finally:
            stderr = self._wait(process, timeout)
        raw = read_result(self.work_dir, stderr, process.returncode, job.memory_limit)
        return CheckResult.from_json(raw, value_loader(max_output_bytes))

    @staticmethod
    def _wait(process: subprocess.Popen[str], timeout: float) -> str:
        from ogverify.errors import ReplayError

        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            raise ReplayError(f"re-execution did not finish within {timeout:g} s") from exc
        return stderr

    def close(self) -> None:
        """Stop the process if it was never used, and remove its work directory."""
        process, self._process = self._process, None
        if process is not None:  # never given a job: it holds nothing worth waiting for
            process.kill()
            process.communicate()
        import shutil

        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ReplayChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
