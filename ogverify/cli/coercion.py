"""Converting command-line values without pydantic, for a fast ``ogverify check``.

typer (0.29) converts every parameter value, even an absent one, through a pydantic
``TypeAdapter``: importing pydantic and building the adapters costs ~100 ms, a third of what a
``check`` of a small model costs over a bare onnxruntime run. ogverify's parameters are all
``str``, ``Path``, ``int``, ``float`` or ``bool`` (or lists of them), whose conversion from a
command-line string is one call. ``install`` gives each parameter of the click command typer
builds that conversion: typer builds its own lazily, on a parameter's first use, and ``install``
makes that first use build this one instead (for the whole process: the CLI calls it in ``main``).

A value outside the plain cases (an ``int`` written ``1e3``, a path that exists but cannot be
read, bytes, a type this module does not know) goes to typer's own conversion, which then makes
the decision and writes the error message; ``tests/test_cli_coercion.py`` holds both to the same
results. Should typer's internals change shape, the CLI goes on with typer's own conversion.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _coercion  # private: the runtime-parameter contract of typer's own params

_INT = re.compile(r"-?[0-9]{1,18}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,15})?")


class _Fallback(Exception):  # noqa: N818 (not an error: a hand-over)
    """The value is not a plain case: typer's own conversion decides."""


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Fallback
    return value


def _to_int(value: Any) -> int:
    if isinstance(value, str) and _INT.fullmatch(value):
        return int(value)
    if type(value) is int:
        return value
    raise _Fallback


def _to_float(value: Any) -> float:
    if isinstance(value, str) and _FLOAT.fullmatch(value):
        return float(value)
    if type(value) in (int, float):
        return float(value)
    raise _Fallback


def _to_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    raise _Fallback


def _to_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value or "\0" in value:
        raise _Fallback
    # typer's default Path option refuses a path that exists but cannot be read
    if os.path.lexists(value) and not os.access(value, os.R_OK):
        raise _Fallback
    return Path(value)


_LEAVES: dict[Any, Callable[[Any], Any]] = {
    str: _to_str, int: _to_int, float: _to_float, bool: _to_bool, Path: _to_path,
}


def _converter(annotation: Any, info: Any) -> Callable[[Any], Any] | None:
    """The conversion for ``annotation`` when its parameter uses no option that changes it."""
    plain = (info.parser is None and info.min is None and info.max is None and not info.clamp
             and not info.exists and not info.resolve_path and not info.allow_dash and info.path_type is None
             and info.file_okay and info.dir_okay and not info.writable)
    if not plain:
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        leaf = _LEAVES.get(item)
        if leaf is None:
            return None
        convert = leaf

        def each(value: Any) -> list[Any]:
            return [convert(v) for v in (value if isinstance(value, (list, tuple)) else [value])]

        return each
    return _LEAVES.get(annotation)


@dataclass(frozen=True)
class _PlainParam(_coercion.RuntimeParam):
    """Converts plain values itself; hands anything else to typer's conversion."""

    convert: Callable[[Any], Any]
    descriptor: Any

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return self.convert(value)
        except _Fallback:
            return _coercion.build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def install() -> None:
    """Make typer's parameters (in this process) convert plain values without pydantic."""
    from typer.core import _TyperParameter

    typer_own = _TyperParameter.get_runtime_param
    if getattr(typer_own, "plain_values", False):
        return

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            try:
                descriptor = self.type_descriptor
                convert = _converter(descriptor.annotation, descriptor.parameter_info)
                if convert is not None:
                    self._runtime_param = _PlainParam(
                        descriptor.parameter_info, descriptor.annotation, convert, descriptor)
            except Exception:  # typer's internals changed shape: typer converts this one itself
                self._runtime_param = None
        return typer_own(self)

    get_runtime_param.plain_values = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
