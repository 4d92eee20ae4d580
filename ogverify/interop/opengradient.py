"""OpenGradient on-chain ONNX inference records, decoded as the OpenGradient SDK decodes them.

The SDK (``opengradient`` 1.1.4: ``client/alpha.py`` ``infer``, ``client/_conversions.py``) calls
the inference hub's ``run(string modelId, uint8 inferenceMode, ModelInput)`` and reads the
``InferenceResult(ModelOutput)`` event from the receipt:

- ``ModelInput`` = ``((string name, (int128 value, int128 decimals)[] values, uint32[] shape)[] numbers,
  (string name, string[] values)[] strings)``;
- ``ModelOutput`` = ``(numbers as above, (string,string[])[] strings, (string,string)[] jsons,
  bool is_simulation_result)``;
- a float goes in as ``Decimal(str(x)).normalize()`` split into ``(value, decimals)``
  (:func:`to_fixed_point`); a number comes back as ``float32(Decimal(value) / 10**decimals)``
  (:func:`from_fixed_point`);
- ``modelId`` is the model's IPFS CID; ``inferenceMode`` 0, 1, 2 is VANILLA, ZKML, TEE.

ABI decoding and keccak are ``eth-abi``'s and ``eth-hash``'s (``pip install 'ogverify[opengradient]'``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ogverify.errors import EvidenceMismatchError, OgverifyError, UsageError

NUMBER_TENSOR = "(string,(int128,int128)[],uint32[])"
MODEL_INPUT = f"({NUMBER_TENSOR}[],(string,string[])[])"
MODEL_OUTPUT = f"({NUMBER_TENSOR}[],(string,string[])[],(string,string)[],bool)"
RUN_SIGNATURE = f"run(string,uint8,{MODEL_INPUT})"
EVENT_SIGNATURE = f"InferenceResult({MODEL_OUTPUT})"
INFERENCE_MODES = ("VANILLA", "ZKML", "TEE")


class OpenGradientUnavailableError(OgverifyError):
    """eth-abi is not installed."""


class RecordError(UsageError):
    """A transaction, receipt or SDK JSON that is not what an OpenGradient inference leaves."""


@dataclass(frozen=True)
class NumberTensor:
    """A number tensor as the chain holds it: fixed-point (value, decimals) pairs in C order."""

    name: str
    values: tuple[tuple[int, int], ...]
    shape: tuple[int, ...]

    @property
    def decimals(self) -> tuple[int, ...]:
        return tuple(d for _, d in self.values)


@dataclass(frozen=True)
class StringTensor:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ModelInput:
    numbers: tuple[NumberTensor, ...]
    strings: tuple[StringTensor, ...]


@dataclass(frozen=True)
class ModelOutput:
    numbers: tuple[NumberTensor, ...]
    strings: tuple[StringTensor, ...]
    jsons: tuple[tuple[str, str], ...]
    is_simulation_result: bool


@dataclass(frozen=True)
class InferenceRecord:
    """One inference: what was asked of which model, how, and what the chain says came out."""

    model_id: str
    inference_mode: str
    model_input: ModelInput
    model_output: ModelOutput
    transaction_hash: str | None = None


# --- the SDK's conversions ------------------------------------------------------------------


def to_fixed_point(number: float | int | str) -> tuple[int, int]:
    """The SDK's ``convert_to_fixed_point``: ``Decimal(str(x)).normalize()`` as (value, decimals >= 0)."""
    sign, digits, exponent = Decimal(str(number)).normalize().as_tuple()
    assert isinstance(exponent, int), "NaN and infinities have no fixed-point form"
    value = int("".join(map(str, digits)))
    if sign:
        value = -value
    if exponent >= 0:
        return value * 10**exponent, 0
    return value, -exponent


def from_fixed_point(value: int, decimals: int) -> Any:
    """The SDK's ``convert_fixed_point_to_python``: ``np.float32(Decimal(value) / 10**Decimal(decimals))``."""
    import numpy as np

    return np.float32(Decimal(value) / (10 ** Decimal(decimals)))


def decimals_of_float32(number: float) -> tuple[int, int]:
    """The (value, decimals) a float32 that the SDK decoded came from, by its shortest repr.

    Exact for every value with at most 6 significant digits (float32 round-trips those).
    """
    import numpy as np

    return to_fixed_point(np.format_float_positional(np.float32(number), unique=True, trim="-"))


# --- ABI ------------------------------------------------------------------------------------


def _eth() -> tuple[Any, Any]:
    try:
        import eth_abi
        from eth_hash.auto import keccak
    except ImportError as exc:
        raise OpenGradientUnavailableError(
            "decoding OpenGradient transactions needs eth-abi: pip install 'ogverify[opengradient]'"
        ) from exc
    return eth_abi, keccak


def run_selector() -> bytes:
    return bytes(_eth()[1](RUN_SIGNATURE.encode())[:4])


