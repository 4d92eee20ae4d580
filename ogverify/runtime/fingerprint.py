"""The environment fingerprint: what of this machine can change an inference's output bits.

Recorded when a bundle is packed and taken again when it is checked; ``diff_environments``
ranks the differences by how likely each is to change numerics.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ogverify.report.findings import EnvironmentDifference, Impact
    from ogverify.runtime.trials import TrialResult

THREAD_ENV = re.compile(r"^(OMP|MKL|ORT|OPENBLAS|GOTO|KMP)_")
# CPU features that select different kernels in onnxruntime's MLAS and in numpy.
NUMERIC_CPU_FLAGS = re.compile(
    r"^(sse\d?(_\d)?|ssse3|sse4_[12]|avx|avx2|avx512\w*|avx_vnni\w*|fma|f16c|amx\w*|"
    r"neon|asimd\w*|sve\w*|sme\w*|fphp|bf16|i8mm|dotprod)$"
)



def _cpu() -> dict[str, Any]:
    model, flags = "", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "features"):
                flags.update(value.split())
    # Only without a model name in /proc/cpuinfo: on Linux platform.processor() runs `uname -p`, a
    # process on the way to every check's verdict, for a name the first model line replaces anyway.
    model = model or platform.processor() or platform.machine()
    return {
        "model": model,
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count() or 0,
        "numeric_flags": sorted(f for f in flags if NUMERIC_CPU_FLAGS.match(f)),
    }


def _runtime() -> dict[str, Any]:
    import onnxruntime

    build_info = getattr(onnxruntime, "get_build_info", lambda: "")()
    return {
        "name": "onnxruntime",
        "version": onnxruntime.__version__,
        "build_info": str(build_info),
        "available_providers": list(onnxruntime.get_available_providers()),
    }


SESSION_DEFAULT_FIELDS = (
    "enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse", "enable_profiling",
    "execution_order", "use_deterministic_compute", "use_per_session_threads",
)


def _session_defaults() -> dict[str, str]:
    # SessionOptions fields a bundle does not set itself: a build that changes their defaults
    # changes what "the recorded configuration" means.
    import onnxruntime

    options = onnxruntime.SessionOptions()
    return {name: str(getattr(options, name)) for name in SESSION_DEFAULT_FIELDS if hasattr(options, name)}


def _gpus() -> list[dict[str, str]]:
    import shutil

    if shutil.which("nvidia-smi") is None:
        return []
    import subprocess

    try:
        listing = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in listing.strip().splitlines():
        name, _, driver = line.partition(",")
        gpus.append({"name": name.strip(), "driver": driver.strip()})
    return gpus


def optimized_graph(model: Any, inputs: Any, config: Any, work_dir: Path) -> dict[str, Any] | None:
    """sha256 and op histogram of the graph onnxruntime optimises ``model`` into under ``config``.

    Recorded at pack so that check can tell when this machine's runtime rewrites the graph
    differently (the first thing a changed runtime version or CPU feature set changes).
    Returns None when the graph cannot be produced here.
    """
    return optimized_graph_and(model, inputs, config, work_dir)[0]


def optimized_graph_and(model: Any, inputs: Any, config: Any, work_dir: Path, extra: Sequence[Any] = ()
                        ) -> tuple[dict[str, Any] | None, list[Any]]:
    """``optimized_graph`` and the results of ``extra`` trials run in the same process (the
    trace pack records: one process start instead of two)."""
    from ogverify.runtime.trials import Trial, run_trials

    trial = Trial("optimised graph", config, save_optimized=True, run=False)
    results = run_trials(model, inputs, [trial, *extra], work_dir)
    graph = graph_fingerprint(results[0])
    return ({**graph, "level": config.graph_optimization_level} if graph is not None else None), results[1:]


def graph_fingerprint(run: TrialResult | None) -> dict[str, Any] | None:
    """sha256 of an optimised graph's structure (weights are beside it) and its op histogram."""
    if run is None or run.optimized_model is None or run.error is not None:
        return None
    from ogverify.evidence.digest import digest_file
    from ogverify.model.graph import op_histogram

    return {
        "sha256": digest_file(run.optimized_model, "sha256").hex,
        "op_histogram": dict(sorted(op_histogram(run.optimized_model).items())),
    }


def capture() -> dict[str, Any]:
    """This process's environment fingerprint (imports onnxruntime)."""
    import numpy

    return _assemble({"runtime": _runtime(), "session_defaults": _session_defaults(), "numpy": numpy.__version__})


