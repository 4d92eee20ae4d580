"""The one way ogverify creates an onnxruntime session from an ``ExecutionConfig``.

Every caller goes through ``build_session``: the re-execution worker and a check worker's
session cache (``runner``), the drift engine's trials (``probe``), the ``Recorder`` and the
optimised-graph fingerprint. So a knob ``ExecutionConfig`` gains is applied everywhere at once,
and a configuration this onnxruntime cannot run is refused with the same sentence everywhere.

onnxruntime is imported inside the functions: ``check``'s parent process reaches this module
on a path that leaves all numeric work to the re-execution process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ogverify.errors import ReplayError
from ogverify.runtime.threads import physical_cores

if TYPE_CHECKING:
    from ogverify.evidence.execution import ExecutionConfig

# Session config entries whose effect outlives the session that set them. onnxruntime applies
# ``session.set_denormal_as_zero`` to the calling thread once per process, for the first session
# created in it (``std::call_once``): whatever value a configuration sets explicitly, it only takes
# effect in a process of its own. A configuration that sets any value of these runs alone.
PROCESS_STICKY_ENTRIES = frozenset({"session.set_denormal_as_zero"})


SPINNING = "session.intra_op.allow_spinning"
AFFINITIES = "session.intra_op_thread_affinities"


def is_process_sticky(config: ExecutionConfig) -> bool:
    """Whether ``config`` sets process-wide state, so that it must run in a process of its own."""
    return bool(process_state(config))


def process_state(config: ExecutionConfig) -> tuple[tuple[str, str], ...]:
    """The process-sticky entries ``config`` sets, with their values (empty: none).

    Sessions whose process states are equal may share a process, provided the first session
    created there has that state too: it is the one that fixes it (the drift trials group by it).
    """
    return tuple(sorted((k, v) for k, v in config.config_entries.items() if k in PROCESS_STICKY_ENTRIES))


class RuntimeUnavailableError(ReplayError):
    """This onnxruntime cannot run the configuration: it lacks an execution provider or an
    optimisation level the configuration names."""


def check_runnable(config: ExecutionConfig) -> None:
    """Raise RuntimeUnavailableError unless this onnxruntime has every provider and the
    optimisation level ``config`` names."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    for provider in config.providers:
        if provider.name not in available:
            raise RuntimeUnavailableError(f"execution provider {provider.name} is not available here "
                                          f"(available: {', '.join(available)})")
    if not hasattr(ort.GraphOptimizationLevel, config.graph_optimization_level):
        raise RuntimeUnavailableError(f"onnxruntime {ort.__version__} has no {config.graph_optimization_level}")


def _is_runtime_default(config: ExecutionConfig) -> bool:
    """Whether onnxruntime's own default (``intra_op_num_threads = 0``) gives ``config``'s thread
    pool here: the same number of threads, which it then pins one to a core, as the producer's
    own script at default options ran. Pinning decides where a thread runs, never how the work is
    split: the bits are those of the recorded count."""
    return (1 < config.intra_op_num_threads == physical_cores() and config.execution_mode == "ORT_SEQUENTIAL"
            and AFFINITIES not in config.config_entries and sys.platform.startswith("linux"))


def _threads_now() -> int | None:
    """This process's threads (Linux), to read back the pool a session started."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def session_options(config: ExecutionConfig, *, log_severity_level: int = 3, runtime_default: bool = False) -> Any:
    """The ``SessionOptions`` for ``config`` (onnxruntime's log quiet unless asked).

    ``runtime_default``: leave the intra-op thread count to onnxruntime (0) where its default
    resolves to the recorded count here (``_is_runtime_default``); ``build_session`` verifies it did.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, config.graph_optimization_level)
    options.execution_mode = getattr(ort.ExecutionMode, config.execution_mode)
    options.intra_op_num_threads = 0 if runtime_default else config.intra_op_num_threads
    options.inter_op_num_threads = config.inter_op_num_threads
    options.log_severity_level = log_severity_level
    for key, value in config.config_entries.items():
        options.add_session_config_entry(key, value)
    if config.intra_op_num_threads > physical_cores() and SPINNING not in config.config_entries:
        # More threads than cores (a bundle packed on a bigger machine): threads that spin while
        # they wait take the cores the working ones need. Waiting without spinning changes when a
        # thread wakes, never how the work is split, so never the bits.
        options.add_session_config_entry(SPINNING, "0")
    return options


def build_session(
    model: Path | str,
    config: ExecutionConfig,
    *,
    disabled_optimizers: Sequence[str] = (),
    optimized_model: Path | None = None,
    log_severity_level: int = 3,
    alone: bool = False,
    data_folder: Path | str | None = None,
) -> Any:
    """An ``InferenceSession`` of ``model`` under exactly ``config``.

    Args:
        disabled_optimizers: onnxruntime graph transformers to switch off (drift trials).
        optimized_model: write the optimised graph there, its weights beside it in
            ``optimized.data`` (a multi-GB model must not become one in-memory protobuf).
        log_severity_level: onnxruntime's log level; 1 lists the graph transformers applied.
        alone: the caller is a process's only session, built while no other thread starts or
            ends (a fresh re-execution process): where onnxruntime's default thread count is the
            recorded one, the session is built at that default, threads pinned to cores as in the
            producer's own script, and the threads it started are counted; any other count, and
            it is built again with the recorded count set.
        data_folder: read the model's external data from this folder rather than the model's
            own (``check`` points a model at the bundle's verified blobs, which lie elsewhere).

    Raises:
        RuntimeUnavailableError: a provider or optimisation level this onnxruntime lacks.
        Exception: whatever onnxruntime raises for a model it cannot load.
    """
    check_runnable(config)
    if alone and _is_runtime_default(config):
        before = _threads_now()
        session = _create(model, config, disabled_optimizers, optimized_model, log_severity_level, data_folder,
                          runtime_default=True)
        after = _threads_now()
        if before is not None and after is not None and after - before + 1 == config.intra_op_num_threads:
            return session
        del session
    return _create(model, config, disabled_optimizers, optimized_model, log_severity_level, data_folder)


def _create(model: Path | str, config: ExecutionConfig, disabled_optimizers: Sequence[str],
            optimized_model: Path | None, log_severity_level: int, data_folder: Path | str | None, *,
            runtime_default: bool = False) -> Any:
    import onnxruntime as ort

    options = session_options(config, log_severity_level=log_severity_level, runtime_default=runtime_default)
    if optimized_model is not None:
        options.optimized_model_filepath = str(optimized_model)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    source: str | bytes = str(model)
    if data_folder is not None:
        # onnxruntime resolves the locations of a model given as bytes against this folder, and
        # refuses any that leads outside it (symlinks resolved).
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(data_folder))
        source = Path(model).read_bytes()
    return ort.InferenceSession(
        source,
        sess_options=options,
        providers=[p.name for p in config.providers],
        provider_options=[dict(p.options) for p in config.providers],
        **({"disabled_optimizers": list(disabled_optimizers)} if disabled_optimizers else {}),
    )


def run_options(config: ExecutionConfig) -> Any:
    """The ``RunOptions`` for ``config``'s run config entries."""
    import onnxruntime as ort

    options = ort.RunOptions()
    for key, value in config.run_config_entries.items():
        options.add_run_config_entry(key, value)
    return options