def event_topic() -> bytes:
    return bytes(_eth()[1](EVENT_SIGNATURE.encode()))


def _numbers(raw: Sequence[Any]) -> tuple[NumberTensor, ...]:
    return tuple(NumberTensor(str(name), tuple((int(v), int(d)) for v, d in values), tuple(int(s) for s in shape))
                 for name, values, shape in raw)


def _strings(raw: Sequence[Any]) -> tuple[StringTensor, ...]:
    return tuple(StringTensor(str(name), tuple(str(v) for v in values)) for name, values in raw)


def encode_run_call(model_id: str, inference_mode: str, model_input: ModelInput) -> bytes:
    """The ``input`` of a ``run`` transaction (what the SDK sends)."""
    eth_abi, _ = _eth()
    arguments = (model_id, INFERENCE_MODES.index(inference_mode), (
        [(t.name, [list(v) for v in t.values], list(t.shape)) for t in model_input.numbers],
        [(t.name, list(t.values)) for t in model_input.strings],
    ))
    return run_selector() + bytes(eth_abi.encode(["string", "uint8", MODEL_INPUT], list(arguments)))


def encode_event_data(model_output: ModelOutput) -> bytes:
    """The ``data`` of an ``InferenceResult`` log (what the hub emits)."""
    eth_abi, _ = _eth()
    output = (
        [(t.name, [list(v) for v in t.values], list(t.shape)) for t in model_output.numbers],
        [(t.name, list(t.values)) for t in model_output.strings],
        [list(j) for j in model_output.jsons],
        model_output.is_simulation_result,
    )
    return bytes(eth_abi.encode([MODEL_OUTPUT], [output]))


