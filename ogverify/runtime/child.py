"""The re-execution process ``check`` starts before it needs it.

The process (``python -m ogverify.runtime.worker --serve``) imports numpy and onnxruntime and takes
this machine's fingerprint while the parent parses its arguments and verifies the bundle; it
then runs the one job it is given. The console entry point starts it before anything else is
imported, so this module imports only what spawning a process needs.
"""

from __future__ import annotations

import atexit
import os
import sys

# No ``typing`` (~2 ms) before the process starts; type checkers read this as typing.TYPE_CHECKING.
# Nor ``subprocess`` (~6 ms): the process is started with ``os.posix_spawn`` (``_Spawned``).
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
        self._process: _Spawned | None = _Spawned([sys.executable, "-P", "-m", "ogverify.runtime.worker", "--serve"])
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
        try:
            job_path.write_text(json.dumps(job.to_json(self.work_dir)), encoding="utf-8")
            process.send(f"{job_path}\n")
            if while_waiting is not None:
                while_waiting()
        finally:
            stderr = process.wait(timeout)
        if stderr is None:
            raise ReplayError(f"re-execution did not finish within {timeout:g} s")
        raw = read_result(self.work_dir, stderr, process.returncode, job.memory_limit)
        return CheckResult.from_json(raw, value_loader(max_output_bytes))

    def close(self) -> None:
        """Stop the process if it was never used, and remove its work directory."""
        process, self._process = self._process, None
        if process is not None:  # never given a job: it holds nothing worth waiting for
            process.kill()
        import shutil

        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ReplayChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The end of the process's stderr kept for the report (a model may make it write without end).
STDERR_KEPT = 64 << 10


class _Spawned:
    """A process started with ``os.posix_spawn``: its stdin a pipe this side writes once, its
    stderr a pipe this side reads to the end (the last STDERR_KEPT bytes kept), its stdout
    /dev/null. What ``subprocess.Popen`` would do, without importing it before the start."""

    def __init__(self, argv: list[str]) -> None:
        stdin_read, self._stdin = _pipe()
        self._stderr, stderr_write = _pipe()
        try:
            self.pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin_read, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, stderr_write, 2),
            ])
        except BaseException:
            self._close_pipes()
            raise
        finally:
            os.close(stdin_read)
            os.close(stderr_write)
        self.returncode: int | None = None

    def send(self, line: str) -> None:
        """Write ``line`` to its stdin and close it (a line fits the pipe: this never blocks)."""
        try:
            os.write(self._stdin, line.encode("utf-8"))
        except BrokenPipeError:  # it died already: its stderr and exit status say why
            pass
        finally:
            os.close(self._stdin)
            self._stdin = -1

    def wait(self, timeout: float) -> str | None:
        """Its stderr once it has exited (``returncode`` set); None, and the process killed, when
        it has not within ``timeout`` seconds. Its stdin is closed first, as ``communicate``
        does: a process that was sent nothing (the job could not be written) reads the end and
        exits instead of waiting out the timeout."""
        import selectors
        import time

        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1
        deadline = time.monotonic() + timeout
        tail = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(self._stderr, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.kill()
                    return None
                data = os.read(self._stderr, 1 << 16)
                if not data:
                    break
                tail += data
                del tail[:-STDERR_KEPT]
        while True:  # its stderr closed: it is exiting (or closed it and goes on: the deadline holds)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                self._close_pipes()
                return tail.decode("utf-8", "replace")
            if time.monotonic() >= deadline:
                self.kill()
                return None
            time.sleep(0.001)

    def kill(self) -> None:
        """End it now (SIGKILL) and reap it."""
        import contextlib
        import signal

        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self._stdin, self._stderr):
            if fd >= 0:
                os.close(fd)
        self._stdin = self._stderr = -1


def _pipe() -> tuple[int, int]:
    """``os.pipe()`` with both ends above 2 (see ``_above_stdio``)."""
    read, write = os.pipe()
    return _above_stdio(read), _above_stdio(write)


def _above_stdio(fd: int) -> int:
    """``fd``, or a copy of it above 2: put on the child's 0 or 2, an end that already were 0 or 2
    (a caller started with those closed) would stay close-on-exec and never reach the child."""
    if fd > 2:
        return fd
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved
