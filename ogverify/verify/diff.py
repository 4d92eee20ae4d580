"""``diff``: what differs between two models or two bundles — tensors, attributes, opsets, config.

Model weights are compared tensor by tensor, by name, with a numeric summary of each changed
tensor; bundles add their execution configuration, comparison policy and environment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ogverify.evidence.comparison import ComparisonSpec
from ogverify.evidence.digest import digest_bytes
from ogverify.evidence.json_fields import JsonFields
from ogverify.model.compare import compare_output

if TYPE_CHECKING:
    from ogverify.evidence.bundle import Bundle
    from ogverify.evidence.manifest import TensorEntry


@dataclass(frozen=True)
class TensorChange(JsonFields):
    """An initializer present on both sides with other values (or another type)."""

    name: str
    a_type: str
    b_type: str
    elements_differing: int | None
    max_abs_diff: float | None
    mean_abs_diff: float | None

    def describe(self) -> str:
        if self.a_type != self.b_type:
            return f"{self.name}: {self.a_type} -> {self.b_type}"
        detail = f"{self.elements_differing} elements differ"
        if self.max_abs_diff is not None:
            detail += f", max abs diff {self.max_abs_diff:.3g}, mean abs diff {self.mean_abs_diff or 0:.3g}"
        return f"{self.name} ({self.a_type}): {detail}"


@dataclass(frozen=True)
class FieldChange(JsonFields):
    """A non-tensor field (attribute, opset, config, environment) that differs."""

    section: str
    field: str
    a: Any
    b: Any


@dataclass(frozen=True)
class Difference:
    """Everything that differs between A and B."""

    a: str
    b: str
    changed_tensors: tuple[TensorChange, ...] = ()
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()
    fields: tuple[FieldChange, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return not (self.changed_tensors or self.only_in_a or self.only_in_b or self.fields)

    def changed_tensor_names(self) -> list[str]:
        return [t.name for t in self.changed_tensors] + list(self.only_in_a) + list(self.only_in_b)

    def summary_lines(self) -> list[str]:
        lines = [f"tensor {t.describe()}" for t in self.changed_tensors]
        lines += [f"tensor {name} only in {self.a}" for name in self.only_in_a]
        lines += [f"tensor {name} only in {self.b}" for name in self.only_in_b]
        lines += [f"{f.section} {f.field}: {f.a!r} -> {f.b!r}" for f in self.fields]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "identical": self.identical,
            "changed_tensors": [t.to_json() for t in self.changed_tensors],
            "only_in_a": list(self.only_in_a), "only_in_b": list(self.only_in_b),
            "fields": [f.to_json() for f in self.fields],
        }


def _type(array: Any) -> str:
    from ogverify.model.tensors import describe

    return describe(array)


def _initializers(model: Any) -> dict[str, Any]:
    return {init.name: init for init in model.graph.initializer}


def _tensor_change(name: str, a: Any, b: Any) -> TensorChange | None:
    from onnx import numpy_helper

    if digest_bytes(a.SerializeToString()) == digest_bytes(b.SerializeToString()):
        return None
    return _array_change(name, numpy_helper.to_array(a), numpy_helper.to_array(b))


def _array_change(name: str, array_a: Any, array_b: Any) -> TensorChange | None:
    """How two arrays differ: types, or elements differing and by how much (None: same values)."""
    if array_a.dtype != array_b.dtype or array_a.shape != array_b.shape:
        return TensorChange(name, _type(array_a), _type(array_b), None, None, None)
    if array_a.tobytes() == array_b.tobytes():
        return None  # same values, other encoding (raw_data vs typed fields)
    if array_a.dtype.kind == "f":
        comparison = compare_output(name, array_a, array_b, ComparisonSpec())
        mean = comparison.statistics.mean_abs if comparison.statistics else None
        return TensorChange(name, _type(array_a), _type(array_b), comparison.elements_differing,
                            comparison.max_abs_diff, mean)
    differing = int(np.count_nonzero(array_a != array_b))
    return TensorChange(name, _type(array_a), _type(array_b), differing, None, None)


def _attribute_value(attribute: Any) -> Any:
    from onnx import helper

    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
    if hasattr(value, "SerializeToString"):
        return digest_bytes(value.SerializeToString()).short
    return value


def diff_model_protos(a: Any, b: Any, label_a: str, label_b: str) -> Difference:
    """Compare two loaded ModelProtos (with their external data loaded)."""
    inits_a, inits_b = _initializers(a), _initializers(b)
    changed = [c for name in sorted(set(inits_a) & set(inits_b))
               if (c := _tensor_change(name, inits_a[name], inits_b[name])) is not None]
    fields: list[FieldChange] = []
    opsets_a = {o.domain or "ai.onnx": o.version for o in a.opset_import}
    opsets_b = {o.domain or "ai.onnx": o.version for o in b.opset_import}
    for domain in sorted(set(opsets_a) | set(opsets_b)):
        if opsets_a.get(domain) != opsets_b.get(domain):
            fields.append(FieldChange("opset", domain, opsets_a.get(domain), opsets_b.get(domain)))
    nodes_a, nodes_b = list(a.graph.node), list(b.graph.node)
    if [n.op_type for n in nodes_a] != [n.op_type for n in nodes_b]:
        fields.append(FieldChange("graph", "nodes", [n.op_type for n in nodes_a], [n.op_type for n in nodes_b]))
    else:
        for index, (node_a, node_b) in enumerate(zip(nodes_a, nodes_b, strict=True)):
            label = node_a.name or f"#{index} {node_a.op_type}"
            attrs_a = {x.name: _attribute_value(x) for x in node_a.attribute}
            attrs_b = {x.name: _attribute_value(x) for x in node_b.attribute}
            for key in sorted(set(attrs_a) | set(attrs_b)):
                if attrs_a.get(key) != attrs_b.get(key):
                    fields.append(FieldChange("attribute", f"{label}.{key}", attrs_a.get(key), attrs_b.get(key)))
            if list(node_a.input) != list(node_b.input) or list(node_a.output) != list(node_b.output):
                fields.append(FieldChange("node", label, [*node_a.input, "->", *node_a.output],
                                          [*node_b.input, "->", *node_b.output]))
    for kind, values_a, values_b in (
        ("input", a.graph.input, b.graph.input),
        ("output", a.graph.output, b.graph.output),
    ):
        sig_a = [(v.name, str(v.type).replace("\n", " ")) for v in values_a if v.name not in inits_a]
        sig_b = [(v.name, str(v.type).replace("\n", " ")) for v in values_b if v.name not in inits_b]
        if sig_a != sig_b:
            fields.append(FieldChange("signature", f"graph {kind}s", [n for n, _ in sig_a], [n for n, _ in sig_b]))
    return Difference(
        label_a, label_b, tuple(changed),
        tuple(sorted(set(inits_a) - set(inits_b))), tuple(sorted(set(inits_b) - set(inits_a))), tuple(fields),
    )


def diff_models(a: Path, b: Path) -> Difference:
    """Compare two ONNX model files (external data beside them is loaded)."""
    import onnx

    from ogverify.errors import ModelError

    try:
        model_a, model_b = onnx.load(str(a)), onnx.load(str(b))
    except Exception as exc:
        raise ModelError(f"cannot read the models to compare: {exc}") from exc
    return diff_model_protos(model_a, model_b, str(a), str(b))


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def diff_paths(a: Path, b: Path) -> Difference:
    """Compare two models or two bundles (either form); the kind is read from each path."""
    from ogverify.evidence.bundle import MARKER

    def is_bundle(path: Path) -> bool:
        return path.suffix == ".ogb" or (path.is_dir() and (path / MARKER).is_file())

    if is_bundle(a) != is_bundle(b):
        from ogverify.errors import UsageError

        raise UsageError("diff compares two models or two bundles, not one of each")
    if not is_bundle(a):
        return diff_models(a, b)
    return _diff_bundles(a, b)


def _diff_bundles(a: Path, b: Path) -> Difference:
    import tempfile

    from ogverify.errors import BundleError, EvidenceMismatchError
    from ogverify.evidence.bundle import open_bundle
    from ogverify.evidence.materialise import materialise_model

    with tempfile.TemporaryDirectory(prefix="ogverify-diff-") as work, open_bundle(a) as bundle_a, \
            open_bundle(b) as bundle_b:
        paths = []
        for label, bundle in (("a", bundle_a), ("b", bundle_b)):
            try:
                paths.append(materialise_model(bundle, Path(work) / label))
            except EvidenceMismatchError as exc:  # unsafe names: a bundle diff cannot unpack
                raise BundleError(f"{bundle.path}: {exc.message}") from exc
        model_difference = diff_models(paths[0], paths[1])
        fields = list(model_difference.fields)
        json_a, json_b = bundle_a.manifest.to_json(), bundle_b.manifest.to_json()
        for section in ("execution", "comparison", "environment", "annotations"):
            flat_a, flat_b = _flatten(json_a[section], ""), _flatten(json_b[section], "")
            for key in sorted(set(flat_a) | set(flat_b)):
                if flat_a.get(key) != flat_b.get(key):
                    fields.append(FieldChange(section, key, flat_a.get(key), flat_b.get(key)))
        tensors = list(model_difference.changed_tensors)
        for kind in ("inputs", "outputs"):
            entries_a = {t.name: t for t in getattr(bundle_a.manifest, kind)}
            entries_b = {t.name: t for t in getattr(bundle_b.manifest, kind)}
            for name in sorted(set(entries_a) | set(entries_b)):
                one, other = entries_a.get(name), entries_b.get(name)
                if one is not None and other is not None and one.artifact.blake3 != other.artifact.blake3:
                    # The numbers, as diff of two models gives them for initializers.
                    change = _stored_change(f"{kind[:-1]} {name}", bundle_a, one, bundle_b, other)
                    if change is not None:
                        tensors.append(change)
                        continue
                digest_a = one.artifact.blake3 if one is not None else None
                digest_b = other.artifact.blake3 if other is not None else None
                if digest_a != digest_b:
                    fields.append(FieldChange(kind, name, digest_a, digest_b))
        return dataclasses.replace(model_difference, a=str(a), b=str(b), changed_tensors=tuple(tensors),
                                   fields=tuple(fields))


def _stored_change(
    label: str, bundle_a: Bundle, a: TensorEntry, bundle_b: Bundle, b: TensorEntry
) -> TensorChange | None:
    """How a tensor stored in two bundles differs; None when either is not an array this can read
    (then the digests say it)."""
    from ogverify.errors import BundleError
    from ogverify.model.tensors import parse_npy

    try:
        arrays = [parse_npy(bundle.read_blob(entry.artifact, label, bundle.limits.max_tensor_bytes), label)
                  for bundle, entry in ((bundle_a, a), (bundle_b, b))]
    except BundleError:
        return None
    return _array_change(label, *arrays)
