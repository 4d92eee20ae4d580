"""The thread count that ran is the one recorded, and the one ``check`` runs (docs/format.md, execution).

Nothing here assumes a core count: every expectation is computed on the machine running the
test, and the count ogverify computes is held to what onnxruntime itself starts here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import ogverify
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.trace import KnobSensitivity, Profile
from ogverify.packing.recorder import config_of_session
from ogverify.report.formats.text import TextFormatter
from ogverify.runtime.threads import _cpu_list, _linux_physical_cores, physical_cores, resolve_threads
from tests.bundle_helpers import manifest_of
from tests.conftest import RunCli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Threads a default session adds to a fresh process: onnxruntime's intra-op pool is the calling
# thread plus one worker per further thread (none for one thread); sequential mode starts no inter-op pool.
COUNT_DEFAULT_POOL = """
import os, sys
import onnxruntime as ort
before = len(os.listdir("/proc/self/task"))
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_physical_cores_is_the_pool_onnxruntime_starts_at_its_default() -> None:
    model = FIXTURES / "models" / "mlp.onnx"
    added = int(subprocess.run([sys.executable, "-c", COUNT_DEFAULT_POOL, str(model)], capture_output=True,
                               text=True, check=True).stdout)
    assert added + 1 == physical_cores()


# A re-execution process's session (worker.fresh_session) for a recorded count: the count its
# options hold (0: onnxruntime's default) and the threads it started. With a second argument,
# ogverify believes this machine has that many cores: onnxruntime's default then starts another
# count, which build_session must notice.
FRESH_SESSION = """
import os, sys
import onnxruntime as ort
import ogverify.runtime.session
from ogverify.evidence.execution import ExecutionConfig
from ogverify.runtime.worker import fresh_session
if len(sys.argv) > 3:
    ogverify.runtime.session.physical_cores = lambda: int(sys.argv[3])
config = ExecutionConfig(runtime_version=ort.__version__, intra_op_num_threads=int(sys.argv[2]))
before = len(os.listdir("/proc/self/task"))
session = fresh_session(sys.argv[1], config, "")
print(session.get_session_options().intra_op_num_threads, len(os.listdir("/proc/self/task")) - before)
"""


def _fresh(*args: int) -> tuple[int, int]:
    process = subprocess.run([sys.executable, "-c", FRESH_SESSION, str(FIXTURES / "models" / "mlp.onnx"),
                              *map(str, args)], capture_output=True, text=True, check=True)
    options, started = process.stdout.split()
    return int(options), int(started)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_a_fresh_process_runs_the_recorded_count_as_onnxruntime_defaults_do() -> None:
    cores = physical_cores()
    # The recorded count is onnxruntime's default here: built at the default (threads pinned to
    # cores, as the producer's script ran), and the pool it started is the recorded count.
    assert _fresh(cores) == ((0, cores - 1) if cores > 1 else (1, 0))
    # Another count: set as recorded.
    assert _fresh(cores + 1) == (cores + 1, cores)
    # Had ogverify counted the cores wrong, the default's pool would differ: built again, as recorded.
    assert _fresh(cores + 1, cores + 1) == (cores + 1, cores)


def _cpu(root: Path, cpu: int, siblings: str, name: str = "core_cpus_list") -> None:
    topology = root / f"cpu{cpu}" / "topology"
    topology.mkdir(parents=True)
    (topology / name).write_text(siblings + "\n")


