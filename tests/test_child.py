"""The re-execution process ``check`` starts first (``runtime/child.py``): how it is started,
fed, waited for and stopped, with real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ogverify.runtime.child import STDERR_KEPT, ReplayChild, _Spawned

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_spawn"), reason="needs os.posix_spawn")


def _python(code: str) -> _Spawned:
    return _Spawned([sys.executable, "-c", code])


def test_the_line_sent_reaches_its_stdin_and_its_stderr_and_exit_status_come_back() -> None:
    process = _python("import sys; line = sys.stdin.readline(); sys.stderr.write(line.upper()); sys.exit(3)")
    process.send("job path\n")
    assert process.wait(30) == "JOB PATH\n"
    assert process.returncode == 3


def test_only_the_end_of_a_long_stderr_is_kept_and_reading_it_never_blocks_the_process() -> None:
    process = _python("import sys; sys.stderr.write('x' * 1_000_000 + 'the end'); sys.stderr.flush()")
    process.send("\n")
    stderr = process.wait(30)
    assert stderr is not None and len(stderr) == STDERR_KEPT and stderr.endswith("x" * 100 + "the end")
    assert process.returncode == 0


def test_a_process_past_its_timeout_is_killed_and_reaped() -> None:
    process = _python("import time; time.sleep(60)")
    process.send("\n")
    assert process.wait(0.3) is None
    assert process.returncode == -9
    with pytest.raises(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)


def test_waiting_for_a_process_that_was_sent_nothing_ends_its_stdin_rather_than_the_timeout() -> None:
    """As when the job file cannot be written: the process reads the end of its stdin and exits."""
    process = _python("import sys; sys.exit(0 if sys.stdin.readline() == '' else 1)")
    started = time.monotonic()
    assert process.wait(60) == ""
    assert process.returncode == 0 and time.monotonic() - started < 30


def test_a_line_to_a_process_that_already_ended_is_no_error() -> None:
    process = _python("import sys; sys.exit(5)")
    stat = Path(f"/proc/{process.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z" and time.monotonic() < deadline:
        time.sleep(0.005)  # until it has ended (a zombie: not reaped yet), so that the pipe is broken
    process.send("too late\n")
    assert process.wait(30) == ""
    assert process.returncode == 5


def test_an_unused_re_execution_process_is_stopped_and_its_folder_removed() -> None:
    child = ReplayChild()
    work_dir = child.work_dir
    assert work_dir.is_dir()
    child.close()
    assert not work_dir.exists()


def test_it_starts_for_a_caller_whose_stdin_and_stderr_are_closed(tmp_path: Path) -> None:
    """The pipes' ends are then 0 and 2 themselves; they must still reach the child's 0 and 2."""
    code = (
        "import os, sys, json\n"
        "os.close(0); os.close(2)\n"
        "from ogverify.runtime.child import _Spawned\n"
        "process = _Spawned([sys.executable, '-c', 'import sys; sys.stderr.write(sys.stdin.readline())'])\n"
        "process.send('through\\n')\n"
        "print(json.dumps([process.wait(30), process.returncode]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == ["through\n", 0]