def _hex_bytes(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise RecordError(f"{what} is not a 0x-prefixed hex string")
    try:
        return bytes.fromhex(text[2:])
    except ValueError as exc:
        raise RecordError(f"{what} is not hex: {exc}") from exc


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise RecordError(f"{what} is not JSON: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("result"), dict):  # a whole JSON-RPC response
        document = document["result"]
    if not isinstance(document, dict):
        raise RecordError(f"{what} is not a JSON object")
    return document


def decode_transaction(raw: bytes, what: str = "the transaction") -> tuple[str, str, ModelInput, str | None]:
    """(modelId, inference mode, ModelInput, tx hash) from an ``eth_getTransactionByHash`` result.

    Raises:
        RecordError: not a ``run`` call of the inference hub, or undecodable.
    """
    eth_abi, _ = _eth()
    transaction = _json_object(raw, what)
    data = _hex_bytes(transaction.get("input", transaction.get("data")), f"{what}'s input")
    tx_hash = transaction.get("hash")
    selector = run_selector()
    if data[:4] != selector:
        raise RecordError(f"{what} is not a call of the inference hub's run(): its selector is 0x{data[:4].hex()}, "
                          f"run's is 0x{selector.hex()}")
    try:
        model_id, mode, (numbers, strings) = eth_abi.decode(["string", "uint8", MODEL_INPUT], data[4:])
    except Exception as exc:  # eth-abi's DecodingError family
        raise RecordError(f"{what}: the run() arguments do not decode: {exc}") from exc
    if mode >= len(INFERENCE_MODES):
        raise RecordError(f"{what}: unknown inference mode {mode} (0 VANILLA, 1 ZKML, 2 TEE)")
    return str(model_id), INFERENCE_MODES[mode], ModelInput(_numbers(numbers), _strings(strings)), (
        str(tx_hash).lower() if isinstance(tx_hash, str) else None)


def decode_receipt(raw: bytes, what: str = "the receipt") -> tuple[ModelOutput, str | None]:
    """The ``InferenceResult`` event's ModelOutput, and the tx hash, from an ``eth_getTransactionReceipt`` result.

    Raises:
        RecordError: no such event, or undecodable.
    """
    eth_abi, _ = _eth()
    receipt = _json_object(raw, what)
    topic = "0x" + event_topic().hex()
    logs = receipt.get("logs")
    if not isinstance(logs, list):
        raise RecordError(f"{what} has no logs")
    for log in logs:
        topics = log.get("topics") if isinstance(log, dict) else None
        if isinstance(topics, list) and topics and str(topics[0]).lower() == topic:
            try:
                ((numbers, strings, jsons, simulated),) = eth_abi.decode([MODEL_OUTPUT], _hex_bytes(log.get("data"),
                                                                                                    f"{what}'s log"))
            except RecordError:
                raise
            except Exception as exc:
                raise RecordError(f"{what}: the InferenceResult event does not decode: {exc}") from exc
            tx_hash = receipt.get("transactionHash")
            return ModelOutput(_numbers(numbers), _strings(strings), tuple((str(n), str(v)) for n, v in jsons),
                               bool(simulated)), str(tx_hash).lower() if isinstance(tx_hash, str) else None
    raise RecordError(f"{what} has no InferenceResult event (topic {topic[:18]}...): not an OpenGradient inference")


def read_record(tx: Path, receipt: Path) -> tuple[InferenceRecord, dict[str, bytes]]:
    """The inference a transaction and its receipt record, and their bytes (kept as evidence).

    Raises:
        RecordError: see decode_transaction, decode_receipt; or the receipt of another transaction.
    """
    tx_raw, receipt_raw = _read(tx, "--tx"), _read(receipt, "--receipt")
    model_id, mode, model_input, tx_hash = decode_transaction(tx_raw, f"--tx {tx.name}")
    model_output, receipt_hash = decode_receipt(receipt_raw, f"--receipt {receipt.name}")
    if tx_hash and receipt_hash and tx_hash != receipt_hash:
        raise RecordError(f"--receipt {receipt.name} is the receipt of {receipt_hash}, not of {tx_hash}")
    record = InferenceRecord(model_id, mode, model_input, model_output, tx_hash or receipt_hash)
    return record, {"transaction.json": tx_raw, "receipt.json": receipt_raw}


# --- the SDK's decoded form (for auditors who hold only the SDK's result) --------------------


def _flat(value: Any) -> tuple[list[Any], tuple[int, ...]]:
    import numpy as np

    array = np.asarray(value)
    return array.ravel().tolist(), tuple(int(s) for s in array.shape)


def _number_tensors(numbers: Mapping[str, Any], encode: Any) -> tuple[NumberTensor, ...]:
    tensors = []
    for name, value in numbers.items():
        flat, shape = _flat(value)
        if any(isinstance(v, str | bool) or v is None for v in flat):
            raise RecordError(f"number tensor {name!r} holds non-numbers")
        tensors.append(NumberTensor(str(name), tuple(encode(v) for v in flat), shape))
    return tuple(tensors)


def read_sdk_json(input_json: Path, output_json: Path, model_id: str) -> tuple[InferenceRecord, dict[str, bytes]]:
    """An inference from the SDK's decoded input and ``ModelOutput`` (``numbers``, ``strings``,
    ``jsons``, ``is_simulation_result``); the model's CID stands in for ``modelId``.

    Inputs: ``{"numbers": {...}, "strings": {...}}`` or the plain ``model_input`` dict given to
    ``infer``; floats are encoded as the SDK encodes them. Outputs: the decimals each float32 kept
    are read from its shortest representation.
    """
    input_raw, output_raw = _read(input_json, "--input-json"), _read(output_json, "--output-json")
    given_input = _json_object(input_raw, f"--input-json {input_json.name}")
    given_output = _json_object(output_raw, f"--output-json {output_json.name}")
    if "numbers" in given_input or "strings" in given_input:
        number_inputs, string_inputs = given_input.get("numbers") or {}, given_input.get("strings") or {}
    else:
        number_inputs = {k: v for k, v in given_input.items() if not _all_strings(v)}
        string_inputs = {k: v for k, v in given_input.items() if _all_strings(v)}
    if not isinstance(given_output.get("numbers", {}), dict) or "is_simulation_result" not in given_output:
        raise RecordError(f"--output-json {output_json.name} is not an SDK ModelOutput "
                          "(numbers, strings, jsons, is_simulation_result)")
    model_input = ModelInput(_number_tensors(number_inputs, to_fixed_point),
                             tuple(StringTensor(str(k), tuple(str(s) for s in _flat(v)[0]))
                                   for k, v in string_inputs.items()))
    model_output = ModelOutput(
        _number_tensors(given_output.get("numbers") or {}, decimals_of_float32),
        tuple(StringTensor(str(k), tuple(str(s) for s in _flat(v)[0]))
              for k, v in (given_output.get("strings") or {}).items()),
        tuple((str(k), json.dumps(v)) for k, v in (given_output.get("jsons") or {}).items()),
        bool(given_output["is_simulation_result"]),
    )
    record = InferenceRecord(model_id, "VANILLA", model_input, model_output)
    return record, {"sdk-input.json": input_raw, "sdk-output.json": output_raw}


def _all_strings(value: Any) -> bool:
    flat, _ = _flat(value)
    return bool(flat) and all(isinstance(v, str) for v in flat)


def _read(path: Path, flag: str) -> bytes:
    if not path.is_file():
        raise UsageError(f"{flag} {path} does not exist")
    return path.read_bytes()


def assert_model(record: InferenceRecord, model_cids: Any, model_name: str) -> None:
    """The model file is the one the record names.

    Raises:
        EvidenceMismatchError: the model's CID is not the record's ``modelId``.
    """
    try:
        matches = model_cids.matches(record.model_id)
    except UsageError:
        matches = False
    if not matches:
        raise EvidenceMismatchError(
            f"model {model_name} is not the model of this inference: the record names {record.model_id!r}, "
            f"{model_name} is {model_cids.v0} / {model_cids.v1}")