def _assemble(imported: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint, given the fields that need numpy and onnxruntime imported (``_IMPORTED``)."""
    libc_name, libc_version = platform.libc_ver()
    return {
        "runtime": imported["runtime"],
        "session_defaults": imported["session_defaults"],
        "gpus": _gpus(),
        "python": {"implementation": platform.python_implementation(), "version": platform.python_version()},
        "numpy": imported["numpy"],
        "os": {"system": platform.system(), "release": platform.release()},
        "libc": f"{libc_name} {libc_version}".strip(),
        "cpu": _cpu(),
        "thread_env": {k: v for k, v in sorted(os.environ.items()) if THREAD_ENV.match(k)},
        "byteorder": sys.byteorder,
    }


# The parts of the fingerprint that ``capture`` takes by importing numpy and onnxruntime.
_IMPORTED = ("runtime", "session_defaults", "numpy")


def capture_cached() -> dict[str, Any]:
    """``capture``'s fingerprint, without importing numpy or onnxruntime when this installation's
    has been taken before (``check --no-rerun``: ~150 ms of imports for three fields).

    What only an import can tell (onnxruntime's version, build information, providers and session
    defaults, numpy's version) is kept in the user's cache directory, under a key made of the
    files those answers come from: the Python executable, onnxruntime's compiled module and
    numpy's version file, each by path, size, inode and modification time. Anything else, or a
    cache that cannot be read or written, and this is ``capture``. The result is the same
    dictionary either way (a test holds both to it).
    """
    import hashlib
    import json

    key = _installation_key()
    cache = _cache_dir() / f"fingerprint-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json" if key else None
    if cache is not None:
        try:
            stored = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("imported"), dict):
            imported = stored["imported"]
            if set(imported) == set(_IMPORTED):
                return _assemble(imported)
    environment = capture()
    if cache is not None:
        import contextlib
        import tempfile

        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=cache.parent, prefix=".fingerprint-", suffix=".partial")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"key": key, "imported": {k: environment[k] for k in _IMPORTED}}, out)
            os.replace(temp, cache)
    return environment


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "ogverify"


def _installation_key() -> str | None:
    """Path, size, inode and mtime of the files behind the imported fields; None: not found."""
    import importlib.util

    try:
        runtime, numpy = importlib.util.find_spec("onnxruntime"), importlib.util.find_spec("numpy")
    except (ImportError, ValueError):
        return None
    if runtime is None or numpy is None or not runtime.submodule_search_locations or numpy.origin is None:
        return None
    runtime_dir = Path(next(iter(runtime.submodule_search_locations)))
    files = [Path(sys.executable), *sorted(runtime_dir.glob("capi/onnxruntime_pybind11_state*")),
             runtime_dir / "__init__.py", Path(numpy.origin).parent / "version.py"]
    if len(files) < 4:
        return None
    parts = []
    for file in files:
        try:
            info = file.stat()
        except OSError:
            return None
        parts.append(f"{file}:{info.st_size}:{info.st_ino}:{info.st_mtime_ns}")
    return "\n".join(parts)


_IMPACT: list[tuple[str, Impact, str]] = [
    ("runtime.version", "high", "different onnxruntime versions ship different fused kernels"),
    ("runtime.build_info", "high", "a different onnxruntime build can select different kernels"),
    ("cpu.numeric_flags", "high", "CPU features select different vectorised kernels (e.g. AVX2 vs AVX-512)"),
    ("cpu.architecture", "high", "a different instruction set runs different kernels"),
    ("optimized_graph", "high", "onnxruntime rewrites the graph differently here"),
    ("runtime.available_providers", "medium", "execution providers available differ"),
    ("session_defaults", "medium", "SessionOptions defaults of this build differ"),
    ("gpus", "medium", "a different GPU or driver runs different kernels"),
    ("thread_env", "medium", "thread settings can change reduction order"),
    ("cpu.logical_cores", "medium", "the default thread count follows the core count"),
    ("numpy", "low", "numpy only converts tensors; it does not compute outputs"),
    ("python", "low", "the Python version does not enter the runtime's arithmetic"),
    ("libc", "low", "libm can differ in transcendental functions on some paths"),
    ("os", "low", "the operating system rarely changes kernels"),
    ("cpu.model", "low", "same features, different model: usually the same kernels"),
]
_RANK = {"high": 0, "medium": 1, "low": 2}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and prefix != "thread_env":
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _impact_of(field: str) -> tuple[Impact, str]:
    for prefix, impact, why in _IMPACT:
        if field == prefix or field.startswith(prefix + "."):
            return impact, why
    return "low", "not known to change numerics"


def diff_environments(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[EnvironmentDifference]:
    """Differences between two fingerprints, most likely to change numerics first."""
    # Here, not above: the re-execution process takes a fingerprint and never compares one.
    from ogverify.report.findings import EnvironmentDifference

    if "optimized_graph" not in current:
        # Model-specific, taken at pack; check compares it only when it re-derives it (drift).
        recorded = {key: value for key, value in recorded.items() if key != "optimized_graph"}
    before, after = _flatten(recorded), _flatten(current)
    differences = []
    changed = sorted(field for field in set(before) | set(after) if before.get(field) != after.get(field))
    for field in changed:
        impact, why = _impact_of(field)
        if field == "cpu.model" and "cpu.numeric_flags" in changed:
            why = "another CPU model, with other numeric features (see cpu.numeric_flags)"
        differences.append(EnvironmentDifference(field, before.get(field), after.get(field), impact, why))
    return sorted(differences, key=lambda d: (_RANK[d.impact], d.field))
