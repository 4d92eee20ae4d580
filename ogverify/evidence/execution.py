"""The execution configuration: every onnxruntime knob that can change output bits.

A bundle records the configuration the producer says it ran with; ``check`` re-creates
exactly that configuration. Values are stored with onnxruntime's own enum names so that
a reader of the manifest can look them up in onnxruntime's documentation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ogverify.errors import UsageError

OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}
EXECUTION_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
DEFAULT_PROVIDER = "CPUExecutionProvider"


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True)
class ProviderSpec:
    """An execution provider and the options it was created with."""

    name: str
    options: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(sorted(self.options.items()))}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ProviderSpec:
        return cls(str(raw["name"]), _frozen({str(k): str(v) for k, v in raw.get("options", {}).items()}))


@dataclass(frozen=True)
class ExecutionConfig:
    """How a model was (or is to be) run.

    Attributes:
        runtime_version: the onnxruntime version that produced the outputs.
        providers: execution providers in priority order.
        graph_optimization_level: one of onnxruntime's ``GraphOptimizationLevel`` names.
        intra_op_num_threads: threads inside an operator; 0 lets onnxruntime choose (not
            reproducible: it follows the checking machine's cores). ``pack`` without ``--threads``
            records the number 0 resolves to where it runs (``ogverify.runtime.threads``); this
            value type's own default stays 1, what bundles recorded before that.
        inter_op_num_threads: threads across operators (used in parallel mode).
        execution_mode: ``ORT_SEQUENTIAL`` or ``ORT_PARALLEL``.
        config_entries: session configuration entries (``session.*``, ``optimization.*`` ...).
        run_config_entries: run-option configuration entries.
    """

    runtime_version: str
    providers: tuple[ProviderSpec, ...] = (ProviderSpec(DEFAULT_PROVIDER),)
    graph_optimization_level: str = "ORT_ENABLE_ALL"
    intra_op_num_threads: int = 1
    inter_op_num_threads: int = 1
    execution_mode: str = "ORT_SEQUENTIAL"
    config_entries: Mapping[str, str] = field(default_factory=dict)
    run_config_entries: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.graph_optimization_level not in OPT_LEVELS.values():
            raise UsageError(f"unknown graph optimization level {self.graph_optimization_level!r}")
        if self.execution_mode not in EXECUTION_MODES.values():
            raise UsageError(f"unknown execution mode {self.execution_mode!r}")
        if self.intra_op_num_threads < 0 or self.inter_op_num_threads < 0:
            raise UsageError("thread counts must be 0 (runtime default) or more")
        if not self.providers:
            raise UsageError("at least one execution provider is needed")
        object.__setattr__(self, "config_entries", _frozen(self.config_entries))
        object.__setattr__(self, "run_config_entries", _frozen(self.run_config_entries))

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": {"name": "onnxruntime", "version": self.runtime_version},
            "providers": [p.to_json() for p in self.providers],
            "session_options": {
                "graph_optimization_level": self.graph_optimization_level,
                "intra_op_num_threads": self.intra_op_num_threads,
                "inter_op_num_threads": self.inter_op_num_threads,
                "execution_mode": self.execution_mode,
                "config_entries": dict(self.config_entries),
            },
            "run_options": {"config_entries": dict(self.run_config_entries)},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExecutionConfig:
        session = raw["session_options"]
        return cls(
            runtime_version=str(raw["runtime"]["version"]),
            providers=tuple(ProviderSpec.from_json(p) for p in raw["providers"]),
            graph_optimization_level=str(session["graph_optimization_level"]),
            intra_op_num_threads=int(session["intra_op_num_threads"]),
            inter_op_num_threads=int(session["inter_op_num_threads"]),
            execution_mode=str(session["execution_mode"]),
            config_entries={str(k): str(v) for k, v in session.get("config_entries", {}).items()},
            run_config_entries={
                str(k): str(v) for k, v in raw.get("run_options", {}).get("config_entries", {}).items()
            },
        )


def _parse_name(text: str, names: Mapping[str, str], what: str, choices: str) -> str:
    """Our short name (any case) or onnxruntime's own name for it, as onnxruntime's name."""
    key = text.strip().lower()
    if key in names:
        return names[key]
    if text in names.values():
        return text
    raise UsageError(f"unknown {what} {text!r}; use {choices}")


def parse_opt_level(text: str) -> str:
    """``all`` → ``ORT_ENABLE_ALL``; onnxruntime's own names are accepted too."""
    return _parse_name(text, OPT_LEVELS, "optimization level", f"one of {', '.join(OPT_LEVELS)}")


def parse_execution_mode(text: str) -> str:
    """``sequential`` → ``ORT_SEQUENTIAL``; onnxruntime's own names are accepted too."""
    return _parse_name(text, EXECUTION_MODES, "execution mode", "sequential or parallel")


def parse_key_values(pairs: list[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` → ``{"a": "1", "b": "2"}``, refusing malformed or repeated keys."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {pair!r}")
        if key in result:
            raise UsageError(f"{what} {key!r} given twice")
        result[key] = value
    return result
