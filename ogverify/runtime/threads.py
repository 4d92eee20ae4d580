"""How many intra-op threads onnxruntime uses when it is left to choose, computed without it.

A producer who runs at onnxruntime's defaults (``intra_op_num_threads = 0``) runs with a thread
count onnxruntime resolves on their machine, and the thread count can change a model's output
bits (the work of a MatMul or a reduction is split by it). So ``pack`` records the number that
``0`` resolves to, not ``0`` and not a guess: what ran is what ``check`` runs.

How onnxruntime resolves ``0`` (``onnxruntime/core/util/thread_utils.cc``, ``CreateThreadPoolHelper``;
``core/platform/posix/env.cc``, ``PosixEnv::GetDefaultThreadAffinities``): the intra-op pool gets
one thread per *physical core* as the cpuinfo library counts them (``cpuinfo_get_cores_count``:
logical processors that share a core, SMT siblings, count once); a machine of one core gets no
pool, that is one thread. Without cpuinfo it guesses ``std::thread::hardware_concurrency() / 2``.
cpuinfo counts the cores of the machine, not those the process's CPU affinity or a cgroup quota
allows; so do we.

We count the same cores from Linux's sysfs: the distinct ``topology/core_cpus_list`` (older
kernels: ``thread_siblings_list``) of the online processors. On macOS, ``sysctl hw.physicalcpu``
(cpuinfo's source there). Elsewhere, or when those cannot be read, onnxruntime's own fallback.
``tests/test_threads.py`` holds this to what onnxruntime really starts, read back from the
threads a default session creates.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

SYSFS_CPU = Path("/sys/devices/system/cpu")


def _cpu_list(text: str) -> list[int]:
    """``"0-3,8"`` → ``[0, 1, 2, 3, 8]`` (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def _linux_physical_cores(root: Path = SYSFS_CPU) -> int | None:
    try:
        online = _cpu_list((root / "online").read_text())
        cores = set()
        for cpu in online:
            topology = root / f"cpu{cpu}" / "topology"
            siblings = topology / "core_cpus_list"
            if not siblings.is_file():
                siblings = topology / "thread_siblings_list"
            cores.add(tuple(_cpu_list(siblings.read_text())))
    except (OSError, ValueError):
        return None
    return len(cores) or None


def _macos_physical_cores() -> int | None:
    import subprocess  # here: the re-execution process imports this module on its way to a run

    try:
        process = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True,
                                 timeout=5, check=True)
        return int(process.stdout.strip()) or None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


@cache
def physical_cores() -> int:
    """This machine's physical cores, counted as onnxruntime counts them (at least 1): the
    intra-op thread count onnxruntime resolves ``intra_op_num_threads = 0`` to here."""
    found = (_linux_physical_cores() if sys.platform.startswith("linux")
             else _macos_physical_cores() if sys.platform == "darwin" else None)
    return found if found is not None else max(1, (os.cpu_count() or 1) // 2)


def resolve_threads(threads: int | None) -> int:
    """``None`` (not given: onnxruntime's default) → the number onnxruntime resolves
    ``intra_op_num_threads = 0`` to here, ``physical_cores()``; a given number as it is."""
    return physical_cores() if threads is None else threads
