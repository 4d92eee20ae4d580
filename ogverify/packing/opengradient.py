"""``import opengradient``: an OpenGradient on-chain inference record as a bundle.

The record (transaction + receipt, or the SDK's decoded JSON) is decoded as the SDK decodes it
(``ogverify.interop.opengradient``); the model file must be the one the record's ``modelId``
names. Inputs become the model's declared types exactly (a fixed-point value that does not fit
the declared type is refused); claimed number outputs are the SDK's float32 decoding, compared
in ``decimal`` mode at the decimals the chain kept for each element. The records themselves, the
transaction hash, the inference mode and the CID go into the manifest's ``provenance``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from ogverify.errors import UsageError
from ogverify.evidence.comparison import ComparisonPolicy, ComparisonSpec
from ogverify.evidence.execution import ExecutionConfig
from ogverify.evidence.manifest import ChainRecord, Provenance
from ogverify.interop.opengradient import InferenceRecord, NumberTensor, StringTensor, assert_model, from_fixed_point
from ogverify.model.signature import ModelSignature, TensorSpec, read_signature
from ogverify.model.tensors import Array
from ogverify.packing.pack import PackResult, pack


def _numbers(tensor: NumberTensor, spec: TensorSpec, what: str) -> Array:
    import numpy as np

    dtype = spec.dtype or "float32"
    if dtype == "float32":  # what the SDK produces
        values = [from_fixed_point(v, d) for v, d in tensor.values]
    elif dtype in ("float64", "float16"):
        values = [float(Decimal(v) / (10 ** Decimal(d))) for v, d in tensor.values]
    elif dtype.startswith(("int", "uint")) or dtype == "bool":
        exact = [Decimal(v) / (10 ** Decimal(d)) for v, d in tensor.values]
        if any(x != x.to_integral_value() for x in exact):
            raise UsageError(f"{what} {tensor.name!r}: the model takes {dtype}, the record has fractions")
        values = [int(x) for x in exact]
    else:
        raise UsageError(f"{what} {tensor.name!r}: the model takes {dtype}, which a number tensor cannot give")
    shape = tensor.shape or (len(values),)
    try:
        return np.array(values, dtype=dtype).reshape(shape)
    except ValueError as exc:
        raise UsageError(f"{what} {tensor.name!r}: {len(values)} values do not fill shape {list(shape)}") from exc


def _strings(tensor: StringTensor, spec: TensorSpec) -> Array:
    import numpy as np

    array = np.array(tensor.values, dtype=str)
    fixed = spec.shape is not None and all(isinstance(d, int) for d in spec.shape)
    if fixed and spec.shape is not None and int(np.prod([int(d) for d in spec.shape if isinstance(d, int)])) \
            == array.size:
        return array.reshape([int(d) for d in spec.shape if isinstance(d, int)])
    return array


def _tensors(numbers: Sequence[NumberTensor], strings: Sequence[StringTensor], declared: Sequence[TensorSpec],
             what: str) -> dict[str, Array]:
    specs = {spec.name: spec for spec in declared}
    arrays: dict[str, Array] = {}
    tensors: list[NumberTensor | StringTensor] = [*numbers, *strings]
    for tensor in tensors:
        if tensor.name not in specs:
            raise UsageError(f"the record's {what} {tensor.name!r} is not one of the model's "
                             f"({', '.join(specs) or 'none'})")
        spec = specs[tensor.name]
        arrays[tensor.name] = (_numbers(tensor, spec, what) if isinstance(tensor, NumberTensor)
                               else _strings(tensor, spec))
    return arrays


def _comparison(record: InferenceRecord, signature: ModelSignature) -> ComparisonPolicy:
    """``decimal`` at each element's decimals for float outputs; every other output compares exactly."""
    float_outputs = {s.name for s in signature.outputs if (s.dtype or "float32").startswith("float")}
    per_output = {}
    for tensor in record.model_output.numbers:
        if tensor.name in float_outputs and tensor.values:
            decimals = tensor.decimals
            per_output[tensor.name] = ComparisonSpec("decimal", decimals=decimals[:1] if len(set(decimals)) == 1
                                                     else decimals)
    return ComparisonPolicy(ComparisonSpec(), per_output)


def import_record(
    model: Path,
    out: Path,
    record: InferenceRecord,
    record_files: Mapping[str, bytes],
    *,
    sign_keys: Sequence[Path] = (),
    config: ExecutionConfig | None = None,
    overwrite: bool = False,
) -> PackResult:
    """Pack the inference ``record`` of ``model`` as a bundle at ``out``.

    Raises:
        EvidenceMismatchError: the model is not the record's ``modelId``.
        UsageError: tensors the model does not have or cannot take.
    """
    from ogverify.evidence.cid import file_cids

    if not model.is_file():
        raise UsageError(f"model {model} does not exist")
    assert_model(record, file_cids(model), model.name)
    signature = read_signature(model)
    inputs = _tensors(record.model_input.numbers, record.model_input.strings, signature.inputs, "input")
    output = record.model_output
    claimed = _tensors(output.numbers, output.strings, signature.outputs, "output")
    if not claimed:
        raise UsageError("the record holds no output of the model (only JSON outputs, which ONNX models do not give)")
    chain = ChainRecord("opengradient", record.inference_mode, record.model_id, output.is_simulation_result,
                        record.transaction_hash)
    return pack(
        model, out, inputs=inputs, claimed_outputs=claimed, config=config,
        comparison=_comparison(record, signature), sign_keys=sign_keys,
        provenance=Provenance(model_cid=record.model_id, chain=chain), chain_files=record_files,
        overwrite=overwrite,
    )