def test_cores_are_counted_once_per_physical_core(tmp_path: Path) -> None:
    assert _cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    smt = tmp_path / "smt"  # 2 cores of 2 hardware threads each, numbered as Linux does; cpu 4 offline
    smt.mkdir()
    (smt / "online").write_text("0-3\n")
    for cpu, siblings in ((0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3"), (4, "4")):
        _cpu(smt, cpu, siblings)
    assert _linux_physical_cores(smt) == 2
    old = tmp_path / "old"  # a kernel before core_cpus_list
    old.mkdir()
    (old / "online").write_text("0-2\n")
    for cpu in range(3):
        _cpu(old, cpu, str(cpu), "thread_siblings_list")
    assert _linux_physical_cores(old) == 3
    assert _linux_physical_cores(tmp_path / "missing") is None  # then onnxruntime's own fallback
    assert resolve_threads(None) == physical_cores() and resolve_threads(0) == 0 and resolve_threads(3) == 3


def test_a_session_at_defaults_is_recorded_with_the_count_it_ran() -> None:
    session = ort.InferenceSession(str(FIXTURES / "models" / "mlp.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_session_options().intra_op_num_threads == 0
    assert config_of_session(session).intra_op_num_threads == physical_cores()


def test_pack_without_threads_records_the_default_and_check_runs_it(tmp_path: Path, run_cli: RunCli,
                                                                    mlp_files: dict[str, Path]) -> None:
    bundle = tmp_path / "default.ogb"
    assert run_cli("pack", mlp_files["model"], "-i", f"x={mlp_files['x']}", "--run", "--no-trace",
                   "--out", bundle).exit_code == 0
    assert manifest_of(bundle)["execution"]["session_options"]["intra_op_num_threads"] == physical_cores()
    result = run_cli("check", bundle, "--allow-unsigned", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replay"]["intra_op_num_threads"] == physical_cores()  # read back from the session that ran
    assert all(f["subject"] != "intra-op threads" for f in report["findings"])  # no more threads than cores


def test_a_bundle_of_the_old_default_one_thread_checks_as_it_is(run_cli: RunCli) -> None:
    manifest = manifest_of(FIXTURES / "mlp.ogb")  # packed when pack recorded 1 by default
    assert manifest["execution"]["session_options"]["intra_op_num_threads"] == 1
    result = run_cli("check", FIXTURES / "mlp.ogb", "--trusted-key", FIXTURES / "demo.key.pub", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["replay"]["intra_op_num_threads"] == 1


def test_more_threads_than_cores_are_reported_and_still_run(tmp_path: Path, mlp_files: dict[str, Path]) -> None:
    recorded = physical_cores() + 1
    x = np.load(mlp_files["x"])
    config = ExecutionConfig(runtime_version=ort.__version__, intra_op_num_threads=recorded)
    # The producer's profile, as pack --profile records it: threads tried, bits unchanged.
    profile = Profile((KnobSensitivity("intra_op_num_threads", (str(recorded), "1", "2"), False, None,
                                       str(recorded)),), 3)
    bundle = tmp_path / "many.ogb"
    ogverify.pack(mlp_files["model"], bundle, inputs={"x": x}, config=config, profile=profile)
    report = ogverify.check(bundle, allow_unsigned=True)
    assert report.headline == "VERIFIED: outputs reproduced", report.headline
    (note,) = [f for f in report.findings if f.subject == "intra-op threads"]
    assert dict(note.evidence) == {"recorded": recorded, "physical_cores_here": physical_cores(), "ran": recorded,
                                   "threads_change_bits": False}
    assert note.message.startswith(f"recorded {recorded} intra-op threads, this machine has {physical_cores()} "
                                   f"physical core")
    assert note.message.endswith(f"this model's profile shows threads ({recorded}, 1, 2) do not change its bits")
    assert note.message in TextFormatter().render([report]).replace("\n│   ", " ")
    assert report.to_json()["replay"]["intra_op_num_threads"] == recorded


def test_log_init_without_threads_records_the_default(tmp_path: Path, run_cli: RunCli) -> None:
    from ogverify.packing.log import EvidenceLog

    log = tmp_path / "log"
    assert run_cli("log", "init", log, FIXTURES / "models" / "mlp.onnx").exit_code == 0
    assert EvidenceLog.open(log).config.intra_op_num_threads == physical_cores()
